//! Events as FreeSWITCH serialises them: an ordered header list (duplicates kept, order
//! kept) and an optional body, rendered as `text/event-plain`, `text/event-json` or
//! `text/event-xml`, and parsed back from plain and JSON.

use super::encode::{url_decode, url_encode_into, PercentMode};
use super::frame::split_header;
use super::headers::Headers;
use std::fmt::Write as _;

/// The wire format a listener connection asked for with `event <format> ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventFormat {
    #[default]
    Plain,
    Json,
    Xml,
}

impl EventFormat {
    pub fn parse(word: &str) -> Option<Self> {
        match word.to_ascii_lowercase().as_str() {
            "plain" => Some(EventFormat::Plain),
            "json" => Some(EventFormat::Json),
            "xml" => Some(EventFormat::Xml),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventFormat::Plain => "plain",
            EventFormat::Json => "json",
            EventFormat::Xml => "xml",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            EventFormat::Plain => "text/event-plain",
            EventFormat::Json => "text/event-json",
            EventFormat::Xml => "text/event-xml",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("event body is not UTF-8")]
    BodyNotUtf8,
    #[error("inner Content-Length {declared} does not match the {actual} bytes that follow")]
    BodyLength { declared: String, actual: usize },
    #[error("event JSON is invalid: {0}")]
    Json(String),
    #[error("content type {0:?} is not an event")]
    NotAnEvent(String),
}

/// Array-valued headers travel as `ARRAY::v1|:v2` (plain) and JSON arrays (json).
const ARRAY_PREFIX: &str = "ARRAY::";
const ARRAY_SEPARATOR: &str = "|:";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    pub headers: Headers,
    /// `None` and an empty body are the same thing on the wire; constructors store `None`.
    pub body: Option<String>,
}

impl Event {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn name(&self) -> Option<&str> {
        self.headers.get("Event-Name")
    }

    pub fn subclass(&self) -> Option<&str> {
        self.headers.get("Event-Subclass")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    pub fn push_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push(name, value);
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(name, value);
        self
    }

    pub fn set_body(&mut self, body: impl Into<String>) {
        let body = body.into();
        self.body = if body.is_empty() { None } else { Some(body) };
    }

    pub fn with_body(mut self, body: impl Into<String>) -> Self {
        self.set_body(body);
        self
    }

    fn nonempty_body(&self) -> Option<&str> {
        self.body.as_deref().filter(|body| !body.is_empty())
    }

    /// The inner block of `text/event-plain`: one encoded header a line, then either an
    /// empty line, or `Content-Length` + empty line + the raw body.
    pub fn plain_payload(&self, mode: PercentMode) -> String {
        let mut out = String::with_capacity(
            64 * self.headers.len() + self.body.as_ref().map_or(0, String::len),
        );
        for (name, value) in self.headers.iter() {
            out.push_str(name);
            out.push_str(": ");
            url_encode_into(value, mode, &mut out);
            out.push('\n');
        }
        match self.nonempty_body() {
            Some(body) => {
                let _ = write!(out, "Content-Length: {}\n\n", body.len());
                out.push_str(body);
            }
            None => out.push('\n'),
        }
        out
    }

