//! FreeSWITCH's `unicast` UDP leg as a pump side: datagrams of L16 at the channel's codec rate
//! are resampled to 16 kHz frames, and the pump's frames go back resampled to the channel rate,
//! exactly one datagram of one 20 ms frame per frame handed over (the pump's slots are the
//! pacing; FreeSWITCH writes each datagram straight into the channel).

use super::{frame_bytes, UnicastLeg};
use crate::media::frame::{Frame, FrameAssembler, FRAME_BYTES, SAMPLE_RATE};
use crate::media::resample::Resampler;
use crate::media::side::{MediaSide, Offer};
use tracing::{debug, info};

/// Larger than any L16 frame FreeSWITCH sends (48 kHz: 1920 bytes); longer datagrams are cut.
const DATAGRAM_MAX: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum UnicastSideError {
    #[error("unsupported channel rate {0} Hz for unicast (expected 8000, 16000, 32000 or 48000)")]
    Rate(u32),
}

/// Per-direction conversion state, allocated once per call.
struct Converter {
    resampler: Option<Resampler>,
    samples: Vec<i16>,
    converted: Vec<i16>,
    bytes: Vec<u8>,
}

impl Converter {
    fn new(from: u32, to: u32) -> Result<Converter, UnicastSideError> {
        let resampler = Resampler::new(from, to).ok_or(UnicastSideError::Rate(from.max(to)))?;
        let resampler = (!resampler.is_identity()).then_some(resampler);
        Ok(Converter {
            resampler,
            samples: Vec::with_capacity(DATAGRAM_MAX / 2),
            converted: Vec::with_capacity(DATAGRAM_MAX / 2),
            bytes: Vec::with_capacity(DATAGRAM_MAX),
        })
    }

    /// Converts little-endian L16 bytes, appending the result (as bytes) to `self.bytes`.
    fn convert(&mut self, input: &[u8]) {
        self.samples.clear();
        self.samples.extend(
            input
                .chunks_exact(2)
                .map(|p| i16::from_le_bytes([p[0], p[1]])),
        );
        let out = match self.resampler.as_mut() {
            Some(r) => {
                self.converted.clear();
                r.process(&self.samples, &mut self.converted);
                &self.converted
            }
            None => &self.samples,
        };
        self.bytes.extend(out.iter().flat_map(|s| s.to_le_bytes()));
    }
}

/// Turns FreeSWITCH's datagrams (L16 at the channel rate, any length a peer sends) into the
/// pump's 16 kHz frames: at most two per datagram, whatever its length, so a hostile or
/// confused sender can neither queue without bound nor make a frame out of a partial sample.
pub struct DatagramReader {
    converter: Converter,
    assembler: FrameAssembler,
}

/// Frames one datagram made (at most [`DatagramReader::MAX_FRAMES`]).
pub struct ReadFrames {
    frames: [Frame; DatagramReader::MAX_FRAMES],
    count: usize,
    next: usize,
}

impl ReadFrames {
    fn empty() -> ReadFrames {
        ReadFrames {
            frames: [Frame::SILENCE; DatagramReader::MAX_FRAMES],
            count: 0,
            next: 0,
        }
    }
}

impl Iterator for ReadFrames {
    type Item = Frame;
    fn next(&mut self) -> Option<Frame> {
        (self.next < self.count).then(|| {
            self.next += 1;
            self.frames[self.next - 1]
        })
    }
}

impl DatagramReader {
    /// One 20 ms datagram makes at most one frame plus a carried remainder; one more covers a
    /// remainder completed by a slightly long datagram.
    pub const MAX_FRAMES: usize = 2;

    pub fn new(channel_rate: u32) -> Result<DatagramReader, UnicastSideError> {
        if ![8000, 16000, 32000, 48000].contains(&channel_rate) {
            return Err(UnicastSideError::Rate(channel_rate));
        }
        Ok(DatagramReader {
            converter: Converter::new(channel_rate, SAMPLE_RATE)?,
            assembler: FrameAssembler::new(),
        })
    }

    /// Reads at most 4,096 bytes of `datagram`, what the socket buffer holds.
    pub fn read(&mut self, datagram: &[u8]) -> ReadFrames {
        let datagram = &datagram[..datagram.len().min(DATAGRAM_MAX)];
        self.converter.bytes.clear();
        self.converter.convert(datagram);
        let mut ready = ReadFrames::empty();
        // Longer datagrams are cut to what fits rather than queued without bound.
        for piece in self.converter.bytes.chunks(FRAME_BYTES) {
            self.assembler.push(piece, |f| {
                if ready.count < Self::MAX_FRAMES {
                    ready.frames[ready.count] = f;
                    ready.count += 1;
                }
            });
        }
        ready
    }

    /// Bytes carried over to the next datagram (always less than one frame).
    pub fn carried(&self) -> usize {
        self.assembler.buffered()
    }
}

/// A `unicast` leg as the pump's switch side, served inside the pump's own task: a datagram
/// is read and cut into frames where the pump waits, and a frame the pump hands over is sent
/// at once without blocking. No task and no channel stand between the socket and the pump, so
/// a frame costs one wake-up of the call's task rather than two (measured in the 100-call
/// benchmark against a relay that does nothing else).
pub struct UnicastSide {
    leg: UnicastLeg,
    reader: DatagramReader,
    outbound: Converter,
    datagram: usize,
    /// Frames of the last datagram not yet handed to the pump (at most two).
    pending: ReadFrames,
    buf: Box<[u8; DATAGRAM_MAX]>,
    datagrams_in: u64,
    datagrams_out: u64,
    /// Datagrams the socket could not take at once (a full send buffer): lost, as UDP loses.
    dropped_out: u64,
}

