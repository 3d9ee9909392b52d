//! Call benchmark, run on demand (`cargo test --release --test bench_calls -- --ignored
//! --nocapture`): N concurrent FreeSWITCH → `skype/instantecho` calls through the real sidecar
//! and the emulator, for each transport (`audio_fork`; `unicast` on a 16 kHz and an 8 kHz
//! leg), against the same figures for a bare relay that only copies the frames back (the
//! floor). Writes `tests/reports/bench-calls.md`.
//!
//! The double's media sides are replaced by probes (`support::probe`): each sends a chirp
//! train and timestamps what comes back, so each echoed chirp is found by cross-correlation.
//! Every `skype-sim client` runs with `--audio-trace`, so the same chirp is also found where
//! the client read it from its input socket and wrote it to its output socket: the round trip
//! splits into FreeSWITCH → Skype (sidecar), the emulator's own share (its network hop and
//! its 20 ms output clock) and Skype → FreeSWITCH (sidecar).
//!
//! `BENCH_CALLS=1,10` picks the call counts (default 1,10,20,30); `BENCH_TRANSPORTS=unicast`
//! the transports (`audio_fork`, `unicast`, `unicast8`; default all); `BENCH_REPORT` the
//! report's file name under `tests/reports/` (default `bench-calls.md`). The 100-call run:
//! `BENCH_CALLS=100 BENCH_TRANSPORTS=unicast BENCH_REPORT=bench-calls-100.md`.
//!
//! `unicast` 16 kHz also runs the fair floor ([`four_socket`]): the same four sockets per
//! call and the same 20 ms clock as the sidecar, with nothing else.
#[path = "../support/mod.rs"]
mod support;

mod chirp_tests;
mod cpu;
mod figures;
mod four_socket;
mod hook;
mod relay;
mod report;
mod sidecar;

use four_socket::four_socket_scenario;
use relay::relay_scenario;
use report::{cpu_row, latency_row};
use sidecar::SidecarStack;
use std::time::Duration;
pub use support::bench_args::{env_list, Transport};

pub const WINDOW: Duration = Duration::from_secs(10);
pub const IDLE_SPAN: Duration = Duration::from_secs(3);
/// Chirps sent near the end of the window may still be on their way; the traces are flushed
/// every 100 ms.
pub const SETTLE: Duration = Duration::from_millis(700);

/// Replaces the double's fork clients and unicast legs with probes, one per channel.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run on demand"]
async fn bench_calls_sidecar_vs_bare_relay() {
    let counts: Vec<usize> = env_list("BENCH_CALLS", "1,10,20,30", |s| s.trim().parse().ok());
    let transports = env_list(
        "BENCH_TRANSPORTS",
        "audio_fork,unicast,unicast8",
        Transport::parse,
    );
    let most = counts.iter().copied().max().unwrap_or(1);
    let mut all = Vec::new();
    for unicast in [false, true] {
        let group: Vec<Transport> = transports
            .iter()
            .copied()
            .filter(|t| t.is_unicast() == unicast)
            .collect();
        if group.is_empty() {
            continue;
        }
        let stack = SidecarStack::start(most, unicast).await;
        for &transport in &group {
            for &calls in &counts {
                let f = stack.scenario(transport, calls).await;
                println!("{}\n{}", latency_row(&f), cpu_row(&f));
                all.push(f);
            }
        }
    }
    for &transport in &transports {
        if transport == Transport::Unicast8k && transports.contains(&Transport::Unicast16k) {
            // The UDP relay does not care about the rate: the 16 kHz row is the floor.
            continue;
        }
        for &calls in &counts {
            let f = relay_scenario(transport, calls).await;
            println!("{}\n{}", latency_row(&f), cpu_row(&f));
            all.push(f);
            if transport == Transport::Unicast16k {
                let f = four_socket_scenario(calls).await;
                println!("{}\n{}", latency_row(&f), cpu_row(&f));
                all.push(f);
            }
        }
    }
    all.sort_by_key(|f| (f.transport as u8, f.calls, report::path_rank(f.path)));
    let text = report::render(&all);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reports");
    std::fs::create_dir_all(&dir).expect("reports dir");
    let name = std::env::var("BENCH_REPORT").unwrap_or_else(|_| "bench-calls.md".into());
    std::fs::write(dir.join(&name), &text).expect("write report");
    println!("{text}");
}
