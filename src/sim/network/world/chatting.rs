//! Chats and contacts as clients use them: dialogs, messages, SEEN, contact authorisation.

use super::*;
use crate::sim::presence::buddy;

impl Network {
    pub fn chat_create(&self, session: u64, partner: &str) -> Reply {
        let mut w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        let partner = accounts::canonical(partner).unwrap_or_else(|| partner.to_string());
        Reply::Chat {
            chat: w.chats.dialog(&user, &partner),
        }
    }

    pub fn chat_partner(&self, session: u64, chat: &str) -> Reply {
        let w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        match w.chats.partner(chat, &user) {
            Some(handle) => Reply::Partner { handle },
            None => Reply::Error {
                line: "ERROR 105 Invalid chat name".into(),
            },
        }
    }

    pub fn chat_send(&self, session: u64, chat: &str, body: &str) -> Reply {
        let mut w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        let id = w.id();
        match w.chats.post(id, chat, &user, body) {
            Some((_, to)) if w.blocks(&to, &user) => {
                // Never arrives: it stays SENDING, as it did for a blocked sender.
                w.chats.seen(&to, id);
                Reply::ChatSent {
                    message: id,
                    reachable: false,
                }
            }
            Some((_, to)) => {
                self.deliver_chat(&w, id, &to);
                let reachable = w.reachable(&to);
                if !reachable {
                    w.hold_until_reachable(&to, id);
                }
                Reply::ChatSent {
                    message: id,
                    reachable,
                }
            }
            None => Reply::Error {
                line: "ERROR 105 Invalid chat name".into(),
            },
        }
    }

    pub(super) fn deliver_chat(&self, w: &World, message: u64, to: &str) -> usize {
        let sessions = w.sessions_of(to);
        for s in &sessions {
            w.send(*s, &Down::ChatReceived { message });
        }
        sessions.len()
    }

    pub fn chat_get(&self, message: u64) -> Reply {
        match self.world().chats.get(message) {
            Some(m) => Reply::Message { message: m.clone() },
            None => Reply::Error {
                line: "ERROR 14 Invalid message id".into(),
            },
        }
    }

    pub fn chat_seen(&self, session: u64, message: u64) -> Reply {
        let mut w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        if w.chats.get(message).is_none() {
            return Reply::Error {
                line: "ERROR 14 Invalid message id".into(),
            };
        }
        w.note_read(&user, message);
        Reply::Ok
    }

    pub fn missed_chats(&self, session: u64) -> Reply {
        let w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        Reply::Ids {
            ids: w.chats.unseen(&user),
        }
    }

    /// `SET USER <h> ISAUTHORIZED TRUE`: the requester becomes a contact of the account (and,
    /// if it is an account that asked, the account one of theirs).
    pub fn authorize(&self, session: u64, handle: &str) -> Reply {
        let mut w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        let handle = accounts::canonical(handle).unwrap_or_else(|| handle.to_ascii_lowercase());
        w.authorized
            .entry(user.clone())
            .or_default()
            .insert(handle.clone());
        w.contacts_of(&user).insert(handle.clone(), buddy::ADDED);
        w.tell_account(
            &user,
            &Down::BuddyStatus {
                handle: handle.clone(),
                status: buddy::ADDED,
            },
        );
        let asked = accounts::account(&handle).is_some()
            && w.contacts_of(&handle).get(&user.to_ascii_lowercase()) == Some(&buddy::PENDING);
        if asked {
            w.contacts_of(&handle)
                .insert(user.to_ascii_lowercase(), buddy::ADDED);
            w.tell_account(
                &handle,
                &Down::BuddyStatus {
                    handle: user.clone(),
                    status: buddy::ADDED,
                },
            );
        }
        Reply::Ok
    }

    /// `SET USER <h> ISAUTHORIZED FALSE`: the request is refused (nothing is told to the
    /// requester, as Skype told nothing), or an authorization withdrawn.
    pub fn deauthorize(&self, session: u64, handle: &str) -> Reply {
        let mut w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        let handle = handle.to_ascii_lowercase();
        if let Some(set) = w.authorized.get_mut(&user) {
            set.remove(&handle);
        }
        if let Some(waiting) = w.pending_auth.get_mut(&user.to_ascii_lowercase()) {
            waiting.retain(|(from, _)| !from.eq_ignore_ascii_case(&handle));
        }
        Reply::Ok
    }

    /// `SET USER <h> ISBLOCKED TRUE|FALSE`: a blocked name's chats and contact requests no
    /// longer reach the account.
    pub fn block(&self, session: u64, handle: &str, on: bool) -> Reply {
        let mut w = self.world();
        let Some(user) = w
            .sessions
            .get(&session)
            .map(|s| s.user.to_ascii_lowercase())
        else {
            return not_online();
        };
        let set = w.blocked.entry(user).or_default();
        if on {
            set.insert(handle.to_ascii_lowercase());
        } else {
            set.remove(&handle.to_ascii_lowercase());
        }
        Reply::Ok
    }
}
