//! `/metrics` and `/health` on the metrics address, scraped during and after a call.
mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::sim::free_port;
use support::stack::{Stack, StackSpec, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET <path>`: the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample line starting with `series` (name and labels as printed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_during_a_call_shows_the_call_its_media_and_latency() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut spec = StackSpec::users(&["user1"]);
    spec.extra = format!("[metrics]\nlisten = \"{addr}\"\n");
    let stack = Stack::start(spec).await;

    let (code, body) = get(addr, "/health").await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.starts_with("OK FreeSWITCH connected, 1 of 1 interface(s) usable"),
        "{body}"
    );

    let call = stack.dial("echo123");
    stack.fs.wait_answered(&call.socket_leg, WAIT).await;
    stack.heard(&call.socket_leg, 1.0).await;
    let (code, text) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}:\n{text}"));
    assert_eq!(value(r#"skypopen_calls_active{direction="outbound"}"#), 1.0);
    assert_eq!(
        value(r#"skypopen_interface_state{interface="interface1",state="UP"}"#),
        1.0
    );
    assert_eq!(value("skypopen_media_paths"), 1.0);
    assert_eq!(value("skypopen_esl_up"), 1.0);
    for direction in ["to_skype", "to_switch"] {
        let out = value(&format!(
            r#"skypopen_media_frames_total{{direction="{direction}",kind="out"}}"#
        ));
        assert!(
            out >= 25.0,
            "{direction}: {out} frames in a second of audio"
        );
        let measured = value(&format!(
            r#"skypopen_media_latency_seconds_count{{direction="{direction}"}}"#
        ));
        assert!(
            measured >= out,
            "{direction}: every frame sent has its wait measured"
        );
        let within_a_slot = value(&format!(
            r#"skypopen_media_latency_seconds_bucket{{le="0.021",direction="{direction}"}}"#
        ));
        assert!(within_a_slot > 0.0, "{direction}");
    }
    let (_, health) = get(addr, "/health").await;
    assert!(health.contains("1 call(s) up"), "{health}");

    stack.fs.hangup(&call.caller_leg, "NORMAL_CLEARING");
    stack.wait_no_calls().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, after) = get(addr, "/metrics").await;
    let value =
        |series: &str| sample(&after, series).unwrap_or_else(|| panic!("{series}:\n{after}"));
    assert_eq!(
        value(r#"skypopen_calls_ended_total{direction="outbound",cause="NORMAL_CLEARING"}"#),
        1.0
    );
    assert_eq!(value(r#"skypopen_calls_active{direction="outbound"}"#), 0.0);
    assert_eq!(value("skypopen_media_paths"), 0.0);
    assert!(
        value(r#"skypopen_media_frames_total{direction="to_skype",kind="out"}"#) >= 25.0,
        "the ended call's frames stay counted"
    );

    // The switch goes away: not healthy, and why.
    stack.fs.stop();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (code, body) = get(addr, "/health").await;
        if code == 503 {
            assert!(body.contains("is not connected"), "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {code}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, text) = get(addr, "/metrics").await;
    assert_eq!(sample(&text, "skypopen_esl_up"), Some(0.0));
}

/// Every metric the shipped Grafana dashboard queries is one the sidecar exports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_dashboard_queries_only_exported_metrics() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana-dashboard.json");
    let text = std::fs::read_to_string(&path).expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    let metrics = skypopen::metrics::Metrics::new();
    // Give every family a series, as a running sidecar would.
    metrics.call_ended("inbound", "NORMAL_CLEARING");
    metrics.chat("received");
    metrics.latency("to_skype").observe(0.0);
    metrics
        .client_restarts
        .get_or_create(&vec![("interface", "i".to_string())])
        .inc();
    let exported = metrics.encode();
    let names = regex::Regex::new(r"skypopen_[a-z_]+").unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for name in names.find_iter(expr) {
                let family = ["_bucket", "_total", "_count", "_sum"]
                    .iter()
                    .fold(name.as_str(), |n, suffix| {
                        n.strip_suffix(suffix).unwrap_or(n)
                    });
                let gateway_side = [
                    "skypopen_esl_up",
                    "skypopen_interfaces_usable",
                    "skypopen_calls_active",
                    "skypopen_interface_state",
                ];
                assert!(
                    exported.contains(&format!("# TYPE {family} "))
                        || gateway_side.contains(&family),
                    "{family} (in {expr:?}) is not exported"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "{checked}");
}
