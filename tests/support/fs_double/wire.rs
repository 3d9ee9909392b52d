//! What the double writes on the wire, byte-compatible with FreeSWITCH 1.10.12: URL encoding,
//! plain/JSON event bodies, replies and notices.
//! The framing and rendering come from the sidecar's own codec (`skypopen::switch::esl`),
//! with FreeSWITCH's lossy percent rule; only the session notices are built here.

use skypopen::switch::esl::{self, reply, PercentMode};

pub use reply::GOODBYE;

/// One event: headers in order (values raw, not encoded) and an optional body.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Event {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn name(&self) -> &str {
        self.header("Event-Name").unwrap_or("")
    }

    fn to_esl(&self) -> esl::Event {
        let mut event = esl::Event::new();
        for (name, value) in &self.headers {
            event.push_header(name.as_str(), value.as_str());
        }
        if let Some(body) = &self.body {
            event.set_body(body.as_str());
        }
        event
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Json,
}

/// FreeSWITCH's `switch_url_encode` (a `%XX` already there is kept); empty → `_undef_`.
pub fn url_encode(value: &str) -> String {
    let encoded = esl::url_encode(value, PercentMode::KeepEncoded);
    if encoded.is_empty() {
        esl::encode::UNDEF.to_string()
    } else {
        encoded
    }
}

pub fn url_decode(value: &str) -> String {
    esl::url_decode(value)
}

pub fn render_event(event: &Event, format: Format) -> Vec<u8> {
    let event = event.to_esl();
    match format {
        Format::Plain => esl::event::wrap_event_payload(
            esl::EventFormat::Plain,
            &event.plain_payload(PercentMode::KeepEncoded),
        ),
        Format::Json => event.render(esl::EventFormat::Json),
    }
}

pub fn command_reply(text: &str) -> Vec<u8> {
    reply::command_reply(text)
}

pub fn command_reply_with(text: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    reply::command_reply_with(text, extra)
}

pub fn api_response(body: &str) -> Vec<u8> {
    reply::api_response(body)
}

pub fn disconnect_notice() -> Vec<u8> {
    reply::disconnect_notice(GOODBYE)
}

pub fn session_disconnect_notice(uuid: &str) -> Vec<u8> {
    format!(
        "Content-Type: text/disconnect-notice\nControlled-Session-UUID: {uuid}\nContent-Disposition: disconnect\nContent-Length: {}\n\n{GOODBYE}",
        GOODBYE.len()
    )
    .into_bytes()
}

pub fn linger_notice(uuid: &str, channel_name: &str, linger: Option<u64>) -> Vec<u8> {
    let time = linger.map(|s| s.to_string()).unwrap_or_else(|| "-1".into());
    format!(
        "Content-Type: text/disconnect-notice\nControlled-Session-UUID: {uuid}\nContent-Disposition: linger\nChannel-Name: {channel_name}\nLinger-Time: {time}\nContent-Length: 0\n\n"
    )
    .into_bytes()
}

/// A command as the client sent it: its first line, its headers (raw) and body.
#[derive(Debug, Clone, Default)]
pub struct Command {
    pub line: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

impl Command {
    pub fn parse(raw: &[u8]) -> Command {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = match text.find("\n\n") {
            Some(i) => (text[..i].to_string(), text[i + 2..].to_string()),
            None => (text.clone(), String::new()),
        };
        let mut lines = head.lines().map(|l| l.trim_end_matches('\r'));
        let line = lines.next().unwrap_or("").to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim_start_matches(' ').to_string()))
            .collect();
        Command {
            line,
            headers,
            body: (!body.is_empty()).then_some(body),
        }
    }

    pub fn word(&self) -> String {
        self.line
            .split(' ')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    }

    /// The command line after its first word.
    pub fn rest(&self) -> &str {
        self.line
            .split_once(' ')
            .map(|(_, r)| r.trim())
            .unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
