//! The per-call media pump: one 20 ms clock per call cuts time into slots for both
//! directions. A frame leaves as soon as it arrives if its direction has not sent one in the
//! current slot, otherwise it waits in that direction's jitter buffer for the next slot (see
//! [`super::jitter`]); an idle source gets zero silence (if configured) once it has been quiet
//! for the grace period.

use super::frame::{Frame, FRAME_DURATION};
use super::jitter::{JitterBuffer, JitterConfig, Playout, SlotEvents};
use super::side::{MediaSide, Offer};
use super::tap::WavTap;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PumpConfig {
    pub jitter: JitterConfig,
    /// Send zero frames to Skype while the switch side is silent (the original
    /// `write_silence_when_idle`).
    pub silence_to_skype: bool,
    /// Send zero frames to the switch while Skype is silent. Keeps the fork's playout
    /// timeline continuous, so FreeSWITCH does not pre-buffer again after every pause.
    pub silence_to_switch: bool,
}

impl Default for PumpConfig {
    fn default() -> Self {
        PumpConfig {
            jitter: JitterConfig::default(),
            silence_to_skype: true,
            silence_to_switch: true,
        }
    }
}

impl PumpConfig {
    /// The interface's `write_silence_when_idle` decides the Skype direction.
    pub fn for_interface(write_silence_when_idle: bool) -> PumpConfig {
        PumpConfig {
            silence_to_skype: write_silence_when_idle,
            ..PumpConfig::default()
        }
    }
}

/// Live counters of one direction. Owned by one call, so relaxed atomics suffice.
#[derive(Debug, Default)]
pub struct DirectionCounters {
    /// Frames received from the source side.
    pub frames_in: AtomicU64,
    /// Audio frames delivered to the destination side.
    pub frames_out: AtomicU64,
    /// Silence frames delivered while the source was idle.
    pub silence_out: AtomicU64,
    /// Slots that ended without the frame the source was sending one per slot.
    pub underruns: AtomicU64,
    /// Frames dropped because the jitter buffer was full (the oldest goes).
    pub overruns: AtomicU64,
    /// Frames dropped to cut the delay a burst left queued.
    pub trimmed: AtomicU64,
    /// Frames the destination could not take (it was not keeping up).
    pub dropped: AtomicU64,
    /// Frames waiting in the jitter buffer now.
    pub queued: AtomicU64,
    /// How long each audio frame waited in the sidecar (arrival to leaving), when measured.
    pub latency: Option<Histogram>,
}

