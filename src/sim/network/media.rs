//! Call audio inside the network: who hears what. Frames from a client are routed to the
//! other side of its call; bots echo them; remote parties played by `ctl` speak a generated
//! signal. Everything a side receives is recorded so `ctl heard` can analyse it.

use crate::media::dsp::{self, DtmfSequence, Tone, SAMPLES_PER_FRAME, SAMPLE_RATE};
use crate::sim::proto::{AudioSource, Frame};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Two minutes of 16 kHz audio per side: enough for any test, bounded for long calls.
const MAX_RECORDED_SAMPLES: usize = 120 * SAMPLE_RATE as usize;

/// What one side of a call does with audio.
#[derive(Debug)]
pub enum Behaviour {
    /// A logged-in client: frames go to its connection under its leg id.
    Client { leg: u64, sink: mpsc::Sender<Frame> },
    /// Says a generated signal every 20 ms.
    Source(Generator),
    /// Returns what it hears after `delay`.
    Echo {
        delay: Duration,
        queue: VecDeque<(Instant, Bytes)>,
    },
    /// Returns each frame at once.
    InstantEcho,
}

#[derive(Debug)]
pub enum Generator {
    Silence,
    Tone(Tone),
    Dtmf(DtmfSequence),
    Samples {
        samples: Vec<i16>,
        pos: usize,
    },
    /// 425 Hz, 1 s on, 4 s off, as a SkypeOut call's ringback during EARLYMEDIA.
    Ringback {
        tone: Tone,
        sample: usize,
    },
}

impl Generator {
    pub fn from_source(source: &AudioSource) -> Result<Generator, String> {
        Ok(match source {
            AudioSource::Silence => Generator::Silence,
            AudioSource::Tone { hz } => {
                if !(20.0..=7900.0).contains(hz) {
                    return Err(format!("tone frequency {hz} Hz is outside 20..7900"));
                }
                Generator::Tone(Tone::new(*hz, -10.0))
            }
            AudioSource::Dtmf { digits } => Generator::Dtmf(DtmfSequence::new(digits, 100, 100)),
            AudioSource::Wav { path } => Generator::Samples {
                samples: read_wav(path)?,
                pos: 0,
            },
        })
    }

    pub fn ringback() -> Generator {
        Generator::Ringback {
            tone: Tone::new(425.0, -14.0),
            sample: 0,
        }
    }

    fn fill(&mut self, out: &mut [i16]) {
        match self {
            Generator::Silence => out.fill(0),
            Generator::Tone(t) => {
                out.fill(0);
                t.mix_into(out);
            }
            Generator::Dtmf(d) => d.fill(out),
            Generator::Samples { samples, pos } => {
                for s in out.iter_mut() {
                    *s = samples.get(*pos).copied().unwrap_or(0);
                    *pos += 1;
                }
            }
            Generator::Ringback { tone, sample } => {
                let cadence = 5 * SAMPLE_RATE as usize;
                for s in out.iter_mut() {
                    *s = if *sample % cadence < SAMPLE_RATE as usize {
                        tone.next_sample()
                    } else {
                        0
                    };
                    *sample += 1;
                }
            }
        }
    }
}

fn read_wav(path: &str) -> Result<Vec<i16>, String> {
    let mut reader = hound::WavReader::open(path).map_err(|e| format!("{path}: {e}"))?;
    let spec = reader.spec();
    if spec.channels != 1 || spec.sample_rate != SAMPLE_RATE || spec.bits_per_sample != 16 {
        return Err(format!(
            "{path}: need 16 kHz mono 16-bit, got {} Hz {} ch {} bit",
            spec.sample_rate, spec.channels, spec.bits_per_sample
        ));
    }
    reader
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path}: {e}"))
}

/// What one side received.
#[derive(Debug, Default)]
pub struct Recording {
    pub samples: Vec<i16>,
    /// Digits signalled out of band (`SET CALL <id> DTMF`) by the other side.
    pub signalled_dtmf: String,
}

#[derive(Debug)]
pub struct MediaSide {
    pub handle: String,
    /// The client session on this side, if any.
    pub session: Option<u64>,
    pub behaviour: Mutex<Behaviour>,
    pub recording: Mutex<Recording>,
}

/// The audio of one call between side 0 (caller) and side 1 (callee).
#[derive(Debug)]
pub struct CallMedia {
    pub call: u64,
    pub sides: [MediaSide; 2],
    pub held: AtomicBool,
    pub ended: AtomicBool,
}

impl CallMedia {
    pub fn new(call: u64, sides: [MediaSide; 2]) -> CallMedia {
        CallMedia {
            call,
            sides,
            held: AtomicBool::new(false),
            ended: AtomicBool::new(false),
        }
    }

    /// Whether a 20 ms clock is needed (anything but two clients talking).
    pub fn needs_clock(&self) -> bool {
        self.sides.iter().any(|s| {
            !matches!(
                *lock(&s.behaviour),
                Behaviour::Client { .. } | Behaviour::InstantEcho
            )
        })
    }

    /// A frame from the client `session`: route it to the other side.
    pub fn from_client(&self, session: u64, pcm: Bytes) {
        let Some(from) = self.sides.iter().position(|s| s.session == Some(session)) else {
            return;
        };
        if self.held.load(Ordering::Relaxed) {
            return;
        }
        let to = 1 - from;
        self.deliver(to, pcm.clone());
        let mut behaviour = lock(&self.sides[to].behaviour);
        match &mut *behaviour {
            // Bounded: a client sending faster than real time cannot grow it forever.
            Behaviour::Echo { queue, .. } if queue.len() < 500 => {
                queue.push_back((Instant::now(), pcm));
            }
            Behaviour::InstantEcho => {
                drop(behaviour);
                self.deliver(from, pcm);
            }
            _ => {}
        }
    }

