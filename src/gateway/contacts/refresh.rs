//! The full read of an interface's contacts when its client is ready (and again after every
//! reconnect): `SEARCH FRIENDS`, then `GET USER <h> ONLINESTATUS` and `FULLNAME` for each, a
//! few contacts at a time so a long list does not crowd calls and chats out of the API.

use super::{is_handle, Contact, BOOK_LIMIT};
use crate::gateway::Gateway;
use crate::skype::api::{Command, Handle, Notification, UserProperty};
use crate::skype::session::SessionHandle;
use futures_util::stream::{self, StreamExt};
use tracing::{debug, info, warn};

/// Contacts read at the same time.
const AT_ONCE: usize = 4;

pub async fn refresh(gw: Gateway, interface: u32, login: String, session: SessionHandle) {
    let handles = match session.request(Command::SearchFriends).await {
        Ok(Notification::Users(handles)) => handles,
        Ok(other) => {
            debug!(reply = %other, "SEARCH FRIENDS answered with something else");
            return;
        }
        Err(e) => {
            warn!(error = %e, "cannot read the contact list");
            return;
        }
    };
    let handles: Vec<Handle> = handles
        .iter()
        .filter(|h| is_handle(h))
        .take(BOOK_LIMIT)
        .filter_map(|h| Handle::new(h).ok())
        .collect();
    let contacts: Vec<Contact> = stream::iter(handles)
        .map(|handle| read(&session, handle))
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    info!(contacts = contacts.len(), "contact list read");
    for contact in &contacts {
        gw.presence.push(contact.presence(&login, false));
    }
    gw.contacts.replace(interface, contacts);
}

/// Reads one contact that joined the list.
pub async fn read_one(
    gw: Gateway,
    interface: u32,
    login: String,
    session: SessionHandle,
    handle: String,
) {
    let Ok(handle) = Handle::new(&handle) else {
        return;
    };
    let contact = read(&session, handle).await;
    gw.presence.push(contact.presence(&login, false));
    gw.contacts.upsert(interface, contact);
}

async fn read(session: &SessionHandle, handle: Handle) -> Contact {
    let get = |property| {
        session.request(Command::GetUser {
            handle: handle.clone(),
            property,
        })
    };
    let (status, name) = tokio::join!(get(UserProperty::OnlineStatus), get(UserProperty::FullName));
    let value = |reply: Result<Notification, _>| match reply {
        Ok(Notification::User { value, .. }) => Some(value),
        _ => None,
    };
    let mut contact = Contact::new(handle.as_str());
    if let Some(status) = value(status) {
        contact.status = super::status_word(&status);
    }
    if let Some(name) = value(name) {
        contact.display_name = super::inert(&name, super::NAME_LIMIT);
    }
    contact
}
