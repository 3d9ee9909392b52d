//! The client's two per-call audio sockets (spec 6.3). The controller listens; the client
//! connects to 127.0.0.1:<port> after the ALTER command.
//! - INPUT: the client reads what the controller sends (what the remote party hears) and
//!   forwards it to the network in 640-byte frames.
//! - OUTPUT: the client writes one 640-byte 16 kHz s16le frame every 20 ms: what the remote
//!   party says, from the network, or silence (zeros) when nothing arrived.

use super::trace::AudioTrace;
pub use super::trace::Direction;
use super::uplink::{AudioRoutes, Uplink};
use crate::media::dsp::BYTES_PER_FRAME;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long a connect keeps retrying a refused port (a controller that binds late).
const CONNECT_PATIENCE: Duration = Duration::from_secs(5);
/// Frames queued towards the output socket; beyond this the oldest are dropped so latency
/// cannot build up.
const OUTPUT_QUEUE: usize = 50;
const OUTPUT_MAX_BACKLOG: usize = 6;
/// One second of a standing output backlog before a frame is dropped to cut it.
const OUTPUT_TRIM_AFTER_TICKS: u32 = 50;

/// What the audio tasks tell the client actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioEvent {
    Connected { call: u64, direction: Direction },
    Closed { call: u64, direction: Direction },
    ConnectFailed { call: u64, direction: Direction },
}

/// How the client connects (fault modes of spec 13 item 7).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectPolicy {
    pub delay: Duration,
    /// Never connect at all.
    pub never: bool,
}

/// The sockets of one call. Dropping it stops both directions.
#[derive(Debug)]
pub struct CallAudio {
    pub held: Arc<AtomicBool>,
    input: Option<CancellationToken>,
    output: Option<CancellationToken>,
}

impl Default for CallAudio {
    fn default() -> Self {
        CallAudio {
            held: Arc::new(AtomicBool::new(false)),
            input: None,
            output: None,
        }
    }
}

impl Drop for CallAudio {
    fn drop(&mut self) {
        self.stop();
    }
}

pub struct AudioContext {
    pub uplink: Uplink,
    pub routes: AudioRoutes,
    pub events: mpsc::Sender<AudioEvent>,
    pub policy: ConnectPolicy,
    pub trace: Option<AudioTrace>,
}

impl CallAudio {
    pub fn stop(&mut self) {
        if let Some(t) = self.input.take() {
            t.cancel();
        }
        if let Some(t) = self.output.take() {
            t.cancel();
        }
    }

    pub fn set_held(&self, held: bool) {
        self.held.store(held, Ordering::Relaxed);
    }

    /// (Re)connects the input socket: a new port replaces any previous connection.
    pub fn start_input(&mut self, call: u64, port: u16, ctx: &AudioContext) {
        if let Some(t) = self.input.take() {
            t.cancel();
        }
        let token = CancellationToken::new();
        self.input = Some(token.clone());
        let uplink = ctx.uplink.clone();
        let events = ctx.events.clone();
        let policy = ctx.policy;
        let trace = ctx.trace.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = run_input(call, port, uplink, events, policy, trace) => {}
            }
        });
    }

    pub fn start_output(&mut self, call: u64, port: u16, ctx: &AudioContext) {
        if let Some(t) = self.output.take() {
            t.cancel();
        }
        let token = CancellationToken::new();
        self.output = Some(token.clone());
        let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
        ctx.routes.insert(call, tx);
        let events = ctx.events.clone();
        let held = Arc::clone(&self.held);
        let policy = ctx.policy;
        let trace = ctx.trace.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = run_output(call, port, rx, held, events, policy, trace) => {}
            }
        });
    }
}

