//! `bgapi` correlation. The reply to `bgapi` reaches the caller while the `BACKGROUND_JOB`
//! event travels through the event pump, so the event can be seen before the caller has
//! registered its Job-UUID; such early results are parked for a while instead of lost.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How many unclaimed results are kept, and for how long. Other clients' jobs also show up
/// here (BACKGROUND_JOB is global), so the store must stay small.
const EARLY_CAPACITY: usize = 256;
const EARLY_TTL: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct JobBook {
    waiting: HashMap<String, oneshot::Sender<String>>,
    early: VecDeque<(Instant, String, String)>,
}

impl JobBook {
    /// The result, if it already arrived; otherwise a receiver for it.
    pub(super) fn register(&mut self, job: &str) -> Result<String, oneshot::Receiver<String>> {
        if let Some(pos) = self.early.iter().position(|(_, id, _)| id == job) {
            if let Some((_, _, body)) = self.early.remove(pos) {
                return Ok(body);
            }
        }
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(job.to_string(), tx);
        Err(rx)
    }

    pub(super) fn forget(&mut self, job: &str) {
        self.waiting.remove(job);
    }

    pub(super) fn complete(&mut self, job: &str, body: String) {
        if let Some(tx) = self.waiting.remove(job) {
            let _ = tx.send(body);
            return;
        }
        let now = Instant::now();
        while let Some((at, _, _)) = self.early.front() {
            if now.duration_since(*at) > EARLY_TTL || self.early.len() >= EARLY_CAPACITY {
                self.early.pop_front();
            } else {
                break;
            }
        }
        self.early.push_back((now, job.to_string(), body));
    }

    /// The connection is gone: results of jobs sent on it will never come.
    pub(super) fn abandon_all(&mut self) {
        self.waiting.clear();
        self.early.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_before_registration_is_kept() {
        let mut book = JobBook::default();
        book.complete("j1", "+OK early\n".into());
        assert_eq!(book.register("j1").ok().as_deref(), Some("+OK early\n"));
    }

    #[tokio::test]
    async fn result_after_registration_reaches_the_waiter() {
        let mut book = JobBook::default();
        let rx = book.register("j2").err().unwrap();
        book.complete("j2", "+OK late\n".into());
        assert_eq!(rx.await.unwrap(), "+OK late\n");
    }

    #[tokio::test]
    async fn abandon_wakes_waiters_with_an_error() {
        let mut book = JobBook::default();
        let rx = book.register("j3").err().unwrap();
        book.abandon_all();
        assert!(rx.await.is_err());
    }

    #[test]
    fn foreign_results_do_not_pile_up() {
        let mut book = JobBook::default();
        for i in 0..(EARLY_CAPACITY * 3) {
            book.complete(&format!("other-{i}"), String::new());
        }
        assert!(book.early.len() <= EARLY_CAPACITY);
    }
}
