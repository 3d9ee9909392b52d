//! A per-direction jitter buffer that adds no delay to audio that arrives on time.
//!
//! The call's 20 ms clock cuts time into slots, and at most one frame leaves per slot. A frame
//! that finds its slot free leaves the moment it arrives: both sources (FreeSWITCH and the Skype
//! client) already send one frame per 20 ms on clocks of their own, so holding frames back to
//! re-time them on ours would only add up to a frame of delay per direction. Frames that come
//! in a burst (TCP coalescing, a scheduler hiccup) queue and leave one per slot, so the far
//! side never sees more than one frame per slot.
//!
//! A burst leaves a standing queue behind it: every later frame waits as long as the burst
//! was late. When the frame at the head has waited more than half a slot at the start of
//! [`JitterConfig::trim_after_slots`] slots in a row, it is dropped to win that delay back
//! (shorter waits come from a source whose phase sits next to our clock's, not a backlog).
//! A quiet source is only reported idle after [`JitterConfig::grace_slots`] empty slots, so a
//! frame that is merely late is never replaced by silence.

use super::frame::{Frame, FRAME_DURATION};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Frames held at most; the oldest is dropped beyond it.
    pub max: usize,
    /// Empty slots in a row before the source counts as idle (and silence may fill in).
    pub grace_slots: u32,
    /// Slots in a row whose head frame waited over half a slot before one frame is dropped to
    /// cut the delay.
    pub trim_after_slots: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            max: 6,
            grace_slots: 2,
            // One second: long enough that jitter does not trigger it, short enough that a
            // single burst does not leave the call 20 ms slower for good.
            trim_after_slots: 50,
        }
    }
}

/// What the start of a slot yields.
// The frame travels inline on purpose: boxing it would allocate per tick.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Playout {
    /// A queued frame leaves now.
    Frame(Frame),
    /// Nothing queued, but the source was heard lately: its frame may still come in this slot.
    Waiting,
    /// The source has been quiet for the grace period. Silence may be sent; it does not take
    /// the slot, so a frame arriving later in it still leaves at once.
    Idle,
}

/// What the buffer did at the start of a slot, besides the playout (for the counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotEvents {
    /// The slot that just ended was the first empty one after audio (a late or lost frame).
    pub underrun: bool,
    /// A frame was dropped to shorten a standing queue.
    pub trimmed: bool,
    /// How long the frame that left in this slot had waited in the buffer.
    pub waited: Option<Duration>,
}

#[derive(Debug)]
pub struct JitterBuffer {
    config: JitterConfig,
    /// Frames with their arrival times.
    queue: VecDeque<(Frame, Instant)>,
    /// A frame left in the current slot.
    slot_used: bool,
    /// Slots in a row that ended without a frame leaving.
    empty_slots: u32,
    /// Slots in a row that started with a head frame waiting over half a slot.
    backlogged_slots: u32,
}

impl JitterBuffer {
    pub fn new(config: JitterConfig) -> JitterBuffer {
        let config = JitterConfig {
            max: config.max.max(1),
            grace_slots: config.grace_slots.max(1),
            trim_after_slots: config.trim_after_slots.max(1),
        };
        JitterBuffer {
            config,
            // Allocated once for the whole call; push/pop never grow it.
            queue: VecDeque::with_capacity(config.max),
            slot_used: false,
            // Nothing heard yet: the source starts out idle.
            empty_slots: config.grace_slots,
            backlogged_slots: 0,
        }
    }

    /// Takes a frame from the source. Returns the frame to send now, if its slot is free, and
    /// whether the oldest queued frame had to be dropped to make room.
    pub fn arrive(&mut self, frame: Frame, now: Instant) -> (Option<Frame>, bool) {
        let overflow = self.queue.len() >= self.config.max;
        if overflow {
            self.queue.pop_front();
        }
        self.queue.push_back((frame, now));
        if self.slot_used {
            return (None, overflow);
        }
        // The frame leaves on arrival only when the queue was empty: it did not wait.
        (self.release().map(|(frame, _)| frame), overflow)
    }

