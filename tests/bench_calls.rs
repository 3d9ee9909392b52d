//! Call benchmark, run on demand (`cargo test --release --test bench_calls -- --ignored
//! --nocapture`): 1 and 20 concurrent FreeSWITCH → `skype/instantecho` calls through the real
//! sidecar and the emulator, against the same figures for a bare relay that only copies the
//! frames back (the floor). Writes `tests/reports/bench-calls.md`.
//!
//! The fork client here replaces the double's: it sends a one-frame 1 kHz click every
//! [`CLICK_EVERY`] frames (silence between) and timestamps every frame it receives, so the
//! round trip of each click and the gaps between received frames can be measured. The
//! instantecho bot returns each frame at once, so what the round trip holds beyond the floor is
//! the sidecar's and the emulator's doing.
mod support;

use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::fs_double::fork_client::{upgrade, SAMPLES_PER_FRAME};
use support::fs_double::{ChannelMedia, ForkRequest, MediaHook};
use support::stack::{Stack, StackSpec, WAIT};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

/// Frames between clicks: 500 ms, well above any round trip worth having, so each echoed
/// click is matched to the click that caused it.
const CLICK_EVERY: u64 = 25;
const CLICK_AMPLITUDE: f64 = 16_000.0;
/// A received frame whose peak exceeds this carries (part of) a click.
const LOUD: i16 = 2_000;
const WINDOW: Duration = Duration::from_secs(15);

fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// What one fork connection sent and received.
#[derive(Default)]
struct Probe {
    /// When the connection was asked for (the relay's stand-in for the channel's answer).
    connect_wall_us: u64,
    clicks_sent: Vec<Instant>,
    /// Arrival of each binary message and whether it was loud.
    received: Vec<(Instant, bool)>,
    first_loud_wall_us: Option<u64>,
}

type ProbeRef = Arc<Mutex<Probe>>;

