//! Chats and contacts as clients use them: dialogs, messages, SEEN, contact authorisation.

use super::*;

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
            Some((_, to)) => {
                self.deliver_chat(&w, id, &to);
                Reply::ChatSent { message: id }
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
        w.chats.seen(&user, message);
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

    pub fn authorize(&self, session: u64, handle: &str) -> Reply {
        let mut w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        w.authorized
            .entry(user)
            .or_default()
            .insert(handle.to_ascii_lowercase());
        Reply::Ok
    }
}
