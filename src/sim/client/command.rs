//! The emulated client's own reading of Skype API commands (independent of the controller's
//! parser on purpose: the emulator is the other side of the protocol). Keywords are
//! case-insensitive; chat bodies keep their spaces and UTF-8.

/// A command with its optional `#tag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub tag: Option<String>,
    /// The command text without the tag (what echoes repeat).
    pub text: String,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Name(String),
    Protocol(Option<u32>),
    Ping,
    /// `GET <what...>` for objects without an id (CURRENTUSERHANDLE, USERSTATUS, ...).
    GetGlobal(String),
    GetProfile(String),
    /// `SET <X> <Y>` of a plain setting: echoed as `X Y`.
    SetSetting {
        name: String,
        value: String,
    },
    SetUserAuthorized {
        handle: String,
        value: String,
    },
    SetUserBlocked {
        handle: String,
        value: String,
    },
    SetUserBuddy {
        handle: String,
        status: Option<u8>,
        text: String,
    },
    SearchFriends,
    SetCallDtmf {
        call: u64,
        digit: String,
    },
    SetCallStatus {
        call: u64,
        status: String,
    },
    SetChatMessageSeen(u64),
    SetMessageSeen(u64),
    Call(String),
    GetCall {
        call: u64,
        property: String,
    },
    AlterCall {
        call: u64,
        action: CallAction,
    },
    ChatCreate(String),
    GetChat {
        chat: String,
        property: String,
    },
    ChatMessage {
        chat: String,
        body: String,
    },
    GetChatMessage {
        message: u64,
        property: String,
    },
    SearchMissedChatMessages,
    GetUser {
        handle: String,
        property: String,
    },
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallAction {
    Answer,
    Hangup,
    /// `END HANGUP` and other `END <x>` forms.
    End(String),
    Hold,
    Resume,
    Transfer(String),
    SetInput(Option<u16>),
    SetOutput(Option<u16>),
    Other(String),
}

