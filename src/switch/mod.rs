//! Everything that talks to FreeSWITCH: the outbound `socket` acceptor, the inbound ESL
//! connection and the typed link the gateway uses, the sidecar's own ESL-compatible listener,
//! and the media transports.

pub mod esl;
pub mod event_link;
pub mod hosts_dialplan;
pub mod inbound;
pub mod link;
pub mod listener;
pub mod media;
pub mod originate;
pub mod outbound;
pub mod requests;
pub mod shared_hash;
pub mod unicast;

/// The cause a channel is hung up with; the ESL crate's type, named here so the gateway
/// does not depend on the crate.
pub use freeswitch_esl_tokio::HangupCause;
pub use link::{SwitchError, SwitchLink};
