//! Sending a chat from an interface: `CHAT CREATE <partner>` once per partner (the chat name is
//! cached, bounded), then `CHATMESSAGE <chat> <text>`.

use super::receipts::{ChatTicket, Followed};
use crate::gateway::Gateway;
use crate::skype::api::{
    ApiError, ChatBody, ChatEvent, ChatMessageEvent, ChatName, Command, Handle, Notification,
};
use crate::skype::session::{SessionError, SessionState};
use dashmap::DashMap;
use tracing::{debug, info, warn};

/// Chat names remembered per (interface id, partner).
pub const CHAT_CACHE_CAPACITY: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("no recipient given")]
    NoRecipient,
    #[error("give an interface name or the Skype name to send from")]
    NoSender,
    #[error("no interface named '{0}'")]
    NoSuchInterface(String),
    #[error("no interface is logged in as '{0}'")]
    NoInterfaceForUser(String),
    #[error(transparent)]
    Invalid(#[from] ApiError),
    #[error("interface {interface}: {source}")]
    Client {
        interface: String,
        source: SessionError,
    },
    #[error("interface {interface}: CHAT CREATE {to} answered `{reply}`")]
    NoChat {
        interface: String,
        to: String,
        reply: String,
    },
}

/// A chat message the client took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentChat {
    /// The ticket's id, which the chat's `skypopen::chat_status` notices carry.
    pub chat_id: String,
    pub interface: String,
    pub chatname: String,
    /// The client's id of the sent message, when its reply told it.
    pub message_id: Option<u64>,
}

/// Cached chat names of dialog chats, by (interface id, partner).
#[derive(Debug, Default)]
pub struct ChatNames {
    names: DashMap<(u32, String), String>,
}

impl ChatNames {
    fn get(&self, iface: u32, partner: &str) -> Option<String> {
        self.names
            .get(&(iface, partner.to_lowercase()))
            .map(|n| n.clone())
    }

    fn put(&self, iface: u32, partner: &str, chat: &str) {
        if self.names.len() >= CHAT_CACHE_CAPACITY {
            // Any entry will do: a forgotten one costs one more CHAT CREATE.
            let victim = self.names.iter().next().map(|e| e.key().clone());
            if let Some(victim) = victim {
                self.names.remove(&victim);
            }
        }
        self.names
            .insert((iface, partner.to_lowercase()), chat.to_string());
    }

    fn forget(&self, iface: u32, partner: &str) {
        self.names.remove(&(iface, partner.to_lowercase()));
    }

