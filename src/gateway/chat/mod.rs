//! Chats: incoming Skype chat messages become FreeSWITCH MESSAGE events, none lost, at least
//! once, a repeat recognisable by its `skypopen_message_key`; outgoing chats come from the command surface ([`send_chat`]) and from FreeSWITCH's
//! event socket (`SEND_MESSAGE`, and the MESSAGE its own `chat SKYPE|...` fires).
//!
//! Every interface has a worker ([`InterfaceChat`]) that the interface actor feeds with its
//! session's chat notifications. Workers fetch messages and hand them to the one
//! [`delivery::Delivery`], which serializes them towards FreeSWITCH and keeps the delivered
//! keys in `[state] dir`.

pub mod delivery;
pub mod incoming;
pub mod ledger;
pub mod message;
pub mod outgoing;
pub mod receipts;
pub mod requests;
pub mod waiting;

pub use incoming::InterfaceChat;
pub use outgoing::{send_chat, ChatError, SentChat};
pub use receipts::ChatTicket;

use super::Gateway;
use crate::shutdown::CancellationToken;
use crate::switch::listener::EventBus;
use delivery::Delivery;
use ledger::{Ledger, LEDGER_CAPACITY};
use outgoing::ChatNames;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{info, warn};

/// The gateway's chat state: the delivery (once started) and the cached outgoing chats.
pub struct ChatService {
    delivery: watch::Sender<Option<Arc<Delivery>>>,
    pub names: ChatNames,
    /// The sent chats whose status is still to come.
    pub receipts: receipts::Receipts,
}

impl Default for ChatService {
    fn default() -> Self {
        ChatService {
            delivery: watch::Sender::new(None),
            names: ChatNames::default(),
            receipts: receipts::Receipts::default(),
        }
    }
}

impl ChatService {
    /// The delivery, waiting for [`start`] if it has not run yet; `None` once `cancel` fires.
    pub async fn delivery(&self, cancel: &CancellationToken) -> Option<Arc<Delivery>> {
        let mut rx = self.delivery.subscribe();
        tokio::select! {
            _ = cancel.cancelled() => None,
            ready = rx.wait_for(Option::is_some) => ready.ok().and_then(|d| d.clone()),
        }
    }
}

/// Starts chat delivery into FreeSWITCH and onto the listener's `events`, and the handling of
/// chat requests arriving from FreeSWITCH.
pub fn start(gw: &Gateway, events: EventBus) {
    let gw = gw.clone();
    // Taken now: requests arriving while the ledger loads wait in it.
    let requests = gw.switch.chat_requests();
    gw.clone().tasks.spawn(sweep_receipts(gw.clone()));
    gw.clone().tasks.spawn(async move {
        let dir = gw.settings.state.dir.clone();
        let loaded = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || Ledger::load(&dir, LEDGER_CAPACITY)).await
        };
        let ledger = match loaded {
            Ok(Ok(ledger)) => ledger,
            Ok(Err(e)) => {
                warn!(error = %e, "chat state unreadable; starting without it (a message delivered just before may come again)");
                Ledger::empty(&dir, LEDGER_CAPACITY)
            }
            Err(e) => {
                warn!(error = %e, "chat state loader failed; starting without it");
                Ledger::empty(&dir, LEDGER_CAPACITY)
            }
        };
        info!(state = %ledger.path().display(), known = ledger.len(), "chat delivery started");
        let delivery = Arc::new(Delivery::new(
            gw.switch.clone(),
            events,
            ledger,
            Arc::clone(&gw.metrics),
            Arc::clone(&gw.cluster),
        ));
        gw.chat.delivery.send_replace(Some(delivery));
        requests::serve(gw, requests).await;
    });
}

/// Reports the sent chats that never became SENT.
async fn sweep_receipts(gw: Gateway) {
    let timeout = gw.settings.chat.sent_timeout();
    let mut tick = tokio::time::interval((timeout / 4).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(1),
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = gw.cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        for notice in gw.chat.receipts.sweep(std::time::Instant::now(), timeout) {
            gw.notices.post(notice);
        }
    }
}