async fn connect(
    call: u64,
    port: u16,
    direction: Direction,
    policy: ConnectPolicy,
) -> Option<TcpStream> {
    if policy.never {
        info!(
            call,
            port,
            ?direction,
            "audio connect suppressed (fault mode)"
        );
        std::future::pending::<()>().await;
    }
    if !policy.delay.is_zero() {
        tokio::time::sleep(policy.delay).await;
    }
    let deadline = tokio::time::Instant::now() + CONNECT_PATIENCE;
    loop {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                info!(call, port, ?direction, "audio socket connected");
                return Some(s);
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                debug!(call, port, error = %e, "audio connect failed, retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => {
                warn!(call, port, ?direction, error = %e, "audio connect gave up");
                return None;
            }
        }
    }
}

async fn run_input(
    call: u64,
    port: u16,
    uplink: Uplink,
    events: mpsc::Sender<AudioEvent>,
    policy: ConnectPolicy,
    trace: Option<AudioTrace>,
) {
    let direction = Direction::Input;
    let Some(mut stream) = connect(call, port, direction, policy).await else {
        let _ = events
            .send(AudioEvent::ConnectFailed { call, direction })
            .await;
        return;
    };
    let _ = events.send(AudioEvent::Connected { call, direction }).await;
    let mut frame = [0u8; BYTES_PER_FRAME];
    let mut filled = 0usize;
    loop {
        match stream.read(&mut frame[filled..]).await {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled == BYTES_PER_FRAME {
                    if let Some(trace) = &trace {
                        trace.record(call, direction, &frame);
                    }
                    uplink.send_audio(call, Bytes::copy_from_slice(&frame));
                    filled = 0;
                }
            }
            Err(e) => {
                debug!(call, error = %e, "input socket read failed");
                break;
            }
        }
    }
    info!(call, port, "audio input socket closed");
    let _ = events.send(AudioEvent::Closed { call, direction }).await;
}

async fn run_output(
    call: u64,
    port: u16,
    mut frames: mpsc::Receiver<Bytes>,
    held: Arc<AtomicBool>,
    events: mpsc::Sender<AudioEvent>,
    policy: ConnectPolicy,
    trace: Option<AudioTrace>,
) {
    let direction = Direction::Output;
    let Some(mut stream) = connect(call, port, direction, policy).await else {
        let _ = events
            .send(AudioEvent::ConnectFailed { call, direction })
            .await;
        return;
    };
    let _ = events.send(AudioEvent::Connected { call, direction }).await;
    let silence = [0u8; BYTES_PER_FRAME];
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    // A sound device's clock does not slow down when the process is late: catch up with
    // back-to-back frames, or the client would write fewer than 50 a second under load and
    // its queue would grow.
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut backlogged_ticks = 0u32;
    loop {
        clock.tick().await;
        // Keep latency bounded when the network delivers in bursts.
        while frames.len() > OUTPUT_MAX_BACKLOG {
            let _ = frames.try_recv();
        }
        // A playout buffer that never runs empty is pure delay (a burst at call start leaves
        // one behind for good, since frames then come as fast as they go): drop one frame
        // once it has stood for a while, as a real client's adaptive buffer does.
        if frames.len() > 1 {
            backlogged_ticks += 1;
            if backlogged_ticks >= OUTPUT_TRIM_AFTER_TICKS {
                let _ = frames.try_recv();
                backlogged_ticks = 0;
            }
        } else {
            backlogged_ticks = 0;
        }
        let next = frames.try_recv().ok();
        if held.load(Ordering::Relaxed) {
            continue;
        }
        let frame: &[u8] = match &next {
            Some(pcm) if pcm.len() == BYTES_PER_FRAME => pcm,
            _ => &silence,
        };
        if let Some(trace) = &trace {
            trace.record(call, direction, frame);
        }
        let result = stream.write_all(frame).await;
        if let Err(e) = result {
            debug!(call, error = %e, "output socket write failed");
            break;
        }
    }
    info!(call, port, "audio output socket closed");
    let _ = events.send(AudioEvent::Closed { call, direction }).await;
}
