//! Hands incoming chats to FreeSWITCH one at a time, in order, at least once, each with its
//! `skypopen_message_key` so a consumer can drop a repeat (a sidecar killed between FreeSWITCH's
//! acceptance and the ledger's write delivers that one message again): waits while
//! FreeSWITCH is unreachable, skips what the ledger already knows, records what FreeSWITCH
//! accepted, and then tells the listener's subscribers.

use super::ledger::Ledger;
use super::message::IncomingChat;
use crate::metrics::Metrics;
use crate::shutdown::CancellationToken;
use crate::switch::event_link::LinkError;
use crate::switch::listener::EventBus;
use crate::switch::SwitchLink;
use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

/// First pause before trying again while FreeSWITCH is unreachable; it doubles up to the max.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(2);
/// A message FreeSWITCH refuses this often is given up (it stays unseen in the client).
const REFUSALS_TOLERATED: u32 = 3;

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

struct Towards {
    ledger: Ledger,
    link: SwitchLink,
}

pub struct Delivery {
    bus: EventBus,
    metrics: Arc<Metrics>,
    /// Also serializes deliveries, so a sibling's copy waits and then finds the key.
    state: Mutex<Towards>,
}

impl Delivery {
    pub fn new(link: SwitchLink, bus: EventBus, ledger: Ledger, metrics: Arc<Metrics>) -> Delivery {
        Delivery {
            bus,
            metrics,
            state: Mutex::new(Towards { ledger, link }),
        }
    }

    pub async fn deliver(
        &self,
        chat: &IncomingChat,
        cancel: &CancellationToken,
    ) -> Result<Delivered, DeliveryError> {
        let key = chat.key();
        let mut state = tokio::select! {
            _ = cancel.cancelled() => return Err(DeliveryError::Cancelled),
            state = self.state.lock() => state,
        };
        if state.ledger.contains(key) {
            debug!(chat_id = chat.id, chatname = %chat.chatname, "chat message delivered before; not again");
            self.metrics.chat("duplicate");
            return Ok(Delivered::Duplicate);
        }
        let headers = chat.headers();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let mut refusals = 0;
        let mut pause = RETRY_PAUSE;
        let mut waiting = Waiting::new(&self.metrics.chats_waiting);
        let uuid = loop {
            let attempt = tokio::select! {
                _ = cancel.cancelled() => return Err(DeliveryError::Cancelled),
                attempt = state.link.fire("MESSAGE", &headers, &chat.body) => attempt,
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
        state.ledger.insert(key);
        let snapshot = state.ledger.snapshot();
        let written = tokio::task::spawn_blocking(move || snapshot.write()).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "chat state not saved; a restart may deliver a message twice")
            }
            Err(e) => warn!(error = %e, "chat state writer failed"),
        }
        drop(state);

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
