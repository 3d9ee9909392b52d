//! One incoming Skype chat message as FreeSWITCH gets it: the MESSAGE event's headers and body,
//! and the key that tells the same message apart when several interfaces of one account (or a
//! restarted sidecar) see it again.

use crate::switch::esl::stamp::format_gmt;
use crate::switch::esl::Event;
use std::time::Duration;

/// The header carrying [`IncomingChat::key`] on every MESSAGE event.
pub const MESSAGE_KEY_HEADER: &str = "skypopen_message_key";

/// What the client told about one `SAID` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingChat {
    /// The interface that fetched it.
    pub interface: String,
    /// The account the interface is logged in as (`to`).
    pub account: String,
    pub id: u64,
    pub chatname: String,
    pub from_handle: String,
    pub from_dispname: String,
    pub body: String,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    /// Whether the interface had a call up when the message was delivered.
    pub during_call: bool,
    /// The sidecar (`cluster.host`) that delivered it.
    pub host: String,
}

/// Identity of a message across interfaces of the same account: their message ids differ,
/// these fields do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageKey(pub u128);

impl MessageKey {
    pub fn to_hex(self) -> String {
        let mut text = String::with_capacity(32);
        self.push_hex(&mut text);
        text
    }

    /// Appends the 32 lower-case hex digits to `out`. The ledger renders 4,096 keys on every
    /// save, and the formatter's generic path was the sidecar's largest single cost in the
    /// chat-rate benchmark.
    pub fn push_hex(self, out: &mut String) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for shift in (0..32).rev() {
            let nibble = (self.0 >> (shift * 4)) & 0xf;
            out.push(char::from(DIGITS[nibble as usize]));
        }
    }

    pub fn from_hex(text: &str) -> Option<MessageKey> {
        if text.len() != 32 {
            return None;
        }
        u128::from_str_radix(text, 16).ok().map(MessageKey)
    }
}

/// FNV-1a, 128 bits: stable across builds and platforms, unlike std's hasher, because the keys
/// outlive the process in the state file.
fn fnv1a_128(parts: &[&[u8]]) -> u128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut hash = OFFSET;
    for part in parts {
        // The length in front keeps ("ab","c") and ("a","bc") apart.
        for byte in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            hash ^= u128::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// Skype names compare case-insensitively.
fn account_form(handle: &str) -> String {
    handle.to_lowercase()
}

impl IncomingChat {
    pub fn key(&self) -> MessageKey {
        let account = account_form(&self.account);
        let sender = account_form(&self.from_handle);
        let timestamp = self.timestamp.to_string();
        MessageKey(fnv1a_128(&[
            account.as_bytes(),
            self.chatname.as_bytes(),
            sender.as_bytes(),
            timestamp.as_bytes(),
            self.body.as_bytes(),
        ]))
    }

    /// The message time as the `date` header carries it (`Sun, 22 Nov 2026 20:25:25 GMT`).
    pub fn date(&self) -> String {
        format_gmt(Duration::from_secs(self.timestamp))
    }

    /// Header name/value pairs in the order they are sent. Empty values are left out, as
    /// FreeSWITCH drops headers set to an empty string; line breaks in a value (a display
    /// name can hold one) would end the header, so they become spaces.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let id = self.id.to_string();
        let during_call = if self.during_call { "true" } else { "false" };
        [
            ("proto", "skype".to_string()),
            ("login", self.interface.clone()),
            ("from", self.from_handle.clone()),
            ("hint", self.from_dispname.clone()),
            ("to", self.account.clone()),
            ("subject", "SIMPLE MESSAGE".to_string()),
            ("chatname", self.chatname.clone()),
            ("id", id),
            ("date", self.date()),
            ("to_proto", "skype".to_string()),
            ("from_user", self.from_handle.clone()),
            ("to_user", self.interface.clone()),
            ("during-call", during_call.to_string()),
            // The idempotency key of the at-least-once contract: a copy delivered again
            // (a sidecar killed between FreeSWITCH's acceptance and the ledger's write, or a
            // sibling interface of the same account) carries the same value.
            (MESSAGE_KEY_HEADER, self.key().to_hex()),
            ("skypopen_host", self.host.clone()),
        ]
        .into_iter()
        .map(|(name, value)| (name, one_line(&value)))
        .filter(|(_, value)| !value.is_empty())
        .collect()
    }

    /// The same event for the listener's subscribers, headers in front as FreeSWITCH keeps
    /// them for a `sendevent` (the caller stamps the standard headers after them).
    pub fn listener_event(&self) -> Event {
        let mut event = Event::new();
        for (name, value) in self.headers() {
            event.push_header(name, value);
        }
        event.with_body(self.body.clone())
    }
}