    /// Hands `pcm` to side `to`: recorded, and sent on if that side is a client.
    pub fn deliver(&self, to: usize, pcm: Bytes) {
        let side = &self.sides[to];
        {
            let mut rec = lock(&side.recording);
            if rec.samples.len() < MAX_RECORDED_SAMPLES {
                dsp::samples_from_le_bytes(&pcm, &mut rec.samples);
            }
        }
        if let Behaviour::Client { leg, sink } = &*lock(&side.behaviour) {
            // A slow client loses frames rather than stalling the network.
            let _ = sink.try_send(Frame::Audio { call: *leg, pcm });
        }
    }

    /// One 20 ms tick: generators speak, echoes return what is due.
    pub fn tick(&self, now: Instant) {
        if self.held.load(Ordering::Relaxed) {
            return;
        }
        for from in 0..2 {
            let mut out: Vec<Bytes> = Vec::new();
            {
                let mut behaviour = lock(&self.sides[from].behaviour);
                match &mut *behaviour {
                    Behaviour::Source(generator) => {
                        let mut samples = [0i16; SAMPLES_PER_FRAME];
                        generator.fill(&mut samples);
                        let mut bytes = vec![0u8; dsp::BYTES_PER_FRAME];
                        dsp::samples_to_le_bytes(&samples, &mut bytes);
                        out.push(Bytes::from(bytes));
                    }
                    Behaviour::Echo { delay, queue } => {
                        while let Some((at, _)) = queue.front() {
                            if now.duration_since(*at) < *delay {
                                break;
                            }
                            if let Some((_, pcm)) = queue.pop_front() {
                                out.push(pcm);
                            }
                        }
                    }
                    _ => {}
                }
            }
            for pcm in out {
                self.deliver(1 - from, pcm);
            }
        }
    }

    /// Replaces what side `side` does (a remote answering, a SkypeOut call going from
    /// ringback to the answering echo).
    pub fn set_behaviour(&self, side: usize, behaviour: Behaviour) {
        *lock(&self.sides[side].behaviour) = behaviour;
    }

    pub fn side_of_handle(&self, handle: &str) -> Option<usize> {
        self.sides
            .iter()
            .position(|s| s.handle.eq_ignore_ascii_case(handle))
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: media state stays
/// usable and a panic elsewhere must not stop every call.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the 20 ms clock of a call until it ends.
pub async fn run_clock(media: std::sync::Arc<CallMedia>) {
    let mut interval = tokio::time::interval(Duration::from_millis(20));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !media.ended.load(Ordering::Relaxed) {
        interval.tick().await;
        media.tick(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(handle: &str, session: Option<u64>, behaviour: Behaviour) -> MediaSide {
        MediaSide {
            handle: handle.into(),
            session,
            behaviour: Mutex::new(behaviour),
            recording: Mutex::new(Recording::default()),
        }
    }

    #[tokio::test]
    async fn instant_echo_returns_each_frame_to_the_client() {
        let (tx, mut rx) = mpsc::channel(8);
        let media = CallMedia::new(
            1,
            [
                side("user1", Some(7), Behaviour::Client { leg: 11, sink: tx }),
                side("instantecho", None, Behaviour::InstantEcho),
            ],
        );
        media.from_client(7, Bytes::from(vec![3u8; 640]));
        match rx.recv().await {
            Some(Frame::Audio { call, pcm }) => {
                assert_eq!(call, 11);
                assert_eq!(pcm.len(), 640);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(lock(&media.sides[1].recording).samples.len(), 320);
        assert_eq!(lock(&media.sides[0].recording).samples.len(), 320);
    }

    #[tokio::test]
    async fn echo_waits_for_its_delay() {
        let (tx, mut rx) = mpsc::channel(8);
        let media = CallMedia::new(
            1,
            [
                side("user1", Some(7), Behaviour::Client { leg: 11, sink: tx }),
                side(
                    "echo123",
                    None,
                    Behaviour::Echo {
                        delay: Duration::from_millis(200),
                        queue: VecDeque::new(),
                    },
                ),
            ],
        );
        let t0 = Instant::now();
        media.from_client(7, Bytes::from(vec![1u8; 640]));
        media.tick(t0);
        assert!(rx.try_recv().is_err());
        media.tick(t0 + Duration::from_millis(250));
        assert!(matches!(rx.try_recv(), Ok(Frame::Audio { call: 11, .. })));
    }

    #[test]
    fn tone_source_is_heard_by_the_other_side() {
        let media = CallMedia::new(
            1,
            [
                side(
                    "alice",
                    None,
                    Behaviour::Source(
                        Generator::from_source(&AudioSource::Tone { hz: 700.0 }).unwrap(),
                    ),
                ),
                side("bob", None, Behaviour::Source(Generator::Silence)),
            ],
        );
        for _ in 0..25 {
            media.tick(Instant::now());
        }
        let rec = lock(&media.sides[1].recording);
        let f = dsp::dominant_frequency(&rec.samples).unwrap();
        assert!((f - 700.0).abs() < 7.0);
    }
}
