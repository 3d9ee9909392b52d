//! Hands incoming chats to FreeSWITCH at least once, each with its `skypopen_message_key` so a
//! consumer can drop a repeat (a sidecar killed between FreeSWITCH's acceptance and the
//! ledger's write delivers that one message again): waits while FreeSWITCH is unreachable,
//! skips what the ledger already knows, records what FreeSWITCH accepted, and then tells the
//! listener's subscribers.
//!
//! Order holds per interface (its worker hands messages over one after the other). Deliveries
//! of different accounts run side by side; those of one account take turns, because its
//! interfaces see the same messages and a sibling's copy must find the key the first one
//! recorded. The state file is written by group commit: a delivery waits until a write that
//! includes its key has finished, and one write covers every key recorded before it began.
//!
//! With `cluster.arbitrate`, sidecars on other hosts serving the same account see the same
//! messages: a message is claimed in FreeSWITCH's mod_hash before it is fired, and marked done
//! after; a host that finds it done records it as delivered, one that finds it claimed waits
//! for the claim to be done or to run out. Order per dialog then holds for the messages one
//! host delivers; two hosts may interleave theirs.

use super::ledger::Ledger;
use super::message::{IncomingChat, MessageKey};
use crate::gateway::cluster::{Claim, Cluster, Subject, Verdict};
use crate::metrics::Metrics;
use crate::shutdown::CancellationToken;
use crate::switch::event_link::LinkError;
use crate::switch::listener::EventBus;
use crate::switch::SwitchLink;
use dashmap::DashMap;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// First pause before trying again while FreeSWITCH is unreachable; it doubles up to the max.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(2);
/// A message FreeSWITCH refuses this often is given up (it stays unseen in the client).
const REFUSALS_TOLERATED: u32 = 3;
/// How often a message another host claimed is looked at again (done, or its lease over).
const CLAIM_RECHECK: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// FreeSWITCH accepted it with this `Event-UUID`.
    Accepted(String),
    /// It was delivered before (by a sibling interface or before a restart).
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("stopped before the message was delivered")]
    Cancelled,
    #[error("FreeSWITCH refused the MESSAGE event: {0}")]
    Refused(String),
}

/// The ledger and how many keys were recorded into it (its version).
struct Recorded {
    ledger: Ledger,
    version: u64,
}

pub struct Delivery {
    bus: EventBus,
    metrics: Arc<Metrics>,
    link: SwitchLink,
    /// Held only to look up or record a key, never across an await.
    recorded: std::sync::Mutex<Recorded>,
    /// The version the state file holds; its lock makes one writer at a time, and whoever
    /// waits behind a write usually finds its key written by it.
    written: tokio::sync::Mutex<u64>,
    /// One delivery at a time per account (see the module's comment).
    accounts: DashMap<String, Arc<tokio::sync::Mutex<()>>>,
    cluster: Arc<Cluster>,
}

impl Delivery {
    pub fn new(
        link: SwitchLink,
        bus: EventBus,
        ledger: Ledger,
        metrics: Arc<Metrics>,
        cluster: Arc<Cluster>,
    ) -> Delivery {
        Delivery {
            bus,
            metrics,
            link,
            recorded: std::sync::Mutex::new(Recorded { ledger, version: 0 }),
            written: tokio::sync::Mutex::new(0),
            accounts: DashMap::new(),
            cluster,
        }
    }

    fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn account_turn(&self, chat: &IncomingChat) -> Arc<tokio::sync::Mutex<()>> {
        let account = chat.account.to_ascii_lowercase();
        Arc::clone(self.accounts.entry(account).or_default().value())
    }

    /// Returns once the state file holds every key up to `version`.
    async fn save_through(&self, version: u64) {
        let mut written = self.written.lock().await;
        if *written >= version {
            return;
        }
        let (snapshot, now) = {
            let recorded = self.recorded();
            (recorded.ledger.snapshot(), recorded.version)
        };
        match tokio::task::spawn_blocking(move || snapshot.write()).await {
            Ok(Ok(())) => *written = now,
            Ok(Err(e)) => {
                warn!(error = %e, "chat state not saved; a restart may deliver a message twice")
            }
            Err(e) => warn!(error = %e, "chat state writer failed"),
        }
    }