    /// One JSON object, members in header order. A header present twice (the
    /// `Content-Length` that `sendevent` leaves on an event) is written twice, as FreeSWITCH
    /// does; a body adds `"Content-Length"` (a string) and `"_body"` last.
    pub fn json_payload(&self) -> String {
        let mut out = String::with_capacity(
            64 * self.headers.len() + self.body.as_ref().map_or(0, String::len),
        );
        out.push('{');
        let mut first = true;
        let mut member = |out: &mut String, name: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            push_json_string(out, name);
            out.push(':');
        };
        for (name, value) in self.headers.iter() {
            member(&mut out, name);
            match value.strip_prefix(ARRAY_PREFIX) {
                Some(items) => {
                    out.push('[');
                    for (index, item) in items.split(ARRAY_SEPARATOR).enumerate() {
                        if index > 0 {
                            out.push(',');
                        }
                        push_json_string(&mut out, item);
                    }
                    out.push(']');
                }
                None => push_json_string(&mut out, value),
            }
        }
        if let Some(body) = self.nonempty_body() {
            member(&mut out, "Content-Length");
            push_json_string(&mut out, &body.len().to_string());
            member(&mut out, "_body");
            push_json_string(&mut out, body);
        }
        out.push('}');
        out
    }

    /// `<event><headers>...</headers>[<Content-Length>..</Content-Length><body>..</body>]</event>`:
    /// header values URL-encoded then XML-escaped, the body XML-escaped only.
    pub fn xml_payload(&self) -> String {
        let mut out = String::from("<event><headers>");
        let mut encoded = String::new();
        for (name, value) in self.headers.iter() {
            encoded.clear();
            url_encode_into(value, PercentMode::Always, &mut encoded);
            let tag = xml_tag_name(name);
            let _ = write!(out, "<{tag}>");
            push_xml_escaped(&mut out, &encoded);
            let _ = write!(out, "</{tag}>");
        }
        out.push_str("</headers>");
        if let Some(body) = self.nonempty_body() {
            let _ = write!(out, "<Content-Length>{}</Content-Length><body>", body.len());
            push_xml_escaped(&mut out, body);
            out.push_str("</body>");
        }
        out.push_str("</event>");
        out
    }

    pub fn payload(&self, format: EventFormat) -> String {
        match format {
            EventFormat::Plain => self.plain_payload(PercentMode::Always),
            EventFormat::Json => self.json_payload(),
            EventFormat::Xml => self.xml_payload(),
        }
    }

    /// The whole message as a listener writes it: outer `Content-Length`, `Content-Type`,
    /// empty line, payload.
    pub fn render(&self, format: EventFormat) -> Vec<u8> {
        wrap_event_payload(format, &self.payload(format))
    }

    /// Parses the inner block of a `text/event-plain` message (values URL-decoded). When the
    /// event has a body, the `Content-Length` line just before the empty line is the body's
    /// length and is not kept as a header; an earlier one (from `sendevent`) is.
    pub fn parse_plain(payload: &[u8]) -> Result<Event, EventError> {
        let split = find_block_end(payload);
        let (head, rest) = match split {
            Some((head_end, body_start)) => (&payload[..head_end], &payload[body_start..]),
            None => (payload, &payload[payload.len()..]),
        };
        let head = String::from_utf8_lossy(head);
        let mut headers = Headers::new();
        for line in head.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if let Some((name, value)) = split_header(line) {
                headers.push(name, url_decode(value));
            }
        }
        let mut event = Event {
            headers,
            body: None,
        };
        if rest.is_empty() {
            return Ok(event);
        }
        let declared = match event.headers.last() {
            Some((name, value)) if name.eq_ignore_ascii_case("Content-Length") => value.to_string(),
            _ => String::new(),
        };
        if declared.trim().parse::<usize>().ok() != Some(rest.len()) {
            return Err(EventError::BodyLength {
                declared,
                actual: rest.len(),
            });
        }
        event.headers.pop();
        let body = std::str::from_utf8(rest).map_err(|_| EventError::BodyNotUtf8)?;
        event.set_body(body);
        Ok(event)
    }

    /// Parses a `text/event-json` object. Duplicate keys are kept in order; a
    /// `Content-Length` member just before `_body` is the body's length and is dropped.
    pub fn parse_json(payload: &str) -> Result<Event, EventError> {
        let members: JsonMembers =
            serde_json::from_str(payload).map_err(|err| EventError::Json(err.to_string()))?;
        let mut event = Event::new();
        let mut body = None;
        for (name, value) in members.0 {
            if name == "_body" {
                body = Some(value);
                if matches!(event.headers.last(), Some((last, _)) if last == "Content-Length") {
                    event.headers.pop();
                }
            } else {
                event.headers.push(name, value);
            }
        }
        if let Some(body) = body {
            event.set_body(body);
        }
        Ok(event)
    }

    /// Parses the body of a `text/event-plain` or `text/event-json` message.
    pub fn parse(content_type: &str, payload: &[u8]) -> Result<Event, EventError> {
        match content_type {
            "text/event-plain" => Event::parse_plain(payload),
            "text/event-json" => {
                let text = std::str::from_utf8(payload)
                    .map_err(|err| EventError::Json(err.to_string()))?;
                Event::parse_json(text)
            }
            other => Err(EventError::NotAnEvent(other.to_string())),
        }
    }
}

