//! Chat rate: Skype parties push chats at 20 interfaces (one account each) as fast as the
//! emulated network takes them, and the sidecar turns each into one MESSAGE event on the
//! FreeSWITCH double. Measures messages per second into FreeSWITCH, per-message latency (the
//! network accepting it → the double receiving the event), the CPU of the sidecar and the
//! emulator, and checks every dialog arrives in order, exactly once. Writes
//! `tests/reports/bench-chats.md`.
//!
//!   cargo test --release --test bench_chats -- --ignored --nocapture
//!
//! `CHAT_INTERFACES` (default 20) and `CHAT_PER_DIALOG` (default 250; two dialogs per
//! interface, from alice and from bob) change the load.

mod support;

use skypopen::sim::client::trace::monotonic_ns;
use skypopen::sim::ctl;
use skypopen::sim::proto::CtlCommand;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::bench_args::git_commit;
use support::sim::TEST_TIMINGS;
use support::stack::{Stack, StackSpec};

const SENDERS: [&str; 2] = ["alice", "bob"];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or("")
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One message as the double saw it.
struct Arrival {
    dialog: usize,
    seq: usize,
    key: String,
    latency_ms: f64,
    at_ns: u64,
}

fn parse_body(body: &str) -> Option<(usize, usize, u64)> {
    let mut parts = body.split(' ');
    let dialog = parts.next()?.strip_prefix('d')?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    Some((dialog, seq, sent))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run on demand"]
async fn bench_chats_into_freeswitch() {
    let interfaces = env_usize("CHAT_INTERFACES", 20);
    let per_dialog = env_usize("CHAT_PER_DIALOG", 250);
    let users: Vec<String> = (1..=interfaces).map(|i| format!("user{i}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let mut spec = StackSpec::users(&refs);
    spec.network_args = TEST_TIMINGS.iter().map(|s| s.to_string()).collect();
    spec.network_args
        .extend(["--accounts".to_string(), interfaces.max(8).to_string()]);
    let stack = Stack::start(spec).await;
    stack.wait_all_idle().await;
    let dialogs: Vec<(String, String)> = users
        .iter()
        .flat_map(|u| SENDERS.iter().map(move |s| (s.to_string(), u.clone())))
        .collect();
    let total = dialogs.len() * per_dialog;
    let sidecar = stack.sidecar_pid();
    let network = [stack.net.pid()];
    let clients: Vec<u32> = stack.clients.iter().flatten().map(|c| c.pid()).collect();
    let displays: Vec<u32> = stack.displays.iter().map(|d| d.pid()).collect();
    let ticks = |pids: &[u32]| pids.iter().map(|&p| cpu_ticks(p)).sum::<u64>();
    let emulator_ticks = || [ticks(&network), ticks(&clients), ticks(&displays)];

    let already = stack.fs.recorded().sent_events.len();
    let (sidecar0, emulator0, harness0) = (
        cpu_ticks(sidecar),
        emulator_ticks(),
        cpu_ticks(std::process::id()),
    );
    let start_ns = monotonic_ns();
    let injected_ns = Arc::new(Mutex::new(0u64));
    let addr = stack.net.addr;
    let mut senders = Vec::new();
    for (d, (from, to)) in dialogs.iter().cloned().enumerate() {
        let injected_ns = Arc::clone(&injected_ns);
        senders.push(tokio::spawn(async move {
            for seq in 0..per_dialog {
                let text = format!("d{d} {seq} {}", monotonic_ns());
                let command = CtlCommand::Chat {
                    from: from.clone(),
                    to: to.clone(),
                    text,
                };
                if let Err(e) = ctl::request(addr, command).await {
                    panic!("chat {from} → {to} #{seq} refused: {e}");
                }
            }
            let mut last = injected_ns.lock().unwrap();
            *last = (*last).max(monotonic_ns());
        }));
    }

    // Stamp each MESSAGE event as the double records it.
    let mut arrivals: Vec<Arrival> = Vec::with_capacity(total);
    let mut seen = already;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while arrivals.len() < total {
        let events = stack
            .fs
            .wait_for("more MESSAGE events", Duration::from_secs(60), |st| {
                (st.recorded.sent_events.len() > seen)
                    .then(|| st.recorded.sent_events[seen..].to_vec())
            })
            .await;
        let now = monotonic_ns();
        seen += events.len();
        for e in events {
            let Some((dialog, seq, sent)) = e.body.as_deref().and_then(parse_body) else {
                continue;
            };
            arrivals.push(Arrival {
                dialog,
                seq,
                key: e.header("skypopen_message_key").unwrap_or("").to_string(),
                latency_ms: now.saturating_sub(sent) as f64 / 1e6,
                at_ns: now,
            });
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {total} chats arrived",
            arrivals.len()
        );
    }
    let end_ns = monotonic_ns();
    let (sidecar1, emulator1, harness1) = (
        cpu_ticks(sidecar),
        emulator_ticks(),
        cpu_ticks(std::process::id()),
    );
    for s in senders {
        s.await.expect("sender");
    }
    // A little longer: a copy arriving late would show here.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late = stack.fs.recorded().sent_events.len() - seen;

    let mut keys = HashSet::new();
    let mut copies = 0;
    let mut next: HashMap<usize, usize> = HashMap::new();
    let mut out_of_order = 0;
    for a in &arrivals {
        if !keys.insert(a.key.clone()) {
            copies += 1;
        }
        let want = next.entry(a.dialog).or_insert(0);
        if a.seq != *want {
            out_of_order += 1;
        }
        *want = a.seq + 1;
    }
    let span_s = end_ns.saturating_sub(start_ns) as f64 / 1e9;
    let inject_s = injected_ns.lock().unwrap().saturating_sub(start_ns) as f64 / 1e9;
    let rate = total as f64 / span_s;
    let mut latencies: Vec<f64> = arrivals.iter().map(|a| a.latency_ms).collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    // The steady rate: the middle 80 % of arrivals, away from start-up and drain.
    let mut times: Vec<u64> = arrivals.iter().map(|a| a.at_ns).collect();
    times.sort_unstable();
    let (lo, hi) = (times[total / 10], times[total * 9 / 10]);
    let steady = (total * 8 / 10) as f64 / (hi.saturating_sub(lo) as f64 / 1e9).max(1e-9);
    let pct = |ticks: u64| ticks as f64 / ticks_per_second() / span_s * 100.0;
    let sidecar_pct = pct(sidecar1.saturating_sub(sidecar0));
    let parts: Vec<f64> = (0..3)
        .map(|i| pct(emulator1[i].saturating_sub(emulator0[i])))
        .collect();
    let emulator_pct: f64 = parts.iter().sum();
    let harness_pct = pct(harness1.saturating_sub(harness0));

    let mut report = String::new();
    let _ = writeln!(report, "# Chat rate into FreeSWITCH\n");
    let _ = writeln!(
        report,
        "`cargo test --release --test bench_chats -- --ignored --nocapture` (commit `{}`, \
         {} cores). {interfaces} interfaces, one emulated account each; Skype parties alice \
         and bob each send {per_dialog} chats to every account ({} dialogs, {total} \
         messages), each dialog one message after the other as fast as the emulated network \
         accepts them (`skype-sim ctl chat`, in process); the sidecar turns each into a \
         MESSAGE event on the FreeSWITCH double. Goal: ≥ 1,000 messages/s in all, in order \
         per dialog, exactly once.\n",
        git_commit(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        dialogs.len(),
    );
    let _ = writeln!(report, "| figure | value |\n|---|---|");
    let _ = writeln!(
        report,
        "| messages into FreeSWITCH / s, whole run | {rate:.0} |"
    );
    let _ = writeln!(
        report,
        "| messages into FreeSWITCH / s, middle 80 % | {steady:.0} |"
    );
    let _ = writeln!(
        report,
        "| whole run / injection done | {span_s:.2} s / {inject_s:.2} s |"
    );
    let _ = writeln!(
        report,
        "| latency, network accepts → event at FreeSWITCH, p50 / p90 / p99 / max | {:.1} / {:.1} / {:.1} / {:.1} ms |",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    );
    let _ = writeln!(
        report,
        "| arrived / copies / out of order / late | {} / {copies} / {out_of_order} / {late} |",
        arrivals.len()
    );
    let _ = writeln!(
        report,
        "| CPU, % of a core: sidecar / emulator (network, clients, Xvfb) / harness (senders, double) | {sidecar_pct:.0} / {emulator_pct:.0} / {harness_pct:.0} |"
    );
    let _ = writeln!(
        report,
        "| emulator CPU, % of a core: network / {interfaces} clients / {interfaces} Xvfb | {:.0} / {:.0} / {:.0} |",
        parts[0], parts[1], parts[2]
    );
    let _ = writeln!(
        report,
        "| sidecar CPU per message | {:.0} µs |",
        sidecar1.saturating_sub(sidecar0) as f64 / ticks_per_second() / total as f64 * 1e6
    );
    let _ = writeln!(
        report,
        "\nGoal ≥ 1,000 messages/s: {}.",
        if rate >= 1000.0 { "met" } else { "not met" }
    );
    println!("{report}");
    let name = std::env::var("BENCH_REPORT").unwrap_or_else(|_| "bench-chats.md".into());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reports");
    std::fs::create_dir_all(&dir).expect("reports dir");
    std::fs::write(dir.join(name), &report).expect("write report");
    assert_eq!(copies, 0, "copies of one message");
    assert_eq!(out_of_order, 0, "messages out of order within a dialog");
    assert_eq!(late, 0, "events after the last expected one");
}