fn click_frame(index: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(SAMPLES_PER_FRAME * 2);
    for i in 0..SAMPLES_PER_FRAME {
        let s = if index % CLICK_EVERY == 0 {
            let t = i as f64 / 16_000.0;
            (CLICK_AMPLITUDE * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
        } else {
            0
        };
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    bytes
}

fn loud(payload: &[u8]) -> bool {
    payload
        .chunks_exact(2)
        .any(|p| i16::from_le_bytes([p[0], p[1]]).saturating_abs() > LOUD)
}

/// A mod_audio_fork-shaped client that clicks and timestamps, until `stop`.
async fn run_probe(url: String, metadata: String, probe: ProbeRef, stop: CancellationToken) {
    probe.lock().unwrap().connect_wall_us = wall_us();
    let up = match upgrade(&url, true).await {
        Ok(up) if up.status() == 101 => up,
        Ok(up) => panic!("fork upgrade refused: {}", up.response),
        Err(e) => panic!("fork connect {url}: {e}"),
    };
    let (stream, leftover) = up.stream.expect("101 has a stream");
    // Without it the first frame waits for the ACK of the metadata (Nagle + delayed ACK), a
    // 40 ms artefact of this client rather than of the path measured.
    let _ = stream.set_nodelay(true);
    let mut ws = WebSocketStream::from_partially_read(stream, leftover, Role::Client, None).await;
    if ws.send(Message::Text(metadata.into())).await.is_err() {
        return;
    }
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    let mut index = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = ws
                    .close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))
                    .await;
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while ws.next().await.is_some() {}
                })
                .await;
                return;
            }
            _ = clock.tick() => {
                let frame = click_frame(index);
                if index % CLICK_EVERY == 0 {
                    probe.lock().unwrap().clicks_sent.push(Instant::now());
                }
                index += 1;
                if ws.send(Message::Binary(frame.into())).await.is_err() {
                    return;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    let now = Instant::now();
                    let is_loud = loud(&bytes);
                    let mut p = probe.lock().unwrap();
                    p.received.push((now, is_loud));
                    if is_loud && p.first_loud_wall_us.is_none() {
                        p.first_loud_wall_us = Some(wall_us());
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Replaces the double's fork clients with probes, one per channel.
#[derive(Default)]
struct ProbeHook {
    probes: Mutex<HashMap<String, ProbeRef>>,
}

impl MediaHook for ProbeHook {
    fn fork_start(&self, request: ForkRequest, channel: ChannelMedia) {
        let probe = ProbeRef::default();
        self.probes
            .lock()
            .unwrap()
            .insert(channel.uuid().to_string(), Arc::clone(&probe));
        let stop = channel.ended();
        tokio::spawn(run_probe(request.url, request.metadata, probe, stop));
    }
}

struct HookRef(Arc<ProbeHook>);

impl MediaHook for HookRef {
    fn fork_start(&self, request: ForkRequest, channel: ChannelMedia) {
        self.0.fork_start(request, channel);
    }
}

/// CPU ticks (user + system) of a `/proc/.../stat` file.
fn cpu_ticks(stat_path: &str) -> u64 {
    let text = std::fs::read_to_string(stat_path).unwrap_or_default();
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15.
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
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

/// The figures of one scenario.
struct Figures {
    name: String,
    calls: usize,
    /// The process (or thread) with no call, % of a core.
    idle_cpu_pct: f64,
    cpu_pct_per_call: f64,
    rtt_ms: Vec<f64>,
    clicks_lost: usize,
    answer_to_audio_ms: Vec<f64>,
    gaps_ms: Vec<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    v
}

/// Round trips of the clicks sent in `[from, to]`, and how many never came back loud.
fn round_trips(p: &Probe, from: Instant, to: Instant) -> (Vec<f64>, usize) {
    // Onsets: a loud message after a quiet one.
    let mut onsets = Vec::new();
    let mut was_loud = false;
    for &(at, is_loud) in &p.received {
        if is_loud && !was_loud {
            onsets.push(at);
        }
        was_loud = is_loud;
    }
    let mut rtts = Vec::new();
    let mut lost = 0;
    for (i, &sent) in p.clicks_sent.iter().enumerate() {
        if sent < from || sent > to {
            continue;
        }
        let next_click = p.clicks_sent.get(i + 1).copied();
        let echo = onsets
            .iter()
            .find(|&&o| o >= sent && next_click.is_none_or(|n| o < n));
        match echo {
            Some(&o) => rtts.push((o - sent).as_secs_f64() * 1000.0),
            None => lost += 1,
        }
    }
    (rtts, lost)
}

fn gaps(p: &Probe, from: Instant, to: Instant) -> Vec<f64> {
    p.received
        .windows(2)
        .filter(|w| w[0].0 >= from && w[1].0 <= to)
        .map(|w| (w[1].0 - w[0].0).as_secs_f64() * 1000.0)
        .collect()
}

/// Measures `probes` over [`WINDOW`] once each has heard its first click back.
async fn measure(
    name: &str,
    probes: &[(ProbeRef, u64)],
    stat_path: &str,
    idle_cpu_pct: f64,
) -> Figures {
    let calls = probes.len();
    let deadline = Instant::now() + WAIT;
    while probes
        .iter()
        .any(|(p, _)| p.lock().unwrap().first_loud_wall_us.is_none())
    {
        assert!(
            Instant::now() < deadline,
            "{name}: not every call heard its first click back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu0 = cpu_ticks(stat_path);
    let from = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let cpu1 = cpu_ticks(stat_path);
    let to = Instant::now();
    // Clicks sent near the end may still be on their way.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let cpu_seconds = (cpu1.saturating_sub(cpu0)) as f64 / ticks_per_second();
    let mut rtt_ms = Vec::new();
    let mut clicks_lost = 0;
    let mut answer_to_audio_ms = Vec::new();
    let mut gaps_ms = Vec::new();
    for (probe, answered_us) in probes {
        let p = probe.lock().unwrap();
        let (r, l) = round_trips(&p, from, to);
        rtt_ms.extend(r);
        clicks_lost += l;
        gaps_ms.extend(gaps(&p, from, to));
        if let Some(first) = p.first_loud_wall_us {
            answer_to_audio_ms.push(first.saturating_sub(*answered_us) as f64 / 1000.0);
        }
    }
    Figures {
        name: name.to_string(),
        calls,
        idle_cpu_pct,
        // What the calls add to the idle process.
        cpu_pct_per_call: (cpu_seconds / (to - from).as_secs_f64() * 100.0 - idle_cpu_pct)
            / calls as f64,
        rtt_ms: sorted(rtt_ms),
        clicks_lost,
        answer_to_audio_ms: sorted(answer_to_audio_ms),
        gaps_ms: sorted(gaps_ms),
    }
}

/// CPU of `stat_path` over a few seconds, % of a core.
async fn idle_cpu(stat_path: &str) -> f64 {
    let span = Duration::from_secs(5);
    let before = cpu_ticks(stat_path);
    tokio::time::sleep(span).await;
    let after = cpu_ticks(stat_path);
    after.saturating_sub(before) as f64 / ticks_per_second() / span.as_secs_f64() * 100.0
}

/// `calls` concurrent FreeSWITCH → `skype/instantecho` calls through the sidecar.
async fn sidecar_scenario(calls: usize) -> Figures {
    let users: Vec<String> = (0..calls).map(|i| format!("user{}", 1 + i % 7)).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let stack = Stack::start(StackSpec::users(&refs)).await;
    let stat = format!("/proc/{}/stat", stack.sidecar_pid());
    let idle = idle_cpu(&stat).await;
    let hook = Arc::new(ProbeHook::default());
    stack
        .fs
        .set_media_hook(Arc::new(HookRef(Arc::clone(&hook))));
    let mut dialed = Vec::new();
    for _ in 0..calls {
        let call = stack.dial("instantecho");
        stack.fs.wait_answered(&call.socket_leg, WAIT).await;
        dialed.push(call);
    }
    let deadline = Instant::now() + WAIT;
    let mut probes = Vec::new();
    for call in &dialed {
        let probe = loop {
            if let Some(p) = hook.probes.lock().unwrap().get(&call.socket_leg) {
                break Arc::clone(p);
            }
            assert!(
                Instant::now() < deadline,
                "no audio fork for {}",
                call.socket_leg
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let answered_us = stack
            .fs
            .channel(&call.socket_leg)
            .map(|c| c.answered_us)
            .unwrap_or(0);
        probes.push((probe, answered_us));
    }
    let figures = measure("sidecar + skype-sim (instantecho)", &probes, &stat, idle).await;
    for call in &dialed {
        stack.fs.hangup(&call.caller_leg, "NORMAL_CLEARING");
    }
    stack.wait_no_calls().await;
    figures
}

/// A websocket server on its own thread that sends every binary frame straight back: the
/// least any relay between the fork client and an echo can cost. Returns its port and the
/// thread's `/proc` stat path.
fn start_bare_relay(stop: CancellationToken) -> (u16, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("relay runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("relay bind");
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::syscall(libc::SYS_gettid) };
            let port = listener.local_addr().expect("relay addr").port();
            let _ = tx.send((port, format!("/proc/self/task/{tid}/stat")));
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((stream, _)) = accepted else { continue };
                // Frames go out one by one as they come: no coalescing delay in the floor.
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        match msg {
                            Message::Binary(b) => {
                                let echoed = ws.send(Message::Binary(b)).await;
                                if echoed.is_err() {
                                    return;
                                }
                            }
                            Message::Close(_) => return,
                            _ => {}
                        }
                    }
                });
            }
        });
    });
    rx.recv().expect("relay started")
}

