//! Messages from the client: replies and unsolicited notifications look the same on the wire,
//! except that replies to tagged commands carry the tag.
//!
//! Tokens are separated by single spaces (as the client writes them). Object and property
//! keywords match case-insensitively and are kept upper-case; values that are free text keep
//! every byte, spaces included. Anything that does not fit a known shape becomes
//! [`Notification::Unknown`] with the text as received, so parsing never fails.

use super::token::{CallId, ChatMessageId};
use std::fmt;

/// One message from the client: the optional `#tag` (without the `#`) and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub tag: Option<String>,
    pub notification: Notification,
}

impl Incoming {
    pub fn parse(text: &str) -> Self {
        let (tag, body) = split_tag(text);
        Incoming {
            tag,
            notification: Notification::parse(body),
        }
    }
}

impl fmt::Display for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(tag) = &self.tag {
            write!(f, "#{tag} ")?;
        }
        self.notification.fmt(f)
    }
}

/// Splits `#tag rest` into the tag and the rest; text without a leading `#` has no tag.
pub(crate) fn split_tag(text: &str) -> (Option<String>, &str) {
    match text.strip_prefix('#') {
        Some(tagged) => {
            let (tag, body) = word(tagged);
            (Some(tag.to_owned()), body)
        }
        None => (None, text),
    }
}

/// The first space-separated word and everything after that space.
fn word(text: &str) -> (&str, &str) {
    text.split_once(' ').unwrap_or((text, ""))
}

fn upper(text: &str) -> String {
    text.to_ascii_uppercase()
}

fn on_off(value: &str) -> Option<bool> {
    match upper(value.trim()).as_str() {
        "ON" | "TRUE" => Some(true),
        "OFF" | "FALSE" => Some(false),
        _ => None,
    }
}

/// What one client message says. Spec 4.1, 4.3, 4.4, 8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    Call {
        id: CallId,
        event: CallEvent,
    },
    Chat {
        name: String,
        event: ChatEvent,
    },
    ChatMessage {
        id: ChatMessageId,
        event: ChatMessageEvent,
    },
    /// `CHATMESSAGES <id>, <id>...`: the reply to `SEARCH MISSEDCHATMESSAGES` (may be empty).
    ChatMessages(Vec<ChatMessageId>),
    /// `USERS <h>, <h>...`: the reply to `SEARCH FRIENDS` (may be empty).
    Users(Vec<String>),
    /// `USER <h> RECEIVEDAUTHREQUEST <text>`: a contact request.
    AuthRequest {
        handle: String,
        text: String,
    },
    /// Any other `USER <h> <property> <value>`, e.g. the echo of `SET USER .. ISAUTHORIZED`.
    User {
        handle: String,
        property: String,
        value: String,
    },
    /// Legacy `MESSAGE <id> <property> <value>`.
    Message {
        id: u64,
        property: String,
        value: String,
    },
    Voicemail {
        id: u64,
        property: String,
        value: String,
    },
    CurrentUserHandle(String),
    ConnStatus(ConnStatus),
    /// `USERSTATUS <status>`, kept as sent (ONLINE, INVISIBLE, DND, ...).
    UserStatus(String),
    Protocol(u32),
    Ok,
    SilentMode(bool),
    AutoAway(bool),
    WindowState(String),
    /// `PROFILE <key> <value>`; see [`Notification::pstn_balance`].
    Profile {
        key: String,
        value: String,
    },
    Pong,
    /// `ERROR <code> [<text>]`.
    Error {
        code: u32,
        text: String,
    },
    /// The client's echo of an `ALTER <object> <id> <action...>` command.
    Alter {
        object: String,
        id: String,
        action: String,
    },
    Unknown(String),
}

/// `ERROR 68`: the user has not (yet) allowed this application to use the API.
pub const ERROR_NOT_AUTHORIZED: u32 = 68;

impl Notification {
    pub fn parse(body: &str) -> Self {
        Self::parse_known(body).unwrap_or_else(|| Notification::Unknown(body.to_owned()))
    }

