//! Optional WAV recording of a call's two directions, aligned by the pump's clock: one stereo
//! 16 kHz file, left = what the remote Skype party said (to the switch), right = what it heard
//! (to Skype). File I/O runs on its own thread; the pump only hands frames over, and drops
//! them (counted) rather than wait if the disk falls behind.

use super::frame::{Frame, SAMPLE_RATE};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// Ticks buffered between the pump and the writer thread (about 2.5 s).
const QUEUE_TICKS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("cannot write WAV tap {path}: {source}")]
    Wav {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("cannot start the WAV tap writer thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the WAV tap writer thread panicked")]
    Panicked,
}

pub struct WavTap {
    queue: SyncSender<(Frame, Frame)>,
    writer: JoinHandle<Result<(), TapError>>,
    dropped: u64,
}

impl std::fmt::Debug for WavTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WavTap")
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl WavTap {
    /// Creates (truncates) `path`. Blocking file creation; call it at call setup, e.g. in
    /// `spawn_blocking`, or accept the one short open on the runtime.
    pub fn create(path: &Path) -> Result<WavTap, TapError> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let wav_err = |source| TapError::Wav {
            path: path.to_path_buf(),
            source,
        };
        let writer = hound::WavWriter::create(path, spec).map_err(wav_err)?;
        let (queue, ticks) = sync_channel(QUEUE_TICKS);
        let owned = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("wav-tap".into())
            .spawn(move || write_all(writer, ticks, owned))
            .map_err(TapError::Thread)?;
        Ok(WavTap {
            queue,
            writer,
            dropped: 0,
        })
    }

    /// Records one tick. Never blocks.
    pub fn record(&mut self, said: &Frame, heard: &Frame) {
        match self.queue.try_send((*said, *heard)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.dropped += 1,
        }
    }

    /// Ticks lost because the writer fell behind (or failed).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Flushes and closes the file. Blocks until the writer thread is done.
    pub fn finish(self) -> Result<(), TapError> {
        drop(self.queue);
        self.writer.join().map_err(|_| TapError::Panicked)?
    }
}

fn write_all(
    mut wav: hound::WavWriter<BufWriter<File>>,
    ticks: Receiver<(Frame, Frame)>,
    path: PathBuf,
) -> Result<(), TapError> {
    let wav_err = |source| TapError::Wav {
        path: path.clone(),
        source,
    };
    for (said, heard) in ticks {
        for (l, r) in said.samples().zip(heard.samples()) {
            wav.write_sample(l).map_err(wav_err)?;
            wav.write_sample(r).map_err(wav_err)?;
        }
    }
    wav.finalize().map_err(wav_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::SAMPLES_PER_FRAME;

    #[test]
    fn records_both_directions_interleaved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.wav");
        let mut tap = WavTap::create(&path).unwrap();
        let said = Frame::from_samples(&[100; SAMPLES_PER_FRAME]).unwrap();
        let heard = Frame::from_samples(&[-7; SAMPLES_PER_FRAME]).unwrap();
        for _ in 0..5 {
            tap.record(&said, &heard);
        }
        assert_eq!(tap.dropped(), 0);
        tap.finish().unwrap();
        let mut reader = hound::WavReader::open(&path).unwrap();
        let spec = reader.spec();
        assert_eq!((spec.channels, spec.sample_rate), (2, 16_000));
        let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(samples.len(), 5 * SAMPLES_PER_FRAME * 2);
        assert!(samples.chunks(2).all(|p| p == [100, -7]));
    }

    #[test]
    fn unwritable_path_is_an_error() {
        assert!(WavTap::create(Path::new("/nonexistent-dir/x.wav")).is_err());
    }
}
