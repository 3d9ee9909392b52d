//! The boundary between an X11 transport and what speaks the Skype API over it.
//!
//! Both roles are plain bounded channels of whole messages (text without the NUL), so that the
//! session and the emulator's client logic can be driven without an X server in unit tests
//! (spec 13, item 13), and the X11 code stays a transport adapter.

use tokio::sync::mpsc;

/// What the controller-side link reports to the API session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The client's API window was found (or found again after a restart).
    Attached { window: u32 },
    /// One complete message from the client.
    Message(String),
    /// The client's window vanished (BadWindow, property deleted) or the X server went away.
    /// The link keeps watching `_SKYPE_INSTANCE` and reports `Attached` again.
    Detached { reason: String },
}

/// The controller's end of a link: send whole commands, receive [`LinkEvent`]s.
/// Dropping both halves stops the link.
#[derive(Debug)]
pub struct ControllerLink {
    pub outgoing: mpsc::Sender<String>,
    pub events: mpsc::Receiver<LinkEvent>,
}

/// A message between the emulated client and one controller window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMessage {
    /// The controller's window id (the `window` field of the ClientMessages it sent).
    pub peer: u32,
    pub text: String,
}

/// Fault injection on the client's sending side (spec 13, item 2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendFaults {
    /// Do not send the BEGIN chunk of this message: the controller sees only continuations.
    pub drop_begin: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOutgoing {
    pub peer: u32,
    pub text: String,
    pub faults: SendFaults,
}

/// The emulated client's end: receive messages from any controller, reply to a chosen one.
#[derive(Debug)]
pub struct ClientLink {
    pub incoming: mpsc::Receiver<PeerMessage>,
    pub outgoing: mpsc::Sender<ClientOutgoing>,
}

/// Depth of the link queues: generous for bursts of notifications, bounded all the same.
pub const LINK_QUEUE: usize = 1024;
