//! The `unicast` UDP side of the double (what a parked channel does on a real switch).
//!
//! As in the s3 captures: the channel binds `local-ip:local-port`, sends one datagram per 20 ms
//! from it to `remote-ip:remote-port` (L16 at the channel's rate: 320 bytes on an 8 kHz leg, 640
//! on 16 kHz) carrying the caller's voice, and plays what arrives into the call, one frame per
//! 20 ms tick. With `send_silence_when_idle` set, the park loop writes its own silence frame
//! besides the unicast ones and the call hears the audio chopped: every third 20 ms slot is
//! silence and the frame that was due there is lost (s3a: `T.TT.TT...`, 49 of 75 frames).

use super::{ChannelMedia, MediaHook, UnicastRequest};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Frames that may wait for their tick; a real channel has no deeper buffer than a few frames
/// either, so a burst beyond it is lost as it would be on the switch.
const QUEUE_FRAMES: usize = 8;

/// What the double sends as the caller's voice, at the channel's rate.
#[derive(Debug, Clone)]
pub enum Voice {
    Tone {
        hz: f64,
        amplitude: f64,
    },
    /// These samples once (padded to whole frames), then silence frames.
    Samples(Vec<i16>),
    /// Silence frames (a parked channel with nothing to read still sends).
    Silence,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub rate: u32,
    pub voice: Voice,
    /// The channel has `send_silence_when_idle` set: what it hears is chopped.
    pub chop: bool,
}

#[derive(Debug, Default)]
struct Record {
    /// What the call heard: one frame per tick from the first received datagram on.
    heard: Vec<i16>,
    /// Sizes of the datagrams received, with their sources.
    received: Vec<(usize, SocketAddr)>,
    sent: usize,
}

/// One channel's unicast session.
pub struct UnicastLeg {
    record: Arc<Mutex<Record>>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub samples_per_frame: usize,
}

