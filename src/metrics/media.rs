//! Media counters as totals: the calls that ended added up, plus the live calls' counters read
//! at scrape time, so every counter only grows.

use crate::media::pump::{DirectionCounters, DirectionStats, PumpCounters};
use dashmap::DashMap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct MediaTotals {
    live: DashMap<String, Arc<PumpCounters>>,
    /// to_skype, to_switch.
    finished: Mutex<[DirectionStats; 2]>,
}

impl MediaTotals {
    pub fn opened(&self, call: &str, counters: Arc<PumpCounters>) {
        self.live.insert(call.to_string(), counters);
    }

    pub fn closed(&self, call: &str) {
        if let Some((_, counters)) = self.live.remove(call) {
            let mut finished = self.finished.lock().unwrap_or_else(|p| p.into_inner());
            add(&mut finished[0], &counters.to_skype.snapshot());
            add(&mut finished[1], &counters.to_switch.snapshot());
        }
    }

    /// Totals so far and frames queued now, per direction.
    fn read(&self) -> ([DirectionStats; 2], [u64; 2]) {
        let mut totals = *self.finished.lock().unwrap_or_else(|p| p.into_inner());
        let mut queued = [0; 2];
        for entry in self.live.iter() {
            let directions: [&DirectionCounters; 2] = [&entry.to_skype, &entry.to_switch];
            for (i, d) in directions.iter().enumerate() {
                add(&mut totals[i], &d.snapshot());
                queued[i] += d.queued.load(Ordering::Relaxed);
            }
        }
        (totals, queued)
    }
}

fn add(sum: &mut DirectionStats, more: &DirectionStats) {
    sum.frames_in += more.frames_in;
    sum.frames_out += more.frames_out;
    sum.silence_out += more.silence_out;
    sum.underruns += more.underruns;
    sum.overruns += more.overruns;
    sum.trimmed += more.trimmed;
    sum.dropped += more.dropped;
}

const DIRECTIONS: [&str; 2] = ["to_skype", "to_switch"];

#[derive(Debug)]
pub(super) struct MediaCollector(pub Arc<MediaTotals>);

impl Collector for MediaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (totals, queued) = self.0.read();
        let mut frames = encoder.encode_descriptor(
            "media_frames",
            "Audio frames by direction and what became of them: in (from the source), out \
             (delivered), silence (filled in), underrun, overrun, trimmed, dropped",
            None,
            MetricType::Counter,
        )?;
        for (direction, t) in DIRECTIONS.iter().zip(totals.iter()) {
            for (kind, value) in [
                ("in", t.frames_in),
                ("out", t.frames_out),
                ("silence", t.silence_out),
                ("underrun", t.underruns),
                ("overrun", t.overruns),
                ("trimmed", t.trimmed),
                ("dropped", t.dropped),
            ] {
                let labels = [("direction", *direction), ("kind", kind)];
                ConstCounter::new(value).encode(frames.encode_family(&labels)?)?;
            }
        }
        let mut depth = encoder.encode_descriptor(
            "media_queued_frames",
            "Frames waiting in the jitter buffers of the live calls, by direction",
            None,
            MetricType::Gauge,
        )?;
        for (direction, q) in DIRECTIONS.iter().zip(queued.iter()) {
            let labels = [("direction", *direction)];
            ConstGauge::new(*q as i64).encode(depth.encode_family(&labels)?)?;
        }
        let streams = encoder.encode_descriptor(
            "media_paths",
            "Media paths open now (one per call with audio)",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.0.live.len() as i64).encode(streams)?;
        Ok(())
    }
}