    fn parse_known(body: &str) -> Option<Self> {
        let (object, rest) = word(body);
        let keyword_only = rest.trim().is_empty();
        Some(match upper(object).as_str() {
            "CALL" => parse_call(rest)?,
            "CHAT" => parse_chat(rest)?,
            "CHATMESSAGE" => parse_chat_message(rest)?,
            "CHATMESSAGES" => parse_chat_message_list(rest)?,
            "USER" => parse_user(rest)?,
            "USERS" => Notification::Users(
                rest.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            "MESSAGE" => {
                let (id, property, value) = id_property_value(rest)?;
                Notification::Message {
                    id,
                    property,
                    value,
                }
            }
            "VOICEMAIL" => {
                let (id, property, value) = id_property_value(rest)?;
                Notification::Voicemail {
                    id,
                    property,
                    value,
                }
            }
            "CURRENTUSERHANDLE" if !keyword_only => {
                Notification::CurrentUserHandle(rest.trim().to_owned())
            }
            "CONNSTATUS" if !keyword_only => Notification::ConnStatus(ConnStatus::parse(rest)),
            "USERSTATUS" if !keyword_only => Notification::UserStatus(rest.trim().to_owned()),
            "PROTOCOL" => Notification::Protocol(rest.trim().parse().ok()?),
            "OK" if keyword_only => Notification::Ok,
            "PONG" if keyword_only => Notification::Pong,
            "SILENT_MODE" => Notification::SilentMode(on_off(rest)?),
            "AUTOAWAY" => Notification::AutoAway(on_off(rest)?),
            "WINDOWSTATE" if !keyword_only => Notification::WindowState(rest.trim().to_owned()),
            "PROFILE" => {
                let (key, value) = word(rest);
                if key.is_empty() {
                    return None;
                }
                Notification::Profile {
                    key: upper(key),
                    value: value.to_owned(),
                }
            }
            "ERROR" => {
                let (code, text) = word(rest);
                Notification::Error {
                    code: code.trim().parse().ok()?,
                    text: text.to_owned(),
                }
            }
            "ALTER" => {
                let (object, rest) = word(rest);
                let (id, action) = word(rest);
                if object.is_empty() || id.is_empty() || action.is_empty() {
                    return None;
                }
                Notification::Alter {
                    object: upper(object),
                    id: id.to_owned(),
                    action: action.to_owned(),
                }
            }
            _ => return None,
        })
    }

    /// Worth telling the rest of the service even when it arrived as the reply to a tagged
    /// request: it reports a change of state (a call's status, a chat message's status, ...),
    /// not just a value someone asked for.
    pub fn carries_state(&self) -> bool {
        match self {
            Notification::Call { event, .. } => matches!(event, CallEvent::Status(_)),
            Notification::Chat { event, .. } => matches!(event, ChatEvent::Status(_)),
            Notification::ChatMessage { event, .. } => {
                matches!(event, ChatMessageEvent::Status(_))
            }
            Notification::Voicemail { property, .. } => property == "STATUS",
            Notification::ConnStatus(_)
            | Notification::UserStatus(_)
            | Notification::CurrentUserHandle(_)
            | Notification::AuthRequest { .. } => true,
            _ => false,
        }
    }

    /// `ERROR 68`: application not authorized (yet).
    pub fn is_not_authorized(&self) -> bool {
        matches!(self, Notification::Error { code, .. } if *code == ERROR_NOT_AUTHORIZED)
    }

    /// The SkypeOut balance in hundredths of the currency, from `PROFILE PSTN_BALANCE <n>`.
    pub fn pstn_balance(&self) -> Option<i64> {
        match self {
            Notification::Profile { key, value } if key == "PSTN_BALANCE" => {
                value.trim().parse().ok()
            }
            _ => None,
        }
    }

    /// The currency code from `PROFILE PSTN_BALANCE_CURRENCY <code>`.
    pub fn pstn_balance_currency(&self) -> Option<&str> {
        match self {
            Notification::Profile { key, value } if key == "PSTN_BALANCE_CURRENCY" => {
                Some(value.trim())
            }
            _ => None,
        }
    }
}

fn parse_call(rest: &str) -> Option<Notification> {
    let (id, rest) = word(rest);
    let id = CallId(id.parse().ok()?);
    let (property, value) = word(rest);
    if property.is_empty() {
        return None;
    }
    Some(Notification::Call {
        id,
        event: CallEvent::parse(&upper(property), value),
    })
}

fn parse_chat(rest: &str) -> Option<Notification> {
    let (name, rest) = word(rest);
    let (property, value) = word(rest);
    if name.is_empty() || property.is_empty() {
        return None;
    }
    let property = upper(property);
    let event = match property.as_str() {
        "STATUS" => ChatEvent::Status(ChatStatus::parse(value)),
        "DIALOG_PARTNER" => ChatEvent::DialogPartner(value.to_owned()),
        _ => ChatEvent::Property {
            name: property,
            value: value.to_owned(),
        },
    };
    Some(Notification::Chat {
        name: name.to_owned(),
        event,
    })
}

fn parse_chat_message(rest: &str) -> Option<Notification> {
    let (id, rest) = word(rest);
    let id = ChatMessageId(id.parse().ok()?);
    let (property, value) = word(rest);
    if property.is_empty() {
        return None;
    }
    let property = upper(property);
    let text = value.to_owned();
    let event = match property.as_str() {
        "STATUS" => ChatMessageEvent::Status(ChatMessageStatus::parse(value)),
        "TYPE" => ChatMessageEvent::Type(ChatMessageType::parse(value)),
        "CHATNAME" => ChatMessageEvent::ChatName(text),
        "FROM_HANDLE" => ChatMessageEvent::FromHandle(text),
        "FROM_DISPNAME" => ChatMessageEvent::FromDispname(text),
        "BODY" => ChatMessageEvent::Body(text),
        "TIMESTAMP" => match value.trim().parse() {
            Ok(seconds) => ChatMessageEvent::Timestamp(seconds),
            Err(_) => ChatMessageEvent::Property {
                name: property,
                value: text,
            },
        },
        _ => ChatMessageEvent::Property {
            name: property,
            value: text,
        },
    };
    Some(Notification::ChatMessage { id, event })
}

fn parse_chat_message_list(rest: &str) -> Option<Notification> {
    let mut ids = Vec::new();
    for item in rest.split(',') {
        let item = item.trim();
        if !item.is_empty() {
            ids.push(ChatMessageId(item.parse().ok()?));
        }
    }
    Some(Notification::ChatMessages(ids))
}

fn parse_user(rest: &str) -> Option<Notification> {
    let (handle, rest) = word(rest);
    let (property, value) = word(rest);
    if handle.is_empty() || property.is_empty() {
        return None;
    }
    let property = upper(property);
    Some(if property == "RECEIVEDAUTHREQUEST" {
        Notification::AuthRequest {
            handle: handle.to_owned(),
            text: value.to_owned(),
        }
    } else {
        Notification::User {
            handle: handle.to_owned(),
            property,
            value: value.to_owned(),
        }
    })
}

fn id_property_value(rest: &str) -> Option<(u64, String, String)> {
    let (id, rest) = word(rest);
    let id = id.parse().ok()?;
    let (property, value) = word(rest);
    if property.is_empty() {
        return None;
    }
    Some((id, upper(property), value.to_owned()))
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notification::Call { id, event } => write!(f, "CALL {id} {event}"),
            Notification::Chat { name, event } => write!(f, "CHAT {name} {event}"),
            Notification::ChatMessage { id, event } => write!(f, "CHATMESSAGE {id} {event}"),
            Notification::Users(handles) => {
                f.write_str("USERS")?;
                for (i, handle) in handles.iter().enumerate() {
                    let separator = if i == 0 { " " } else { ", " };
                    write!(f, "{separator}{handle}")?;
                }
                Ok(())
            }
            Notification::ChatMessages(ids) => {
                f.write_str("CHATMESSAGES")?;
                for (i, id) in ids.iter().enumerate() {
                    let separator = if i == 0 { " " } else { ", " };
                    write!(f, "{separator}{id}")?;
                }
                Ok(())
            }
            Notification::AuthRequest { handle, text } => {
                write!(f, "USER {handle} RECEIVEDAUTHREQUEST {text}")
            }
            Notification::User {
                handle,
                property,
                value,
            } => write!(f, "USER {handle} {property} {value}"),
            Notification::Message {
                id,
                property,
                value,
            } => write!(f, "MESSAGE {id} {property} {value}"),
            Notification::Voicemail {
                id,
                property,
                value,
            } => write!(f, "VOICEMAIL {id} {property} {value}"),
            Notification::CurrentUserHandle(user) => write!(f, "CURRENTUSERHANDLE {user}"),
            Notification::ConnStatus(status) => write!(f, "CONNSTATUS {status}"),
            Notification::UserStatus(status) => write!(f, "USERSTATUS {status}"),
            Notification::Protocol(version) => write!(f, "PROTOCOL {version}"),
            Notification::Ok => f.write_str("OK"),
            Notification::SilentMode(on) => write!(f, "SILENT_MODE {}", on_off_text(*on)),
            Notification::AutoAway(on) => write!(f, "AUTOAWAY {}", on_off_text(*on)),
            Notification::WindowState(state) => write!(f, "WINDOWSTATE {state}"),
            Notification::Profile { key, value } => write!(f, "PROFILE {key} {value}"),
            Notification::Pong => f.write_str("PONG"),
            Notification::Error { code, text } if text.is_empty() => write!(f, "ERROR {code}"),
            Notification::Error { code, text } => write!(f, "ERROR {code} {text}"),
            Notification::Alter { object, id, action } => {
                write!(f, "ALTER {object} {id} {action}")
            }
            Notification::Unknown(text) => f.write_str(text),
        }
    }
}

