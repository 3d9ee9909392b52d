//! Latency probes for the call benchmark: the FreeSWITCH side of a call (an audio fork client
//! or a `unicast` UDP leg) that sends a chirp train on an absolute 20 ms schedule and records
//! every frame it receives with its CLOCK_MONOTONIC arrival time; and the analysis that finds
//! each chirp in a timed stream by cross-correlation, at sample precision.
//!
//! Times are CLOCK_MONOTONIC ns (the clock `skype-sim client --audio-trace` uses), so a
//! chirp can be followed from the probe through the emulator's trace and back. The time of a
//! chirp in a stream is the time its frame was sent/read/written/received plus its offset in
//! that frame at the stream's rate: the audio time of its first sample.

use super::fs_double::fork_client::{hang_up, upgrade};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

/// Frames from one chirp to the next: 500 ms, well above any round trip worth having, so
/// each echo is matched to the chirp that caused it.
pub const CHIRP_EVERY: u64 = 25;
pub const FRAME_NS: u64 = 20_000_000;
pub const CHIRP_PERIOD_NS: u64 = CHIRP_EVERY * FRAME_NS;
const CHIRP_LOW_HZ: f64 = 300.0;
const CHIRP_HIGH_HZ: f64 = 3400.0;
const CHIRP_AMPLITUDE: f64 = 16_000.0;
/// A frame whose peak exceeds this carries (part of) a chirp.
pub const LOUD: i16 = 2_000;
/// Between chirps the probe says a faint 1 kHz tone, far below [`LOUD`], so that the first
/// audio to come back after an answer is seen within a frame rather than at the next chirp.
const FAINT_AMPLITUDE: f64 = 300.0;
/// A frame whose peak exceeds this carries audio (the faint tone or a chirp).
const AUDIBLE: i16 = 100;
/// How many audible frame times a probe keeps (the first four seconds' worth).
const AUDIBLE_KEPT: usize = 200;
/// Quiet this long before a loud frame makes it the start of a new chirp.
const QUIET_BEFORE_ONSET_NS: u64 = 200_000_000;

pub fn mono_ns() -> u64 {
    skypopen::sim::client::trace::monotonic_ns()
}

pub fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A 20 ms linear chirp at one rate, sent as the first frame of every [`CHIRP_EVERY`].
#[derive(Debug, Clone)]
pub struct Chirp {
    pub rate: u32,
    pub template: Vec<i16>,
}

impl Chirp {
    pub fn new(rate: u32) -> Chirp {
        let n = (rate / 50) as usize;
        let duration = n as f64 / f64::from(rate);
        let sweep = (CHIRP_HIGH_HZ - CHIRP_LOW_HZ) / duration;
        let template = (0..n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                let phase = 2.0 * std::f64::consts::PI * (CHIRP_LOW_HZ * t + sweep * t * t / 2.0);
                (CHIRP_AMPLITUDE * phase.sin()) as i16
            })
            .collect();
        Chirp { rate, template }
    }

    pub fn samples_per_frame(&self) -> usize {
        (self.rate / 50) as usize
    }

    /// Frame `index` of the train, s16le.
    pub fn frame_bytes(&self, index: u64) -> Vec<u8> {
        if index % CHIRP_EVERY == 0 {
            self.template.iter().flat_map(|s| s.to_le_bytes()).collect()
        } else {
            let n = self.samples_per_frame();
            let w = 2.0 * std::f64::consts::PI * 1000.0 / f64::from(self.rate);
            (0..n)
                .map(|i| (FAINT_AMPLITUDE * (w * (index as usize * n + i) as f64).sin()) as i16)
                .flat_map(|s| s.to_le_bytes())
                .collect()
        }
    }
}

/// Frames of one direction with the time each was seen.
#[derive(Debug, Default, Clone)]
pub struct TimedStream {
    /// (CLOCK_MONOTONIC ns, index of the frame's first sample in `samples`).
    frames: Vec<(u64, usize)>,
    samples: Vec<i16>,
}

