//! Commands the sidecar sends to a client. `Display` renders the exact wire text (without the
//! `#tag ` prefix, which the session adds).

use super::token::{
    CallId, ChatBody, ChatMessageId, ChatName, DtmfDigit, Handle, PropertyName, RawText,
};
use super::ApiError;
use std::fmt;

/// Every command the sidecar sends, spec 4.2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `NAME <app>`: asks the client to let this application use the API.
    Name(Handle),
    /// `PROTOCOL <n>`: the client answers with the highest version it supports up to `n`.
    Protocol(u32),
    SetAutoAway(bool),
    SetWindowState(WindowState),
    SetUserStatus(Presence),
    SetSilentMode(bool),
    /// `CALL <destination>`: places a call.
    Call(Handle),
    GetCall {
        id: CallId,
        property: CallProperty,
    },
    AlterCall {
        id: CallId,
        action: CallAction,
    },
    AlterVoicemail {
        id: u64,
        action: VoicemailAction,
    },
    /// `SET CALL <id> DTMF <d>`: sends one digit to the far end.
    SetCallDtmf {
        id: CallId,
        digit: DtmfDigit,
    },
    /// `SET USER <h> ISAUTHORIZED TRUE`: accepts a contact request.
    AuthorizeUser(Handle),
    /// `SET USER <h> ISAUTHORIZED FALSE`: refuses a contact request.
    DenyUser(Handle),
    /// `SET MESSAGE <id> SEEN` (legacy message objects).
    SetMessageSeen(u64),
    /// `GET CHAT <name> DIALOG_PARTNER`.
    GetChatDialogPartner(ChatName),
    GetChatMessage {
        id: ChatMessageId,
        property: ChatMessageProperty,
    },
    SetChatMessageSeen(ChatMessageId),
    /// `CHAT CREATE <h>`: opens (or finds) the dialog chat with one partner.
    ChatCreate(Handle),
    /// `CHATMESSAGE <chat> <body>`: sends a chat message.
    ChatMessage {
        chat: ChatName,
        body: ChatBody,
    },
    /// `SEARCH MISSEDCHATMESSAGES`: the unread messages, answered with `CHATMESSAGES <ids>`.
    SearchMissedChatMessages,
    /// `SEARCH FRIENDS`: the contact list, answered with `USERS <h>, <h>...`.
    SearchFriends,
    /// `GET USER <h> <property>`, answered with `USER <h> <property> <value>`.
    GetUser {
        handle: Handle,
        property: UserProperty,
    },
    GetProfile(ProfileProperty),
    GetCurrentUserHandle,
    Ping,
    /// Operator-typed text, sent as it is.
    Raw(RawText),
}

impl Command {
    /// `CALL <destination>` after checking the destination (see [`super::validate_destination`]).
    pub fn call(destination: &str) -> Result<Self, ApiError> {
        super::validate_destination(destination).map(Command::Call)
    }

    pub fn dtmf(id: CallId, digit: char) -> Result<Self, ApiError> {
        Ok(Command::SetCallDtmf {
            id,
            digit: DtmfDigit::new(digit)?,
        })
    }

    pub fn chat_message(chat: &str, body: &str) -> Result<Self, ApiError> {
        Ok(Command::ChatMessage {
            chat: ChatName::new(chat)?,
            body: ChatBody::new(body)?,
        })
    }

    pub fn raw(text: &str) -> Result<Self, ApiError> {
        RawText::new(text).map(Command::Raw)
    }
}

