//! What the double writes on the wire, byte-compatible with FreeSWITCH 1.10.12: URL encoding,
//! plain/JSON event bodies, replies and notices.

pub const GOODBYE: &str = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n";

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

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .headers
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some((_, v)) => *v = value,
            None => self.headers.push((name.to_string(), value)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Json,
}

/// FreeSWITCH's `switch_url_encode`: unsafe bytes become `%XX`; a `%` already followed by
/// two uppercase hex digits is kept (FreeSWITCH does not double-encode).
pub fn url_encode(value: &str) -> String {
    const UNSAFE: &[u8] = b"\r\n #%&+:;<=>?@[\\]^`{|}\"";
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let already_encoded = b == b'%'
            && bytes.len() > i + 2
            && is_upper_hex(bytes[i + 1])
            && is_upper_hex(bytes[i + 2]);
        if already_encoded || ((0x20..=0x7e).contains(&b) && !UNSAFE.contains(&b)) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    if out.is_empty() {
        return "_undef_".to_string();
    }
    out
}

fn is_upper_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b)
}

pub fn url_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The body of a `text/event-plain` message.
pub fn plain_payload(event: &Event) -> String {
    let mut payload = String::new();
    for (name, value) in &event.headers {
        payload.push_str(name);
        payload.push_str(": ");
        payload.push_str(&url_encode(value));
        payload.push('\n');
    }
    match &event.body {
        Some(body) => {
            payload.push_str(&format!("Content-Length: {}\n\n", body.len()));
            payload.push_str(body);
        }
        None => payload.push('\n'),
    }
    payload
}

pub fn json_payload(event: &Event) -> String {
    let mut out = String::from("{");
    let mut first = true;
    let mut push = |out: &mut String, k: &str, v: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(&serde_json::Value::String(k.to_string()).to_string());
        out.push(':');
        out.push_str(&serde_json::Value::String(v.to_string()).to_string());
    };
    for (name, value) in &event.headers {
        push(&mut out, name, value);
    }
    if let Some(body) = &event.body {
        push(&mut out, "Content-Length", &body.len().to_string());
        push(&mut out, "_body", body);
    }
    out.push('}');
    out
}

pub fn render_event(event: &Event, format: Format) -> Vec<u8> {
    let (payload, content_type) = match format {
        Format::Plain => (plain_payload(event), "text/event-plain"),
        Format::Json => (json_payload(event), "text/event-json"),
    };
    format!(
        "Content-Length: {}\nContent-Type: {content_type}\n\n{payload}",
        payload.len()
    )
    .into_bytes()
}

pub fn command_reply(text: &str) -> Vec<u8> {
    format!("Content-Type: command/reply\nReply-Text: {text}\n\n").into_bytes()
}

pub fn command_reply_with(text: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("Content-Type: command/reply\nReply-Text: {text}\n");
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out.push('\n');
    out.into_bytes()
}

pub fn api_response(body: &str) -> Vec<u8> {
    format!(
        "Content-Type: api/response\nContent-Length: {}\n\n{body}",
        body.len()
    )
    .into_bytes()
}

pub fn disconnect_notice() -> Vec<u8> {
    format!(
        "Content-Type: text/disconnect-notice\nContent-Length: {}\n\n{GOODBYE}",
        GOODBYE.len()
    )
    .into_bytes()
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
