//! Validated pieces of commands. Each type can only hold text that keeps the command it is put
//! into meaning exactly one thing on the wire.

use super::ApiError;
use std::fmt;

/// Longest Skype name or SkypeOut number accepted as a destination or handle.
const MAX_HANDLE: usize = 256;
/// Longest E.164 number is 15 digits; leave room for dial prefixes some SkypeOut users type.
const MAX_NUMBER_DIGITS: usize = 32;
/// Chat names are tokens of the form `#creator/$partner;hex`, far below this.
const MAX_CHAT_NAME: usize = 1024;
/// A generous ceiling for chat bodies and raw commands; the X11 transport itself has no limit.
const MAX_TEXT: usize = 64 * 1024;

/// The validated text types go on the wire as they are: `as_str` and `Display` show it.
macro_rules! text_token {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A Skype call id, as the client numbers its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A Skype chat message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChatMessageId(pub u64);

impl fmt::Display for ChatMessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A Skype name (`echo123`, `live:someone`) or a SkypeOut number (`+390612345678`): one
/// argument, no spaces and no commas (`CALL a, b` would be a conference call).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handle(String);

/// Checks a call destination taken from a dial string. The same rules as [`Handle::new`].
pub fn validate_destination(destination: &str) -> Result<Handle, ApiError> {
    Handle::with_role("destination", destination)
}

impl Handle {
    pub fn new(value: &str) -> Result<Self, ApiError> {
        Self::with_role("Skype name", value)
    }

    fn with_role(what: &'static str, value: &str) -> Result<Self, ApiError> {
        check_length(what, value, MAX_HANDLE)?;
        check_one_token(what, value)?;
        if value.contains(',') {
            return Err(ApiError::Comma {
                what,
                value: value.to_owned(),
            });
        }
        if let Some(digits) = value.strip_prefix('+') {
            let all_digits = digits.bytes().all(|b| b.is_ascii_digit());
            if digits.is_empty() || digits.len() > MAX_NUMBER_DIGITS || !all_digits {
                return Err(ApiError::BadNumber {
                    value: value.to_owned(),
                    max: MAX_NUMBER_DIGITS,
                });
            }
            return Ok(Self(value.to_owned()));
        }
        check_chars(what, value, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@')
        })?;
        Ok(Self(value.to_owned()))
    }

    /// A SkypeOut (PSTN) number rather than a Skype name.
    pub fn is_phone_number(&self) -> bool {
        self.0.starts_with('+')
    }
}

text_token!(Handle);

/// A chat's name as the client reports it, e.g. `#user1/$user2;9f3e2a`: one token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChatName(String);

impl ChatName {
    pub fn new(value: &str) -> Result<Self, ApiError> {
        let what = "chat name";
        check_length(what, value, MAX_CHAT_NAME)?;
        check_one_token(what, value)?;
        check_chars(what, value, |c| !c.is_control())?;
        Ok(Self(value.to_owned()))
    }
}

text_token!(ChatName);

/// Free text that ends a command (a chat body, a raw command): anything but NUL, which ends a
/// message on the X11 transport, and control characters other than tab and line breaks.
fn check_text(what: &'static str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::Empty { what });
    }
    check_length(what, value, MAX_TEXT)?;
    check_chars(what, value, |c| {
        !c.is_control() || matches!(c, '\t' | '\n' | '\r')
    })
}

/// Not empty and at most `max` bytes.
fn check_length(what: &'static str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::Empty { what });
    }
    if value.len() > max {
        return Err(ApiError::TooLong { what, max });
    }
    Ok(())
}

