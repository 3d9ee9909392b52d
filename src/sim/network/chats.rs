//! Chats in the network: one stable dialog per pair of handles, messages with global ids,
//! and per-account sets of unseen messages that survive a client restart.

use crate::sim::accounts;
use crate::sim::proto::ChatMessageInfo;
use std::collections::{BTreeSet, HashMap};

/// Keep at most this many messages; the oldest are forgotten first.
const MAX_MESSAGES: usize = 10_000;

#[derive(Debug, Default)]
pub struct Chats {
    by_pair: HashMap<(String, String), String>,
    members: HashMap<String, (String, String)>,
    messages: HashMap<u64, ChatMessageInfo>,
    order: std::collections::VecDeque<u64>,
    unseen: HashMap<String, BTreeSet<u64>>,
    inbox: HashMap<String, Vec<u64>>,
    /// How much of each party's inbox it has read (a prefix: a person reads a dialog to its end).
    inbox_read: HashMap<String, usize>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// FNV-1a: a stable, dependency-free hash for the chat name's suffix.
fn fnv(text: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

impl Chats {
    /// The dialog between `creator` and `partner`, created on first use with the Skype shape
    /// `#<creator>/$<partner>;<hex>` (no spaces).
    pub fn dialog(&mut self, creator: &str, partner: &str) -> String {
        let key = pair(creator, partner);
        if let Some(name) = self.by_pair.get(&key) {
            return name.clone();
        }
        let name = format!(
            "#{}/${};{:016x}",
            creator.to_ascii_lowercase(),
            partner.to_ascii_lowercase(),
            fnv(&format!("{}|{}", key.0, key.1))
        );
        self.by_pair.insert(key.clone(), name.clone());
        self.members.insert(name.clone(), key);
        name
    }

    /// The other member of a dialog, seen from `me`.
    pub fn partner(&self, chat: &str, me: &str) -> Option<String> {
        let (a, b) = self.members.get(chat)?;
        if a.eq_ignore_ascii_case(me) {
            Some(b.clone())
        } else if b.eq_ignore_ascii_case(me) {
            Some(a.clone())
        } else {
            None
        }
    }

    /// Stores a message from `from` in `chat`; returns it and the recipient's handle.
    pub fn post(
        &mut self,
        id: u64,
        chat: &str,
        from: &str,
        body: &str,
    ) -> Option<(ChatMessageInfo, String)> {
        let to = self.partner(chat, from)?;
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let info = ChatMessageInfo {
            id,
            chat: chat.to_string(),
            from_handle: from.to_ascii_lowercase(),
            from_dispname: accounts::display_name(from),
            body: body.to_string(),
            timestamp,
            kind: "SAID".into(),
        };
        self.messages.insert(id, info.clone());
        self.order.push_back(id);
        while self.order.len() > MAX_MESSAGES {
            if let Some(old) = self.order.pop_front() {
                self.messages.remove(&old);
            }
        }
        if accounts::account(&to).is_some() {
            self.unseen.entry(to.clone()).or_default().insert(id);
        } else {
            self.inbox.entry(to.clone()).or_default().push(id);
        }
        Some((info, to))
    }

    pub fn get(&self, id: u64) -> Option<&ChatMessageInfo> {
        self.messages.get(&id)
    }

    /// Marks a message seen by `user`; false if it was not unseen for them.
    pub fn seen(&mut self, user: &str, id: u64) -> bool {
        self.unseen
            .get_mut(&user.to_ascii_lowercase())
            .is_some_and(|set| set.remove(&id))
    }

    pub fn unseen(&self, user: &str) -> Vec<u64> {
        self.unseen
            .get(&user.to_ascii_lowercase())
            .map(|s| {
                s.iter()
                    .copied()
                    .filter(|id| self.messages.contains_key(id))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The messages `party` has not read yet, now marked read: (id, sender).
    pub fn read_inbox(&mut self, party: &str) -> Vec<(u64, String)> {
        let party = party.to_ascii_lowercase();
        let Some(ids) = self.inbox.get(&party) else {
            return Vec::new();
        };
        let read = self.inbox_read.entry(party).or_default();
        let fresh: Vec<(u64, String)> = ids[(*read).min(ids.len())..]
            .iter()
            .filter_map(|id| self.messages.get(id).map(|m| (*id, m.from_handle.clone())))
            .collect();
        *read = ids.len();
        fresh
    }

    /// Messages a party that no client logs in as (a remote person, a bot) received.
    pub fn inbox(&self, party: &str) -> Vec<ChatMessageInfo> {
        self.inbox
            .get(&party.to_ascii_lowercase())
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.messages.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialog_names_are_stable_per_pair_and_space_free() {
        let mut c = Chats::default();
        let n1 = c.dialog("user1", "alice");
        assert_eq!(c.dialog("alice", "user1"), n1);
        assert_eq!(c.dialog("USER1", "Alice"), n1);
        assert!(!n1.contains(' '));
        assert!(n1.starts_with("#user1/$alice;"));
        assert_ne!(c.dialog("user1", "bob"), n1);
        assert_eq!(c.partner(&n1, "user1").as_deref(), Some("alice"));
        assert_eq!(c.partner(&n1, "bob"), None);
    }

    #[test]
    fn unseen_messages_are_tracked_per_account() {
        let mut c = Chats::default();
        let chat = c.dialog("alice", "user1");
        let (m, to) = c.post(12, &chat, "alice", "ciao è").unwrap();
        assert_eq!(to, "user1");
        assert_eq!(m.from_dispname, "Alice Liddell");
        c.post(13, &chat, "alice", "two").unwrap();
        assert_eq!(c.unseen("user1"), vec![12, 13]);
        assert!(c.seen("user1", 12));
        assert!(!c.seen("user1", 12));
        assert_eq!(c.unseen("user1"), vec![13]);
        c.post(14, &chat, "user1", "reply").unwrap();
        assert_eq!(c.inbox("alice").len(), 1);
        assert_eq!(c.inbox("alice")[0].body, "reply");
        assert_eq!(c.read_inbox("alice"), vec![(14, "user1".to_string())]);
        assert!(c.read_inbox("alice").is_empty());
        c.post(15, &chat, "user1", "again").unwrap();
        assert_eq!(c.read_inbox("Alice"), vec![(15, "user1".to_string())]);
    }
}