    pub async fn deliver(
        &self,
        chat: &IncomingChat,
        cancel: &CancellationToken,
    ) -> Result<Delivered, DeliveryError> {
        let key = chat.key();
        let turn = self.account_turn(chat);
        let turn = tokio::select! {
            _ = cancel.cancelled() => return Err(DeliveryError::Cancelled),
            turn = turn.lock_owned() => turn,
        };
        if self.recorded().ledger.contains(key) {
            debug!(chat_id = chat.id, chatname = %chat.chatname, "chat message delivered before; not again");
            self.metrics.chat("duplicate");
            return Ok(Delivered::Duplicate);
        }
        let claim = match self.claim(chat, cancel).await? {
            Some(claim) => claim,
            None => {
                debug!(chat_id = chat.id, chatname = %chat.chatname, "chat message delivered by another host");
                self.metrics.chat("duplicate");
                self.record(key).await;
                return Ok(Delivered::Duplicate);
            }
        };
        let headers = chat.headers();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let mut refusals = 0;
        let mut pause = RETRY_PAUSE;
        let mut waiting = Waiting::new(&self.metrics.chats_waiting);
        let uuid = loop {
            let attempt = tokio::select! {
                _ = cancel.cancelled() => return Err(DeliveryError::Cancelled),
                attempt = self.link.fire("MESSAGE", &headers, &chat.body) => attempt,
            };
            match attempt {
                Ok(uuid) => break uuid,
                Err(e @ LinkError::Unavailable { .. }) => {
                    if waiting.begin() {
                        info!(chat_id = chat.id, error = %e, "FreeSWITCH unreachable; chats wait");
                    }
                    sleep(pause, cancel).await?;
                    pause = (pause * 2).min(RETRY_PAUSE_MAX);
                }
                Err(e @ LinkError::Refused(_)) => {
                    refusals += 1;
                    if refusals >= REFUSALS_TOLERATED {
                        self.metrics.chat("refused");
                        return Err(DeliveryError::Refused(e.to_string()));
                    }
                    warn!(chat_id = chat.id, error = %e, "FreeSWITCH refused the MESSAGE event; trying again");
                    sleep(RETRY_PAUSE_MAX, cancel).await?;
                }
            }
        };
        drop(waiting);
        self.metrics.chat("delivered");
        self.cluster.finish(claim).await;
        let version = self.note(key);
        // Recorded: a sibling's copy finds the key from here on.
        drop(turn);
        // Saved before the caller marks the message SEEN, so a restart in between does not
        // deliver it again.
        self.save_through(version).await;

        let mut listener_event = chat.listener_event();
        self.bus
            .source()
            .stamp(&mut listener_event, "MESSAGE", "skypopen_chat_incoming");
        self.bus.publish(listener_event);
        info!(chat_id = chat.id, from = %chat.from_handle, chatname = %chat.chatname,
              event_uuid = %uuid, "incoming chat delivered to FreeSWITCH");
        Ok(Delivered::Accepted(uuid))
    }
}

impl Delivery {
    /// Records `key` in the ledger; returns the version to save through.
    fn note(&self, key: MessageKey) -> u64 {
        let mut recorded = self.recorded();
        recorded.ledger.insert(key);
        recorded.version += 1;
        recorded.version
    }

    /// Records and saves a key another host delivered.
    async fn record(&self, key: MessageKey) {
        let version = self.note(key);
        self.save_through(version).await;
    }

    /// This host's claim on the message; `None` when another host delivered it. Waits while
    /// FreeSWITCH is unreachable and while another host holds the message undelivered.
    async fn claim(
        &self,
        chat: &IncomingChat,
        cancel: &CancellationToken,
    ) -> Result<Option<Claim>, DeliveryError> {
        let key = chat.key().to_hex();
        let mut pause = RETRY_PAUSE;
        loop {
            match self.cluster.claim(Subject::Chat, &key).await {
                Ok(Verdict::Mine(claim)) => return Ok(Some(claim)),
                Ok(Verdict::Done) => return Ok(None),
                Ok(Verdict::Theirs { holder }) => {
                    debug!(chat_id = chat.id, %holder, "chat message claimed by another host; waiting for it");
                    sleep(CLAIM_RECHECK, cancel).await?;
                }
                Err(e) if e.is_unreachable() => {
                    sleep(pause, cancel).await?;
                    pause = (pause * 2).min(RETRY_PAUSE_MAX);
                }
                Err(e) => {
                    // mod_hash missing: delivering without the claim keeps chats flowing; a
                    // copy from another host stays possible (its key tells).
                    warn!(chat_id = chat.id, error = %e, "cannot claim the chat message in FreeSWITCH; delivering it");
                    return Ok(Some(self.cluster.unclaimed(Subject::Chat, &key)));
                }
            }
        }
    }
}

async fn sleep(pause: Duration, cancel: &CancellationToken) -> Result<(), DeliveryError> {
    tokio::select! {
        _ = cancel.cancelled() => Err(DeliveryError::Cancelled),
        _ = tokio::time::sleep(pause) => Ok(()),
    }
}

/// Counts one chat in `chats_waiting` from [`Waiting::begin`] until dropped, whichever way the
/// delivery ends.
struct Waiting<'a> {
    gauge: &'a Gauge,
    counted: bool,
}

impl<'a> Waiting<'a> {
    fn new(gauge: &'a Gauge) -> Waiting<'a> {
        Waiting {
            gauge,
            counted: false,
        }
    }

    /// Starts counting; true the first time only (when the wait begins).
    fn begin(&mut self) -> bool {
        if self.counted {
            return false;
        }
        self.gauge.inc();
        self.counted = true;
        true
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.gauge.dec();
        }
    }
}