/// Splits off the first space-delimited word (runs of spaces count as one separator here;
/// the rest keeps its inner spacing).
fn word(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches(' ');
    match s.find(' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

fn is(word: &str, keyword: &str) -> bool {
    word.eq_ignore_ascii_case(keyword)
}

pub fn parse(line: &str) -> Tagged {
    let line = line.trim_end_matches(['\r', '\n']);
    let (tag, text) = match line.strip_prefix('#') {
        Some(rest) => {
            let (t, rest) = word(rest);
            (Some(t.to_string()), rest.to_string())
        }
        None => (None, line.to_string()),
    };
    let command = parse_command(&text);
    Tagged { tag, text, command }
}

fn parse_id(s: &str) -> Option<u64> {
    s.parse().ok()
}

fn parse_command(text: &str) -> Command {
    let (verb, rest) = word(text);
    match verb.to_ascii_uppercase().as_str() {
        "NAME" => Command::Name(rest.trim().to_string()),
        "PROTOCOL" => Command::Protocol(rest.trim().parse().ok()),
        "PING" => Command::Ping,
        "CALL" if !rest.trim().is_empty() => Command::Call(rest.trim().to_string()),
        "GET" => parse_get(rest),
        "SET" => parse_set(rest),
        "ALTER" => parse_alter(rest),
        "CHAT" => {
            let (what, arg) = word(rest);
            if is(what, "CREATE") && !arg.trim().is_empty() {
                Command::ChatCreate(arg.trim().to_string())
            } else {
                Command::Unknown
            }
        }
        "CHATMESSAGE" => {
            let (chat, body) = word(rest);
            if chat.is_empty() {
                Command::Unknown
            } else {
                Command::ChatMessage {
                    chat: chat.to_string(),
                    body: body.to_string(),
                }
            }
        }
        "SEARCH" if is(rest.trim(), "MISSEDCHATMESSAGES") => Command::SearchMissedChatMessages,
        "SEARCH" if is(rest.trim(), "FRIENDS") => Command::SearchFriends,
        _ => Command::Unknown,
    }
}

fn parse_get(rest: &str) -> Command {
    let (object, rest) = word(rest);
    match object.to_ascii_uppercase().as_str() {
        "CALL" => {
            let (id, property) = word(rest);
            match parse_id(id) {
                Some(call) if !property.trim().is_empty() => Command::GetCall {
                    call,
                    property: property.trim().to_ascii_uppercase(),
                },
                _ => Command::Unknown,
            }
        }
        "CHAT" => {
            let (chat, property) = word(rest);
            Command::GetChat {
                chat: chat.to_string(),
                property: property.trim().to_ascii_uppercase(),
            }
        }
        "CHATMESSAGE" => {
            let (id, property) = word(rest);
            match parse_id(id) {
                Some(message) => Command::GetChatMessage {
                    message,
                    property: property.trim().to_ascii_uppercase(),
                },
                None => Command::Unknown,
            }
        }
        "PROFILE" => Command::GetProfile(rest.trim().to_ascii_uppercase()),
        "USER" => {
            let (handle, property) = word(rest);
            Command::GetUser {
                handle: handle.to_string(),
                property: property.trim().to_ascii_uppercase(),
            }
        }
        "" => Command::Unknown,
        other => Command::GetGlobal(other.to_string()),
    }
}

fn parse_set(rest: &str) -> Command {
    let (object, rest) = word(rest);
    match object.to_ascii_uppercase().as_str() {
        "USER" => {
            let (handle, rest) = word(rest);
            let (property, value) = word(rest);
            if is(property, "ISAUTHORIZED") {
                Command::SetUserAuthorized {
                    handle: handle.to_string(),
                    value: value.trim().to_ascii_uppercase(),
                }
            } else if is(property, "ISBLOCKED") {
                Command::SetUserBlocked {
                    handle: handle.to_string(),
                    value: value.trim().to_ascii_uppercase(),
                }
            } else if is(property, "BUDDYSTATUS") {
                let (status, text) = word(value);
                Command::SetUserBuddy {
                    handle: handle.to_string(),
                    status: status.trim().parse().ok(),
                    text: text.to_string(),
                }
            } else {
                Command::Unknown
            }
        }
        "CALL" => {
            let (id, rest) = word(rest);
            let (property, value) = word(rest);
            match (parse_id(id), property.to_ascii_uppercase().as_str()) {
                (Some(call), "DTMF") if !value.trim().is_empty() => Command::SetCallDtmf {
                    call,
                    digit: value.trim().to_string(),
                },
                (Some(call), "STATUS") => Command::SetCallStatus {
                    call,
                    status: value.trim().to_ascii_uppercase(),
                },
                _ => Command::Unknown,
            }
        }
        "CHATMESSAGE" | "MESSAGE" => {
            let (id, property) = word(rest);
            match (parse_id(id), is(property.trim(), "SEEN")) {
                (Some(m), true) if is(object, "CHATMESSAGE") => Command::SetChatMessageSeen(m),
                (Some(m), true) => Command::SetMessageSeen(m),
                _ => Command::Unknown,
            }
        }
        "AUTOAWAY" | "WINDOWSTATE" | "USERSTATUS" | "SILENT_MODE" | "PROFILE" | "MUTE"
            if !rest.trim().is_empty() =>
        {
            Command::SetSetting {
                name: object.to_ascii_uppercase(),
                value: rest.trim().to_string(),
            }
        }
        _ => Command::Unknown,
    }
}

fn parse_port(arg: &str) -> Option<u16> {
    let (key, value) = arg.trim().split_once('=')?;
    if !is(key, "PORT") {
        return None;
    }
    value.trim().trim_matches('"').parse().ok()
}

fn parse_alter(rest: &str) -> Command {
    let (object, rest) = word(rest);
    if !is(object, "CALL") {
        return Command::Unknown;
    }
    let (id, rest) = word(rest);
    let Some(call) = parse_id(id) else {
        return Command::Unknown;
    };
    let (action, arg) = word(rest);
    let action = match action.to_ascii_uppercase().as_str() {
        "ANSWER" => CallAction::Answer,
        "HANGUP" => CallAction::Hangup,
        "END" => CallAction::End(arg.trim().to_ascii_uppercase()),
        "HOLD" => CallAction::Hold,
        "RESUME" => CallAction::Resume,
        "TRANSFER" if !arg.trim().is_empty() => CallAction::Transfer(arg.trim().to_string()),
        "SET_INPUT" => CallAction::SetInput(parse_port(arg)),
        "SET_OUTPUT" => CallAction::SetOutput(parse_port(arg)),
        other => CallAction::Other(other.to_string()),
    };
    Command::AlterCall { call, action }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_split_off() {
        let t = parse("#output ALTER CALL 12 SET_OUTPUT PORT=\"32770\"");
        assert_eq!(t.tag.as_deref(), Some("output"));
        assert_eq!(t.text, "ALTER CALL 12 SET_OUTPUT PORT=\"32770\"");
        assert_eq!(
            t.command,
            Command::AlterCall {
                call: 12,
                action: CallAction::SetOutput(Some(32770))
            }
        );
    }

    #[test]
    fn handshake_commands() {
        assert_eq!(
            parse("NAME skypopen").command,
            Command::Name("skypopen".into())
        );
        assert_eq!(parse("PROTOCOL 999").command, Command::Protocol(Some(999)));
        assert_eq!(parse("protocol 7").command, Command::Protocol(Some(7)));
        assert_eq!(parse("#ciapalino PING").command, Command::Ping);
        assert_eq!(
            parse("SET WINDOWSTATE HIDDEN").command,
            Command::SetSetting {
                name: "WINDOWSTATE".into(),
                value: "HIDDEN".into()
            }
        );
    }

    #[test]
    fn chat_bodies_keep_spaces_and_utf8() {
        assert_eq!(
            parse("CHATMESSAGE #user1/$alice;ab  hello  wörld ✓").command,
            Command::ChatMessage {
                chat: "#user1/$alice;ab".into(),
                body: " hello  wörld ✓".into()
            }
        );
    }

    #[test]
    fn call_commands() {
        assert_eq!(
            parse("CALL echo123").command,
            Command::Call("echo123".into())
        );
        assert_eq!(
            parse("ALTER CALL 5 END HANGUP").command,
            Command::AlterCall {
                call: 5,
                action: CallAction::End("HANGUP".into())
            }
        );
        assert_eq!(
            parse("SET CALL 5 DTMF #").command,
            Command::SetCallDtmf {
                call: 5,
                digit: "#".into()
            }
        );
        assert_eq!(
            parse("GET CALL 5 PARTNER_DISPNAME").command,
            Command::GetCall {
                call: 5,
                property: "PARTNER_DISPNAME".into()
            }
        );
        assert_eq!(parse("ALTER CALL x ANSWER").command, Command::Unknown);
        assert_eq!(parse("FROBNICATE").command, Command::Unknown);
        assert_eq!(parse("").command, Command::Unknown);
    }

    #[test]
    fn searches_and_seen() {
        assert_eq!(
            parse("SEARCH MISSEDCHATMESSAGES").command,
            Command::SearchMissedChatMessages
        );
        assert_eq!(
            parse("SET CHATMESSAGE 12 SEEN").command,
            Command::SetChatMessageSeen(12)
        );
        assert_eq!(
            parse("SET USER alice ISAUTHORIZED TRUE").command,
            Command::SetUserAuthorized {
                handle: "alice".into(),
                value: "TRUE".into()
            }
        );
    }
}
