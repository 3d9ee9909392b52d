//! Chats: incoming Skype chat messages become FreeSWITCH MESSAGE events (no message lost),
//! and outgoing chats arrive from the listener and from FreeSWITCH's event socket.

use super::Gateway;
use crate::switch::listener::EventBus;

/// Starts chat delivery. Not built yet: incoming chats stay unseen in the client (and in the
/// network's store), so nothing is lost until it is.
pub fn start(_gw: &Gateway, _events: EventBus) {
    tracing::warn!("chat delivery is not built yet: incoming Skype chats are not reported");
}
