//! How far ahead of FreeSWITCH's playout we may send on an audio fork.
//!
//! The jambonz mod_audio_fork plays what we send from a buffer it drains one frame per write
//! of the channel (every 20 ms with `send_silence_when_idle`), and only after a prebuffer:
//! 80 ms before the first playout, then in 40 ms steps. Nothing ever shrinks that buffer but
//! an underrun, and we send at the rate it plays, so whatever lands in it ahead of its clock
//! (the first prebuffer, a burst after a stall, a clock that runs a little fast) stays there
//! as delay for the rest of the call: measured on FreeSWITCH 1.10.12, 80 ms and more.
//!
//! We cannot see the buffer, but we can model it: it starts draining when the prebuffer is
//! full and drains one frame every 20 ms. A frame that finds more than the target queued is
//! not sent: once after the first prebuffer, then only when a burst or a clock running fast
//! pushes the queue up. The target is one 40 ms refill step of the module; below it the
//! module would run dry between refills. Silence and voice are treated alike: a Skype call is
//! rarely digital silence, and a limit that spared voice left the first prebuffer's 80 ms in
//! place on a real switch.

use std::time::{Duration, Instant};

const FRAME: Duration = Duration::from_millis(20);
/// The module's first prebuffer: 80 ms of audio before anything plays.
const FIRST_PREBUFFER_FRAMES: u64 = 4;
/// Queued frames above which a frame is not sent: one 40 ms refill step of the module.
const TARGET_FRAMES: u64 = 2;

#[derive(Debug, Default)]
pub struct PlayoutBudget {
    /// When the module's buffer started draining, moved forward after an underrun.
    draining_since: Option<Instant>,
    /// Frames sent since `draining_since` was last set (or since the start).
    sent: u64,
    dropped: u64,
}

impl PlayoutBudget {
    pub fn new() -> PlayoutBudget {
        PlayoutBudget::default()
    }

    /// Whether a frame may go now; counts it as sent when it may.
    pub fn admit(&mut self, now: Instant) -> bool {
        let Some(since) = self.draining_since else {
            self.sent += 1;
            if self.sent == FIRST_PREBUFFER_FRAMES {
                self.draining_since = Some(now);
            }
            return true;
        };
        // Rounded, not floored: our sends and the module's plays keep a fixed phase, and a frame
        // handled a moment early must not count as one frame too many queued.
        let elapsed = now.saturating_duration_since(since) + FRAME / 2;
        let played = (elapsed.as_nanos() / FRAME.as_nanos()) as u64;
        if played >= self.sent {
            // The module ran dry: it plays the channel's own frames until we refill it, so
            // its clock restarts with this frame.
            self.draining_since = Some(now);
            self.sent = 1;
            return true;
        }
        let queued = self.sent - played;
        if queued > TARGET_FRAMES {
            self.dropped += 1;
            return false;
        }
        self.sent += 1;
        true
    }

    /// Frames not sent to keep the delay down.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offers one frame every 20 ms from `start`; which were admitted.
    fn offer(budget: &mut PlayoutBudget, start: Instant, frames: u64) -> Vec<bool> {
        (0..frames)
            .map(|i| budget.admit(start + FRAME * i as u32))
            .collect()
    }

    #[test]
    fn a_paced_stream_loses_one_frame_after_the_prebuffer_and_none_after() {
        let mut budget = PlayoutBudget::new();
        let start = Instant::now();
        let admitted = offer(&mut budget, start, 200);
        // The prebuffer's four frames go; the next one would leave three queued and is
        // held back; from then on the queue stays at the target with every frame sent.
        assert!(admitted[..4].iter().all(|&a| a));
        assert!(!admitted[4]);
        assert!(admitted[5..].iter().all(|&a| a), "{admitted:?}");
        assert_eq!(budget.dropped(), 1);
    }

    #[test]
    fn a_burst_is_trimmed_to_the_target() {
        let mut budget = PlayoutBudget::new();
        let start = Instant::now();
        offer(&mut budget, start, 10);
        // Ten frames at once, 200 ms later (a stall on the Skype side, then its backlog).
        let burst = start + FRAME * 10;
        let sent = (0..10).filter(|_| budget.admit(burst)).count();
        assert!(
            (1..=TARGET_FRAMES as usize + 1).contains(&sent),
            "{sent} sent"
        );
    }

    #[test]
    fn a_fast_sender_loses_a_frame_now_and_then_instead_of_gaining_delay() {
        let mut budget = PlayoutBudget::new();
        let start = Instant::now();
        // One frame every 19 ms: 5 % fast.
        let sent = (0..1000)
            .filter(|&i| budget.admit(start + Duration::from_millis(19) * i))
            .count();
        let played = 1000 * 19 / 20;
        assert!(sent <= played + 5, "{sent} sent, {played} played");
    }

    #[test]
    fn after_running_dry_the_clock_restarts() {
        let mut budget = PlayoutBudget::new();
        let start = Instant::now();
        offer(&mut budget, start, 10);
        // Nothing for a second: the module ran dry long ago.
        let later = start + Duration::from_secs(1);
        assert!(budget.admit(later));
        assert!(budget.admit(later + FRAME));
        assert!(budget.admit(later + FRAME * 2));
    }
}