fn on_off(on: bool) -> &'static str {
    if on {
        "ON"
    } else {
        "OFF"
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Name(app) => write!(f, "NAME {app}"),
            Command::Protocol(version) => write!(f, "PROTOCOL {version}"),
            Command::SetAutoAway(on) => write!(f, "SET AUTOAWAY {}", on_off(*on)),
            Command::SetWindowState(state) => write!(f, "SET WINDOWSTATE {}", state.as_str()),
            Command::SetUserStatus(status) => write!(f, "SET USERSTATUS {}", status.as_str()),
            Command::SetSilentMode(on) => write!(f, "SET SILENT_MODE {}", on_off(*on)),
            Command::Call(destination) => write!(f, "CALL {destination}"),
            Command::GetCall { id, property } => write!(f, "GET CALL {id} {property}"),
            Command::AlterCall { id, action } => write!(f, "ALTER CALL {id} {action}"),
            Command::AlterVoicemail { id, action } => write!(f, "ALTER VOICEMAIL {id} {action}"),
            Command::SetCallDtmf { id, digit } => write!(f, "SET CALL {id} DTMF {digit}"),
            Command::AuthorizeUser(handle) => write!(f, "SET USER {handle} ISAUTHORIZED TRUE"),
            Command::DenyUser(handle) => write!(f, "SET USER {handle} ISAUTHORIZED FALSE"),
            Command::SetMessageSeen(id) => write!(f, "SET MESSAGE {id} SEEN"),
            Command::GetChatDialogPartner(chat) => write!(f, "GET CHAT {chat} DIALOG_PARTNER"),
            Command::GetChatMessage { id, property } => {
                write!(f, "GET CHATMESSAGE {id} {}", property.as_str())
            }
            Command::SetChatMessageSeen(id) => write!(f, "SET CHATMESSAGE {id} SEEN"),
            Command::ChatCreate(handle) => write!(f, "CHAT CREATE {handle}"),
            Command::ChatMessage { chat, body } => write!(f, "CHATMESSAGE {chat} {body}"),
            Command::SearchMissedChatMessages => f.write_str("SEARCH MISSEDCHATMESSAGES"),
            Command::SearchFriends => f.write_str("SEARCH FRIENDS"),
            Command::GetUser { handle, property } => {
                write!(f, "GET USER {handle} {}", property.as_str())
            }
            Command::GetProfile(property) => write!(f, "GET PROFILE {property}"),
            Command::GetCurrentUserHandle => f.write_str("GET CURRENTUSERHANDLE"),
            Command::Ping => f.write_str("PING"),
            Command::Raw(text) => write!(f, "{text}"),
        }
    }
}

/// The USER properties the sidecar reads about contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserProperty {
    OnlineStatus,
    FullName,
    BuddyStatus,
}

impl UserProperty {
    pub fn as_str(self) -> &'static str {
        match self {
            UserProperty::OnlineStatus => "ONLINESTATUS",
            UserProperty::FullName => "FULLNAME",
            UserProperty::BuddyStatus => "BUDDYSTATUS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowState {
    Hidden,
    Normal,
    Minimized,
    Maximized,
}

impl WindowState {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowState::Hidden => "HIDDEN",
            WindowState::Normal => "NORMAL",
            WindowState::Minimized => "MINIMIZED",
            WindowState::Maximized => "MAXIMIZED",
        }
    }
}

/// The presence the sidecar may set with `SET USERSTATUS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Online,
    Offline,
    Away,
    NotAvailable,
    DoNotDisturb,
    Invisible,
    SkypeMe,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Online => "ONLINE",
            Presence::Offline => "OFFLINE",
            Presence::Away => "AWAY",
            Presence::NotAvailable => "NA",
            Presence::DoNotDisturb => "DND",
            Presence::Invisible => "INVISIBLE",
            Presence::SkypeMe => "SKYPEME",
        }
    }
}

/// What `GET CALL <id> ...` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallProperty {
    PartnerHandle,
    PartnerDispname,
    Status,
    Type,
    Duration,
    FailureReason,
    ConfId,
    Other(PropertyName),
}

impl fmt::Display for CallProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallProperty::PartnerHandle => "PARTNER_HANDLE",
            CallProperty::PartnerDispname => "PARTNER_DISPNAME",
            CallProperty::Status => "STATUS",
            CallProperty::Type => "TYPE",
            CallProperty::Duration => "DURATION",
            CallProperty::FailureReason => "FAILUREREASON",
            CallProperty::ConfId => "CONF_ID",
            CallProperty::Other(name) => name.as_str(),
        })
    }
}

/// What `ALTER CALL <id> ...` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallAction {
    Answer,
    Hangup,
    /// `END HANGUP`: rejects or ends the call; the module sent it together with `HANGUP`.
    EndHangup,
    Transfer(Handle),
    /// The client connects to this local port and reads from it the audio it sends into the
    /// call (in place of a microphone).
    SetInput {
        port: u16,
    },
    /// The client connects to this local port and writes the call's received audio.
    SetOutput {
        port: u16,
    },
}

