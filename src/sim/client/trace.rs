//! Opt-in per-frame audio trace (`skype-sim client --audio-trace FILE`): every whole frame the
//! client reads from a call's input socket and every frame it writes to its output socket,
//! with its CLOCK_MONOTONIC time, so a benchmark in another process (same clock on Linux) can
//! split a round trip into its two directions.
//!
//! File format, little-endian: the 8-byte magic [`MAGIC`], then one record per frame:
//! `u64` monotonic ns, `u64` call id, `u8` direction (`b'i'` read from the input socket, i.e.
//! sidecar → Skype; `b'o'` written to the output socket, i.e. Skype → sidecar), `u8` 0, `u16`
//! payload length in bytes, then the payload (s16le 16 kHz samples, as on the socket).
//!
//! Records go to a memory buffer; a writer thread moves it to the file every
//! [`FLUSH_EVERY`], so the audio tasks make no syscall for it.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which of a call's two audio ports a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What the client sends (its microphone, the `input` port).
    Input,
    /// What the client plays (its speaker, the `output` port).
    Output,
}

pub const MAGIC: &[u8; 8] = b"SKAUDTR1";
const HEADER: usize = 20;
const FLUSH_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("not an audio trace (bad magic)")]
    BadMagic,
    #[error("record at byte {0} has an unknown direction {1:#04x}")]
    BadDirection(usize, u8),
}

/// One traced frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRecord {
    pub mono_ns: u64,
    pub call: u64,
    pub direction: Direction,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
struct Inner {
    pending: Mutex<Vec<u8>>,
    file: Mutex<File>,
}

/// A trace file being written; cheap to clone (all clones write the same file).
#[derive(Debug, Clone)]
pub struct AudioTrace {
    inner: Arc<Inner>,
}

/// CLOCK_MONOTONIC in ns (what `Instant` uses on Linux, but as a number other processes
/// can compare with).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

impl AudioTrace {
    /// Creates (truncates) `path` and starts the writer thread, which lives as long as the
    /// process (a client traces until it exits).
    pub fn create(path: &Path) -> std::io::Result<AudioTrace> {
        let mut file = File::create(path)?;
        file.write_all(MAGIC)?;
        let trace = AudioTrace {
            inner: Arc::new(Inner {
                pending: Mutex::new(Vec::with_capacity(64 * 1024)),
                file: Mutex::new(file),
            }),
        };
        let weak = Arc::downgrade(&trace.inner);
        std::thread::Builder::new()
            .name("audio-trace".into())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_EVERY);
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = flush_inner(&inner) {
                    tracing::warn!(error = %e, "audio trace write failed, tracing stops");
                    return;
                }
            })?;
        Ok(trace)
    }

    /// Notes one frame (no syscall: it lands in the buffer the writer thread drains).
    pub fn record(&self, call: u64, direction: Direction, payload: &[u8]) {
        let now = monotonic_ns();
        let len = payload.len().min(usize::from(u16::MAX));
        let mut pending = lock(&self.inner.pending);
        pending.extend_from_slice(&now.to_le_bytes());
        pending.extend_from_slice(&call.to_le_bytes());
        pending.push(match direction {
            Direction::Input => b'i',
            Direction::Output => b'o',
        });
        pending.push(0);
        pending.extend_from_slice(&(len as u16).to_le_bytes());
        pending.extend_from_slice(&payload[..len]);
    }

    /// Writes what is buffered now (the client calls it on its way out).
    pub fn flush(&self) -> std::io::Result<()> {
        flush_inner(&self.inner)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn flush_inner(inner: &Inner) -> std::io::Result<()> {
    let batch = std::mem::take(&mut *lock(&inner.pending));
    if batch.is_empty() {
        return Ok(());
    }
    lock(&inner.file).write_all(&batch)
}

/// Parses a whole trace file's bytes. A record cut short at the very end (the file was read
/// while the client was writing) is dropped rather than reported.
pub fn parse(bytes: &[u8]) -> Result<Vec<TraceRecord>, TraceError> {
    let body = bytes.strip_prefix(MAGIC).ok_or(TraceError::BadMagic)?;
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let Some(head) = body.get(at..at + HEADER) else {
            break;
        };
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let direction = match head[16] {
            b'i' => Direction::Input,
            b'o' => Direction::Output,
            other => return Err(TraceError::BadDirection(at + MAGIC.len(), other)),
        };
        let len = usize::from(u16::from_le_bytes([head[18], head[19]]));
        let Some(payload) = body.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        records.push(TraceRecord {
            mono_ns: u64_at(0),
            call: u64_at(8),
            direction,
            payload: payload.to_vec(),
        });
        at += HEADER + len;
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_file_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        let trace = AudioTrace::create(&path).unwrap();
        trace.record(7, Direction::Input, &[1, 2, 3, 4]);
        trace.record(7, Direction::Output, &[9; 640]);
        trace.flush().unwrap();
        let records = parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].call, 7);
        assert_eq!(records[0].direction, Direction::Input);
        assert_eq!(records[0].payload, vec![1, 2, 3, 4]);
        assert_eq!(records[1].direction, Direction::Output);
        assert_eq!(records[1].payload, vec![9; 640]);
        assert!(records[0].mono_ns <= records[1].mono_ns);
    }

    #[test]
    fn a_record_cut_at_the_end_is_dropped_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.bin");
        let trace = AudioTrace::create(&path).unwrap();
        trace.record(1, Direction::Input, &[0; 640]);
        trace.record(1, Direction::Input, &[0; 640]);
        trace.flush().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(parse(&bytes[..bytes.len() - 10]).unwrap().len(), 1);
        assert!(matches!(parse(b"nonsense"), Err(TraceError::BadMagic)));
        let mut bad = bytes.clone();
        bad[MAGIC.len() + 16] = b'x';
        assert!(matches!(parse(&bad), Err(TraceError::BadDirection(..))));
    }

    #[test]
    fn the_monotonic_clock_matches_instant() {
        let a = monotonic_ns();
        let i = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(5));
        let b = monotonic_ns();
        let elapsed = i.elapsed().as_nanos() as u64;
        assert!(b - a >= elapsed.saturating_sub(1_000_000));
    }
}
