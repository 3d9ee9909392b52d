//! Restart pacing: a client that keeps crashing is restarted less and less often, one that ran
//! for a while is restarted at once.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    /// A run at least this long counts as healthy and resets the delay.
    stable: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, stable: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            stable,
            next: initial,
        }
    }

    /// 1 s doubling to 60 s, reset after a minute of stable running.
    pub fn standard() -> Backoff {
        Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(60),
        )
    }

    /// The delay before the next start, given how long the last run lasted.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.stable {
            self.next = self.initial;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = Backoff::standard();
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay(S).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn a_stable_run_starts_over() {
        let mut b = Backoff::standard();
        for _ in 0..5 {
            b.next_delay(S);
        }
        assert_eq!(b.next_delay(Duration::from_secs(61)), S);
        assert_eq!(b.next_delay(S), 2 * S);
        b.reset();
        assert_eq!(b.next_delay(S), S);
    }
}
