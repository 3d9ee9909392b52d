//! `log <level>` streams the sidecar's own log records as `log/data`, `nolog` stops them.
//! A file of its own: it installs the process-wide tracing subscriber.

mod listener_support;

use listener_support::{Client, Server};
use skypopen::config::{LogFormat, LogSettings};

#[tokio::test]
async fn log_streams_own_lines_until_nolog() {
    let logs = skypopen::telemetry::init(
        &LogSettings {
            format: LogFormat::Text,
            level: "debug".into(),
        },
        "test-host",
    );
    let server = Server::start_with(|_| {}, 64, logs).await;
    let mut client = Client::login(server.addr).await;
    assert_eq!(client.reply_text("log 7").await, "+OK log level 7 [7]");

    tracing::info!(target: "listener_logs", interface = "interface1", "marker line one");
    let line = loop {
        let message = client.recv().await.expect("log lines before EOF");
        if message.content_type() != Some("log/data") {
            continue;
        }
        let text = message.body_text().unwrap_or_default().into_owned();
        if text.contains("marker line one") {
            break message;
        }
    };
    assert_eq!(line.headers.get("Log-Level"), Some("6"));
    assert_eq!(line.headers.get("Log-File"), Some("listener_logs"));
    let text = line.body_text().unwrap_or_default().into_owned();
    assert!(
        text.contains("[INFO] listener_logs marker line one interface=interface1"),
        "{text}"
    );
    assert!(text.ends_with('\n'));
    let length: usize = line
        .headers
        .get("Content-Length")
        .and_then(|value| value.parse().ok())
        .unwrap_or(0);
    assert_eq!(length, text.len());

    // At level 4 (warning) info lines no longer come; a warning does.
    assert_eq!(
        client.reply_text("log warning").await,
        "+OK log level warning [4]"
    );
    tracing::info!(target: "listener_logs", "marker line two");
    tracing::warn!(target: "listener_logs", "marker line three");
    loop {
        let message = client.recv().await.expect("log lines before EOF");
        let text = message.body_text().unwrap_or_default().into_owned();
        assert!(!text.contains("marker line two"), "an info line at level 4");
        if text.contains("marker line three") {
            assert_eq!(message.headers.get("Log-Level"), Some("4"));
            break;
        }
    }
    assert_eq!(client.reply_text("nolog").await, "+OK no longer logging");
    assert_eq!(client.reply_text("nolog").await, "-ERR not loging");
    assert_eq!(
        client.reply_text("log loud").await,
        "-ERR invalid log level"
    );
    server.stop().await;
}