/// Wraps a rendered payload in the outer header block.
pub fn wrap_event_payload(format: EventFormat, payload: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 64);
    out.extend_from_slice(
        format!(
            "Content-Length: {}\nContent-Type: {}\n\n",
            payload.len(),
            format.content_type()
        )
        .as_bytes(),
    );
    out.extend_from_slice(payload.as_bytes());
    out
}

/// Where the header block ends (index of its last line end) and the body starts.
fn find_block_end(payload: &[u8]) -> Option<(usize, usize)> {
    let mut run = 0;
    for (index, byte) in payload.iter().enumerate() {
        match byte {
            b'\n' => {
                run += 1;
                if run == 2 {
                    return Some((index, index + 1));
                }
            }
            b'\r' => {}
            _ => run = 0,
        }
    }
    None
}

/// Escapes as cJSON does: `"` `\` and control characters; everything else, including
/// non-ASCII, stays literal.
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ch if u32::from(ch) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(ch));
            }
            ch => out.push(ch),
        }
    }
    out.push('"');
}

fn push_xml_escaped(out: &mut String, value: &str) {
    for ch in value.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            ch => out.push(ch),
        }
    }
}

/// Header names become element names; anything that would break the markup is replaced.
fn xml_tag_name(name: &str) -> String {
    name.chars()
        .map(|ch| {
            if ch.is_alphanumeric() || matches!(ch, '-' | '_' | '.') {
                ch
            } else {
                '_'
            }
        })
        .collect()
}

/// JSON object members in document order, duplicates kept (serde_json's own maps would
/// keep only one of FreeSWITCH's two `Content-Length` members).
struct JsonMembers(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for JsonMembers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;

        impl<'de> serde::de::Visitor<'de> for MembersVisitor {
            type Value = JsonMembers;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object of strings and string arrays")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonMembers, A::Error> {
                let mut members = Vec::new();
                while let Some((name, value)) = map.next_entry::<String, JsonValue>()? {
                    members.push((name, value.0));
                }
                Ok(JsonMembers(members))
            }
        }

        deserializer.deserialize_map(MembersVisitor)
    }
}

/// A member's value as header text: strings as they are, arrays as `ARRAY::a|:b`, numbers
/// and booleans as their JSON text.
struct JsonValue(String);