impl fmt::Display for CallAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallAction::Answer => f.write_str("ANSWER"),
            CallAction::Hangup => f.write_str("HANGUP"),
            CallAction::EndHangup => f.write_str("END HANGUP"),
            CallAction::Transfer(user) => write!(f, "TRANSFER {user}"),
            CallAction::SetInput { port } => write!(f, "SET_INPUT PORT=\"{port}\""),
            CallAction::SetOutput { port } => write!(f, "SET_OUTPUT PORT=\"{port}\""),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoicemailAction {
    SetInput { port: u16 },
    SetOutput { port: u16 },
}

impl fmt::Display for VoicemailAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VoicemailAction::SetInput { port } => write!(f, "SET_INPUT PORT=\"{port}\""),
            VoicemailAction::SetOutput { port } => write!(f, "SET_OUTPUT PORT=\"{port}\""),
        }
    }
}

/// What `GET CHATMESSAGE <id> ...` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatMessageProperty {
    Type,
    ChatName,
    FromHandle,
    FromDispname,
    Body,
    Timestamp,
    Status,
}

impl ChatMessageProperty {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatMessageProperty::Type => "TYPE",
            ChatMessageProperty::ChatName => "CHATNAME",
            ChatMessageProperty::FromHandle => "FROM_HANDLE",
            ChatMessageProperty::FromDispname => "FROM_DISPNAME",
            ChatMessageProperty::Body => "BODY",
            ChatMessageProperty::Timestamp => "TIMESTAMP",
            ChatMessageProperty::Status => "STATUS",
        }
    }
}

/// What `GET PROFILE ...` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileProperty {
    /// SkypeOut credit in hundredths of the currency.
    PstnBalance,
    PstnBalanceCurrency,
    Other(PropertyName),
}

