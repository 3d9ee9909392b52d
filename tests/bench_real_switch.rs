//! Call benchmark on a real FreeSWITCH, run on demand:
//! `cargo test --release --test bench_real_switch -- --ignored --nocapture`
//! (`BENCH_CALLS=1,10,30`, `BENCH_TRANSPORTS=audio_fork,unicast,unicast8` pick subsets).
//! Writes `tests/reports/bench-real-switch.md` (`BENCH_OUT=<name>` for another file there).
//!
//! FreeSWITCH originates every call: a loopback leg in a probe extension (answer, park, and
//! the stock `unicast` call command to a UDP probe of this process) whose other half is sent into
//! the shipped dialplan as `skypopen/<interface>/instantecho`, so the call crosses the real
//! `socket`, the sidecar, the transport under test and the emulator's instant echo. The probe
//! says a 20 ms chirp every 500 ms on an absolute 20 ms schedule and finds each echoed chirp
//! by cross-correlation. The floor, in the same run and through the same probe: the other
//! half runs the switch's own `echo` application instead. What the sidecar path adds is the
//! difference of the two round trips. CPU is read from `/proc` for the FreeSWITCH process and
//! the sidecar separately, over the same 10 s window, less their idle rates.
#[allow(dead_code)]
#[path = "bench_calls/cpu.rs"]
mod cpu;
mod support;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::bench_args::{env_list, percentile, Transport};
use support::probe::{delay_to_next, lock, mono_ns, run_udp_probe, Chirp, ProbeRecord, ProbeRef};
use support::real_stack::{Media, RealStack, StackSpec};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

pub const IDLE_SPAN: Duration = Duration::from_secs(3);
const WINDOW: Duration = Duration::from_secs(10);
/// Chirps sent near the end of the window may still be on their way back.
const SETTLE: Duration = Duration::from_millis(700);
const PROBE_EXTENSION: &str = "skypopen_bench_probe";
const ECHO_EXTENSION: &str = "skypopen_bench_echo";

fn extensions() -> String {
    format!(
        r#"<include>
  <extension name="{PROBE_EXTENSION}">
    <condition field="destination_number" expression="^{PROBE_EXTENSION}$">
      <action application="answer"/>
      <action application="park"/>
    </condition>
  </extension>
  <extension name="{ECHO_EXTENSION}">
    <condition field="destination_number" expression="^{ECHO_EXTENSION}$">
      <action application="answer"/>
      <action application="echo"/>
    </condition>
  </extension>
</include>
"#
    )
}

/// One measured scenario.
struct Row {
    path: &'static str,
    transport: Transport,
    calls: usize,
    round_trips_ms: Vec<f64>,
    lost: usize,
    sent: usize,
    fs_cpu_per_call: f64,
    sidecar_cpu_per_call: Option<f64>,
    answer_to_audio_ms: Vec<f64>,
}

struct Call {
    probe: ProbeRef,
    /// The leg the dialplan hands on (to the sidecar, or to the floor's echo).
    leg: String,
}

