//! Hands incoming chats to FreeSWITCH one at a time, in order, exactly once: waits while the
//! inbound connection is down, skips what the ledger already knows, records what FreeSWITCH
//! accepted, and then tells the listener's subscribers.

use super::ledger::Ledger;
use super::message::IncomingChat;
use crate::shutdown::CancellationToken;
use crate::switch::inbound::{InboundError, InboundHandle, LinkState};
use crate::switch::listener::EventBus;
use std::time::Duration;
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

/// Pause before trying again after the connection failed under a `sendevent`.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
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

pub struct Delivery {
    inbound: InboundHandle,
    bus: EventBus,
    /// Also serializes deliveries, so a sibling's copy waits and then finds the key.
    ledger: Mutex<Ledger>,
}

impl Delivery {
    pub fn new(inbound: InboundHandle, bus: EventBus, ledger: Ledger) -> Delivery {
        Delivery {
            inbound,
            bus,
            ledger: Mutex::new(ledger),
        }
    }

    pub async fn deliver(
        &self,
        chat: &IncomingChat,
        cancel: &CancellationToken,
    ) -> Result<Delivered, DeliveryError> {
        let key = chat.key();
        let mut ledger = tokio::select! {
            _ = cancel.cancelled() => return Err(DeliveryError::Cancelled),
            ledger = self.ledger.lock() => ledger,
        };
        if ledger.contains(key) {
            debug!(chat_id = chat.id, chatname = %chat.chatname, "chat message delivered before; not again");
            return Ok(Delivered::Duplicate);
        }
        let event = chat.outgoing_event();
        let mut refusals = 0;
        let uuid = loop {
            self.wait_connected(cancel).await?;
            let attempt = tokio::select! {
                _ = cancel.cancelled() => return Err(DeliveryError::Cancelled),
                attempt = self.inbound.sendevent(&event) => attempt,
            };
            match attempt {
                Ok(uuid) => break uuid,
                Err(
                    e @ (InboundError::NotConnected { .. }
                    | InboundError::ConnectionLost { .. }
                    | InboundError::Timeout { .. }),
                ) => {
                    debug!(chat_id = chat.id, error = %e, "MESSAGE not delivered yet; waiting for FreeSWITCH");
                    self.pause(cancel).await?;
                }
                Err(e) => {
                    refusals += 1;
                    if refusals >= REFUSALS_TOLERATED {
                        return Err(DeliveryError::Refused(e.to_string()));
                    }
                    warn!(chat_id = chat.id, error = %e, "FreeSWITCH refused the MESSAGE event; trying again");
                    self.pause(cancel).await?;
                }
            }
        };
        ledger.insert(key);
        let snapshot = ledger.snapshot();
        let written = tokio::task::spawn_blocking(move || snapshot.write()).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "chat state not saved; a restart may deliver a message twice")
            }
            Err(e) => warn!(error = %e, "chat state writer failed"),
        }
        drop(ledger);

        let mut listener_event = chat.listener_event();
        self.bus
            .source()
            .stamp(&mut listener_event, "MESSAGE", "skypopen_chat_incoming");
        self.bus.publish(listener_event);
        info!(chat_id = chat.id, from = %chat.from_handle, chatname = %chat.chatname,
              event_uuid = %uuid, "incoming chat delivered to FreeSWITCH");
        Ok(Delivered::Accepted(uuid))
    }

    async fn wait_connected(&self, cancel: &CancellationToken) -> Result<(), DeliveryError> {
        let mut state = self.inbound.state();
        tokio::select! {
            _ = cancel.cancelled() => Err(DeliveryError::Cancelled),
            up = state.wait_for(|s| matches!(s, LinkState::Up | LinkState::Stopped)) => match up {
                Ok(s) if *s == LinkState::Up => Ok(()),
                _ => Err(DeliveryError::Cancelled),
            },
        }
    }

    async fn pause(&self, cancel: &CancellationToken) -> Result<(), DeliveryError> {
        tokio::select! {
            _ = cancel.cancelled() => Err(DeliveryError::Cancelled),
            _ = tokio::time::sleep(RETRY_PAUSE) => Ok(()),
        }
    }
}
