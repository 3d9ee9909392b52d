//! What became of the chats we sent, told as `skypopen::chat_status` notices: SENT when the
//! client reports it, READ when the recipient read it, FAILED when no client took it or it was
//! not SENT within `[chat] sent_timeout_secs`.
//!
//! A message is known by (interface, the client's message id) from the moment the client took
//! it. The client may report SENT before the task that sent it has recorded it (the reply and
//! the notification race through different tasks), so statuses for unknown messages wait a
//! little in `early`.

use crate::gateway::notices::{ChatOutcome, Notice};
use crate::skype::api::{ChatMessageEvent, ChatMessageStatus, Incoming, Notification};
use dashmap::DashMap;
use std::time::{Duration, Instant};

/// Messages followed at once; past this, new ones are sent but not followed (and logged).
pub const FOLLOWED_LIMIT: usize = 20_000;
/// How long a SENT message is followed for its READ.
const READ_WINDOW: Duration = Duration::from_secs(3600);
/// How long a status for a message not yet recorded is kept.
const EARLY_WINDOW: Duration = Duration::from_secs(10);
const EARLY_LIMIT: usize = 1024;

/// Who asked for a chat, so its notices can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTicket {
    /// The id the command returned (or the requester chose).
    pub id: String,
    /// `Core-UUID:Event-Sequence` of the FreeSWITCH event that asked for it.
    pub request_event: Option<String>,
}

impl ChatTicket {
    pub fn new() -> ChatTicket {
        ChatTicket {
            id: uuid::Uuid::new_v4().to_string(),
            request_event: None,
        }
    }
}

impl Default for ChatTicket {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone)]
pub struct Followed {
    pub ticket: ChatTicket,
    pub interface: String,
    pub skype_user: String,
    pub to: String,
    pub chatname: String,
    pub since: Instant,
    pub sent: bool,
    /// Reported FAILED (not SENT in time); a SENT that still comes is told too.
    pub failed: bool,
}

#[derive(Default)]
pub struct Receipts {
    followed: DashMap<(u32, u64), Followed>,
    early: DashMap<(u32, u64), (ChatMessageStatus, Instant)>,
}

