//! 250 interfaces on one host, idle: how long until every one is IDLE (the sidecar starting
//! its X servers, clients and the emulated network itself), then over 30 s of idling the
//! sidecar's CPU, RSS and threads, and what each interface costs (its X server's anonymous
//! memory and its client's RSS). Writes `tests/reports/bench-scale.md`.
//!
//!   cargo test --release --test bench_scale -- --ignored --nocapture
//!
//! `SCALE_INTERFACES` (default 250) changes the count.

mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};
use support::sidecar::Sidecar;

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    field(11) + field(12)
}

fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).unwrap_or(100)
}

/// The sidecar's children by command name (`Xvfb`, `skype-sim`).
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let parent: u32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if parent == pid {
            let name = head
                .split_once('(')
                .map(|(_, n)| n)
                .unwrap_or("")
                .to_string();
            found.push((child, name));
        }
    }
    found
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: cargo test --release --test bench_scale -- --ignored --nocapture"]
async fn two_hundred_fifty_idle_interfaces() {
    let count: usize = std::env::var("SCALE_INTERFACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250);
    let names: Vec<(String, String)> = (1..=count)
        .map(|n| (format!("interface{n}"), format!("user{n}")))
        .collect();
    let pairs: Vec<(&str, &str)> = names
        .iter()
        .map(|(name, user)| (name.as_str(), user.as_str()))
        .collect();
    let started = Instant::now();
    let sidecar = Sidecar::start_with_env(&pairs, &[("SKYPOPEN__LOG__LEVEL", "info")]);
    sidecar.wait_idle(count).await;
    let to_idle = started.elapsed();
    println!(
        "{count} interfaces IDLE after {:.1} s",
        to_idle.as_secs_f64()
    );

    // Let start-up work (first status queries, the chat fetches) finish before measuring.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pid = sidecar.pid();
    let window = Duration::from_secs(30);
    let cpu_before = cpu_ticks(pid);
    let measured_from = Instant::now();
    tokio::time::sleep(window).await;
    let cpu_after = cpu_ticks(pid);
    let seconds = measured_from.elapsed().as_secs_f64();
    let cpu_percent = (cpu_after - cpu_before) as f64 / ticks_per_second() as f64 / seconds * 100.0;
    let rss_mib = status_kib(pid, "VmRSS:") as f64 / 1024.0;
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);

    let kids = children(pid);
    let mut xvfb_anon: Vec<u64> = Vec::new();
    let mut client_rss: Vec<u64> = Vec::new();
    let mut network_rss = 0;
    for (child, name) in &kids {
        let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
        let is_network = cmdline.split(|b| *b == 0).any(|arg| arg == b"network");
        match name.as_str() {
            "Xvfb" => xvfb_anon.push(status_kib(*child, "RssAnon:")),
            "skype-sim" if is_network => network_rss = status_kib(*child, "VmRSS:"),
            "skype-sim" => client_rss.push(status_kib(*child, "VmRSS:")),
            _ => {}
        }
    }
    let xvfb_total: u64 = xvfb_anon.iter().sum();
    let clients_total: u64 = client_rss.iter().sum();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "# {count} interfaces on one host, idle\n\n\
         `cargo test --release --test bench_scale -- --ignored --nocapture`: the release \
         sidecar starts {count} X servers (`Xvfb -screen 0 64x64x8 -extension GLX`), {count} \
         emulated clients (user1 … user{count}) and the emulated network itself; 2 cores.\n\n\
         | measure | value | goal |\n|---|---:|---|\n\
         | every interface IDLE after start | {:.1} s | ≤ 10 s |\n\
         | sidecar RSS | {rss_mib:.1} MiB | < 100 MiB |\n\
         | sidecar threads | {threads} | < 64 |\n\
         | sidecar CPU, idle over {seconds:.0} s | {cpu_percent:.2} % of a core | < 2 % |\n\
         | X server anonymous memory, median per display | {:.1} MiB | |\n\
         | emulated client RSS, median | {:.1} MiB | |\n\
         | all X servers (anonymous) + all clients (RSS) + network (RSS) | {:.0} MiB | fits 24 GB |\n",
        to_idle.as_secs_f64(),
        median(&mut xvfb_anon.clone()) as f64 / 1024.0,
        median(&mut client_rss.clone()) as f64 / 1024.0,
        (xvfb_total + clients_total + network_rss) as f64 / 1024.0,
    );
    let _ = writeln!(
        report,
        "Counted: {} X servers, {} clients, the network ({:.1} MiB).",
        xvfb_anon.len(),
        client_rss.len(),
        network_rss as f64 / 1024.0
    );
    println!("{report}");
    std::fs::write(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reports/bench-scale.md"),
        &report,
    )
    .expect("report written");
    assert_eq!(xvfb_anon.len(), count, "X servers counted");
    assert_eq!(client_rss.len(), count, "clients counted");
}
