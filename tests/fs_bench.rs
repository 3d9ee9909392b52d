//! Benchmark (ignored by default): the FreeSWITCH client roles against the double.
//! `cargo test --release --test fs_bench -- --ignored --nocapture` writes
//! `target/fs-client-bench.txt`: api round trip, bgapi throughput with correlation, and the time
//! from a `socket` connection to a handshaken channel handle.
mod support;

use skypopen::config::Secret;
use skypopen::switch::inbound::{spawn_inbound, InboundConfig};
use skypopen::switch::outbound::{OutboundAcceptor, OutboundOptions};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use support::fs_double::FsDouble;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize];
    format!(
        "p50 {:?}  p90 {:?}  p99 {:?}  max {:?}  (n={})",
        at(0.5),
        at(0.9),
        at(0.99),
        samples[samples.len() - 1],
        samples.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn fs_client_bench() {
    let double = FsDouble::start().await;
    let cancel = CancellationToken::new();
    let inbound = spawn_inbound(
        InboundConfig::new(double.esl_addr(), Secret::new("ClueCon")),
        cancel.clone(),
    );
    inbound
        .wait_connected(Duration::from_secs(10))
        .await
        .unwrap();
    let mut report = String::from("FreeSWITCH client roles against the in-process double\n\n");

    let mut api = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        inbound.api("status").await.unwrap();
        api.push(t.elapsed());
    }
    writeln!(report, "api status round trip: {}", percentiles(api)).unwrap();

    let jobs = 2000;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let inbound = inbound.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..jobs / 16 {
                inbound
                    .bgapi("status", Duration::from_secs(10))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = t.elapsed();
    writeln!(
        report,
        "bgapi status, 16 concurrent callers, each result awaited: {jobs} jobs in {elapsed:?} ({:.0}/s)",
        jobs as f64 / elapsed.as_secs_f64()
    )
    .unwrap();

    let acceptor =
        OutboundAcceptor::bind("127.0.0.1:0".parse().unwrap(), OutboundOptions::default())
            .await
            .unwrap();
    let addr = acceptor.local_addr().unwrap();
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(acceptor.run(tx, cancel.clone()));
    let mut handshakes = Vec::new();
    for i in 0..300 {
        let t = Instant::now();
        double.dial_skype(addr, &format!("bench{i}"), "1000", None);
        let handle = rx.recv().await.unwrap();
        handshakes.push(t.elapsed());
        handle.control.hangup("NORMAL_CLEARING").await.unwrap();
    }
    writeln!(
        report,
        "socket connection to handle (connect, myevents, linger, event): {}",
        percentiles(handshakes)
    )
    .unwrap();
    cancel.cancel();
    print!("{report}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fs-client-bench.txt");
    std::fs::write(&path, &report).unwrap();
}
