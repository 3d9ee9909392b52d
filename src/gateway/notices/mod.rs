//! The sidecar's own CUSTOM events, `skypopen::<what>`, for applications and monitoring: what
//! became of an outgoing chat, contact requests, balance changes and interface state changes.
//! Each is fired into FreeSWITCH (so `event plain CUSTOM skypopen::chat_status` on its event
//! socket sees it) and onto the sidecar's own listener.
//!
//! Posting never waits: notices go through a bounded queue to one publishing task, which keeps
//! their order. When the queue is full a notice is dropped and counted; when FreeSWITCH cannot
//! be reached it is not fired there (a debug line), though the listener still gets it. Either
//! way nothing is queued for later: they report what happened, and the state they report can
//! be read again (`sk list`, `sk balances`, the chat's own log line).

mod kinds;

pub use kinds::{ChatOutcome, Notice, RequestHandling};

use crate::switch::listener::EventBus;
use crate::switch::SwitchLink;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Notices waiting for the publisher; more are dropped (and counted).
const QUEUE: usize = 4096;

pub struct Notices {
    tx: mpsc::Sender<Notice>,
    rx: Mutex<Option<mpsc::Receiver<Notice>>>,
    bus: OnceLock<EventBus>,
    dropped: AtomicU64,
    /// The last balance each interface's client reported, for `previous_balance`.
    balances: dashmap::DashMap<u32, i64>,
}

impl Default for Notices {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Notices {
            tx,
            rx: Mutex::new(Some(rx)),
            bus: OnceLock::new(),
            dropped: AtomicU64::new(0),
            balances: dashmap::DashMap::new(),
        }
    }
}

impl Notices {
    /// Queues a notice; never waits.
    pub fn post(&self, notice: Notice) {
        if self.tx.try_send(notice).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                warn!(dropped, "skypopen:: notices dropped: the queue is full");
            }
        }
    }

    /// The client of `iface` reported its SkypeOut balance.
    pub fn balance(&self, iface: &crate::config::InterfaceConfig, balance: i64) {
        let previous = self.balances.insert(iface.id, balance);
        if previous == Some(balance) {
            return;
        }
        self.post(Notice::Balance {
            interface: iface.name.clone(),
            skype_user: iface.skype_user.clone(),
            balance,
            previous,
        });
    }

    /// The sidecar's listener, which gets a copy of every notice.
    pub fn attach_bus(&self, bus: EventBus) {
        let _ = self.bus.set(bus);
    }

    /// Notices lost to a full queue since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn take_receiver(&self) -> Option<mpsc::Receiver<Notice>> {
        self.rx
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// Interface state changes as notices.
pub fn state_observer(notices: std::sync::Arc<Notices>) -> crate::gateway::registry::StateObserver {
    std::sync::Arc::new(move |slot, before| {
        notices.post(Notice::InterfaceState {
            interface: slot.name.clone(),
            interface_id: slot.id,
            skype_user: slot.skype_user.clone(),
            state: slot.state.label(),
            previous: before.label(),
            uuid: slot.uuid.clone(),
        })
    })
}

/// Fires the notices in order until `cancel`; the second call finds no queue and returns.
pub async fn publish(
    notices: std::sync::Arc<Notices>,
    switch: SwitchLink,
    host: String,
    cancel: crate::shutdown::CancellationToken,
) {
    let Some(mut rx) = notices.take_receiver() else {
        return;
    };
    loop {
        let notice = tokio::select! {
            _ = cancel.cancelled() => return,
            notice = rx.recv() => match notice {
                Some(notice) => notice,
                None => return,
            },
        };
        let subclass = notice.subclass();
        let headers = notice.headers(&host);
        let body = notice.body();
        if let Some(bus) = notices.bus.get() {
            let mut event = bus.source().custom(subclass, "skypopen_notice");
            for (name, value) in &headers {
                event.push_header(*name, value.as_str());
            }
            if !body.is_empty() {
                event.set_body(body.clone());
            }
            bus.publish(event);
        }
        let mut fields: Vec<(&str, &str)> = vec![("Event-Subclass", subclass)];
        fields.extend(headers.iter().map(|(n, v)| (*n, v.as_str())));
        if let Err(e) = switch.fire("CUSTOM", &fields, &body).await {
            debug!(subclass, error = %e, "notice not fired into FreeSWITCH");
        }
    }
}