async fn relay_scenario(calls: usize) -> Figures {
    let stop = CancellationToken::new();
    let (port, stat) = start_bare_relay(stop.clone());
    let idle = idle_cpu(&stat).await;
    let ended = CancellationToken::new();
    let mut probes = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..calls {
        let probe = ProbeRef::default();
        let answered_us = wall_us();
        tasks.push(tokio::spawn(run_probe(
            format!("ws://127.0.0.1:{port}/"),
            "{}".into(),
            Arc::clone(&probe),
            ended.clone(),
        )));
        probes.push((probe, answered_us));
    }
    let figures = measure("bare relay (copies frames back)", &probes, &stat, idle).await;
    ended.cancel();
    for t in tasks {
        let _ = t.await;
    }
    stop.cancel();
    figures
}

fn row(f: &Figures) -> String {
    let q = |v: &[f64], p: f64| format!("{:.1}", percentile(v, p));
    let over = |limit: f64| f.gaps_ms.iter().filter(|&&g| g > limit).count();
    format!(
        "| {} | {} | {:.1} | {:.2} | {} / {} / {} | {} | {} / {} | {} / {} / {} / {} / {} | {} / {} |",
        f.name,
        f.calls,
        f.idle_cpu_pct,
        f.cpu_pct_per_call,
        q(&f.rtt_ms, 0.5),
        q(&f.rtt_ms, 0.99),
        q(&f.rtt_ms, 1.0),
        f.clicks_lost,
        q(&f.answer_to_audio_ms, 0.5),
        q(&f.answer_to_audio_ms, 1.0),
        q(&f.gaps_ms, 0.01),
        q(&f.gaps_ms, 0.5),
        q(&f.gaps_ms, 0.9),
        q(&f.gaps_ms, 0.99),
        q(&f.gaps_ms, 1.0),
        over(30.0),
        over(60.0),
    )
}

