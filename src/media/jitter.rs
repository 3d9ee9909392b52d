//! A small per-direction jitter buffer. Frames arrive in bursts (TCP coalescing, websocket
//! batching, scheduler hiccups) and leave one per 20 ms tick. Playout starts once `target`
//! frames are queued, and restarts the same way after running dry; the queue never exceeds
//! `max`, dropping the oldest frame so latency stays bounded.

use super::frame::Frame;
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Frames to collect before playout (re)starts.
    pub target: usize,
    /// Frames held at most; older ones are dropped beyond it.
    pub max: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig { target: 2, max: 6 }
    }
}

impl JitterConfig {
    /// Clamps nonsense (zero, target above max) into something that works.
    fn normalised(self) -> JitterConfig {
        let max = self.max.max(1);
        JitterConfig {
            target: self.target.clamp(1, max),
            max,
        }
    }
}

/// What one tick gets from the buffer.
// The frame travels inline on purpose: boxing it would allocate per tick.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout {
    Frame(Frame),
    /// Still collecting `target` frames (start of the call or after an underrun).
    Priming,
    /// Was playing and ran dry this tick.
    Underrun,
}

#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    queue: VecDeque<Frame>,
    playing: bool,
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> JitterBuffer {
        let config = config.normalised();
        JitterBuffer {
            config,
            // Allocated once for the whole call; push/pop never grow it.
            queue: VecDeque::with_capacity(config.max),
            playing: false,
        }
    }

    /// Queues a frame. Returns true when the oldest frame had to be dropped to make room.
    pub fn push(&mut self, frame: Frame) -> bool {
        let overflow = self.queue.len() >= self.config.max;
        if overflow {
            self.queue.pop_front();
        }
        self.queue.push_back(frame);
        overflow
    }

    /// Takes the frame for this tick.
    pub fn pop(&mut self) -> Playout {
        if !self.playing {
            if self.queue.len() < self.config.target {
                return Playout::Priming;
            }
            self.playing = true;
        }
        match self.queue.pop_front() {
            Some(frame) => Playout::Frame(frame),
            None => {
                self.playing = false;
                Playout::Underrun
            }
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Forgets queued audio, e.g. on hold/resume, so stale speech is not played late.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.playing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::SAMPLES_PER_FRAME;

    fn f(n: i16) -> Frame {
        Frame::from_samples(&[n; SAMPLES_PER_FRAME]).unwrap()
    }

    fn id(p: Playout) -> Option<i16> {
        match p {
            Playout::Frame(fr) => fr.samples().next(),
            _ => None,
        }
    }

    #[test]
    fn primes_to_target_then_plays_in_order() {
        let mut jb = JitterBuffer::new(JitterConfig { target: 2, max: 6 });
        assert_eq!(jb.pop(), Playout::Priming);
        jb.push(f(1));
        assert_eq!(jb.pop(), Playout::Priming);
        jb.push(f(2));
        jb.push(f(3));
        assert_eq!(id(jb.pop()), Some(1));
        assert_eq!(id(jb.pop()), Some(2));
        assert_eq!(id(jb.pop()), Some(3));
        assert_eq!(jb.pop(), Playout::Underrun);
        // After an underrun it primes again instead of playing single frames.
        jb.push(f(4));
        assert_eq!(jb.pop(), Playout::Priming);
        jb.push(f(5));
        assert_eq!(id(jb.pop()), Some(4));
    }

    #[test]
    fn overflow_drops_oldest() {
        let mut jb = JitterBuffer::new(JitterConfig { target: 2, max: 3 });
        assert!(!jb.push(f(1)));
        assert!(!jb.push(f(2)));
        assert!(!jb.push(f(3)));
        assert!(jb.push(f(4)));
        assert_eq!(jb.len(), 3);
        assert_eq!(id(jb.pop()), Some(2));
        assert_eq!(id(jb.pop()), Some(3));
        assert_eq!(id(jb.pop()), Some(4));
    }

    #[test]
    fn nonsense_config_is_clamped() {
        let mut jb = JitterBuffer::new(JitterConfig { target: 9, max: 0 });
        jb.push(f(1));
        assert_eq!(id(jb.pop()), Some(1));
        jb.clear();
        assert!(jb.is_empty());
    }
}
