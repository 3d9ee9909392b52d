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
//! full and drains one frame every 20 ms. A frame that finds more than two frames queued is
//! not sent when it is silence, more than four when it is voice: silence goes first, so voice
//! is dropped only when the queue is well past the module's prebuffer (a burst of voice, or a
//! clock that runs fast).

use std::time::{Duration, Instant};

const FRAME: Duration = Duration::from_millis(20);
/// The module's first prebuffer: 80 ms of audio before anything plays.
const FIRST_PREBUFFER_FRAMES: u64 = 4;
/// Queued frames above which silence is not sent: one 40 ms refill step of the module.
const SILENCE_TARGET_FRAMES: u64 = 2;
/// Queued frames above which voice is not sent either.
const VOICE_LIMIT_FRAMES: u64 = 4;

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
    pub fn admit(&mut self, now: Instant, silent: bool) -> bool {
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
        let limit = if silent {
            SILENCE_TARGET_FRAMES
        } else {
            VOICE_LIMIT_FRAMES
        };
        if queued > limit {
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
    fn offer(budget: &mut PlayoutBudget, start: Instant, frames: u64, silent: bool) -> Vec<bool> {
        (0..frames)
            .map(|i| budget.admit(start + FRAME * i as u32, silent))
            .collect()
    }

    #[test]
    fn steady_silence_settles_at_the_target_instead_of_the_prebuffer() {
        let mut budget = PlayoutBudget::new();
        let start = Instant::now();
        let admitted = offer(&mut budget, start, 100, true);
        // The prebuffer's four frames go; then one is held back, once, and the queue stays
        // at the target with every later frame sent.
        assert!(admitted[..4].iter().all(|&a| a));
        assert_eq!(budget.dropped(), 1, "{admitted:?}");
        assert!(admitted[10..].iter().all(|&a| a));
    }

    #[test]
    fn voice_is_kept_up_to_its_limit() {
        let mut budget = PlayoutBudget::new();
        let start = Instant::now();
        let admitted = offer(&mut budget, start, 50, false);
        assert!(admitted.iter().all(|&a| a), "{admitted:?}");
        assert_eq!(budget.dropped(), 0);
    }

    #[test]
    fn a_burst_is_trimmed_to_the_voice_limit() {
        let mut budget = PlayoutBudget::new();
        let start = Instant::now();
        offer(&mut budget, start, 10, false);
        // Ten frames at once, 200 ms later (a stall on the Skype side, then its backlog).
        let burst = start + FRAME * 10;
        let admitted: Vec<bool> = (0..10).map(|_| budget.admit(burst, false)).collect();
        let sent = admitted.iter().filter(|&&a| a).count();
        assert!(sent <= VOICE_LIMIT_FRAMES as usize, "{admitted:?}");
        assert!(sent >= 2, "{admitted:?}");
    }

    #[test]
    fn after_running_dry_the_clock_restarts() {
        let mut budget = PlayoutBudget::new();
        let start = Instant::now();
        offer(&mut budget, start, 10, true);
        // Nothing for a second: the module ran dry long ago.
        let later = start + Duration::from_secs(1);
        assert!(budget.admit(later, true));
        assert!(budget.admit(later + FRAME, true));
        assert!(budget.admit(later + FRAME * 2, true));
    }
}
