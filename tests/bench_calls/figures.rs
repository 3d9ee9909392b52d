//! One scenario's window and the figures drawn from its probes and client traces.

use crate::cpu::{pct_of_core, snapshot, CpuSnapshot};
pub use crate::support::bench_args::percentile;
use crate::support::probe::{delay_to_next, lock, mono_ns, Chirp, ProbeRef, TimedStream};
use crate::support::stack::WAIT;
use crate::{Transport, SETTLE, WINDOW};
use skypopen::sim::client::audio::Direction;
use skypopen::sim::client::trace;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One scenario's figures.
pub struct Figures {
    pub path: &'static str,
    pub transport: Transport,
    pub calls: usize,
    pub idle_cpu_pct: f64,
    pub cpu_pct_per_call: f64,
    /// `skype-sim network` + clients + Xvfb, % of a core (sidecar scenarios only).
    pub emulator_cpu_pct: Option<f64>,
    /// Sidecar (or relay) + emulator + this process, % of a core.
    pub stack_cpu_pct: f64,
    /// Resident memory at the end of the window (sidecar scenarios only).
    pub memory: Option<Memory>,
    pub machine_busy_pct: f64,
    pub rtt_ms: Vec<f64>,
    pub chirps_sent: usize,
    pub chirps_lost: usize,
    pub fs_to_skype_ms: Vec<f64>,
    pub emulator_ms: Vec<f64>,
    pub skype_to_fs_ms: Vec<f64>,
    /// Calls whose client trace could not be read or matched.
    pub untraced_calls: usize,
    /// Frames per second each client read from its input socket and wrote to its output
    /// socket over the window: a client writing fewer than it reads lets its output queue
    /// stand (the emulator's latency, not the sidecar's).
    pub client_in_fps: Vec<f64>,
    pub client_out_fps: Vec<f64>,
    pub answer_to_audio_ms: Vec<f64>,
    pub gaps_ms: Vec<f64>,
}

pub fn sort(v: &mut [f64]) {
    v.sort_by(|a, b| a.total_cmp(b));
}

pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Resident memory, MiB.
pub struct Memory {
    pub sidecar_mib: f64,
    /// `skype-sim network`, every client and every Xvfb.
    pub emulator_mib: f64,
    pub machine_available_mib: f64,
}

/// One call of a scenario: its probe, when it was answered, and its client's trace.
pub struct Measured {
    pub probe: ProbeRef,
    pub answered_wall_us: u64,
    pub trace: Option<PathBuf>,
}

/// The two streams of the call a client trace holds around `[from, to]`.
pub fn client_streams(path: &Path, from: u64, to: u64) -> Option<(TimedStream, TimedStream)> {
    let bytes = std::fs::read(path).ok()?;
    let records = trace::parse(&bytes).ok()?;
    let margin = 2_000_000_000;
    let near: Vec<&trace::TraceRecord> = records
        .iter()
        .filter(|r| r.mono_ns + margin >= from && r.mono_ns <= to + margin)
        .collect();
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for r in &near {
        *counts.entry(r.call).or_default() += 1;
    }
    let call = counts.into_iter().max_by_key(|(_, n)| *n)?.0;
    let mut input = TimedStream::default();
    let mut output = TimedStream::default();
    for r in near.into_iter().filter(|r| r.call == call) {
        match r.direction {
            Direction::Input => input.push_le(r.mono_ns, &r.payload),
            Direction::Output => output.push_le(r.mono_ns, &r.payload),
        }
    }
    Some((input, output))
}

pub struct Window {
    pub from_ns: u64,
    pub to_ns: u64,
    pub cpu_before: CpuSnapshot,
    pub cpu_after: CpuSnapshot,
}

