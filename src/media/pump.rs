//! The per-call media pump: one 20 ms clock drives both directions. Frames arriving from
//! either side go into that direction's jitter buffer; on every tick each direction releases
//! one frame (or zero silence while idle, if configured) to the other side.

use super::frame::{Frame, FRAME_DURATION};
use super::jitter::{JitterBuffer, JitterConfig, Playout};
use super::side::{MediaSide, Offer};
use super::tap::WavTap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::time::MissedTickBehavior;
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
    /// Ticks on which a playing buffer ran dry.
    pub underruns: AtomicU64,
    /// Frames dropped because the jitter buffer was full (the oldest goes).
    pub overruns: AtomicU64,
    /// Frames the destination could not take (it was not keeping up).
    pub dropped: AtomicU64,
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
}

impl Direction<'_> {
    fn arrive(&mut self, frame: Frame) {
        bump(&self.counters.frames_in);
        if self.jitter.push(frame) {
            bump(&self.counters.overruns);
        }
    }

    /// Offers this tick's frame to `to`. Returns the frame offered (for the tap), or `Err`
    /// when the destination is closed.
    fn tick(&mut self, to: &mut impl MediaSide) -> Result<Option<Frame>, ()> {
        let (frame, silent) = match self.jitter.pop() {
            Playout::Frame(frame) => (frame, false),
            Playout::Underrun => {
                bump(&self.counters.underruns);
                if !self.fill_silence {
                    return Ok(None);
                }
                (Frame::SILENCE, true)
            }
            Playout::Priming if self.fill_silence => (Frame::SILENCE, true),
            Playout::Priming => return Ok(None),
        };
        match to.offer(frame) {
            Offer::Accepted => {
                bump(if silent {
                    &self.counters.silence_out
                } else {
                    &self.counters.frames_out
                });
                Ok(Some(frame))
            }
            Offer::Full => {
                bump(&self.counters.dropped);
                Ok(None)
            }
            Offer::Closed => Err(()),
        }
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
    let mut to_skype = Direction {
        jitter: JitterBuffer::new(config.jitter),
        fill_silence: config.silence_to_skype,
        counters: &counters.to_skype,
    };
    let mut to_switch = Direction {
        jitter: JitterBuffer::new(config.jitter),
        fill_silence: config.silence_to_switch,
        counters: &counters.to_switch,
    };
    let mut clock = tokio::time::interval(FRAME_DURATION);
    // After a stall, catch up with back-to-back ticks: both peers keep their own playout
    // buffers, and falling behind real time for good would only grow the jitter buffers.
    clock.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let stop = loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break PumpStop::Cancelled,
            _ = clock.tick() => {
                let heard = match to_skype.tick(&mut skype) {
                    Ok(f) => f,
                    Err(()) => break PumpStop::SkypeClosed,
                };
                let said = match to_switch.tick(&mut switch) {
                    Ok(f) => f,
                    Err(()) => break PumpStop::SwitchClosed,
                };
                if let Some(t) = tap.as_mut() {
                    t.record(
                        said.as_ref().unwrap_or(&Frame::SILENCE),
                        heard.as_ref().unwrap_or(&Frame::SILENCE),
                    );
                }
            }
            frame = skype.recv() => match frame {
                Some(frame) => to_switch.arrive(frame),
                None => break PumpStop::SkypeClosed,
            },
            frame = switch.recv() => match frame {
                Some(frame) => to_skype.arrive(frame),
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
        to_skype_dropped = report.to_skype.dropped,
        to_switch_in = report.to_switch.frames_in,
        to_switch_out = report.to_switch.frames_out,
        to_switch_underruns = report.to_switch.underruns,
        to_switch_overruns = report.to_switch.overruns,
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
    async fn paced_frames_arrive_in_order_and_complete_one_per_tick() {
        let mut h = start(PumpConfig::default());
        let sender = h.skype_peer.tx.clone();
        tokio::spawn(async move {
            for n in 1..=50 {
                sender.send(f(n)).await.unwrap();
                tokio::time::sleep(FRAME_DURATION).await;
            }
        });
        let got = take(&mut h.switch_peer.rx, 60).await;
        let audio: Vec<i16> = got
            .iter()
            .filter(|(fr, _)| !fr.is_silent())
            .map(|(fr, _)| id(fr))
            .collect();
        assert_eq!(audio, (1..=50).collect::<Vec<_>>());
        // One frame per tick: consecutive deliveries are 20 ms apart.
        for pair in got.windows(2) {
            assert_eq!(pair[1].1 - pair[0].1, 20, "{:?}", (pair[0].1, pair[1].1));
        }
        let stats = h.counters.to_switch.snapshot();
        assert_eq!(stats.frames_in, 50);
        assert_eq!(stats.frames_out, 50);
        assert_eq!(stats.overruns, 0);
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
    async fn a_burst_beyond_the_buffer_keeps_the_newest_frames() {
        let mut h = start(PumpConfig {
            silence_to_skype: false,
            ..PumpConfig::default()
        });
        for n in 1..=10 {
            h.switch_peer.tx.send(f(n)).await.unwrap();
        }
        let got = take(&mut h.skype_peer.rx, 6).await;
        let ids: Vec<i16> = got.iter().map(|(fr, _)| id(fr)).collect();
        assert_eq!(ids, vec![5, 6, 7, 8, 9, 10]);
        let stats = h.counters.to_skype.snapshot();
        assert_eq!(stats.overruns, 4);
        assert_eq!(stats.frames_out, 6);
        h.cancel.cancel();
        h.pump.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_gap_counts_an_underrun_and_playout_resumes_after_priming() {
        let mut h = start(PumpConfig {
            silence_to_skype: false,
            ..PumpConfig::default()
        });
        for n in 1..=3 {
            h.switch_peer.tx.send(f(n)).await.unwrap();
        }
        let first = take(&mut h.skype_peer.rx, 3).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        for n in 4..=6 {
            h.switch_peer.tx.send(f(n)).await.unwrap();
            tokio::time::sleep(FRAME_DURATION).await;
        }
        let second = take(&mut h.skype_peer.rx, 3).await;
        let ids: Vec<i16> = first.iter().chain(&second).map(|(fr, _)| id(fr)).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(h.counters.to_skype.snapshot().underruns, 1);
        h.cancel.cancel();
        h.pump.await.unwrap();
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
        // Nobody reads the switch side for 10 ticks; its channel holds 2.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stats = counters.to_switch.snapshot();
        assert_eq!(stats.silence_out, 2);
        assert!(stats.dropped >= 8, "{stats:?}");
        assert!(switch_peer.rx.recv().await.is_some());
        cancel.cancel();
        pump.await.unwrap();
    }
}