fn report(all: &[Figures]) -> String {
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mut out = String::new();
    let _ = writeln!(out, "# Call benchmark\n");
    let _ = writeln!(
        out,
        "`cargo test --release --test bench_calls -- --ignored --nocapture` ({build} build for \
         this report). FreeSWITCH double → `skype/instantecho` through the real `skypopen` \
         and `skype-sim` on Xvfb, against a bare relay that sends each frame straight back. \
         The fork client sends a 20 ms 1 kHz click every {} ms, silence between; {} s \
         measuring window per scenario.\n",
        CLICK_EVERY * 20,
        WINDOW.as_secs()
    );
    let _ = writeln!(
        out,
        "| path | calls | idle CPU % of a core | added CPU % of a core per call | round trip ms p50 / p99 / max | clicks lost | \
         answer → first audio ms p50 / max | inter-frame gap ms p1 / p50 / p90 / p99 / max | \
         gaps > 30 / > 60 ms |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for f in all {
        let _ = writeln!(out, "{}", row(f));
    }
    let _ = writeln!(
        out,
        "\nNotes:\n\
         - CPU: utime + stime from `/proc/<pid>/stat` of the `skypopen` process (for the relay, \
         of its thread) over the window, as % of one core; the idle figure is 5 s before any call, and the \
         per-call figure is (with calls − idle) / calls.\n\
         - Round trip: from sending a click to the first loud frame received after it, fork \
         client → sidecar → Skype client audio port → emulator network → instantecho and back. \
         The two directions are not separated (no shared timestamp inside the emulator); \
         the added latency is this round trip minus the relay's.\n\
         - Answer → first audio: from the channel's answer time (the relay: the connect) to the \
         first loud frame the fork client receives, i.e. fork connection setup plus one round \
         trip of the first click.\n\
         - Gaps: between consecutive binary messages the fork client receives, all calls \
         pooled."
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run on demand"]
async fn bench_calls_sidecar_vs_bare_relay() {
    let mut all = Vec::new();
    for calls in [1, 20] {
        let f = sidecar_scenario(calls).await;
        println!("{}", row(&f));
        all.push(f);
        let f = relay_scenario(calls).await;
        println!("{}", row(&f));
        all.push(f);
    }
    let text = report(&all);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reports");
    std::fs::create_dir_all(&dir).expect("reports dir");
    std::fs::write(dir.join("bench-calls.md"), &text).expect("write report");
    println!("{text}");
}
