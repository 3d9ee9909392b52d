//! The unit of call audio: 20 ms of 16 kHz signed 16-bit little-endian mono PCM (640 bytes).
//!
//! A [`Frame`] is a plain inline array, so moving it through channels and jitter buffers never
//! touches the heap. [`FrameAssembler`] turns an arbitrary byte stream (TCP reads, websocket
//! payloads of any length) into whole frames without allocating either.

use std::time::Duration;

pub const SAMPLE_RATE: u32 = 16_000;
pub const SAMPLES_PER_FRAME: usize = 320;
pub const FRAME_BYTES: usize = SAMPLES_PER_FRAME * 2;
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// One 20 ms frame of 16 kHz s16le mono audio.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Frame([u8; FRAME_BYTES]);

impl Frame {
    /// Digital silence. Zero-valued, unlike the original module's 0xFF (-1) filler.
    pub const SILENCE: Frame = Frame([0; FRAME_BYTES]);

    pub fn from_bytes(bytes: [u8; FRAME_BYTES]) -> Frame {
        Frame(bytes)
    }

    /// Builds a frame from exactly [`SAMPLES_PER_FRAME`] samples; `None` for any other length.
    pub fn from_samples(samples: &[i16]) -> Option<Frame> {
        if samples.len() != SAMPLES_PER_FRAME {
            return None;
        }
        let mut bytes = [0u8; FRAME_BYTES];
        for (chunk, sample) in bytes.chunks_exact_mut(2).zip(samples) {
            chunk.copy_from_slice(&sample.to_le_bytes());
        }
        Some(Frame(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; FRAME_BYTES] {
        &self.0
    }

    pub fn samples(&self) -> impl ExactSizeIterator<Item = i16> + '_ {
        self.0
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
    }

    pub fn is_silent(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }
}

impl Default for Frame {
    fn default() -> Self {
        Frame::SILENCE
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let peak = self.samples().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        f.debug_struct("Frame").field("peak", &peak).finish()
    }
}

/// Re-cuts a byte stream into whole frames. Payload boundaries are meaningless on both the
/// Skype TCP stream and the audio fork (which may send 1280 bytes, or an odd length), so bytes
/// are carried over between pushes.
#[derive(Debug)]
pub struct FrameAssembler {
    pending: [u8; FRAME_BYTES],
    filled: usize,
}

impl Default for FrameAssembler {
    fn default() -> Self {
        FrameAssembler {
            pending: [0; FRAME_BYTES],
            filled: 0,
        }
    }
}

impl FrameAssembler {
    pub fn new() -> FrameAssembler {
        FrameAssembler::default()
    }

    /// Feeds `bytes`, calling `emit` for every frame completed. Returns how many were emitted.
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(Frame)) -> usize {
        let mut emitted = 0;
        while !bytes.is_empty() {
            let take = (FRAME_BYTES - self.filled).min(bytes.len());
            self.pending[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled == FRAME_BYTES {
                emit(Frame(self.pending));
                self.filled = 0;
                emitted += 1;
            }
        }
        emitted
    }

    /// Drops a partial frame, e.g. when a new connection starts a fresh stream: keeping it would
    /// misalign every later sample by the leftover byte count.
    pub fn reset(&mut self) {
        self.filled = 0;
    }

    pub fn buffered(&self) -> usize {
        self.filled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(n: i16) -> Frame {
        let samples: Vec<i16> = (0..SAMPLES_PER_FRAME as i16)
            .map(|i| n * 1000 + i)
            .collect();
        Frame::from_samples(&samples).unwrap()
    }

    #[test]
    fn samples_round_trip_little_endian() {
        let f = numbered(3);
        assert_eq!(f.as_bytes()[0..2], 3000i16.to_le_bytes());
        let back: Vec<i16> = f.samples().collect();
        assert_eq!(back.len(), SAMPLES_PER_FRAME);
        assert_eq!(back[5], 3005);
        assert!(Frame::from_samples(&[0; 10]).is_none());
    }

    #[test]
    fn silence_is_zero() {
        assert!(Frame::SILENCE.is_silent());
        assert!(Frame::SILENCE.as_bytes().iter().all(|&b| b == 0));
        assert!(!numbered(1).is_silent());
    }

    #[test]
    fn assembler_recuts_double_and_odd_payloads() {
        let frames = [numbered(1), numbered(2), numbered(3)];
        let stream: Vec<u8> = frames.iter().flat_map(|f| f.as_bytes().to_vec()).collect();
        let mut out = Vec::new();
        let mut asm = FrameAssembler::new();
        // 1280 bytes at once, then an odd split of the last frame.
        assert_eq!(asm.push(&stream[..1280], |f| out.push(f)), 2);
        assert_eq!(asm.push(&stream[1280..1281], |f| out.push(f)), 0);
        assert_eq!(asm.buffered(), 1);
        assert_eq!(asm.push(&stream[1281..], |f| out.push(f)), 1);
        assert_eq!(out, frames);
    }

    #[test]
    fn assembler_reset_drops_partial() {
        let mut asm = FrameAssembler::new();
        asm.push(&[1, 2, 3], |_| {});
        asm.reset();
        let mut out = Vec::new();
        asm.push(numbered(4).as_bytes(), |f| out.push(f));
        assert_eq!(out, vec![numbered(4)]);
    }
}