impl Receipts {
    /// Starts following a message the client took; returns what is already known of it.
    pub fn follow(&self, iface: u32, message: u64, followed: Followed) -> Vec<Notice> {
        let key = (iface, message);
        if self.followed.len() >= FOLLOWED_LIMIT {
            tracing::warn!(interface = %followed.interface, chat_id = %followed.ticket.id,
                           "too many chats awaiting their status; this one is not followed");
            return Vec::new();
        }
        self.followed.insert(key, followed);
        match self.early.remove(&key) {
            Some((_, (status, _))) => self.on_status(key, status).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// Takes the `CHATMESSAGE <id> STATUS SENT|READ` notifications of an interface.
    pub fn on_notification(&self, iface: u32, incoming: &Incoming) -> Option<Notice> {
        if incoming.tag.is_some() {
            return None;
        }
        let Notification::ChatMessage {
            id,
            event: ChatMessageEvent::Status(status),
        } = &incoming.notification
        else {
            return None;
        };
        if !matches!(status, ChatMessageStatus::Sent | ChatMessageStatus::Read) {
            return None;
        }
        let key = (iface, id.0);
        if !self.followed.contains_key(&key) {
            // Most are READs of messages we received and marked seen; a few are early.
            if self.early.len() < EARLY_LIMIT {
                self.early.insert(key, (status.clone(), Instant::now()));
            }
            return None;
        }
        self.on_status(key, status.clone())
    }

    fn on_status(&self, key: (u32, u64), status: ChatMessageStatus) -> Option<Notice> {
        let outcome = match status {
            ChatMessageStatus::Sent => ChatOutcome::Sent,
            ChatMessageStatus::Read => ChatOutcome::Read,
            _ => return None,
        };
        let followed = if outcome == ChatOutcome::Read {
            // READ is the last word.
            self.followed.remove(&key).map(|(_, f)| f)?
        } else {
            let mut entry = self.followed.get_mut(&key)?;
            if entry.sent {
                return None;
            }
            entry.sent = true;
            entry.clone()
        };
        let reason = (followed.failed && outcome == ChatOutcome::Sent)
            .then(|| "sent after it was reported FAILED".to_string());
        Some(notice(&followed, key.1, outcome, reason))
    }

    /// FAILED for messages not SENT within `sent_timeout`; forgets SENT ones past the READ
    /// window and stale early statuses.
    pub fn sweep(&self, now: Instant, sent_timeout: Duration) -> Vec<Notice> {
        let mut failed = Vec::new();
        self.followed.retain(|(_, message), f| {
            let age = now.saturating_duration_since(f.since);
            if f.sent || f.failed {
                return age < READ_WINDOW;
            }
            if age >= sent_timeout {
                tracing::warn!(interface = %f.interface, chat_id = %f.ticket.id, to = %f.to,
                               "chat not sent in time; reported FAILED");
                let reason = format!("not sent within {:.1} s", sent_timeout.as_secs_f64());
                failed.push(notice(f, *message, ChatOutcome::Failed, Some(reason)));
                f.failed = true;
            }
            true
        });
        self.early
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < EARLY_WINDOW);
        failed
    }

    pub fn followed(&self) -> usize {
        self.followed.len()
    }
}

fn notice(f: &Followed, message: u64, outcome: ChatOutcome, reason: Option<String>) -> Notice {
    Notice::ChatStatus {
        chat_id: f.ticket.id.clone(),
        interface: f.interface.clone(),
        skype_user: f.skype_user.clone(),
        to: f.to.clone(),
        outcome,
        skype_message_id: Some(message),
        chatname: Some(f.chatname.clone()),
        reason,
        request_event: f.ticket.request_event.clone(),
    }
}

/// A chat that no client took: FAILED at once, with why.
pub fn failed_before_sending(
    ticket: &ChatTicket,
    interface: &str,
    skype_user: &str,
    to: &str,
    reason: &str,
) -> Notice {
    Notice::ChatStatus {
        chat_id: ticket.id.clone(),
        interface: interface.to_string(),
        skype_user: skype_user.to_string(),
        to: to.to_string(),
        outcome: ChatOutcome::Failed,
        skype_message_id: None,
        chatname: None,
        reason: Some(reason.to_string()),
        request_event: ticket.request_event.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn followed(since: Instant) -> Followed {
        Followed {
            ticket: ChatTicket {
                id: "c1".into(),
                request_event: None,
            },
            interface: "interface1".into(),
            skype_user: "user1".into(),
            to: "alice".into(),
            chatname: "#user1/$alice;1".into(),
            since,
            sent: false,
            failed: false,
        }
    }

    fn status(id: u64, s: &str) -> Incoming {
        Incoming::parse(&format!("CHATMESSAGE {id} STATUS {s}"))
    }

    fn outcome(n: &Notice) -> ChatOutcome {
        match n {
            Notice::ChatStatus { outcome, .. } => *outcome,
            other => panic!("not a chat status: {other:?}"),
        }
    }

    #[test]
    fn sent_then_read_each_told_once() {
        let r = Receipts::default();
        assert!(r.follow(1, 7, followed(Instant::now())).is_empty());
        let sent = r.on_notification(1, &status(7, "SENT")).unwrap();
        assert_eq!(outcome(&sent), ChatOutcome::Sent);
        assert!(r.on_notification(1, &status(7, "SENT")).is_none());
        assert!(
            r.on_notification(2, &status(7, "READ")).is_none(),
            "other interface"
        );
        let read = r.on_notification(1, &status(7, "READ")).unwrap();
        assert_eq!(outcome(&read), ChatOutcome::Read);
        assert_eq!(r.followed(), 0);
    }

    #[test]
    fn a_status_before_the_send_returned_is_not_lost() {
        let r = Receipts::default();
        assert!(r.on_notification(1, &status(9, "SENT")).is_none());
        let told = r.follow(1, 9, followed(Instant::now()));
        assert_eq!(told.len(), 1);
        assert_eq!(outcome(&told[0]), ChatOutcome::Sent);
    }

    #[test]
    fn unsent_messages_fail_after_the_timeout_and_sent_ones_do_not() {
        let r = Receipts::default();
        let start = Instant::now();
        r.follow(1, 1, followed(start));
        r.follow(1, 2, followed(start));
        r.on_notification(1, &status(2, "SENT"));
        assert!(r
            .sweep(start + Duration::from_secs(1), Duration::from_secs(5))
            .is_empty());
        let failed = r.sweep(start + Duration::from_secs(6), Duration::from_secs(5));
        assert_eq!(failed.len(), 1);
        assert_eq!(outcome(&failed[0]), ChatOutcome::Failed);
        assert_eq!(
            r.followed(),
            2,
            "the SENT one waits for READ, the failed one for SENT"
        );
        assert!(r
            .sweep(start + Duration::from_secs(7), Duration::from_secs(5))
            .is_empty());
        let late = r.on_notification(1, &status(1, "SENT")).unwrap();
        match late {
            Notice::ChatStatus {
                outcome, reason, ..
            } => {
                assert_eq!(outcome, ChatOutcome::Sent);
                assert!(reason.is_some_and(|r| r.contains("after it was reported FAILED")));
            }
            other => panic!("{other:?}"),
        }
    }
}
