//! Chats FreeSWITCH asked for that no client of their account could take yet (every one off
//! the Skype network, restarting, or refusing). A real Skype client keeps what it cannot send
//! and sends it once online; the sidecar does the same for a bounded time and count, per
//! sender, in order: a message that waits holds back the later ones from the same sender, so a
//! dialog never arrives out of order, while other senders go on.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// One request and when it first failed.
#[derive(Debug)]
pub struct Waiting<T> {
    pub request: T,
    pub since: Instant,
}

/// Per-sender FIFO queues with one bound on their total length.
#[derive(Debug)]
pub struct WaitingChats<T> {
    queues: HashMap<String, VecDeque<Waiting<T>>>,
    len: usize,
    capacity: usize,
    patience: Duration,
}

/// What a full queue refused, handed back so the caller can say so.
#[derive(Debug, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> WaitingChats<T> {
    pub fn new(capacity: usize, patience: Duration) -> Self {
        WaitingChats {
            queues: HashMap::new(),
            len: 0,
            capacity,
            patience,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `sender` has messages waiting (a new one must queue behind them).
    pub fn holds(&self, sender: &str) -> bool {
        self.queues.contains_key(sender)
    }

    pub fn push(&mut self, sender: &str, request: T, now: Instant) -> Result<(), Full<T>> {
        if self.len >= self.capacity {
            return Err(Full(request));
        }
        self.queues
            .entry(sender.to_string())
            .or_default()
            .push_back(Waiting {
                request,
                since: now,
            });
        self.len += 1;
        Ok(())
    }

    /// Senders with something waiting.
    pub fn senders(&self) -> Vec<String> {
        self.queues.keys().cloned().collect()
    }

    /// The oldest message of `sender` that is still worth trying; older ones (waiting longer
    /// than the patience) are removed and handed to `expired`.
    pub fn front(
        &mut self,
        sender: &str,
        now: Instant,
        mut expired: impl FnMut(Waiting<T>),
    ) -> Option<&T> {
        let queue = self.queues.get_mut(sender)?;
        while queue
            .front()
            .is_some_and(|w| now.duration_since(w.since) > self.patience)
        {
            if let Some(old) = queue.pop_front() {
                self.len -= 1;
                expired(old);
            }
        }
        if queue.is_empty() {
            self.queues.remove(sender);
            return None;
        }
        self.queues
            .get(sender)
            .and_then(|q| q.front())
            .map(|w| &w.request)
    }

    /// Removes `sender`'s oldest message (it was sent).
    pub fn pop(&mut self, sender: &str) -> Option<T> {
        let queue = self.queues.get_mut(sender)?;
        let waiting = queue.pop_front()?;
        self.len -= 1;
        if queue.is_empty() {
            self.queues.remove(sender);
        }
        Some(waiting.request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_keeps_its_order_and_others_are_not_held() {
        let now = Instant::now();
        let mut waiting = WaitingChats::new(10, Duration::from_secs(30));
        waiting.push("user1", "a", now).unwrap();
        waiting.push("user1", "b", now).unwrap();
        assert!(waiting.holds("user1"));
        assert!(!waiting.holds("user2"));
        assert_eq!(waiting.front("user1", now, |_| {}), Some(&"a"));
        assert_eq!(waiting.pop("user1"), Some("a"));
        assert_eq!(waiting.pop("user1"), Some("b"));
        assert!(!waiting.holds("user1"));
        assert!(waiting.is_empty());
    }

    #[test]
    fn the_total_is_bounded() {
        let now = Instant::now();
        let mut waiting = WaitingChats::new(2, Duration::from_secs(30));
        waiting.push("a", 1, now).unwrap();
        waiting.push("b", 2, now).unwrap();
        assert_eq!(waiting.push("c", 3, now), Err(Full(3)));
        assert_eq!(waiting.len(), 2);
    }

    #[test]
    fn messages_past_their_patience_are_given_up_oldest_first() {
        let start = Instant::now();
        let mut waiting = WaitingChats::new(10, Duration::from_secs(30));
        waiting.push("user1", "old", start).unwrap();
        waiting
            .push("user1", "new", start + Duration::from_secs(20))
            .unwrap();
        let mut gone = Vec::new();
        let later = start + Duration::from_secs(31);
        assert_eq!(
            waiting.front("user1", later, |w| gone.push(w.request)),
            Some(&"new")
        );
        assert_eq!(gone, ["old"]);
        assert_eq!(waiting.len(), 1);
        let much_later = start + Duration::from_secs(60);
        assert_eq!(
            waiting.front("user1", much_later, |w| gone.push(w.request)),
            None
        );
        assert!(waiting.is_empty() && !waiting.holds("user1"));
    }
}