fn one_line(value: &str) -> String {
    if value.contains(['\r', '\n', '\0']) {
        value.replace(['\r', '\n', '\0'], " ")
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> IncomingChat {
        IncomingChat {
            interface: "interface1".into(),
            account: "user1".into(),
            id: 101,
            chatname: "#bob/$user1;0123abcd".into(),
            from_handle: "bob".into(),
            from_dispname: "Bob B".into(),
            body: "Grüße – привет 👋\nsecond line".into(),
            timestamp: 1_795_379_128,
            during_call: false,
            host: "box-a".into(),
        }
    }

    #[test]
    fn headers_are_the_documented_set_in_order() {
        let names: Vec<&str> = sample().headers().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "proto",
                "login",
                "from",
                "hint",
                "to",
                "subject",
                "chatname",
                "id",
                "date",
                "to_proto",
                "from_user",
                "to_user",
                "during-call",
                "skypopen_message_key",
                "skypopen_host"
            ]
        );
        let headers = sample().headers();
        let get = |n: &str| {
            headers
                .iter()
                .find(|(name, _)| *name == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("hint").as_deref(), Some("Bob B"));
        assert_eq!(get("to").as_deref(), Some("user1"));
        assert_eq!(get("to_user").as_deref(), Some("interface1"));
        assert_eq!(
            get("date").as_deref(),
            Some("Sun, 22 Nov 2026 20:25:28 GMT")
        );
    }

    #[test]
    fn empty_values_are_left_out_and_line_breaks_flattened() {
        let mut chat = sample();
        chat.from_dispname = String::new();
        assert!(chat.headers().iter().all(|(n, _)| *n != "hint"));
        chat.from_dispname = "Evil\r\nContent-Length: 0".into();
        let hint = chat
            .headers()
            .into_iter()
            .find(|(n, _)| *n == "hint")
            .map(|(_, v)| v);
        assert_eq!(hint.as_deref(), Some("Evil  Content-Length: 0"));
    }

    #[test]
    fn body_keeps_every_byte() {
        assert_eq!(
            sample().listener_event().body.as_deref(),
            Some(sample().body.as_str())
        );
    }

    #[test]
    fn key_ignores_interface_and_id_but_not_content() {
        let a = sample();
        let mut sibling = sample();
        sibling.interface = "interface2".into();
        sibling.id = 7;
        sibling.account = "User1".into();
        assert_eq!(a.key(), sibling.key());
        for change in [
            |c: &mut IncomingChat| c.body.push('!'),
            |c: &mut IncomingChat| c.timestamp += 1,
            |c: &mut IncomingChat| c.from_handle = "carol".into(),
            |c: &mut IncomingChat| c.chatname.push('x'),
            |c: &mut IncomingChat| c.account = "user2".into(),
        ] {
            let mut other = sample();
            change(&mut other);
            assert_ne!(a.key(), other.key());
        }
    }

    #[test]
    fn key_round_trips_through_hex() {
        let key = sample().key();
        assert_eq!(key.to_hex(), format!("{:032x}", key.0));
        assert_eq!(MessageKey(1).to_hex(), format!("{:032x}", 1));
        assert_eq!(MessageKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(MessageKey::from_hex("zz"), None);
    }
}