    /// Drops every chat of one interface (its client restarted: names may be stale).
    pub fn forget_interface(&self, iface: u32) {
        self.names.retain(|(id, _), _| *id != iface);
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The Skype name part of `user@host/resource`, as FreeSWITCH's chat `from` may carry it.
fn bare_user(from: &str) -> &str {
    let end = from.find(['@', '/']).unwrap_or(from.len());
    &from[..end]
}

/// Sends `text` to `to`. The interface is `iface` (its exact name) when given; else every
/// interface logged in as `from_user` is a candidate, usable ones (online, not DOWN) first,
/// then by id, and a client that fails (offline, gone, refusing) hands the message to the next:
/// one client of an account losing the network does not lose the account's chats.
pub async fn send_chat(
    gw: &Gateway,
    iface: Option<&str>,
    from_user: Option<&str>,
    to: &str,
    text: &str,
    ticket: &ChatTicket,
) -> Result<SentChat, ChatError> {
    let to = to.trim();
    if to.is_empty() {
        return Err(ChatError::NoRecipient);
    }
    let partner = Handle::new(to)?;
    // Checked before anything goes to a client.
    ChatBody::new(text)?;
    let mut last_failure = None;
    for handle in candidates(gw, iface, from_user)? {
        match send_from(gw, &handle, &partner, to, text, ticket).await {
            Ok(sent) => return Ok(sent),
            Err(e @ (ChatError::Client { .. } | ChatError::NoChat { .. })) => {
                debug!(interface = %handle.cfg.name, %to, error = %e, "chat not taken by this client; trying the next");
                last_failure = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_failure.unwrap_or(ChatError::NoSender))
}

async fn send_from(
    gw: &Gateway,
    handle: &crate::gateway::interface::InterfaceHandle,
    partner: &Handle,
    to: &str,
    text: &str,
    ticket: &ChatTicket,
) -> Result<SentChat, ChatError> {
    let interface = handle.cfg.name.clone();
    let session = &handle.session;
    let client_err = |source| ChatError::Client {
        interface: interface.clone(),
        source,
    };
    let mut fresh = false;
    let chatname = match gw.chat.names.get(handle.cfg.id, to) {
        Some(name) => name,
        None => {
            fresh = true;
            create_chat(gw, handle, partner).await?
        }
    };
    let sent = match session
        .request(Command::chat_message(&chatname, text)?)
        .await
    {
        Ok(reply) => reply,
        Err(SessionError::Rejected { code, text: why }) if !fresh => {
            // The cached chat may be gone (client restarted): open it again once.
            debug!(interface = %interface, chatname = %chatname, code, %why,
                   "cached chat refused; creating it again");
            gw.chat.names.forget(handle.cfg.id, to);
            let chatname = create_chat(gw, handle, partner).await?;
            let reply = session
                .request(Command::chat_message(&chatname, text)?)
                .await
                .map_err(client_err)?;
            return Ok(sent_chat(gw, handle, ticket, chatname, reply, to));
        }
        Err(e) => return Err(client_err(e)),
    };
    Ok(sent_chat(gw, handle, ticket, chatname, sent, to))
}

/// The client took the message: its statuses are followed from here on.
fn sent_chat(
    gw: &Gateway,
    handle: &crate::gateway::interface::InterfaceHandle,
    ticket: &ChatTicket,
    chatname: String,
    reply: Notification,
    to: &str,
) -> SentChat {
    let interface = handle.cfg.name.clone();
    let message_id = match reply {
        Notification::ChatMessage {
            id,
            event: ChatMessageEvent::Status(_),
        } => Some(id.0),
        _ => None,
    };
    info!(interface = %interface, %to, %chatname, message_id = ?message_id,
          chat_id = %ticket.id, "chat sent");
    if let Some(message) = message_id {
        let followed = Followed {
            ticket: ticket.clone(),
            interface: interface.clone(),
            skype_user: handle.cfg.skype_user.clone(),
            to: to.to_string(),
            chatname: chatname.clone(),
            since: std::time::Instant::now(),
            sent: false,
            failed: false,
        };
        for notice in gw.chat.receipts.follow(handle.cfg.id, message, followed) {
            gw.notices.post(notice);
        }
    }
    SentChat {
        chat_id: ticket.id.clone(),
        interface,
        chatname,
        message_id,
    }
}

async fn create_chat(
    gw: &Gateway,
    handle: &crate::gateway::interface::InterfaceHandle,
    partner: &Handle,
) -> Result<String, ChatError> {
    let interface = handle.cfg.name.clone();
    let reply = handle
        .session
        .request(Command::ChatCreate(partner.clone()))
        .await
        .map_err(|source| ChatError::Client {
            interface: interface.clone(),
            source,
        })?;
    match reply {
        Notification::Chat {
            name,
            event: ChatEvent::Status(_),
        } if ChatName::new(&name).is_ok() => {
            gw.chat.names.put(handle.cfg.id, partner.as_str(), &name);
            Ok(name)
        }
        other => {
            warn!(interface = %interface, to = %partner.as_str(), reply = %other, "CHAT CREATE gave no chat");
            Err(ChatError::NoChat {
                interface,
                to: partner.as_str().to_string(),
                reply: other.to_string(),
            })
        }
    }
}

/// The interfaces that may send: the named one alone, or the account's, best first.
fn candidates(
    gw: &Gateway,
    iface: Option<&str>,
    from_user: Option<&str>,
) -> Result<Vec<crate::gateway::interface::InterfaceHandle>, ChatError> {
    if let Some(name) = iface.map(str::trim).filter(|n| !n.is_empty()) {
        return gw
            .interface_by_name(name)
            .map(|h| vec![h])
            .ok_or_else(|| ChatError::NoSuchInterface(name.to_string()));
    }
    let Some(user) = from_user.map(str::trim).filter(|u| !u.is_empty()) else {
        return Err(ChatError::NoSender);
    };
    let user = bare_user(user);
    let mut candidates: Vec<_> = gw
        .interfaces
        .iter()
        .filter(|e| e.cfg.skype_user.eq_ignore_ascii_case(user))
        .map(|e| e.value().clone())
        .collect();
    if candidates.is_empty() {
        return Err(ChatError::NoInterfaceForUser(user.to_string()));
    }
    // Cached: the key reads the registry under its lock, once per candidate is enough.
    candidates.sort_by_cached_key(|h| {
        let ready = matches!(h.session.state(), SessionState::Ready { .. });
        let usable = gw
            .registry
            .get(h.cfg.id)
            .is_some_and(|slot| slot.is_usable());
        (!(ready && usable), !ready, h.cfg.id)
    });
    Ok(candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_user_drops_host_and_resource() {
        assert_eq!(bare_user("user1@skype.local/res"), "user1");
        assert_eq!(bare_user("user1/res"), "user1");
        assert_eq!(bare_user("user1"), "user1");
    }

    #[test]
    fn chat_names_are_bounded_and_per_interface() {
        let names = ChatNames::default();
        for i in 0..(CHAT_CACHE_CAPACITY + 10) {
            names.put(1, &format!("p{i}"), "#a/$b;1");
        }
        assert_eq!(names.len(), CHAT_CACHE_CAPACITY);
        names.put(2, "Bob", "#me/$bob;2");
        assert_eq!(names.get(2, "bob").as_deref(), Some("#me/$bob;2"));
        assert_eq!(names.get(1, "bob"), None);
        names.forget_interface(2);
        assert_eq!(names.get(2, "bob"), None);
    }
}