/// Starts `calls` probe calls whose other half goes to `dest(i)`; waits until every probe
/// hears its first echo.
async fn start_calls(
    stack: &RealStack,
    rate: u32,
    calls: usize,
    dest: impl Fn(usize) -> String,
    stop: &CancellationToken,
) -> Vec<Call> {
    let mut out = Vec::new();
    for i in 0..calls {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("probe socket");
        let probe_port = socket.local_addr().expect("probe address").port();
        let fs_port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free UDP port")
            .port();
        let probe: ProbeRef = Arc::new(std::sync::Mutex::new(ProbeRecord::default()));
        let leg = uuid::Uuid::new_v4().to_string();
        stack
            .fs
            .bgapi(&format!(
                "originate {{origination_uuid={leg},bench_call={leg}}}loopback/{PROBE_EXTENSION}/default {} XML default",
                dest(i)
            ))
            .await;
        // `unicast` is a call command, not a dialplan application: sent to the parked leg.
        // Matched by this call's own id: ports come round again in later scenarios.
        let port = probe_port.to_string();
        let parked = stack
            .fs
            .events
            .wait("the probe leg answered", Duration::from_secs(30), |e| {
                e.name() == "CHANNEL_ANSWER"
                    && e.get("variable_loopback_leg") == Some("B")
                    && e.get("variable_bench_call") == Some(leg.as_str())
            })
            .await;
        let uuid = parked.get("Unique-ID").unwrap_or_default().to_string();
        let reply = stack
            .fs
            .sendmsg(
                &uuid,
                &[
                    ("call-command", "unicast"),
                    ("local-ip", "127.0.0.1"),
                    ("local-port", &fs_port.to_string()),
                    ("remote-ip", "127.0.0.1"),
                    ("remote-port", &port),
                    ("transport", "udp"),
                ],
            )
            .await;
        assert!(
            reply.starts_with("+OK"),
            "unicast on the probe leg: {reply}"
        );
        let remote = format!("127.0.0.1:{fs_port}").parse().expect("address");
        tokio::spawn(run_udp_probe(
            socket,
            remote,
            rate,
            Arc::clone(&probe),
            stop.clone(),
        ));
        out.push(Call { probe, leg });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while out
        .iter()
        .any(|c| lock(&c.probe).first_loud_wall_us.is_none())
    {
        assert!(
            Instant::now() < deadline,
            "not every probe heard its echo in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    out
}

/// The round trips of the chirps sent inside `[from, to]` and how many were lost.
fn round_trips(calls: &[Call], rate: u32, from: u64, to: u64) -> (Vec<f64>, usize, usize) {
    let chirp = Chirp::new(rate);
    let (mut trips, mut lost, mut sent) = (Vec::new(), 0, 0);
    for call in calls {
        let p = lock(&call.probe);
        let back = p.received.chirps(&chirp);
        for &t in p.chirps_sent.iter().filter(|&&t| t >= from && t <= to) {
            sent += 1;
            match delay_to_next(t, &back) {
                Some(d) => trips.push(d as f64 / 1e6),
                None => lost += 1,
            }
        }
    }
    trips.sort_by(f64::total_cmp);
    (trips, lost, sent)
}

/// From the `answer` executed on each call's handed-on leg (by the sidecar when Skype
/// answered; by the echo extension for the floor) to the first audible frame back at the probe.
fn answer_to_audio(calls: &[Call], events: &[support::real_stack::FsEvent]) -> Vec<f64> {
    let mut out: Vec<f64> = calls
        .iter()
        .filter_map(|c| {
            let answered: u64 = events
                .iter()
                .find(|e| {
                    e.name() == "CHANNEL_EXECUTE"
                        && e.get("Application") == Some("answer")
                        && e.get("Unique-ID") == Some(c.leg.as_str())
                })?
                .get("Event-Date-Timestamp")?
                .parse()
                .ok()?;
            let p = lock(&c.probe);
            let heard = p.audible_wall_us.iter().find(|&&t| t >= answered)?;
            Some((heard - answered) as f64 / 1000.0)
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

async fn scenario(
    stack: &RealStack,
    transport: Transport,
    calls: usize,
    through_sidecar: bool,
    idle: (f64, f64),
) -> Row {
    let stop = CancellationToken::new();
    let dest = |i: usize| {
        if through_sidecar {
            format!("skypopen/interface{}/instantecho", i + 1)
        } else {
            ECHO_EXTENSION.to_string()
        }
    };
    let started = start_calls(stack, transport.rate(), calls, dest, &stop).await;
    let fs_stat = format!("/proc/{}/stat", stack.fs.pid());
    let sidecar_stat = format!("/proc/{}/stat", stack.sidecar_pid());
    let (fs0, sc0, t0) = (
        cpu::cpu_ticks(&fs_stat),
        cpu::cpu_ticks(&sidecar_stat),
        mono_ns(),
    );
    tokio::time::sleep(WINDOW).await;
    let (fs1, sc1, t1) = (
        cpu::cpu_ticks(&fs_stat),
        cpu::cpu_ticks(&sidecar_stat),
        mono_ns(),
    );
    tokio::time::sleep(SETTLE).await;
    let (trips, lost, sent) = round_trips(&started, transport.rate(), t0, t1);
    let answer_ms = answer_to_audio(&started, &stack.fs.events.all());
    let span = Duration::from_nanos(t1 - t0);
    let per_call = |ticks: u64, idle_pct: f64| {
        (cpu::pct_of_core(ticks, span) - idle_pct).max(0.0) / calls as f64
    };
    stop.cancel();
    stack.fs.api("hupall NORMAL_CLEARING").await;
    if through_sidecar {
        stack.wait_all_idle().await;
        stack.wait_no_calls().await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Row {
        path: if through_sidecar {
            "sidecar + skype-sim"
        } else {
            "FreeSWITCH echo (floor)"
        },
        transport,
        calls,
        round_trips_ms: trips,
        lost,
        sent,
        fs_cpu_per_call: per_call(fs1 - fs0, idle.0),
        sidecar_cpu_per_call: through_sidecar.then(|| per_call(sc1 - sc0, idle.1)),
        answer_to_audio_ms: answer_ms,
    }
}

fn render(rows: &[Row], machine: &str) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "# Call benchmark on a real FreeSWITCH\n");
    let _ = writeln!(
        t,
        "`cargo test --release --test bench_real_switch -- --ignored --nocapture` (`BENCH_CALLS`, \
         `BENCH_TRANSPORTS` pick subsets). {machine}\n\n\
         FreeSWITCH originates each call from a parked loopback leg given the stock `unicast` \
         call command towards a UDP probe (20 ms chirp every 500 ms, absolute 20 ms schedule, found \
         again by cross-correlation); its other half enters the shipped dialplan as \
         `skypopen/<interface>/instantecho` (one interface per call) or, for the floor in the \
         same run, the switch's own `echo`. The legs are L16 at the rate shown (the audio fork \
         rows at 16 kHz). CPU: % of one core per call over a 10 s window, less the idle rate, \
         the FreeSWITCH process and the sidecar apart. Answer → first audio: from the `answer` \
         executed on the handed-on leg (by the sidecar once Skype answered; by the echo \
         extension for the floor) to the first audible frame back at the probe, which says a \
         faint tone between chirps.\n"
    );
    let _ = writeln!(
        t,
        "| path | transport | calls | round trip p50 / p90 / p99 ms | added over the floor p50 / p99 ms | chirps lost / sent | FreeSWITCH CPU per call | sidecar CPU per call | answer → first audio p50 / max ms |\n|---|---|---|---|---|---|---|---|---|"
    );
    for r in rows {
        let floor = rows.iter().find(|f| {
            f.path.starts_with("FreeSWITCH") && f.transport == r.transport && f.calls == r.calls
        });
        let added = match floor {
            Some(f) if !r.path.starts_with("FreeSWITCH") => format!(
                "{:.1} / {:.1}",
                percentile(&r.round_trips_ms, 0.5) - percentile(&f.round_trips_ms, 0.5),
                percentile(&r.round_trips_ms, 0.99) - percentile(&f.round_trips_ms, 0.99)
            ),
            _ => "–".into(),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.1} / {:.1} / {:.1} | {} | {} / {} | {:.2} % | {} | {:.1} / {:.1} |",
            r.path,
            r.transport.label(),
            r.calls,
            percentile(&r.round_trips_ms, 0.5),
            percentile(&r.round_trips_ms, 0.9),
            percentile(&r.round_trips_ms, 0.99),
            added,
            r.lost,
            r.sent,
            r.fs_cpu_per_call,
            r.sidecar_cpu_per_call
                .map(|c| format!("{c:.2} %"))
                .unwrap_or_else(|| "–".into()),
            percentile(&r.answer_to_audio_ms, 0.5),
            r.answer_to_audio_ms.last().copied().unwrap_or(f64::NAN),
        );
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run on demand"]
async fn bench_real_switch_sidecar_vs_echo() {
    let counts: Vec<usize> = env_list("BENCH_CALLS", "1,10,30", |s| s.trim().parse().ok());
    let transports = env_list(
        "BENCH_TRANSPORTS",
        "unicast,unicast8,audio_fork",
        Transport::parse,
    );
    let most = counts.iter().copied().max().unwrap_or(1);
    let mut rows = Vec::new();
    for &transport in &transports {
        let spec = StackSpec::interfaces(most).media(if transport == Transport::AudioFork {
            Media::AudioFork
        } else {
            Media::Unicast
        });
        let codec = format!("L16@{}h", transport.rate());
        let Some(stack) = RealStack::start("bench_real_switch", spec, |switch| {
            switch.vars.push(("loopback_initial_codec".into(), codec));
            switch
                .files
                .push(("dialplan/default/97_bench.xml".into(), extensions()));
        })
        .await
        else {
            return;
        };
        // The vanilla 30 sessions per second would refuse a burst of 30 two-legged calls.
        stack.fs.api("fsctl sps 1000").await;
        let fs_stat = format!("/proc/{}/stat", stack.fs.pid());
        let sidecar_stat = format!("/proc/{}/stat", stack.sidecar_pid());
        let idle = (
            cpu::idle_cpu(&fs_stat).await,
            cpu::idle_cpu(&sidecar_stat).await,
        );
        for &calls in &counts {
            for through_sidecar in [false, true] {
                let row = scenario(&stack, transport, calls, through_sidecar, idle).await;
                println!(
                    "{} {} {}: p50 {:.1} ms, lost {}/{}, FS {:.2} %, sidecar {:?}",
                    row.path,
                    transport.label(),
                    calls,
                    percentile(&row.round_trips_ms, 0.5),
                    row.lost,
                    row.sent,
                    row.fs_cpu_per_call,
                    row.sidecar_cpu_per_call
                );
                rows.push(row);
            }
        }
    }
    let version = support::real_fs::locate()
        .ok()
        .and_then(|p| {
            std::process::Command::new(p.join("bin/freeswitch"))
                .arg("-version")
                .output()
                .ok()
        })
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let machine = format!(
        "{version}; {} cores; commit {}.",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::process::Command::new("git")
            .args(["rev-parse", "--short=10", "HEAD"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    );
    let text = render(&rows, &machine);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reports");
    std::fs::create_dir_all(&dir).expect("reports dir");
    let name = std::env::var("BENCH_OUT").unwrap_or_else(|_| "bench-real-switch.md".into());
    std::fs::write(dir.join(name), &text).expect("write report");
    println!("{text}");
}
