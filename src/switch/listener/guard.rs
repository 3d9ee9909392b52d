//! Back-off against password guessing: an address that failed `auth` too often within a
//! window is refused (`text/rude-rejection`) for a while.

use dashmap::DashMap;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures within `window` that lock the address out.
    pub max_failures: u32,
    pub window: Duration,
    /// How long a locked-out address is refused.
    pub ban: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 3,
            window: Duration::from_secs(60),
            ban: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Default)]
struct Record {
    failures: VecDeque<Instant>,
    banned_until: Option<Instant>,
}

/// Addresses tracked at most; beyond it stale records are pruned, so a flood from many
/// addresses cannot grow the map without bound.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
pub struct AuthGuard {
    policy: LockoutPolicy,
    records: DashMap<IpAddr, Record>,
}

impl AuthGuard {
    pub fn new(policy: LockoutPolicy) -> Self {
        AuthGuard {
            policy,
            records: DashMap::new(),
        }
    }

    pub fn is_locked_out(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        self.records
            .get(&ip)
            .and_then(|record| record.banned_until)
            .is_some_and(|until| until > now)
    }

    /// Counts a failed `auth`; returns true when this failure locked the address out.
    pub fn record_failure(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        if self.records.len() >= MAX_TRACKED {
            self.prune(now);
        }
        let mut record = self.records.entry(ip).or_default();
        while record
            .failures
            .front()
            .is_some_and(|first| now.duration_since(*first) > self.policy.window)
        {
            record.failures.pop_front();
        }
        record.failures.push_back(now);
        if record.failures.len() >= self.policy.max_failures.max(1) as usize {
            record.failures.clear();
            record.banned_until = Some(now + self.policy.ban);
            return true;
        }
        false
    }

    pub fn record_success(&self, ip: IpAddr) {
        self.records.remove(&ip);
    }

    fn prune(&self, now: Instant) {
        let horizon = self.policy.window;
        self.records.retain(|_, record| {
            record.banned_until.is_some_and(|until| until > now)
                || record
                    .failures
                    .back()
                    .is_some_and(|last| now.duration_since(*last) <= horizon)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn third_failure_locks_out_and_success_resets() {
        let guard = AuthGuard::new(LockoutPolicy::default());
        let ip = IpAddr::from([127, 0, 0, 9]);
        let other = IpAddr::from([127, 0, 0, 10]);
        assert!(!guard.record_failure(ip));
        assert!(!guard.record_failure(ip));
        guard.record_success(other);
        assert!(!guard.is_locked_out(ip));
        assert!(guard.record_failure(ip));
        assert!(guard.is_locked_out(ip));
        assert!(!guard.is_locked_out(other));

        assert!(!guard.record_failure(other));
        guard.record_success(other);
        assert!(!guard.record_failure(other));
        assert!(!guard.record_failure(other));
    }

    #[test]
    fn ban_expires() {
        let guard = AuthGuard::new(LockoutPolicy {
            max_failures: 1,
            window: Duration::from_secs(60),
            ban: Duration::ZERO,
        });
        let ip = IpAddr::from([127, 0, 0, 11]);
        assert!(guard.record_failure(ip));
        assert!(!guard.is_locked_out(ip));
    }
}