    /// Starts the next slot.
    pub fn tick(&mut self, now: Instant) -> (Playout, SlotEvents) {
        let mut events = SlotEvents::default();
        if self.slot_used {
            self.empty_slots = 0;
        } else {
            self.empty_slots = self.empty_slots.saturating_add(1);
            events.underrun = self.empty_slots == 1;
        }
        self.slot_used = false;

        let backlogged = self.queue.front().is_some_and(|(_, arrived)| {
            now.saturating_duration_since(*arrived) > FRAME_DURATION / 2
        });
        if backlogged {
            self.backlogged_slots += 1;
            if self.backlogged_slots >= self.config.trim_after_slots {
                self.queue.pop_front();
                self.backlogged_slots = 0;
                events.trimmed = true;
            }
        } else {
            self.backlogged_slots = 0;
        }

        let playout = match self.release() {
            Some((frame, arrived)) => {
                events.waited = Some(now.saturating_duration_since(arrived));
                Playout::Frame(frame)
            }
            None if self.empty_slots >= self.config.grace_slots => Playout::Idle,
            None => Playout::Waiting,
        };
        (playout, events)
    }

    fn release(&mut self) -> Option<(Frame, Instant)> {
        let head = self.queue.pop_front()?;
        self.slot_used = true;
        Some(head)
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
        self.backlogged_slots = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::SAMPLES_PER_FRAME;
    use std::time::Duration;

    fn f(n: i16) -> Frame {
        Frame::from_samples(&[n; SAMPLES_PER_FRAME]).unwrap()
    }

    fn id(frame: Option<Frame>) -> Option<i16> {
        frame.and_then(|fr| fr.samples().next())
    }

    fn played(p: Playout) -> Option<i16> {
        match p {
            Playout::Frame(fr) => fr.samples().next(),
            _ => None,
        }
    }

    /// Drives a buffer on a made-up timeline: slot `k` starts at `k * 20` ms.
    struct Timeline {
        jb: JitterBuffer,
        t0: Instant,
    }

    impl Timeline {
        fn new(config: JitterConfig) -> Timeline {
            Timeline {
                jb: JitterBuffer::new(config),
                t0: Instant::now(),
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        fn tick(&mut self, slot: u64) -> (Playout, SlotEvents) {
            let now = self.at(slot * 20);
            self.jb.tick(now)
        }

        fn arrive(&mut self, ms: u64, n: i16) -> (Option<Frame>, bool) {
            let now = self.at(ms);
            self.jb.arrive(f(n), now)
        }
    }

    #[test]
    fn a_frame_on_time_leaves_on_arrival() {
        let mut t = Timeline::new(JitterConfig::default());
        for n in 1..=20 {
            let (playout, events) = t.tick(n as u64);
            assert_eq!(played(playout), None);
            if n > 1 {
                assert_eq!(events, SlotEvents::default(), "slot {n}");
            }
            let (now, overflow) = t.arrive(n as u64 * 20 + 7, n);
            assert_eq!(id(now), Some(n));
            assert!(!overflow);
        }
        assert!(t.jb.is_empty());
    }

    #[test]
    fn a_burst_leaves_one_frame_per_slot_in_order() {
        let mut t = Timeline::new(JitterConfig::default());
        t.tick(0);
        assert_eq!(id(t.arrive(5, 1).0), Some(1));
        assert_eq!(id(t.arrive(5, 2).0), None);
        assert_eq!(id(t.arrive(5, 3).0), None);
        assert_eq!(played(t.tick(1).0), Some(2));
        assert_eq!(played(t.tick(2).0), Some(3));
        assert_eq!(t.tick(3).0, Playout::Waiting);
    }

    #[test]
    fn a_late_frame_is_waited_for_not_replaced_by_silence() {
        let mut t = Timeline::new(JitterConfig::default());
        t.tick(0);
        t.arrive(5, 1);
        // Frame 2 misses its slot entirely.
        let (playout, events) = t.tick(1);
        assert_eq!(playout, Playout::Waiting);
        assert!(!events.underrun);
        let (playout, events) = t.tick(2);
        assert_eq!(
            playout,
            Playout::Waiting,
            "one empty slot is within the grace"
        );
        assert!(events.underrun);
        assert_eq!(id(t.arrive(45, 2).0), Some(2));
        // A source silent for the grace period is idle.
        t.tick(3);
        t.tick(4);
        assert_eq!(t.tick(5).0, Playout::Idle);
    }

    #[test]
    fn silence_does_not_take_the_slot() {
        let mut t = Timeline::new(JitterConfig::default());
        assert_eq!(t.tick(0).0, Playout::Idle, "a source never heard is idle");
        assert_eq!(id(t.arrive(3, 1).0), Some(1));
    }

    #[test]
    fn overflow_drops_oldest() {
        let mut t = Timeline::new(JitterConfig {
            max: 3,
            ..JitterConfig::default()
        });
        t.tick(0);
        assert_eq!(t.arrive(1, 1), (Some(f(1)), false));
        assert!(!t.arrive(1, 2).1);
        assert!(!t.arrive(1, 3).1);
        assert!(!t.arrive(1, 4).1);
        assert!(t.arrive(1, 5).1);
        assert_eq!(played(t.tick(1).0), Some(3));
        assert_eq!(played(t.tick(2).0), Some(4));
        assert_eq!(played(t.tick(3).0), Some(5));
    }

    /// A burst of three, then one frame per slot, each 5 ms into its slot.
    fn after_a_burst(config: JitterConfig, slots: u64) -> (Vec<i16>, u32, JitterBuffer) {
        let mut t = Timeline::new(config);
        t.tick(0);
        let mut out = Vec::new();
        for n in 1..=3 {
            out.extend(id(t.arrive(5, n).0));
        }
        let mut trims = 0;
        for slot in 1..slots {
            let (playout, events) = t.tick(slot);
            trims += u32::from(events.trimmed);
            out.extend(played(playout));
            out.extend(id(t.arrive(slot * 20 + 5, slot as i16 + 3).0));
        }
        (out, trims, t.jb)
    }

    #[test]
    fn a_standing_queue_is_trimmed_until_frames_leave_on_arrival() {
        let config = JitterConfig {
            trim_after_slots: 5,
            ..JitterConfig::default()
        };
        let (out, trims, jb) = after_a_burst(config, 30);
        assert_eq!(trims, 2, "one frame per trim period, until nothing waits");
        assert!(jb.is_empty(), "the delay is won back");
        // Order is kept; exactly the trimmed frames are missing.
        assert!(out.windows(2).all(|w| w[0] < w[1]), "{out:?}");
        assert_eq!(out.len(), 29 + 3 - 2);
    }

    #[test]
    fn a_source_in_phase_with_the_clock_is_not_trimmed() {
        // Frames land just after the tick, or just before the next one (jitter around the
        // slot edge): some wait a millisecond for a slot, none should be dropped.
        let mut t = Timeline::new(JitterConfig {
            trim_after_slots: 3,
            ..JitterConfig::default()
        });
        let mut out = Vec::new();
        for slot in 0..40u64 {
            let (playout, events) = t.tick(slot);
            assert!(!events.trimmed, "slot {slot}");
            out.extend(played(playout));
            // Frame n is due at n * 20 ms, a millisecond early or late by turns, so even slots
            // get two frames and odd slots none.
            if slot % 2 == 0 {
                out.extend(id(t.arrive(slot * 20 + 1, slot as i16).0));
                out.extend(id(t.arrive(slot * 20 + 19, slot as i16 + 1).0));
            }
        }
        assert_eq!(out, (0..40).collect::<Vec<i16>>());
    }

    #[test]
    fn clear_forgets_queued_audio() {
        let mut t = Timeline::new(JitterConfig::default());
        t.tick(0);
        t.arrive(1, 1);
        t.arrive(1, 2);
        t.jb.clear();
        assert!(t.jb.is_empty());
        assert_eq!(t.jb.len(), 0);
    }
}