impl<'de> serde::Deserialize<'de> for JsonValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(JsonValue(match value {
            serde_json::Value::String(text) => text,
            serde_json::Value::Array(items) => {
                let items: Vec<String> = items
                    .into_iter()
                    .map(|item| match item {
                        serde_json::Value::String(text) => text,
                        other => other.to_string(),
                    })
                    .collect();
                format!("{ARRAY_PREFIX}{}", items.join(ARRAY_SEPARATOR))
            }
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Event {
        Event::new()
            .with_header("Command", "sendevent MESSAGE")
            .with_header("hint", "Bob B")
            .with_header("Content-Length", "6")
            .with_header("Event-Name", "MESSAGE")
            .with_body("hé \"x\"")
    }

    #[test]
    fn plain_rendering_matches_freeswitch_layout() {
        let event = message();
        let payload = event.plain_payload(PercentMode::Always);
        assert_eq!(
            payload,
            "Command: sendevent%20MESSAGE\nhint: Bob%20B\nContent-Length: 6\nEvent-Name: MESSAGE\nContent-Length: 7\n\nhé \"x\""
        );
        let rendered = event.render(EventFormat::Plain);
        let expected_head = format!(
            "Content-Length: {}\nContent-Type: text/event-plain\n\n",
            payload.len()
        );
        assert!(rendered.starts_with(expected_head.as_bytes()));
    }

    #[test]
    fn event_without_body_ends_with_empty_line() {
        let event = Event::new().with_header("Event-Name", "HEARTBEAT");
        assert_eq!(
            event.plain_payload(PercentMode::Always),
            "Event-Name: HEARTBEAT\n\n"
        );
        assert_eq!(event.json_payload(), r#"{"Event-Name":"HEARTBEAT"}"#);
    }

    #[test]
    fn json_keeps_duplicate_content_length() {
        let json = message().json_payload();
        assert_eq!(
            json,
            r#"{"Command":"sendevent MESSAGE","hint":"Bob B","Content-Length":"6","Event-Name":"MESSAGE","Content-Length":"7","_body":"hé \"x\""}"#
        );
    }

    #[test]
    fn plain_and_json_parse_back() -> Result<(), EventError> {
        let event = message();
        assert_eq!(
            Event::parse_plain(event.plain_payload(PercentMode::Always).as_bytes())?,
            event
        );
        assert_eq!(Event::parse_json(&event.json_payload())?, event);
        Ok(())
    }

    #[test]
    fn arrays_render_per_format() -> Result<(), EventError> {
        let event = Event::new().with_header("variable_DP_MATCH", "ARRAY::a b|:c");
        assert_eq!(
            event.plain_payload(PercentMode::Always),
            "variable_DP_MATCH: ARRAY%3A%3Aa%20b%7C%3Ac\n\n"
        );
        assert_eq!(event.json_payload(), r#"{"variable_DP_MATCH":["a b","c"]}"#);
        assert_eq!(Event::parse_json(&event.json_payload())?, event);
        Ok(())
    }

    #[test]
    fn xml_escapes() {
        let event = Event::new().with_header("to", "a<b").with_body("x & y");
        assert_eq!(
            event.xml_payload(),
            "<event><headers><to>a%3Cb</to></headers><Content-Length>5</Content-Length><body>x &amp; y</body></event>"
        );
    }

    #[test]
    fn bad_inner_length_is_an_error() {
        let result = Event::parse_plain(b"Event-Name: X\nContent-Length: 9\n\nabc");
        assert!(matches!(result, Err(EventError::BodyLength { .. })));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn event_strategy() -> impl Strategy<Value = Event> {
            (
                proptest::collection::vec(("[A-Za-z][A-Za-z_-]{0,15}", any::<String>()), 0..8),
                proptest::option::of(any::<String>()),
            )
                .prop_map(|(headers, body)| {
                    let mut event = Event::new();
                    for (name, value) in headers {
                        // Plain cannot carry an empty value (it becomes `_undef_`), and a
                        // trailing `Content-Length` header is indistinguishable from the
                        // body's length line, as in FreeSWITCH.
                        if value.is_empty() || value.starts_with(ARRAY_PREFIX) {
                            continue;
                        }
                        event.push_header(name, value);
                    }
                    if let Some(body) = body {
                        event.set_body(body);
                    }
                    if event.body.is_some()
                        && matches!(event.headers.last(), Some((name, _)) if name.eq_ignore_ascii_case("Content-Length"))
                    {
                        event.headers.pop();
                    }
                    event
                })
        }

        proptest! {
            #[test]
            fn plain_round_trips(event in event_strategy()) {
                let payload = event.plain_payload(PercentMode::Always);
                prop_assert_eq!(Event::parse_plain(payload.as_bytes()), Ok(event));
            }

            #[test]
            fn json_round_trips(event in event_strategy()) {
                let payload = event.json_payload();
                prop_assert_eq!(Event::parse_json(&payload), Ok(event));
            }

            #[test]
            fn parse_plain_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..1024)) {
                let _ = Event::parse_plain(&payload);
            }
        }
    }
}
