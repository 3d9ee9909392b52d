//! Removes `done` marks from mod_hash once nobody needs them, so a busy chat stream does not
//! grow FreeSWITCH's memory without end. Marks are kept in the order they were made (all live
//! equally long), at most [`MAX_PENDING`]; past that the oldest goes early.

use crate::shutdown::CancellationToken;
use crate::switch::shared_hash::HashKey;
use crate::switch::SwitchLink;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

const MAX_PENDING: usize = 200_000;
const QUEUE: usize = 4096;

struct Retirement {
    at: Instant,
    realm: &'static str,
    key: String,
    value: String,
}

pub(super) struct Retirements {
    tx: mpsc::Sender<Retirement>,
}

impl Retirements {
    pub(super) fn start(link: SwitchLink, cancel: CancellationToken) -> Retirements {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(link, rx, cancel));
        Retirements { tx }
    }

    pub(super) fn add(&self, realm: &'static str, key: String, value: String, after: Duration) {
        let retirement = Retirement {
            at: Instant::now() + after,
            realm,
            key,
            value,
        };
        if self.tx.try_send(retirement).is_err() {
            debug!("done marks queue full; one stays in mod_hash");
        }
    }
}

async fn run(link: SwitchLink, mut rx: mpsc::Receiver<Retirement>, cancel: CancellationToken) {
    let mut pending: VecDeque<Retirement> = VecDeque::new();
    loop {
        let next_at = pending.front().map(|r| r.at);
        tokio::select! {
            _ = cancel.cancelled() => return,
            added = rx.recv() => match added {
                Some(r) => pending.push_back(r),
                None => return,
            },
            _ = sleep_until(next_at) => {}
        }
        let now = Instant::now();
        while pending
            .front()
            .is_some_and(|r| r.at <= now || pending.len() > MAX_PENDING)
        {
            let Some(r) = pending.pop_front() else { break };
            let key = HashKey {
                realm: r.realm,
                key: &r.key,
            };
            if let Err(e) = link.hash_release(key, &r.value).await {
                debug!(realm = r.realm, key = %r.key, error = %e, "done mark not removed");
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