impl UnicastSide {
    pub fn new(leg: UnicastLeg, channel_rate: u32) -> Result<UnicastSide, UnicastSideError> {
        Ok(UnicastSide {
            leg,
            reader: DatagramReader::new(channel_rate)?,
            outbound: Converter::new(SAMPLE_RATE, channel_rate)?,
            datagram: frame_bytes(channel_rate),
            pending: ReadFrames::empty(),
            buf: Box::new([0u8; DATAGRAM_MAX]),
            datagrams_in: 0,
            datagrams_out: 0,
            dropped_out: 0,
        })
    }
}

impl MediaSide for UnicastSide {
    // Cancel-safe: a datagram is either wholly read into `pending` or still in the socket.
    async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.pending.next() {
                return Some(frame);
            }
            match self.leg.recv(&mut self.buf[..]).await {
                Ok(n) => {
                    self.datagrams_in += 1;
                    self.pending = self.reader.read(&self.buf[..n]);
                }
                // ICMP port unreachable before FreeSWITCH binds its side shows up here on a
                // connected socket; it is not fatal.
                Err(e) => debug!(error = %e, "unicast receive error"),
            }
        }
    }

    fn offer(&mut self, frame: Frame) -> Offer {
        self.outbound.convert(frame.as_bytes());
        while self.outbound.bytes.len() >= self.datagram {
            match self.leg.try_send(&self.outbound.bytes[..self.datagram]) {
                Ok(()) => self.datagrams_out += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => self.dropped_out += 1,
                Err(e) => debug!(error = %e, "unicast send error"),
            }
            self.outbound.bytes.drain(..self.datagram);
        }
        // The socket stays open as long as the pump holds it: a UDP leg never closes.
        Offer::Accepted
    }
}

impl Drop for UnicastSide {
    fn drop(&mut self) {
        info!(
            datagrams_in = self.datagrams_in,
            datagrams_out = self.datagrams_out,
            dropped_out = self.dropped_out,
            carried = self.reader.carried(),
            "unicast leg closed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::switch::unicast::UnicastPorts;
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    fn tone(hz: f64, rate: u32, start: usize, n: usize) -> Vec<i16> {
        (start..start + n)
            .map(|i| (8000.0 * (std::f64::consts::TAU * hz * i as f64 / rate as f64).sin()) as i16)
            .collect()
    }

    fn hz(samples: &[i16], rate: u32) -> f64 {
        let crossings = samples
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        crossings as f64 / 2.0 / (samples.len() as f64 / rate as f64)
    }

    #[tokio::test]
    async fn an_8k_leg_becomes_16k_frames_and_back() {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let base = 41_000 + (std::process::id() % 400) as u16 * 4;
        let ports = UnicastPorts::new(base..=base + 399);
        let leg = ports.open(localhost, localhost).await.unwrap();
        let sidecar = leg.local();
        // The switch double: binds FreeSWITCH's port and talks to the sidecar's.
        let fs = tokio::net::UdpSocket::bind(leg.freeswitch()).await.unwrap();
        let mut side = UnicastSide::new(leg, 8000).unwrap();
        let mut got = Vec::new();

        // Paced like FreeSWITCH: one datagram per 20 ms.
        let mut clock = tokio::time::interval(Duration::from_millis(20));
        for n in 0..50 {
            clock.tick().await;
            let bytes: Vec<u8> = tone(1000.0, 8000, n * 160, 160)
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect();
            fs.send_to(&bytes, sidecar).await.unwrap();
        }
        while got.len() < 40 * 320 {
            let frame = tokio::time::timeout(Duration::from_secs(10), side.recv())
                .await
                .unwrap()
                .unwrap();
            got.extend(frame.samples());
        }
        let measured = hz(&got[1000..], 16_000);
        assert!((measured - 1000.0).abs() < 30.0, "{measured} Hz at 16 kHz");

        for n in 0..10 {
            let frame = Frame::from_samples(&tone(440.0, 16_000, n * 320, 320)).unwrap();
            assert_eq!(side.offer(frame), Offer::Accepted);
        }
        let mut heard = Vec::new();
        let mut buf = [0u8; 2048];
        while heard.len() < 9 * 160 {
            let (n, _) = tokio::time::timeout(Duration::from_secs(10), fs.recv_from(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 320, "one 20 ms frame at 8 kHz per datagram");
            heard.extend(
                buf[..n]
                    .chunks_exact(2)
                    .map(|p| i16::from_le_bytes([p[0], p[1]])),
            );
        }
        let measured = hz(&heard[100..], 8000);
        assert!((measured - 440.0).abs() < 25.0, "{measured} Hz at 8 kHz");
        assert_eq!(side.datagrams_out, 10);
    }

    #[test]
    fn odd_rates_are_refused() {
        assert!(matches!(
            Converter::new(0, 16_000),
            Err(UnicastSideError::Rate(_))
        ));
    }
}
