//! The Skype Desktop API as typed values: [`Command`]s the sidecar sends, rendered to their exact
//! wire text by `Display`, and [`Incoming`] messages parsed from what the client sends back.
//!
//! Pure code: no I/O, nothing here panics on any input. Keyword matching is case-insensitive;
//! free-text values (display names, chat bodies, handles) are kept byte for byte.

mod command;
mod incoming;
mod token;

pub use command::{
    CallAction, CallProperty, ChatMessageProperty, Command, Presence, ProfileProperty,
    UserProperty, VoicemailAction, WindowState,
};
pub(crate) use incoming::split_tag;
pub use incoming::{
    CallEvent, CallStatus, CallType, ChatEvent, ChatMessageEvent, ChatMessageStatus,
    ChatMessageType, ChatStatus, ConnStatus, Incoming, Notification,
};
pub use token::{
    validate_destination, CallId, ChatBody, ChatMessageId, ChatName, DtmfDigit, Handle,
    PropertyName, RawText,
};

/// A value that cannot be put on the wire as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} {value:?} contains whitespace, which would split it into several arguments")]
    Whitespace { what: &'static str, value: String },
    #[error("{what} {value:?} contains a comma, which Skype reads as a list (a conference call)")]
    Comma { what: &'static str, value: String },
    #[error("{what} {value:?} contains the character {found:?}, which is not allowed there")]
    BadChar {
        what: &'static str,
        value: String,
        found: char,
    },
    #[error("{what} is longer than {max} bytes")]
    TooLong { what: &'static str, max: usize },
    #[error("phone number {value:?} must be '+' followed by 1 to {max} digits")]
    BadNumber { value: String, max: usize },
    #[error("{found:?} is not a DTMF digit (0-9, * or #)")]
    BadDtmf { found: String },
}