fn on_off_text(on: bool) -> &'static str {
    if on {
        "ON"
    } else {
        "OFF"
    }
}

/// The property part of a `CALL <id> ...` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    Status(CallStatus),
    PartnerHandle(String),
    /// The caller's display name, every word of it.
    PartnerDispname(String),
    Dtmf(String),
    FailureReason(u32),
    /// Seconds since the call went up, sent about every second.
    Duration(u64),
    /// `VM_DURATION 0` means the callee's voicemail picked up.
    VmDuration(u64),
    ConfId(u64),
    Type(CallType),
    /// Whether the client's voice input is active (its input socket is open).
    VaaInputStatus(bool),
    /// Anything else (`RATE`, `SEEN`, a numeric property with a non-numeric value, ...).
    Property {
        name: String,
        value: String,
    },
}

impl CallEvent {
    fn parse(property: &str, value: &str) -> Self {
        let number = || value.trim().parse::<u64>().ok();
        let parsed = match property {
            "STATUS" => Some(CallEvent::Status(CallStatus::parse(value))),
            "PARTNER_HANDLE" => Some(CallEvent::PartnerHandle(value.to_owned())),
            "PARTNER_DISPNAME" => Some(CallEvent::PartnerDispname(value.to_owned())),
            "DTMF" => Some(CallEvent::Dtmf(value.to_owned())),
            "FAILUREREASON" => value.trim().parse().ok().map(CallEvent::FailureReason),
            "DURATION" => number().map(CallEvent::Duration),
            "VM_DURATION" => number().map(CallEvent::VmDuration),
            "CONF_ID" => number().map(CallEvent::ConfId),
            "TYPE" => Some(CallEvent::Type(CallType::parse(value))),
            "VAA_INPUT_STATUS" => on_off(value).map(CallEvent::VaaInputStatus),
            _ => None,
        };
        parsed.unwrap_or_else(|| CallEvent::Property {
            name: property.to_owned(),
            value: value.to_owned(),
        })
    }
}

