//! Benchmark: how evenly the audio fork server paces the frames it sends to FreeSWITCH.
//!
//! Runs N concurrent calls in one process: each call has a websocket client shaped like
//! mod_audio_fork, the fork server, the media pump, and a synthetic Skype side that delivers
//! frames with random jitter around 20 ms (as a real client's TCP writes do). The clients time
//! every binary frame they receive; the report gives the distribution of the gaps between
//! consecutive frames (ideal: 20 ms flat) plus the pumps' counters.

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use skypopen::media::pump::{self, PumpConfig, PumpCounters};
use skypopen::media::side::FrameDuplex;
use skypopen::media::{Frame, FRAME_DURATION, SAMPLES_PER_FRAME};
use skypopen::switch::media::{ForkToken, MediaServer, SUBPROTOCOL};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(about = "Measure the inter-frame gaps of audio the fork server sends")]
struct Args {
    /// Concurrent calls.
    #[arg(long, default_value_t = 20)]
    calls: usize,
    /// Measured seconds per call.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Random lateness (0..N ms) of each frame from the synthetic Skype side.
    #[arg(long, default_value_t = 15)]
    jitter_ms: u64,
    /// Where the Markdown report goes.
    #[arg(long, default_value = "target/bench/fork-pacing.md")]
    out: PathBuf,
}

struct CallResult {
    gaps_us: Vec<u64>,
    underruns: u64,
    overruns: u64,
    frames: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.calls == 0 || args.seconds == 0 {
        bail!("--calls and --seconds must be at least 1");
    }
    let cancel = CancellationToken::new();
    let server = MediaServer::start(
        "127.0.0.1:0".parse()?,
        None,
        Duration::from_secs(10),
        cancel.clone(),
    )
    .await
    .context("starting the fork server")?;
    let mut calls = Vec::new();
    for _ in 0..args.calls {
        let server = server.clone();
        let cancel = cancel.child_token();
        let measure = Duration::from_secs(args.seconds);
        let jitter = Duration::from_millis(args.jitter_ms);
        calls.push(tokio::spawn(async move {
            one_call(&server, measure, jitter, cancel).await
        }));
    }
    let mut results = Vec::new();
    for call in calls {
        results.push(call.await.context("call task")??);
    }
    cancel.cancel();
    let report = render(&args, &results);
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&args.out, &report)
        .with_context(|| format!("writing {}", args.out.display()))?;
    print!("{report}");
    eprintln!("report written to {}", args.out.display());
    Ok(())
}

async fn one_call(
    server: &MediaServer,
    measure: Duration,
    jitter: Duration,
    cancel: CancellationToken,
) -> Result<CallResult> {
    let token = ForkToken::generate();
    let (url, pending) = server.expect(&token);
    let mut request = url.as_str().into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("websocket connect")?;
    ws.send(Message::Text(
        format!("{{\"call\":\"{}\"}}", token.as_str()).into(),
    ))
    .await?;
    let fork = pending.wait(Duration::from_secs(10)).await?;

    let (skype_side, skype_peer) = FrameDuplex::pair(16);
    let counters = Arc::new(PumpCounters::default());
    let pump = tokio::spawn(pump::run(
        skype_side,
        fork.frames,
        PumpConfig::default(),
        Arc::clone(&counters),
        None,
        cancel.clone(),
    ));
    let producer = tokio::spawn(jittered_skype(skype_peer, jitter, cancel.clone()));

    // Skip the first second: priming and connection set-up are not steady-state pacing.
    let warmup = Instant::now() + Duration::from_secs(1);
    let end = warmup + measure;
    let mut last: Option<Instant> = None;
    let mut gaps_us = Vec::with_capacity((measure.as_millis() / 20) as usize + 16);
    while let Ok(Some(msg)) = tokio::time::timeout_at(end.into(), ws.next()).await {
        if let Message::Binary(_) = msg? {
            let now = Instant::now();
            if now >= warmup {
                if let Some(prev) = last {
                    gaps_us.push(now.duration_since(prev).as_micros() as u64);
                }
                last = Some(now);
            }
        }
    }
    let _ = ws.close(None).await;
    cancel.cancel();
    let _ = producer.await;
    let report = pump.await.context("pump task")?;
    Ok(CallResult {
        gaps_us,
        underruns: report.to_switch.underruns,
        overruns: report.to_switch.overruns,
        frames: report.to_switch.frames_out + report.to_switch.silence_out,
    })
}

/// Frames due every 20 ms on an absolute schedule, each late by a random 0..jitter, so bursts
/// and gaps happen but the long-run rate is exact.
async fn jittered_skype(peer: FrameDuplex, jitter: Duration, cancel: CancellationToken) {
    let samples: Vec<i16> = (0..SAMPLES_PER_FRAME)
        .map(|i| ((i as f64 / 16.0 * std::f64::consts::TAU).sin() * 8000.0) as i16)
        .collect();
    let frame = Frame::from_samples(&samples).unwrap_or(Frame::SILENCE);
    let start = tokio::time::Instant::now();
    let jitter_us = jitter.as_micros() as u64;
    for n in 0u32.. {
        let late = if jitter_us == 0 {
            0
        } else {
            rand::thread_rng().gen_range(0..jitter_us)
        };
        let due = start + FRAME_DURATION * n + Duration::from_micros(late);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep_until(due) => {}
        }
        if peer.tx.send(frame).await.is_err() {
            return;
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

fn render(args: &Args, results: &[CallResult]) -> String {
    let mut gaps: Vec<u64> = results.iter().flat_map(|r| r.gaps_us.clone()).collect();
    gaps.sort_unstable();
    let mean = if gaps.is_empty() {
        0.0
    } else {
        gaps.iter().sum::<u64>() as f64 / gaps.len() as f64 / 1000.0
    };
    let late = gaps.iter().filter(|&&g| g > 30_000).count();
    let underruns: u64 = results.iter().map(|r| r.underruns).sum();
    let overruns: u64 = results.iter().map(|r| r.overruns).sum();
    let frames: u64 = results.iter().map(|r| r.frames).sum();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "# Audio fork pacing\n\n\
         Frames sent by the fork server to mod_audio_fork-shaped clients, measured at the client.\n\
         Ideal: one 640-byte frame every 20.000 ms.\n\n\
         | parameter | value |\n|---|---|\n\
         | calls | {calls} |\n| measured seconds per call | {secs} |\n\
         | Skype-side lateness | uniform 0..{jit} ms |\n| CPU cores | {cores} |\n\
         | build | {profile} |\n\n\
         | gap statistic | ms |\n|---|---|\n\
         | samples | {n} |\n| mean | {mean:.3} |\n| p50 | {p50:.3} |\n| p90 | {p90:.3} |\n\
         | p99 | {p99:.3} |\n| max | {max:.3} |\n| gaps > 30 ms | {late} |\n\n\
         Pump (Skype -> switch): {frames} frames sent, {underruns} underruns, {overruns} overruns.\n",
        calls = args.calls,
        secs = args.seconds,
        jit = args.jitter_ms,
        profile = if cfg!(debug_assertions) { "debug" } else { "release" },
        n = gaps.len(),
        p50 = percentile(&gaps, 50.0),
        p90 = percentile(&gaps, 90.0),
        p99 = percentile(&gaps, 99.0),
        max = gaps.last().copied().unwrap_or(0) as f64 / 1000.0,
    )
}