impl TimedStream {
    pub fn push_le(&mut self, at_ns: u64, bytes: &[u8]) {
        self.frames.push((at_ns, self.samples.len()));
        self.samples.extend(
            bytes
                .chunks_exact(2)
                .map(|p| i16::from_le_bytes([p[0], p[1]])),
        );
    }

    pub fn frame_times(&self) -> impl Iterator<Item = u64> + '_ {
        self.frames.iter().map(|f| f.0)
    }

    fn frame_end(&self, k: usize) -> usize {
        self.frames
            .get(k + 1)
            .map(|f| f.1)
            .unwrap_or(self.samples.len())
    }

    /// The audio time of every chirp in the stream: each onset (a loud frame after
    /// [`QUIET_BEFORE_ONSET_NS`] of quiet) is refined by cross-correlation with the template
    /// around it.
    pub fn chirps(&self, chirp: &Chirp) -> Vec<u64> {
        let n = chirp.template.len();
        let mut found = Vec::new();
        let mut last_loud: Option<u64> = None;
        for k in 0..self.frames.len() {
            let (at, start) = self.frames[k];
            let end = self.frame_end(k);
            let loud = self.samples[start..end]
                .iter()
                .any(|s| s.saturating_abs() > LOUD);
            if !loud {
                continue;
            }
            let onset = last_loud.is_none_or(|l| at.saturating_sub(l) > QUIET_BEFORE_ONSET_NS);
            last_loud = Some(at);
            if !onset {
                continue;
            }
            let lag = self.best_lag(&chirp.template, start.saturating_sub(n), end);
            found.push(self.time_of(lag, chirp.rate));
        }
        found
    }

    /// The lag in `[from, to]` where the template correlates best with the stream.
    fn best_lag(&self, template: &[i16], from: usize, to: usize) -> usize {
        let mut best = (f64::MIN, from);
        for lag in from..=to.min(self.samples.len().saturating_sub(1)) {
            let corr: f64 = template
                .iter()
                .zip(&self.samples[lag..])
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            if corr > best.0 {
                best = (corr, lag);
            }
        }
        best.1
    }

    /// When sample `index` was seen: its frame's time plus its offset at `rate`.
    fn time_of(&self, index: usize, rate: u32) -> u64 {
        let k = self
            .frames
            .partition_point(|f| f.1 <= index)
            .saturating_sub(1);
        let (at, start) = self.frames[k];
        at + (index - start) as u64 * 1_000_000_000 / u64::from(rate)
    }
}

/// The delay from `t` to the first time in `to` (sorted) within one chirp period after it;
/// `None`: the chirp was lost on the way.
pub fn delay_to_next(t: u64, to: &[u64]) -> Option<u64> {
    let i = to.partition_point(|&x| x < t);
    to.get(i)
        .filter(|&&x| x - t < CHIRP_PERIOD_NS)
        .map(|&x| x - t)
}

/// What one probe sent and received.
#[derive(Debug, Default)]
pub struct ProbeRecord {
    /// Wall clock when the probe started (the relay's stand-in for the answer).
    pub started_wall_us: u64,
    /// When each chirp frame was handed to the socket.
    pub chirps_sent: Vec<u64>,
    pub received: TimedStream,
    pub first_loud_wall_us: Option<u64>,
    /// Wall-clock times of the first audible frames received.
    pub audible_wall_us: Vec<u64>,
}

pub type ProbeRef = Arc<Mutex<ProbeRecord>>;

pub fn lock(probe: &ProbeRef) -> std::sync::MutexGuard<'_, ProbeRecord> {
    probe.lock().unwrap_or_else(|p| p.into_inner())
}

fn note_received(probe: &ProbeRef, bytes: &[u8]) {
    let now = mono_ns();
    let peak = bytes
        .chunks_exact(2)
        .map(|p| i16::from_le_bytes([p[0], p[1]]).saturating_abs())
        .max()
        .unwrap_or(0);
    let loud = peak > LOUD;
    let mut p = lock(probe);
    p.received.push_le(now, bytes);
    if peak > AUDIBLE && p.audible_wall_us.len() < AUDIBLE_KEPT {
        p.audible_wall_us.push(wall_us());
    }
    if loud && p.first_loud_wall_us.is_none() {
        p.first_loud_wall_us = Some(wall_us());
    }
}

