//! The listener's defence against password guessing. Addresses in the admin networks
//! (loopback unless configured) are never banned, so a mistyped password cannot lock the
//! operator's own tools out; each of their failures only costs a fixed pause. Any other
//! address pays a pause that doubles with each failure, and is banned after a few; its
//! network (/24, /64) is banned too once enough of its addresses failed, so rotating through
//! a range does not buy more guesses.

use dashmap::DashMap;
use ipnet::IpNet;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures of one address within `window` that ban it.
    pub max_failures: u32,
    /// Failures from one network (/24 or /64) within `window` that ban the network.
    pub max_network_failures: u32,
    pub window: Duration,
    /// How long a banned address or network is refused.
    pub ban: Duration,
    /// The pause before a failure is answered: the first, doubling up to `max_pause` (for
    /// admin addresses always the first).
    pub pause: Duration,
    pub max_pause: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_failures: 5,
            max_network_failures: 20,
            window: Duration::from_secs(600),
            ban: Duration::from_secs(600),
            pause: Duration::from_millis(200),
            max_pause: Duration::from_secs(5),
        }
    }
}

/// What a failed login earns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Wait this long before answering.
    pub pause: Duration,
    /// This failure banned the address (or its network).
    pub banned: bool,
}

#[derive(Debug, Default)]
struct Record {
    failures: VecDeque<Instant>,
    banned_until: Option<Instant>,
}

impl Record {
    fn count(&mut self, now: Instant, window: Duration) -> usize {
        while self
            .failures
            .front()
            .is_some_and(|first| now.duration_since(*first) > window)
        {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        self.failures.len()
    }

    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| until > now)
    }
}

/// Addresses and networks tracked at most; beyond it stale records are pruned, so a flood
/// from many addresses cannot grow the maps without bound.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug)]
pub struct AuthGuard {
    policy: LockoutPolicy,
    admin: Vec<IpNet>,
    addresses: DashMap<IpAddr, Record>,
    networks: DashMap<IpNet, Record>,
}

/// The network an address is counted in: its /24 (IPv4) or /64 (IPv6).
fn network_of(ip: IpAddr) -> IpNet {
    let prefix = if ip.is_ipv4() { 24 } else { 64 };
    IpNet::new(ip, prefix)
        .map(|net| net.trunc())
        .unwrap_or_else(|_| IpNet::from(ip))
}

impl AuthGuard {
    /// `admin`: networks never banned; empty means loopback.
    pub fn new(policy: LockoutPolicy, admin: Vec<IpNet>) -> Self {
        AuthGuard {
            policy,
            admin,
            addresses: DashMap::new(),
            networks: DashMap::new(),
        }
    }

    pub fn is_admin(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.admin.is_empty() {
            ip.is_loopback()
        } else {
            self.admin.iter().any(|net| net.contains(&ip))
        }
    }

