//! Room for connections that have not logged in yet. A flood of them (from one address or
//! many) must not keep an operator out, so instead of refusing the newcomer, the oldest
//! waiting connection of the same address (or, when the whole waiting room is full, the
//! oldest of all) is closed and told why. A real client logs in within milliseconds of
//! connecting, so it gets in even while a flood cycles through the room.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
pub struct Admission {
    per_address: usize,
    total: usize,
    waiting: Mutex<VecDeque<Waiting>>,
    /// Evicted connections still open: their slots are as good as free, so a newcomer is
    /// not refused for them while they are told why and closed.
    closing: AtomicU64,
}

#[derive(Debug)]
struct Waiting {
    id: u64,
    ip: IpAddr,
    evict: CancellationToken,
}

impl Admission {
    /// At most `per_address` connections of one address, and `total` of all, wait to log in.
    pub fn new(per_address: usize, total: usize) -> Admission {
        Admission {
            per_address: per_address.max(1),
            total: total.max(1),
            waiting: Mutex::new(VecDeque::new()),
            closing: AtomicU64::new(0),
        }
    }

    /// Lets connection `id` wait to log in; the token fires if it is evicted later. Evicts
    /// whoever must make room now; each evicted connection calls [`Admission::gone`] once closed.
    pub fn enter(&self, id: u64, ip: IpAddr) -> CancellationToken {
        let evict = CancellationToken::new();
        let mut waiting = self.lock();
        if waiting.iter().filter(|w| w.ip == ip).count() >= self.per_address {
            if let Some(at) = waiting.iter().position(|w| w.ip == ip) {
                if let Some(oldest) = waiting.remove(at) {
                    self.evict(oldest);
                }
            }
        }
        if waiting.len() >= self.total {
            if let Some(oldest) = waiting.pop_front() {
                self.evict(oldest);
            }
        }
        waiting.push_back(Waiting {
            id,
            ip,
            evict: evict.clone(),
        });
        evict
    }

    /// Counted before the token fires, so the connection's `gone` can never come first.
    fn evict(&self, waiting: Waiting) {
        self.closing.fetch_add(1, Ordering::Relaxed);
        waiting.evict.cancel();
    }

    /// An evicted connection (its token fired) has closed.
    pub fn gone(&self) {
        self.closing.fetch_sub(1, Ordering::Relaxed);
    }

    /// Evicted connections not closed yet.
    pub fn closing(&self) -> u64 {
        self.closing.load(Ordering::Relaxed)
    }

    /// Connection `id` logged in or closed: it no longer waits.
    pub fn leave(&self, id: u64) {
        self.lock().retain(|w| w.id != id);
    }

    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_of_an_address_makes_room_then_the_oldest_of_all() {
        let admission = Admission::new(2, 3);
        let a = IpAddr::from([127, 0, 0, 1]);
        let b = IpAddr::from([127, 0, 0, 2]);
        let first = admission.enter(1, a);
        let second = admission.enter(2, a);
        let third = admission.enter(3, a);
        assert!(first.is_cancelled(), "the address's oldest goes");
        assert_eq!(admission.closing(), 1);
        admission.gone();
        assert_eq!(admission.closing(), 0);
        assert!(!second.is_cancelled() && !third.is_cancelled());
        let fourth = admission.enter(4, b);
        assert_eq!(admission.waiting(), 3);
        let fifth = admission.enter(5, b);
        assert!(
            second.is_cancelled(),
            "the room is full: the oldest of all goes"
        );
        assert!(!fourth.is_cancelled() && !fifth.is_cancelled());
        admission.leave(3);
        admission.leave(4);
        admission.leave(5);
        assert_eq!(admission.waiting(), 0);
    }
}