/// Whitespace would split the value into several arguments.
fn check_one_token(what: &'static str, value: &str) -> Result<(), ApiError> {
    if value.chars().any(char::is_whitespace) {
        return Err(ApiError::Whitespace {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// The first character `allowed` refuses is the error.
fn check_chars(
    what: &'static str,
    value: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<(), ApiError> {
    match value.chars().find(|c| !allowed(*c)) {
        Some(found) => Err(ApiError::BadChar {
            what,
            value: value.to_owned(),
            found,
        }),
        None => Ok(()),
    }
}

/// The text of an outgoing chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatBody(String);

impl ChatBody {
    pub fn new(value: &str) -> Result<Self, ApiError> {
        check_text("chat message", value)?;
        Ok(Self(value.to_owned()))
    }
}

text_token!(ChatBody);

/// A command typed by an operator (`sk <text>`, `skypopen <iface> <text>`), sent as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawText(String);

impl RawText {
    pub fn new(value: &str) -> Result<Self, ApiError> {
        check_text("raw command", value)?;
        Ok(Self(value.to_owned()))
    }
}

text_token!(RawText);

/// One DTMF digit as the API carries it: `0`-`9`, `*`, `#` (the client has no A-D).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DtmfDigit(char);

impl DtmfDigit {
    pub fn new(digit: char) -> Result<Self, ApiError> {
        if digit.is_ascii_digit() || digit == '*' || digit == '#' {
            Ok(Self(digit))
        } else {
            Err(ApiError::BadDtmf {
                found: digit.to_string(),
            })
        }
    }

    /// Exactly one digit, as found in a `CALL <id> DTMF <d>` value or an ESL event.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(digit), None) => Self::new(digit),
            _ => Err(ApiError::BadDtmf {
                found: text.to_owned(),
            }),
        }
    }

    pub fn as_char(self) -> char {
        self.0
    }
}

impl fmt::Display for DtmfDigit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An object property name that the typed enums do not list (`GET CALL 12 RATE`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PropertyName(String);

impl PropertyName {
    /// Letters, digits and `_`; stored upper-case as the API spells properties.
    pub fn new(value: &str) -> Result<Self, ApiError> {
        let what = "property name";
        check_length(what, value, 64)?;
        check_chars(what, value, |c| c.is_ascii_alphanumeric() || c == '_')?;
        Ok(Self(value.to_ascii_uppercase()))
    }
}

text_token!(PropertyName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_accept_skype_names_and_numbers() {
        for ok in [
            "echo123",
            "user1",
            "live:someone_1",
            "a.b-c",
            "+390612345678",
        ] {
            assert_eq!(
                validate_destination(ok).map(|h| h.to_string()),
                Ok(ok.into())
            );
        }
        assert!(validate_destination("+390612345678")
            .map(|h| h.is_phone_number())
            .unwrap_or(false));
    }

    #[test]
    fn destinations_reject_what_changes_the_call() {
        let long = "a".repeat(300);
        for (destination, refused_as) in [
            ("user1, user2", "Whitespace"),
            ("user1,user2", "Comma"),
            ("echo123 x", "Whitespace"),
            ("", "Empty"),
            ("+39 06", "Whitespace"),
            ("+39a", "BadNumber"),
            ("+", "BadNumber"),
            ("a\0b", "BadChar"),
            (long.as_str(), "TooLong"),
        ] {
            let error = validate_destination(destination).map(|h| h.to_string());
            assert!(
                format!("{error:?}").starts_with(&format!("Err({refused_as} ")),
                "{destination:?}: {error:?}"
            );
        }
        assert!(matches!(
            validate_destination("user/1"),
            Err(ApiError::BadChar { found: '/', .. })
        ));
    }

    #[test]
    fn dtmf_digits() {
        for d in "0123456789*#".chars() {
            assert_eq!(DtmfDigit::new(d).map(DtmfDigit::as_char), Ok(d));
        }
        for bad in ['A', 'd', ' ', '\0'] {
            assert!(DtmfDigit::new(bad).is_err());
        }
        assert!(DtmfDigit::parse("12").is_err());
        assert!(DtmfDigit::parse("").is_err());
        assert_eq!(DtmfDigit::parse("#").map(|d| d.to_string()), Ok("#".into()));
    }

    #[test]
    fn text_rejects_nul_and_blank() {
        assert!(RawText::new("PING").is_ok());
        assert!(RawText::new("  ").is_err());
        assert!(RawText::new("PI\0NG").is_err());
        assert!(ChatBody::new("héllo wörld\nsecond line").is_ok());
        assert!(ChatBody::new("").is_err());
    }

    #[test]
    fn chat_names_are_single_tokens() {
        assert!(ChatName::new("#user1/$user2;9f3e2a").is_ok());
        assert!(ChatName::new("#a/$b c").is_err());
        assert!(ChatName::new("").is_err());
    }

    #[test]
    fn property_names_are_upper_cased() {
        assert_eq!(
            PropertyName::new("rate_currency").map(|p| p.to_string()),
            Ok("RATE_CURRENCY".into())
        );
        assert!(PropertyName::new("A B").is_err());
    }
}