    /// Why `ip` is refused, if it is.
    pub fn ban_of(&self, ip: IpAddr) -> Option<&'static str> {
        if self.is_admin(ip) {
            return None;
        }
        let now = Instant::now();
        if self.addresses.get(&ip).is_some_and(|r| r.banned(now)) {
            return Some("address banned after failed logins");
        }
        if self
            .networks
            .get(&network_of(ip))
            .is_some_and(|r| r.banned(now))
        {
            return Some("network banned after failed logins from its addresses");
        }
        None
    }

    /// Counts a failed login.
    pub fn record_failure(&self, ip: IpAddr) -> Failure {
        let now = Instant::now();
        if self.is_admin(ip) {
            return Failure {
                pause: self.policy.pause,
                banned: false,
            };
        }
        if self.addresses.len() >= MAX_TRACKED || self.networks.len() >= MAX_TRACKED {
            self.prune(now);
        }
        let window = self.policy.window;
        let failures = {
            let mut record = self.addresses.entry(ip).or_default();
            let n = record.count(now, window);
            if n >= self.policy.max_failures.max(1) as usize {
                record.banned_until = Some(now + self.policy.ban);
            }
            n
        };
        let network_failures = {
            let mut record = self.networks.entry(network_of(ip)).or_default();
            let n = record.count(now, window);
            if n >= self.policy.max_network_failures.max(1) as usize {
                record.banned_until = Some(now + self.policy.ban);
            }
            n
        };
        let doublings = failures.saturating_sub(1).min(16) as u32;
        let pause = self
            .policy
            .pause
            .saturating_mul(1 << doublings)
            .min(self.policy.max_pause);
        Failure {
            pause,
            banned: failures >= self.policy.max_failures.max(1) as usize
                || network_failures >= self.policy.max_network_failures.max(1) as usize,
        }
    }

    /// A good login forgets the address's failures (its network's stay counted).
    pub fn record_success(&self, ip: IpAddr) {
        self.addresses.remove(&ip);
    }

    fn prune(&self, now: Instant) {
        let horizon = self.policy.window;
        let keep = |record: &mut Record| {
            record.banned(now)
                || record
                    .failures
                    .back()
                    .is_some_and(|last| now.duration_since(*last) <= horizon)
        };
        self.addresses.retain(|_, record| keep(record));
        self.networks.retain(|_, record| keep(record));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(admin: &[&str]) -> AuthGuard {
        AuthGuard::new(
            LockoutPolicy {
                max_failures: 3,
                max_network_failures: 5,
                ..LockoutPolicy::default()
            },
            admin.iter().map(|n| n.parse().unwrap()).collect(),
        )
    }

    #[test]
    fn admin_addresses_are_never_banned_and_pay_a_fixed_pause() {
        let guard = guard(&[]);
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..50 {
            let failure = guard.record_failure(ip);
            assert!(!failure.banned);
            assert_eq!(failure.pause, Duration::from_millis(200));
        }
        assert_eq!(guard.ban_of(ip), None);
    }

    #[test]
    fn other_addresses_pay_a_growing_pause_then_are_banned() {
        let guard = guard(&["127.0.0.1/32"]);
        let ip = IpAddr::from([127, 0, 0, 2]);
        let pauses: Vec<_> = (0..3).map(|_| guard.record_failure(ip)).collect();
        assert_eq!(pauses[0].pause, Duration::from_millis(200));
        assert_eq!(pauses[1].pause, Duration::from_millis(400));
        assert_eq!(pauses[2].pause, Duration::from_millis(800));
        assert!(!pauses[1].banned && pauses[2].banned);
        assert_eq!(guard.ban_of(ip), Some("address banned after failed logins"));
        assert_eq!(guard.ban_of(IpAddr::from([127, 0, 0, 1])), None, "admin");
    }

    #[test]
    fn rotating_through_a_network_bans_the_network() {
        let guard = guard(&["127.0.0.1/32"]);
        for last in 10..15 {
            guard.record_failure(IpAddr::from([127, 0, 0, last]));
        }
        assert_eq!(
            guard.ban_of(IpAddr::from([127, 0, 0, 99])),
            Some("network banned after failed logins from its addresses")
        );
        assert_eq!(guard.ban_of(IpAddr::from([127, 0, 1, 99])), None);
        assert_eq!(guard.ban_of(IpAddr::from([127, 0, 0, 1])), None, "admin");
    }

    #[test]
    fn success_forgets_the_address_and_bans_expire() {
        let guard = AuthGuard::new(
            LockoutPolicy {
                max_failures: 1,
                ban: Duration::ZERO,
                ..LockoutPolicy::default()
            },
            vec!["10.0.0.0/8".parse().unwrap()],
        );
        let ip = IpAddr::from([192, 0, 2, 1]);
        assert!(guard.record_failure(ip).banned);
        assert_eq!(guard.ban_of(ip), None, "a zero ban is over at once");
        guard.record_success(ip);
        assert!(guard.addresses.get(&ip).is_none());
    }
}
