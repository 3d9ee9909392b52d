//! What becomes of an outgoing chat message, as the sender's clients hear it: `SENDING` until
//! the recipient can be reached (a client of the account is logged in, or a remote person is
//! not OFFLINE), then `SENT`; `READ` once the recipient's client marks it seen, or a remote
//! person reads it (`ctl read`).
//!
//! The API reference has no failed state for a chat message: one that never reaches its
//! recipient (an unknown name, a party that stays offline, one who blocked the sender) stays
//! SENDING. Choices where the reference is silent: a message waits for its recipient for as
//! long as the network runs, at most [`WAITING_PER_RECIPIENT`] per recipient.

use super::*;
use crate::sim::presence::OnlineStatus;

/// Messages kept waiting for one recipient; older ones are forgotten (they stay SENDING).
const WAITING_PER_RECIPIENT: usize = 10_000;

impl World {
    /// A message to `handle` would arrive now.
    pub(super) fn reachable(&self, handle: &str) -> bool {
        if accounts::account(handle).is_some() {
            return !self.sessions_of(handle).is_empty();
        }
        !matches!(
            self.status_of(handle),
            OnlineStatus::Offline | OnlineStatus::Unknown | OnlineStatus::Invisible
        )
    }

    /// `account` has blocked `handle`.
    pub(super) fn blocks(&self, account: &str, handle: &str) -> bool {
        self.blocked
            .get(&account.to_ascii_lowercase())
            .is_some_and(|set| set.contains(&handle.to_ascii_lowercase()))
    }

    pub(super) fn hold_until_reachable(&mut self, to: &str, message: u64) {
        let waiting = self.undelivered.entry(to.to_ascii_lowercase()).or_default();
        waiting.push_back(message);
        while waiting.len() > WAITING_PER_RECIPIENT {
            waiting.pop_front();
        }
    }

    /// Tells the sender's clients (if the sender is an account) how `message` is doing.
    fn tell_sender(&self, message: u64, status: &str) {
        let Some(sender) = self.chats.get(message).map(|m| m.from_handle.clone()) else {
            return;
        };
        self.tell_account(
            &sender,
            &Down::ChatStatus {
                message,
                status: status.to_string(),
            },
        );
    }

    /// `handle` can be reached now: the messages that waited for it are SENT.
    pub(super) fn release_waiting(&mut self, handle: &str) {
        if !self.reachable(handle) {
            return;
        }
        let Some(waiting) = self.undelivered.remove(&handle.to_ascii_lowercase()) else {
            return;
        };
        for message in waiting {
            self.tell_sender(message, "SENT");
        }
    }

    /// `reader`'s client marked `message` seen.
    pub(super) fn note_read(&mut self, reader: &str, message: u64) {
        if self.chats.seen(reader, message) {
            self.tell_sender(message, "READ");
        }
    }
}

impl Network {
    /// `ctl read`: a remote person (or bot) reads what it has received.
    pub fn ctl_read(&self, party: &str) -> Result<Value, String> {
        match accounts::identify(party) {
            Some(Identity::Remote | Identity::Bot(_)) => {}
            Some(_) => {
                return Err(format!(
                    "{party} is an account; its client marks messages seen"
                ))
            }
            None => return Err(format!("unknown party {party}")),
        }
        let mut w = self.world();
        if !w.reachable(party) {
            return Err(format!("{party} is offline and reads nothing"));
        }
        let read = w.chats.read_inbox(party);
        for (message, _) in &read {
            w.tell_sender(*message, "READ");
        }
        Ok(json!({"party": party.to_ascii_lowercase(), "read": read.len()}))
    }
}