impl fmt::Display for ProfileProperty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProfileProperty::PstnBalance => "PSTN_BALANCE",
            ProfileProperty::PstnBalanceCurrency => "PSTN_BALANCE_CURRENCY",
            ProfileProperty::Other(name) => name.as_str(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(s: &str) -> Handle {
        Handle::new(s).expect("test handle")
    }

    #[test]
    fn renders_every_command_exactly() {
        let chat = ChatName::new("#user1/$user2;9f3e2a").expect("test chat name");
        let table: Vec<(Command, &str)> = vec![
            (Command::Name(handle("skypopen")), "NAME skypopen"),
            (Command::Protocol(999), "PROTOCOL 999"),
            (Command::Protocol(7), "PROTOCOL 7"),
            (Command::SetAutoAway(false), "SET AUTOAWAY OFF"),
            (
                Command::SetWindowState(WindowState::Hidden),
                "SET WINDOWSTATE HIDDEN",
            ),
            (
                Command::SetUserStatus(Presence::Online),
                "SET USERSTATUS ONLINE",
            ),
            (
                Command::SetUserStatus(Presence::DoNotDisturb),
                "SET USERSTATUS DND",
            ),
            (Command::SetSilentMode(true), "SET SILENT_MODE ON"),
            (Command::SetSilentMode(false), "SET SILENT_MODE OFF"),
            (Command::Call(handle("echo123")), "CALL echo123"),
            (Command::Call(handle("+390612345678")), "CALL +390612345678"),
            (
                Command::GetCall {
                    id: CallId(12),
                    property: CallProperty::PartnerHandle,
                },
                "GET CALL 12 PARTNER_HANDLE",
            ),
            (
                Command::GetCall {
                    id: CallId(12),
                    property: CallProperty::PartnerDispname,
                },
                "GET CALL 12 PARTNER_DISPNAME",
            ),
            (
                Command::GetCall {
                    id: CallId(12),
                    property: CallProperty::Other(PropertyName::new("rate").expect("name")),
                },
                "GET CALL 12 RATE",
            ),
            (
                Command::AlterCall {
                    id: CallId(12),
                    action: CallAction::Answer,
                },
                "ALTER CALL 12 ANSWER",
            ),
            (
                Command::AlterCall {
                    id: CallId(12),
                    action: CallAction::Hangup,
                },
                "ALTER CALL 12 HANGUP",
            ),
            (
                Command::AlterCall {
                    id: CallId(12),
                    action: CallAction::EndHangup,
                },
                "ALTER CALL 12 END HANGUP",
            ),
            (
                Command::AlterCall {
                    id: CallId(12),
                    action: CallAction::Transfer(handle("user2")),
                },
                "ALTER CALL 12 TRANSFER user2",
            ),
            (
                Command::AlterCall {
                    id: CallId(12),
                    action: CallAction::SetInput { port: 32769 },
                },
                "ALTER CALL 12 SET_INPUT PORT=\"32769\"",
            ),
            (
                Command::AlterCall {
                    id: CallId(12),
                    action: CallAction::SetOutput { port: 32770 },
                },
                "ALTER CALL 12 SET_OUTPUT PORT=\"32770\"",
            ),
            (
                Command::AlterVoicemail {
                    id: 7,
                    action: VoicemailAction::SetOutput { port: 32770 },
                },
                "ALTER VOICEMAIL 7 SET_OUTPUT PORT=\"32770\"",
            ),
            (
                Command::dtmf(CallId(12), '#').expect("digit"),
                "SET CALL 12 DTMF #",
            ),
            (
                Command::AuthorizeUser(handle("user9")),
                "SET USER user9 ISAUTHORIZED TRUE",
            ),
            (
                Command::DenyUser(handle("user9")),
                "SET USER user9 ISAUTHORIZED FALSE",
            ),
            (Command::SetMessageSeen(5), "SET MESSAGE 5 SEEN"),
            (
                Command::GetChatDialogPartner(chat.clone()),
                "GET CHAT #user1/$user2;9f3e2a DIALOG_PARTNER",
            ),
            (
                Command::GetChatMessage {
                    id: ChatMessageId(40),
                    property: ChatMessageProperty::Type,
                },
                "GET CHATMESSAGE 40 TYPE",
            ),
            (
                Command::GetChatMessage {
                    id: ChatMessageId(40),
                    property: ChatMessageProperty::ChatName,
                },
                "GET CHATMESSAGE 40 CHATNAME",
            ),
            (
                Command::GetChatMessage {
                    id: ChatMessageId(40),
                    property: ChatMessageProperty::FromHandle,
                },
                "GET CHATMESSAGE 40 FROM_HANDLE",
            ),
            (
                Command::GetChatMessage {
                    id: ChatMessageId(40),
                    property: ChatMessageProperty::FromDispname,
                },
                "GET CHATMESSAGE 40 FROM_DISPNAME",
            ),
            (
                Command::GetChatMessage {
                    id: ChatMessageId(40),
                    property: ChatMessageProperty::Body,
                },
                "GET CHATMESSAGE 40 BODY",
            ),
            (
                Command::GetChatMessage {
                    id: ChatMessageId(40),
                    property: ChatMessageProperty::Timestamp,
                },
                "GET CHATMESSAGE 40 TIMESTAMP",
            ),
            (
                Command::SetChatMessageSeen(ChatMessageId(40)),
                "SET CHATMESSAGE 40 SEEN",
            ),
            (Command::ChatCreate(handle("user2")), "CHAT CREATE user2"),
            (
                Command::chat_message("#user1/$user2;9f3e2a", "ciao a tutti  😀").expect("chat"),
                "CHATMESSAGE #user1/$user2;9f3e2a ciao a tutti  😀",
            ),
            (
                Command::SearchMissedChatMessages,
                "SEARCH MISSEDCHATMESSAGES",
            ),
            (
                Command::GetProfile(ProfileProperty::PstnBalance),
                "GET PROFILE PSTN_BALANCE",
            ),
            (
                Command::GetProfile(ProfileProperty::PstnBalanceCurrency),
                "GET PROFILE PSTN_BALANCE_CURRENCY",
            ),
            (Command::GetCurrentUserHandle, "GET CURRENTUSERHANDLE"),
            (Command::Ping, "PING"),
            (
                Command::raw("GET USER echo123 FULLNAME").expect("raw"),
                "GET USER echo123 FULLNAME",
            ),
        ];
        for (command, wire) in table {
            assert_eq!(command.to_string(), wire, "{command:?}");
        }
    }

    #[test]
    fn constructors_validate() {
        assert!(Command::call("user1,user2").is_err());
        assert!(Command::call("a b").is_err());
        assert!(Command::dtmf(CallId(1), 'A').is_err());
        assert!(Command::chat_message("a b", "hi").is_err());
        assert!(Command::chat_message("#a/$b;1", "").is_err());
        assert!(Command::raw("\0").is_err());
    }
}