impl fmt::Display for CallEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallEvent::Status(status) => write!(f, "STATUS {status}"),
            CallEvent::PartnerHandle(handle) => write!(f, "PARTNER_HANDLE {handle}"),
            CallEvent::PartnerDispname(name) => write!(f, "PARTNER_DISPNAME {name}"),
            CallEvent::Dtmf(digit) => write!(f, "DTMF {digit}"),
            CallEvent::FailureReason(reason) => write!(f, "FAILUREREASON {reason}"),
            CallEvent::Duration(seconds) => write!(f, "DURATION {seconds}"),
            CallEvent::VmDuration(seconds) => write!(f, "VM_DURATION {seconds}"),
            CallEvent::ConfId(id) => write!(f, "CONF_ID {id}"),
            CallEvent::Type(kind) => write!(f, "TYPE {kind}"),
            CallEvent::VaaInputStatus(on) => {
                write!(f, "VAA_INPUT_STATUS {}", if *on { "TRUE" } else { "FALSE" })
            }
            CallEvent::Property { name, value } if value.is_empty() => f.write_str(name),
            CallEvent::Property { name, value } => write!(f, "{name} {value}"),
        }
    }
}

macro_rules! keyword_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name {
            $($variant,)+
            /// A value this build does not know, kept as sent (upper-cased).
            Other(String),
        }

        impl $name {
            pub fn parse(value: &str) -> Self {
                let value = upper(value.trim());
                match value.as_str() {
                    $($text => $name::$variant,)+
                    _ => $name::Other(value),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(text) => text,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword_enum!(
    /// `CALL <id> STATUS <s>`, spec 5.
    CallStatus {
        Unplaced => "UNPLACED",
        Routing => "ROUTING",
        EarlyMedia => "EARLYMEDIA",
        Ringing => "RINGING",
        InProgress => "INPROGRESS",
        Finished => "FINISHED",
        Missed => "MISSED",
        Busy => "BUSY",
        Refused => "REFUSED",
        Failed => "FAILED",
        Cancelled => "CANCELLED",
        WaitingRedialCommand => "WAITING_REDIAL_COMMAND",
        RemoteHold => "REMOTEHOLD",
        LocalHold => "LOCALHOLD",
        OnHold => "ONHOLD",
        Transferring => "TRANSFERRING",
        Transferred => "TRANSFERRED",
        VmBufferingGreeting => "VM_BUFFERING_GREETING",
        VmPlayingGreeting => "VM_PLAYING_GREETING",
        VmRecording => "VM_RECORDING",
        VmUploading => "VM_UPLOADING",
        VmSent => "VM_SENT",
        VmCancelled => "VM_CANCELLED",
        VmFailed => "VM_FAILED",
    }
);

impl CallStatus {
    /// The call is over; no further status will follow.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            CallStatus::Finished
                | CallStatus::Missed
                | CallStatus::Busy
                | CallStatus::Refused
                | CallStatus::Failed
                | CallStatus::Cancelled
                | CallStatus::WaitingRedialCommand
        )
    }

    /// One of the `VM_*` statuses: the call reached the callee's Skype voicemail.
    pub fn is_voicemail(&self) -> bool {
        self.as_str().starts_with("VM_")
    }
}

keyword_enum!(
    /// `CALL <id> TYPE <t>`.
    CallType {
        IncomingPstn => "INCOMING_PSTN",
        OutgoingPstn => "OUTGOING_PSTN",
        IncomingP2p => "INCOMING_P2P",
        OutgoingP2p => "OUTGOING_P2P",
    }
);

impl CallType {
    pub fn is_incoming(&self) -> bool {
        self.as_str().starts_with("INCOMING")
    }
}

keyword_enum!(
    /// `CONNSTATUS <s>`: the client's connection to the Skype network.
    ConnStatus {
        Offline => "OFFLINE",
        Connecting => "CONNECTING",
        Pausing => "PAUSING",
        Online => "ONLINE",
    }
);

keyword_enum!(
    /// `CHAT <name> STATUS <s>`.
    ChatStatus {
        Dialog => "DIALOG",
        LegacyDialog => "LEGACY_DIALOG",
        MultiSubscribed => "MULTI_SUBSCRIBED",
        Unsubscribed => "UNSUBSCRIBED",
    }
);

keyword_enum!(
    /// `CHATMESSAGE <id> STATUS <s>`.
    ChatMessageStatus {
        Sending => "SENDING",
        Sent => "SENT",
        Received => "RECEIVED",
        Read => "READ",
    }
);

keyword_enum!(
    /// `CHATMESSAGE <id> TYPE <t>`; only `SAID` carries a message to deliver.
    ChatMessageType {
        Said => "SAID",
        Emoted => "EMOTED",
        SetTopic => "SETTOPIC",
    }
);

/// The property part of a `CHAT <name> ...` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatEvent {
    Status(ChatStatus),
    DialogPartner(String),
    Property { name: String, value: String },
}