impl DirectionCounters {
    pub fn snapshot(&self) -> DirectionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionStats {
            frames_in: get(&self.frames_in),
            frames_out: get(&self.frames_out),
            silence_out: get(&self.silence_out),
            underruns: get(&self.underruns),
            overruns: get(&self.overruns),
            trimmed: get(&self.trimmed),
            dropped: get(&self.dropped),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionStats {
    pub frames_in: u64,
    pub frames_out: u64,
    pub silence_out: u64,
    pub underruns: u64,
    pub overruns: u64,
    pub trimmed: u64,
    pub dropped: u64,
}

/// Counters of a call's two directions; share the `Arc` with whatever reports on the call.
#[derive(Debug, Default)]
pub struct PumpCounters {
    /// Switch side -> Skype (what the remote Skype party hears).
    pub to_skype: DirectionCounters,
    /// Skype -> switch side (what the remote Skype party says).
    pub to_switch: DirectionCounters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PumpStop {
    Cancelled,
    SkypeClosed,
    SwitchClosed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PumpReport {
    pub stop: PumpStop,
    pub to_skype: DirectionStats,
    pub to_switch: DirectionStats,
}

struct Direction<'a> {
    jitter: JitterBuffer,
    fill_silence: bool,
    counters: &'a DirectionCounters,
    /// Frames sent and not yet written to the tap (only kept while tapping).
    tapped: Option<VecDeque<Frame>>,
    /// The source was idle at the start of this slot: the tap may write silence for it.
    idle: bool,
}

/// Why a direction stopped: its destination is gone.
struct Closed;

impl<'a> Direction<'a> {
    fn new(
        jitter: JitterConfig,
        fill_silence: bool,
        counters: &'a DirectionCounters,
        tapping: bool,
    ) -> Direction<'a> {
        Direction {
            jitter: JitterBuffer::new(jitter),
            fill_silence,
            counters,
            tapped: tapping.then(|| VecDeque::with_capacity(TAP_LAG_FRAMES)),
            // Nothing heard yet.
            idle: true,
        }
    }

    /// A frame from the source: sent on at once if this slot is still free.
    fn arrive(
        &mut self,
        frame: Frame,
        now: Instant,
        to: &mut impl MediaSide,
    ) -> Result<(), Closed> {
        bump(&self.counters.frames_in);
        let (ready, overflow) = self.jitter.arrive(frame, now);
        if overflow {
            bump(&self.counters.overruns);
        }
        self.note_queue();
        match ready {
            Some(frame) => {
                self.observe(Duration::ZERO);
                self.send(frame, false, to)
            }
            None => Ok(()),
        }
    }

    /// The start of a slot: a queued frame leaves, or silence fills in for an idle source.
    fn tick(&mut self, now: Instant, to: &mut impl MediaSide) -> Result<(), Closed> {
        let (
            playout,
            SlotEvents {
                underrun,
                trimmed,
                waited,
            },
        ) = self.jitter.tick(now);
        if underrun {
            bump(&self.counters.underruns);
        }
        if trimmed {
            bump(&self.counters.trimmed);
        }
        if let Some(waited) = waited {
            self.observe(waited);
        }
        self.note_queue();
        self.idle = playout == Playout::Idle;
        match playout {
            Playout::Frame(frame) => self.send(frame, false, to),
            Playout::Idle if self.fill_silence => self.send(Frame::SILENCE, true, to),
            Playout::Idle | Playout::Waiting => Ok(()),
        }
    }

    fn note_queue(&self) {
        self.counters
            .queued
            .store(self.jitter.len() as u64, Ordering::Relaxed);
    }

    fn observe(&self, waited: Duration) {
        if let Some(latency) = &self.counters.latency {
            latency.observe(waited.as_secs_f64());
        }
    }

    fn send(&mut self, frame: Frame, silent: bool, to: &mut impl MediaSide) -> Result<(), Closed> {
        match to.offer(frame) {
            Offer::Accepted => {
                bump(if silent {
                    &self.counters.silence_out
                } else {
                    &self.counters.frames_out
                });
                if let Some(tapped) = self.tapped.as_mut() {
                    if tapped.len() >= TAP_LAG_FRAMES {
                        tapped.pop_front();
                    }
                    tapped.push_back(frame);
                }
            }
            Offer::Full => bump(&self.counters.dropped),
            Offer::Closed => return Err(Closed),
        }
        Ok(())
    }
}

/// How far one direction may run ahead of the other in the tap before the lagging side is
/// written as silence.
const TAP_LAG_FRAMES: usize = 4;

/// Writes to the tap what both directions sent, pairing their frames in order. The
/// directions' frames leave at their own times within a slot, so a direction still waiting
/// for a late frame holds the pair back rather than putting a gap into the recording.
fn feed_tap(tap: &mut WavTap, said: &mut Direction<'_>, heard: &mut Direction<'_>) {
    loop {
        let (Some(said_q), Some(heard_q)) = (said.tapped.as_mut(), heard.tapped.as_mut()) else {
            return;
        };
        let behind = said_q.len().max(heard_q.len()) >= TAP_LAG_FRAMES;
        let ready = (!said_q.is_empty() || said.idle) && (!heard_q.is_empty() || heard.idle);
        if !ready && !behind {
            return;
        }
        let (s, h) = (said_q.pop_front(), heard_q.pop_front());
        tap.record(
            s.as_ref().unwrap_or(&Frame::SILENCE),
            h.as_ref().unwrap_or(&Frame::SILENCE),
        );
        // Caught up (with two idle sources: one pair of silence per slot).
        if said_q.is_empty() && heard_q.is_empty() {
            return;
        }
    }
}

/// The next edge of a process-wide 20 ms grid. Every call's clock ticks on the same grid, so
/// the timer wakes the runtime once per slot for all calls rather than once per call.
fn next_slot_edge(now: Instant) -> Instant {
    static GRID: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *GRID.get_or_init(|| now);
    let slot = FRAME_DURATION.as_nanos();
    let into_slot = now.saturating_duration_since(origin).as_nanos() % slot;
    if into_slot == 0 {
        now
    } else {
        now + std::time::Duration::from_nanos((slot - into_slot) as u64)
    }
}

/// Runs until `cancel`, or until either side closes. Logs one line with the counters at the
/// end, in the caller's span.
pub async fn run<K: MediaSide, W: MediaSide>(
    mut skype: K,
    mut switch: W,
    config: PumpConfig,
    counters: Arc<PumpCounters>,
    mut tap: Option<WavTap>,
    cancel: CancellationToken,
) -> PumpReport {
    let tapping = tap.is_some();
    let mut to_skype = Direction::new(
        config.jitter,
        config.silence_to_skype,
        &counters.to_skype,
        tapping,
    );
    let mut to_switch = Direction::new(
        config.jitter,
        config.silence_to_switch,
        &counters.to_switch,
        tapping,
    );
    let mut clock = tokio::time::interval_at(next_slot_edge(Instant::now()), FRAME_DURATION);
    // After a stall, catch up with back-to-back ticks: both peers keep their own playout
    // buffers, and falling behind real time for good would only grow the jitter buffers.
    clock.set_missed_tick_behavior(MissedTickBehavior::Burst);
    // Made once: a fresh `cancelled()` per turn takes the token's lock 150 times a second.
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let stop = loop {
        tokio::select! {
            biased;
            _ = &mut cancelled => break PumpStop::Cancelled,
            _ = clock.tick() => {
                let now = Instant::now();
                if to_skype.tick(now, &mut skype).is_err() {
                    break PumpStop::SkypeClosed;
                }
                if to_switch.tick(now, &mut switch).is_err() {
                    break PumpStop::SwitchClosed;
                }
                if let Some(t) = tap.as_mut() {
                    feed_tap(t, &mut to_switch, &mut to_skype);
                }
            }
            frame = skype.recv() => match frame {
                Some(frame) => if to_switch.arrive(frame, Instant::now(), &mut switch).is_err() {
                    break PumpStop::SwitchClosed;
                },
                None => break PumpStop::SkypeClosed,
            },
            frame = switch.recv() => match frame {
                Some(frame) => if to_skype.arrive(frame, Instant::now(), &mut skype).is_err() {
                    break PumpStop::SkypeClosed;
                },
                None => break PumpStop::SwitchClosed,
            },
        }
    };
    let report = PumpReport {
        stop,
        to_skype: counters.to_skype.snapshot(),
        to_switch: counters.to_switch.snapshot(),
    };
    info!(
        stop = ?report.stop,
        to_skype_in = report.to_skype.frames_in,
        to_skype_out = report.to_skype.frames_out,
        to_skype_underruns = report.to_skype.underruns,
        to_skype_overruns = report.to_skype.overruns,
        to_skype_trimmed = report.to_skype.trimmed,
        to_skype_dropped = report.to_skype.dropped,
        to_switch_in = report.to_switch.frames_in,
        to_switch_out = report.to_switch.frames_out,
        to_switch_underruns = report.to_switch.underruns,
        to_switch_overruns = report.to_switch.overruns,
        to_switch_trimmed = report.to_switch.trimmed,
        to_switch_dropped = report.to_switch.dropped,
        "media pump stopped"
    );
    if let Some(tap) = tap {
        match tokio::task::spawn_blocking(move || tap.finish()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "WAV tap could not be finished"),
            Err(e) => warn!(error = %e, "WAV tap task failed"),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::SAMPLES_PER_FRAME;
    use crate::media::side::FrameDuplex;
    use std::time::Duration;

    fn f(n: i16) -> Frame {
        Frame::from_samples(&[n; SAMPLES_PER_FRAME]).unwrap()
    }

    fn id(frame: &Frame) -> i16 {
        frame.samples().next().unwrap_or(0)
    }

    struct Harness {
        skype_peer: FrameDuplex,
        switch_peer: FrameDuplex,
        counters: Arc<PumpCounters>,
        cancel: CancellationToken,
        pump: tokio::task::JoinHandle<PumpReport>,
    }

    fn start(config: PumpConfig) -> Harness {
        let (skype_side, skype_peer) = FrameDuplex::pair(32);
        let (switch_side, switch_peer) = FrameDuplex::pair(32);
        let counters = Arc::new(PumpCounters::default());
        let cancel = CancellationToken::new();
        let pump = tokio::spawn(run(
            skype_side,
            switch_side,
            config,
            Arc::clone(&counters),
            None,
            cancel.clone(),
        ));
        Harness {
            skype_peer,
            switch_peer,
            counters,
            cancel,
            pump,
        }
    }

    /// Receives `n` frames, recording the virtual time of each.
    async fn take(rx: &mut tokio::sync::mpsc::Receiver<Frame>, n: usize) -> Vec<(Frame, u128)> {
        let t0 = tokio::time::Instant::now();
        let mut out = Vec::new();
        while out.len() < n {
            let frame = rx.recv().await.expect("pump alive");
            out.push((frame, t0.elapsed().as_millis()));
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn paced_frames_leave_on_arrival_in_order() {
        let mut h = start(PumpConfig::default());
        let sender = h.skype_peer.tx.clone();
        let t0 = tokio::time::Instant::now();
        tokio::spawn(async move {
            // Out of phase with the pump's clock by 7 ms, as any real source is.
            tokio::time::sleep(Duration::from_millis(7)).await;
            for n in 1..=50 {
                sender.send(f(n)).await.unwrap();
                tokio::time::sleep(FRAME_DURATION).await;
            }
        });
        let mut audio = Vec::new();
        while audio.len() < 50 {
            let frame = h.switch_peer.rx.recv().await.expect("pump alive");
            if !frame.is_silent() {
                audio.push((id(&frame), t0.elapsed().as_millis()));
            }
        }
        for (i, (n, at)) in audio.iter().enumerate() {
            assert_eq!(*n, i as i16 + 1);
            assert_eq!(*at, 7 + 20 * i as u128, "frame {n} held back");
        }
        let stats = h.counters.to_switch.snapshot();
        assert_eq!(stats.frames_in, 50);
        assert_eq!(stats.frames_out, 50);
        assert_eq!(stats.overruns, 0);
        assert_eq!(stats.underruns, 0);
        h.cancel.cancel();
        assert_eq!(h.pump.await.unwrap().stop, PumpStop::Cancelled);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sides_get_zero_silence_only_when_configured() {
        let config = PumpConfig {
            silence_to_skype: false,
            silence_to_switch: true,
            ..PumpConfig::default()
        };
        let mut h = start(config);
        let got = take(&mut h.switch_peer.rx, 10).await;
        assert!(got.iter().all(|(fr, _)| *fr == Frame::SILENCE));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            h.skype_peer.rx.try_recv().is_err(),
            "nothing sent to Skype without write_silence_when_idle"
        );
        assert!(h.counters.to_switch.snapshot().silence_out >= 10);
        h.cancel.cancel();
        h.pump.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_leaves_one_frame_per_tick_and_keeps_the_newest() {
        let mut h = start(PumpConfig {
            silence_to_skype: false,
            ..PumpConfig::default()
        });
        for n in 1..=10 {
            h.switch_peer.tx.send(f(n)).await.unwrap();
        }
        let got = take(&mut h.skype_peer.rx, 7).await;
        let ids: Vec<i16> = got.iter().map(|(fr, _)| id(fr)).collect();
        // The first leaves at once; six wait, the oldest of the rest dropped.
        assert_eq!(ids, vec![1, 5, 6, 7, 8, 9, 10]);
        for pair in got[1..].windows(2) {
            assert_eq!(pair[1].1 - pair[0].1, 20, "one per slot");
        }
        let stats = h.counters.to_skype.snapshot();
        assert_eq!(stats.overruns, 3);
        assert_eq!(stats.frames_out, 7);
        h.cancel.cancel();
        h.pump.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_counts_one_underrun_and_the_next_frame_leaves_on_arrival() {
        let mut h = start(PumpConfig {
            silence_to_skype: false,
            ..PumpConfig::default()
        });
        let sender = h.switch_peer.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            for n in 1..=6 {
                sender.send(f(n)).await.unwrap();
                let pause = if n == 3 { 100 } else { 20 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        });
        let got = take(&mut h.skype_peer.rx, 6).await;
        let ids: Vec<i16> = got.iter().map(|(fr, _)| id(fr)).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
        let at: Vec<u128> = got.iter().map(|(_, at)| *at).collect();
        assert_eq!(at, vec![5, 25, 45, 145, 165, 185], "none held back");
        assert_eq!(h.counters.to_skype.snapshot().underruns, 1);
        h.cancel.cancel();
        h.pump.await.unwrap();
    }

    #[test]
    fn every_call_ticks_on_the_same_grid() {
        let now = Instant::now();
        let a = next_slot_edge(now);
        let b = next_slot_edge(now + Duration::from_millis(7));
        let c = next_slot_edge(now + Duration::from_millis(33));
        for edge in [a, b, c] {
            let apart = edge.saturating_duration_since(a).as_micros();
            assert_eq!(apart % 20_000, 0, "{apart} µs off the grid");
        }
        assert!(b >= now + Duration::from_millis(7) && c >= now + Duration::from_millis(33));
        assert!(c.saturating_duration_since(now + Duration::from_millis(33)) < FRAME_DURATION);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_either_side_closes() {
        let h = start(PumpConfig::default());
        drop(h.skype_peer);
        assert_eq!(h.pump.await.unwrap().stop, PumpStop::SkypeClosed);

        let h = start(PumpConfig::default());
        drop(h.switch_peer);
        assert_eq!(h.pump.await.unwrap().stop, PumpStop::SwitchClosed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_destination_drops_frames_instead_of_blocking_the_clock() {
        let (skype_side, _skype_peer) = FrameDuplex::pair(2);
        let (switch_side, mut switch_peer) = FrameDuplex::pair(2);
        let counters = Arc::new(PumpCounters::default());
        let cancel = CancellationToken::new();
        let pump = tokio::spawn(run(
            skype_side,
            switch_side,
            PumpConfig::default(),
            Arc::clone(&counters),
            None,
            cancel.clone(),
        ));
        // Nobody reads the switch side for 10 slots or more; its channel holds 2.
        tokio::time::sleep(Duration::from_millis(220)).await;
        let stats = counters.to_switch.snapshot();
        assert_eq!(stats.silence_out, 2);
        assert!(stats.dropped >= 8, "{stats:?}");
        assert!(switch_peer.rx.recv().await.is_some());
        cancel.cancel();
        pump.await.unwrap();
    }
}