fn address(ip: &str, port: u16) -> std::io::Result<SocketAddr> {
    format!("{ip}:{port}")
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// `send_silence_when_idle` counts as set when it holds a non-zero number, as on the switch.
pub fn silence_when_idle(value: Option<&str>) -> bool {
    value
        .and_then(|v| v.trim().parse::<i64>().ok())
        .is_some_and(|v| v != 0)
}

impl UnicastLeg {
    /// Binds local-ip:local-port and starts the 20 ms clock; stops at `ended` or [`Self::stop`].
    pub async fn start(
        request: &UnicastRequest,
        options: Options,
        ended: CancellationToken,
    ) -> std::io::Result<UnicastLeg> {
        let local = address(&request.local_ip, request.local_port)?;
        let remote = address(&request.remote_ip, request.remote_port)?;
        let socket = UdpSocket::bind(local).await?;
        let local = socket.local_addr()?;
        let samples_per_frame = (options.rate / 50) as usize;
        let record = Arc::new(Mutex::new(Record::default()));
        let stop = ended.child_token();
        let task = tokio::spawn(run(
            socket,
            remote,
            options,
            samples_per_frame,
            Arc::clone(&record),
            stop.clone(),
        ));
        Ok(UnicastLeg {
            record,
            stop,
            task: Some(task),
            local,
            remote,
            samples_per_frame,
        })
    }

    pub fn heard(&self) -> Vec<i16> {
        self.lock().heard.clone()
    }

    pub fn received(&self) -> Vec<(usize, SocketAddr)> {
        self.lock().received.clone()
    }

    pub fn sent(&self) -> usize {
        self.lock().sent
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the call heard `n` samples (or the deadline passes); returns what it heard.
    pub async fn wait_heard(&self, n: usize, deadline: Duration) -> Vec<i16> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let heard = self.heard();
            if heard.len() >= n || tokio::time::Instant::now() >= until {
                return heard;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn stop(mut self) -> Vec<i16> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.heard()
    }
}

impl Drop for UnicastLeg {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn voice_frame(voice: &Voice, rate: u32, index: usize, frame: &mut [i16]) {
    let n = frame.len();
    match voice {
        Voice::Silence => frame.fill(0),
        Voice::Tone { hz, amplitude } => {
            for (i, s) in frame.iter_mut().enumerate() {
                let t = (index * n + i) as f64 / f64::from(rate);
                *s = (amplitude * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
            }
        }
        Voice::Samples(all) => {
            frame.fill(0);
            let start = index * n;
            if start < all.len() {
                let end = (start + n).min(all.len());
                frame[..end - start].copy_from_slice(&all[start..end]);
            }
        }
    }
}

async fn run(
    socket: UdpSocket,
    remote: SocketAddr,
    options: Options,
    samples_per_frame: usize,
    record: Arc<Mutex<Record>>,
    stop: CancellationToken,
) {
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut queue: VecDeque<Vec<i16>> = VecDeque::with_capacity(QUEUE_FRAMES);
    let mut frame = vec![0i16; samples_per_frame];
    let mut payload = Vec::with_capacity(samples_per_frame * 2);
    let mut buf = vec![0u8; 8192];
    let mut index = 0usize;
    // Ticks since the first datagram arrived: the call's playout timeline.
    let mut playing: Option<usize> = None;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = clock.tick() => {
                voice_frame(&options.voice, options.rate, index, &mut frame);
                index += 1;
                payload.clear();
                payload.extend(frame.iter().flat_map(|s| s.to_le_bytes()));
                // A refused send (nobody listening yet) is what UDP does; the clock goes on.
                if socket.send_to(&payload, remote).await.is_ok() {
                    record.lock().unwrap_or_else(|p| p.into_inner()).sent += 1;
                }
                if let Some(slot) = playing.as_mut() {
                    let due = queue.pop_front();
                    let overwritten = options.chop && *slot % 3 == 1;
                    let mut rec = record.lock().unwrap_or_else(|p| p.into_inner());
                    match due {
                        Some(samples) if !overwritten => rec.heard.extend(samples),
                        _ => rec.heard.extend(vec![0; samples_per_frame]),
                    }
                    *slot += 1;
                }
            }
            got = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { continue };
                record.lock().unwrap_or_else(|p| p.into_inner()).received.push((n, from));
                let samples: Vec<i16> = buf[..n]
                    .chunks_exact(2)
                    .map(|p| i16::from_le_bytes([p[0], p[1]]))
                    .collect();
                if queue.len() == QUEUE_FRAMES {
                    queue.pop_front();
                }
                queue.push_back(samples);
                playing.get_or_insert(0);
            }
        }
    }
}

/// A [`MediaHook`] that runs a [`UnicastLeg`] for every `sendmsg unicast`, chopping when the
/// channel has `send_silence_when_idle` set at that moment.
pub struct UnicastHook {
    voice: Voice,
    legs: Mutex<HashMap<String, Arc<UnicastLeg>>>,
    errors: Mutex<Vec<String>>,
}

impl UnicastHook {
    pub fn new(voice: Voice) -> Arc<UnicastHook> {
        Arc::new(UnicastHook {
            voice,
            legs: Mutex::new(HashMap::new()),
            errors: Mutex::new(Vec::new()),
        })
    }

    pub fn leg(&self, uuid: &str) -> Option<Arc<UnicastLeg>> {
        self.legs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(uuid)
            .cloned()
    }

    /// Bind failures and the like, for test diagnostics.
    pub fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits for the leg of `uuid` to be running.
    pub async fn wait_leg(&self, uuid: &str, deadline: Duration) -> Option<Arc<UnicastLeg>> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(leg) = self.leg(uuid) {
                return Some(leg);
            }
            if tokio::time::Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl MediaHook for Arc<UnicastHook> {
    fn unicast(&self, request: UnicastRequest, channel: ChannelMedia) {
        let hook = Arc::clone(self);
        tokio::spawn(async move {
            let options = Options {
                rate: channel.rate(),
                voice: hook.voice.clone(),
                chop: silence_when_idle(channel.variable("send_silence_when_idle").as_deref()),
            };
            match UnicastLeg::start(&request, options, channel.ended()).await {
                Ok(leg) => {
                    hook.legs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(request.uuid.clone(), Arc::new(leg));
                }
                Err(e) => hook
                    .errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!(
                        "{}: bind {}:{}: {e}",
                        request.uuid, request.local_ip, request.local_port
                    )),
            }
        });
    }
}