impl fmt::Display for ChatEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatEvent::Status(status) => write!(f, "STATUS {status}"),
            ChatEvent::DialogPartner(handle) => write!(f, "DIALOG_PARTNER {handle}"),
            ChatEvent::Property { name, value } => write!(f, "{name} {value}"),
        }
    }
}

/// The property part of a `CHATMESSAGE <id> ...` message. Text values are the whole rest of the
/// line, spaces and UTF-8 included, without any length cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatMessageEvent {
    Status(ChatMessageStatus),
    Type(ChatMessageType),
    ChatName(String),
    FromHandle(String),
    FromDispname(String),
    Body(String),
    /// Seconds since the Unix epoch.
    Timestamp(u64),
    Property {
        name: String,
        value: String,
    },
}

impl fmt::Display for ChatMessageEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatMessageEvent::Status(status) => write!(f, "STATUS {status}"),
            ChatMessageEvent::Type(kind) => write!(f, "TYPE {kind}"),
            ChatMessageEvent::ChatName(name) => write!(f, "CHATNAME {name}"),
            ChatMessageEvent::FromHandle(handle) => write!(f, "FROM_HANDLE {handle}"),
            ChatMessageEvent::FromDispname(name) => write!(f, "FROM_DISPNAME {name}"),
            ChatMessageEvent::Body(body) => write!(f, "BODY {body}"),
            ChatMessageEvent::Timestamp(seconds) => write!(f, "TIMESTAMP {seconds}"),
            ChatMessageEvent::Property { name, value } => write!(f, "{name} {value}"),
        }
    }
}

#[cfg(test)]
mod tests;
