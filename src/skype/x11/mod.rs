//! The X11 transport of the Skype Desktop API (spec section 2), in both roles:
//!
//! - [`spawn_controller_link`]: what the sidecar runs per interface. It finds the client
//!   through the `_SKYPE_INSTANCE` root property, follows it across client restarts and X
//!   server restarts, and exchanges whole messages through a [`ControllerLink`].
//! - [`spawn_client_endpoint`]: what the emulator runs to stand in for a Skype client. It
//!   advertises a window and talks to any number of controllers through a [`ClientLink`].
//!
//! Each link or endpoint owns its own X connection, so an X error on one never reaches
//! another (the original module's process-wide error handler did exactly that).
//!
//! [`ControllerLink`]: crate::skype::link::ControllerLink
//! [`ClientLink`]: crate::skype::link::ClientLink

mod client;
mod connection;
mod controller;
mod stream;

pub use client::{spawn_client_endpoint, ClientEndpoint};
pub use controller::spawn_controller_link;

use crate::skype::wire::{Dropped, Outcome};
use tracing::{error, warn};

#[derive(Debug, thiserror::Error)]
pub enum X11Error {
    #[error("cannot open X display {display}: {source}")]
    Connect {
        display: String,
        #[source]
        source: x11rb::errors::ConnectError,
    },
    #[error("X display has no screen {screen}")]
    NoScreen { screen: usize },
    #[error("X connection failed: {0}")]
    Connection(#[from] x11rb::errors::ConnectionError),
    #[error("X request failed: {0}")]
    Request(#[from] x11rb::errors::ReplyError),
    #[error("X request failed: {0}")]
    RequestOrId(#[from] x11rb::errors::ReplyOrIdError),
    #[error("the X server did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// Logs what the reassembly dropped or repaired, once per event, for the given peer window.
fn log_outcome(peer: u32, outcome: &Outcome) {
    match outcome.dropped {
        Some(dropped @ (Dropped::Interrupted { .. } | Dropped::Orphan { .. })) => {
            warn!(peer = format_args!("{peer:#x}"), "{dropped}")
        }
        Some(dropped) => error!(peer = format_args!("{peer:#x}"), "{dropped}"),
        None => {}
    }
    if let Some(message) = outcome.message.as_ref().filter(|m| m.lossy) {
        error!(
            peer = format_args!("{peer:#x}"),
            text = %message.text,
            "message was not valid UTF-8; undecodable bytes replaced"
        );
    }
}