pub async fn wait_first_echoes(name: &str, calls: &[Measured]) {
    let deadline = Instant::now() + WAIT;
    while calls
        .iter()
        .any(|c| lock(&c.probe).first_loud_wall_us.is_none())
    {
        assert!(
            Instant::now() < deadline,
            "{name}: not every call heard its first chirp back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn run_window(stat_path: &str, emulator: &[u32]) -> Window {
    let cpu_before = snapshot(stat_path, emulator);
    let from_ns = mono_ns();
    tokio::time::sleep(WINDOW).await;
    let cpu_after = snapshot(stat_path, emulator);
    let to_ns = mono_ns();
    tokio::time::sleep(SETTLE).await;
    Window {
        from_ns,
        to_ns,
        cpu_before,
        cpu_after,
    }
}

pub fn analyse(
    path: &'static str,
    transport: Transport,
    calls: &[Measured],
    window: &Window,
    idle_cpu_pct: f64,
    with_emulator: bool,
) -> Figures {
    let span = window.cpu_after.at - window.cpu_before.at;
    let n = calls.len();
    let measured_pct = pct_of_core(
        window
            .cpu_after
            .measured
            .saturating_sub(window.cpu_before.measured),
        span,
    );
    let (busy0, total0) = window.cpu_before.machine;
    let (busy1, total1) = window.cpu_after.machine;
    let machine_busy_pct = (busy1.saturating_sub(busy0)) as f64
        / (total1.saturating_sub(total0)).max(1) as f64
        * 100.0;
    let emulator_cpu_pct = with_emulator.then(|| {
        pct_of_core(
            window
                .cpu_after
                .emulator
                .saturating_sub(window.cpu_before.emulator),
            span,
        )
    });
    let harness_pct = pct_of_core(
        window
            .cpu_after
            .harness
            .saturating_sub(window.cpu_before.harness),
        span,
    );
    let mut f = Figures {
        path,
        transport,
        calls: n,
        idle_cpu_pct,
        cpu_pct_per_call: (measured_pct - idle_cpu_pct) / n as f64,
        emulator_cpu_pct,
        stack_cpu_pct: measured_pct + emulator_cpu_pct.unwrap_or(0.0) + harness_pct,
        memory: None,
        machine_busy_pct,
        rtt_ms: Vec::new(),
        chirps_sent: 0,
        chirps_lost: 0,
        fs_to_skype_ms: Vec::new(),
        emulator_ms: Vec::new(),
        skype_to_fs_ms: Vec::new(),
        untraced_calls: 0,
        client_in_fps: Vec::new(),
        client_out_fps: Vec::new(),
        answer_to_audio_ms: Vec::new(),
        gaps_ms: Vec::new(),
    };
    let (from, to) = (window.from_ns, window.to_ns);
    let probe_chirp = Chirp::new(transport.rate());
    let skype_chirp = Chirp::new(16_000);
    for call in calls {
        let p = lock(&call.probe);
        let sent: Vec<u64> = p
            .chirps_sent
            .iter()
            .copied()
            .filter(|&t| t >= from && t <= to)
            .collect();
        let echoes = p.received.chirps(&probe_chirp);
        let streams = call
            .trace
            .as_deref()
            .and_then(|t| client_streams(t, from, to));
        let window_s = to.saturating_sub(from) as f64 / 1e9;
        let fps = |s: &TimedStream| {
            s.frame_times().filter(|&t| t >= from && t <= to).count() as f64 / window_s
        };
        if let Some((read, written)) = &streams {
            f.client_in_fps.push(fps(read));
            f.client_out_fps.push(fps(written));
        }
        let client = streams.map(|(i, o)| (i.chirps(&skype_chirp), o.chirps(&skype_chirp)));
        if call.trace.is_some() && client.is_none() {
            f.untraced_calls += 1;
        }
        f.chirps_sent += sent.len();
        for &t in &sent {
            match delay_to_next(t, &echoes) {
                Some(d) => f.rtt_ms.push(ms(d)),
                None => f.chirps_lost += 1,
            }
            let Some((read, written)) = &client else {
                continue;
            };
            let Some(d1) = delay_to_next(t, read) else {
                continue;
            };
            f.fs_to_skype_ms.push(ms(d1));
            let Some(d2) = delay_to_next(t + d1, written) else {
                continue;
            };
            f.emulator_ms.push(ms(d2));
            if let Some(d3) = delay_to_next(t + d1 + d2, &echoes) {
                f.skype_to_fs_ms.push(ms(d3));
            }
        }
        let times: Vec<u64> = p
            .received
            .frame_times()
            .filter(|&t| t >= from && t <= to)
            .collect();
        f.gaps_ms
            .extend(times.windows(2).map(|w| ms(w[1].saturating_sub(w[0]))));
        if let Some(first) = p.first_loud_wall_us {
            f.answer_to_audio_ms
                .push(first.saturating_sub(call.answered_wall_us) as f64 / 1000.0);
        }
    }
    for v in [
        &mut f.rtt_ms,
        &mut f.fs_to_skype_ms,
        &mut f.emulator_ms,
        &mut f.skype_to_fs_ms,
        &mut f.answer_to_audio_ms,
        &mut f.gaps_ms,
        &mut f.client_in_fps,
        &mut f.client_out_fps,
    ] {
        sort(v);
    }
    f
}