/// What the jambonz mod_audio_fork does with the audio a server sends back: it gathers it in
/// a prebuffer until 80 ms are there (40 ms every later time), moves that to its playout
/// buffer, and plays one 20 ms frame of it per write of the channel. A probe that recorded
/// frames as they arrived measured 20 ms where FreeSWITCH 1.10.12 measured 85 (the real-switch
/// benchmark); the fork probe therefore hears what it receives through this model.
#[derive(Debug, Default)]
pub struct ModulePlayout {
    prebuffer: Vec<u8>,
    playout: std::collections::VecDeque<u8>,
    primed: bool,
}

impl ModulePlayout {
    /// 16 kHz L16: 640 bytes a frame.
    const FRAME: usize = 640;

    pub fn push(&mut self, bytes: &[u8]) {
        self.prebuffer.extend_from_slice(bytes);
        let threshold = if self.primed { 2 } else { 4 } * Self::FRAME;
        if self.prebuffer.len() >= threshold {
            self.playout.extend(self.prebuffer.drain(..));
            self.primed = true;
        }
    }

    /// The frame the channel's next write plays, if the playout buffer holds one.
    pub fn play(&mut self) -> Option<Vec<u8>> {
        (self.playout.len() >= Self::FRAME).then(|| self.playout.drain(..Self::FRAME).collect())
    }
}

/// A mod_audio_fork-shaped client that sends the 16 kHz chirp train and records what comes
/// back, played out as the module does ([`ModulePlayout`]) on the same 20 ms clock, until
/// `stop`.
pub async fn run_fork_probe(
    url: String,
    metadata: String,
    probe: ProbeRef,
    stop: CancellationToken,
) {
    lock(&probe).started_wall_us = wall_us();
    let chirp = Chirp::new(16_000);
    let up = match upgrade(&url, true).await {
        Ok(up) if up.status() == 101 => up,
        Ok(up) => panic!("fork upgrade refused: {}", up.response),
        Err(e) => panic!("fork connect {url}: {e}"),
    };
    let Some((stream, leftover)) = up.stream else {
        panic!("101 without a stream");
    };
    // Without it the first frame waits for the ACK of the metadata (Nagle + delayed ACK), a
    // 40 ms artefact of this client rather than of the path measured.
    let _ = stream.set_nodelay(true);
    let mut ws = WebSocketStream::from_partially_read(stream, leftover, Role::Client, None).await;
    if ws.send(Message::Text(metadata.into())).await.is_err() {
        return;
    }
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    let mut index = 0u64;
    let mut module = ModulePlayout::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                hang_up(&mut ws).await;
                return;
            }
            _ = clock.tick() => {
                if let Some(played) = module.play() {
                    note_received(&probe, &played);
                }
                let frame = chirp.frame_bytes(index);
                if index % CHIRP_EVERY == 0 {
                    lock(&probe).chirps_sent.push(mono_ns());
                }
                index += 1;
                if ws.send(Message::Binary(frame.into())).await.is_err() {
                    return;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(bytes))) => module.push(&bytes),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// A `unicast` leg: sends the chirp train at `rate` from `socket` to `remote` and records
/// every datagram that arrives, until `stop`.
pub async fn run_udp_probe(
    socket: UdpSocket,
    remote: SocketAddr,
    rate: u32,
    probe: ProbeRef,
    stop: CancellationToken,
) {
    lock(&probe).started_wall_us = wall_us();
    let chirp = Chirp::new(rate);
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    let mut buf = vec![0u8; 8192];
    let mut index = 0u64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = clock.tick() => {
                let frame = chirp.frame_bytes(index);
                if index % CHIRP_EVERY == 0 {
                    lock(&probe).chirps_sent.push(mono_ns());
                }
                index += 1;
                // Nobody listening yet is what UDP does; the schedule goes on.
                let _ = socket.send_to(&frame, remote).await;
            }
            got = socket.recv_from(&mut buf) => {
                if let Ok((n, _)) = got {
                    note_received(&probe, &buf[..n]);
                }
            }
        }
    }
}
