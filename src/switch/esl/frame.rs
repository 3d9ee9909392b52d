//! Streaming framing of Event Socket traffic: a header block up to the first empty line, then
//! exactly `Content-Length` body bytes when that header is present. The same framing carries
//! client commands (first line = the command) and server messages (all lines are headers).
//!
//! Like FreeSWITCH's reader, CR bytes are ignored when looking for the empty line, so `\n\n`,
//! `\n\r\n` and `\r\n\r\n` all end a block, and empty lines before a block are skipped. Both
//! the header block and the body are bounded; going over a bound is a [`FrameError`], after
//! which the stream cannot be resynchronised and the connection should be closed.

use super::headers::Headers;
use bytes::{Buf, Bytes, BytesMut};

/// Bounds on what one frame may make the decoder buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_head: usize,
    pub max_body: usize,
}

impl Default for Limits {
    /// 64 KiB of headers and 1 MiB of body: far above any legitimate ESL command.
    fn default() -> Self {
        Limits {
            max_head: 64 * 1024,
            max_body: 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("header block longer than {limit} bytes")]
    HeadTooLong { limit: usize },
    #[error("Content-Length {length} is over the limit of {limit} bytes")]
    BodyTooLong { length: u64, limit: usize },
    #[error("invalid Content-Length {0:?}")]
    BadContentLength(String),
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A command a client sent: `api status`, `sendevent MESSAGE` + headers + body, ...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The first line, without its line ending.
    pub line: String,
    /// The lines after it, values taken literally (FreeSWITCH does not URL-decode them).
    pub headers: Headers,
    pub body: Option<Bytes>,
}

impl Command {
    /// The command word (`api`, `event`, ...), as typed.
    pub fn keyword(&self) -> &str {
        self.line.split(' ').next().unwrap_or("")
    }

    /// Everything after the command word, without surrounding blanks.
    pub fn args(&self) -> &str {
        match self.line.split_once(' ') {
            Some((_, rest)) => rest.trim(),
            None => "",
        }
    }
}

/// A message from the server side: a header block (raw, still URL-encoded where the sender
/// encoded) and an optional body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Headers,
    pub body: Option<Bytes>,
}

impl Message {
    pub fn content_type(&self) -> Option<&str> {
        self.headers.get("Content-Type")
    }

    pub fn body_text(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.body.as_deref().map(String::from_utf8_lossy)
    }
}

/// The lines of a header block and the body after it.
type RawFrame = (Vec<String>, Option<Bytes>);

/// The state shared by both decoders: how far the current block has been scanned, so a
/// block arriving one byte at a time costs linear, not quadratic, work.
#[derive(Debug, Default)]
struct BlockScanner {
    limits: Limits,
    scanned: usize,
    newline_run: u8,
    awaiting_body: Option<(Vec<String>, usize)>,
}

impl BlockScanner {
    fn new(limits: Limits) -> Self {
        BlockScanner {
            limits,
            ..Default::default()
        }
    }

    /// Returns the lines of the next complete frame and its body.
    fn decode(
        &mut self,
        buf: &mut BytesMut,
        first_line_is_command: bool,
    ) -> Result<Option<RawFrame>, FrameError> {
        if self.awaiting_body.is_none() {
            let Some(lines) = self.take_head(buf)? else {
                return Ok(None);
            };
            let header_lines = if first_line_is_command {
                lines.get(1..).unwrap_or(&[])
            } else {
                &lines[..]
            };
            let length = self.body_length(header_lines)?;
            if length == 0 {
                return Ok(Some((lines, None)));
            }
            self.awaiting_body = Some((lines, length));
        }
        match &self.awaiting_body {
            Some((_, length)) if buf.len() >= *length => {
                let length = *length;
                let body = buf.split_to(length).freeze();
                let lines = self
                    .awaiting_body
                    .take()
                    .map(|(lines, _)| lines)
                    .unwrap_or_default();
                Ok(Some((lines, Some(body))))
            }
            Some((_, length)) => {
                buf.reserve(*length - buf.len());
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn take_head(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<String>>, FrameError> {
        if self.scanned == 0 {
            let leading = buf
                .iter()
                .take_while(|byte| matches!(byte, b'\r' | b'\n'))
                .count();
            buf.advance(leading);
        }
        let mut end = None;
        for (offset, byte) in buf[self.scanned..].iter().enumerate() {
            match byte {
                b'\n' => {
                    self.newline_run += 1;
                    if self.newline_run == 2 {
                        end = Some(self.scanned + offset + 1);
                        break;
                    }
                }
                b'\r' => {}
                _ => self.newline_run = 0,
            }
        }
        let Some(end) = end else {
            self.scanned = buf.len();
            if buf.len() > self.limits.max_head {
                return Err(FrameError::HeadTooLong {
                    limit: self.limits.max_head,
                });
            }
            return Ok(None);
        };
        self.scanned = 0;
        self.newline_run = 0;
        if end > self.limits.max_head {
            return Err(FrameError::HeadTooLong {
                limit: self.limits.max_head,
            });
        }
        let head = buf.split_to(end);
        let lines = head[..]
            .split(|byte| *byte == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.is_empty() && *line != b"\r")
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect();
        Ok(Some(lines))
    }

    fn body_length(&self, header_lines: &[String]) -> Result<usize, FrameError> {
        let Some(value) = header_lines.iter().rev().find_map(|line| {
            let (name, value) = split_header(line)?;
            name.eq_ignore_ascii_case("Content-Length").then_some(value)
        }) else {
            return Ok(0);
        };
        let length: u64 = value
            .trim()
            .parse()
            .map_err(|_| FrameError::BadContentLength(value.chars().take(32).collect()))?;
        if length > self.limits.max_body as u64 {
            return Err(FrameError::BodyTooLong {
                length,
                limit: self.limits.max_body,
            });
        }
        // Lossless: bounded by max_body, a usize.
        Ok(length as usize)
    }
}

/// `Name: value` → (`Name`, `value`), the value without the blanks after the colon.
pub(crate) fn split_header(line: &str) -> Option<(&str, &str)> {
    let (name, value) = line.split_once(':')?;
    Some((name.trim(), value.trim_start_matches(' ')))
}

fn headers_from_lines(lines: &[String]) -> Headers {
    lines.iter().filter_map(|line| split_header(line)).collect()
}

/// Decodes client commands (the server side of a connection).
#[derive(Debug, Default)]
pub struct CommandDecoder {
    scanner: BlockScanner,
}

impl CommandDecoder {
    pub fn new(limits: Limits) -> Self {
        CommandDecoder {
            scanner: BlockScanner::new(limits),
        }
    }

    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, FrameError> {
        Ok(self.scanner.decode(buf, true)?.map(|(lines, body)| {
            let mut lines = lines.into_iter();
            let line = lines.next().unwrap_or_default();
            let rest: Vec<String> = lines.collect();
            Command {
                line,
                headers: headers_from_lines(&rest),
                body,
            }
        }))
    }
}

impl tokio_util::codec::Decoder for CommandDecoder {
    type Item = Command;
    type Error = FrameError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, FrameError> {
        CommandDecoder::decode(self, buf)
    }
}

/// Decodes server messages (the client side of a connection, tests and the double).
#[derive(Debug, Default)]
pub struct MessageDecoder {
    scanner: BlockScanner,
}

impl MessageDecoder {
    pub fn new(limits: Limits) -> Self {
        MessageDecoder {
            scanner: BlockScanner::new(limits),
        }
    }

    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, FrameError> {
        Ok(self
            .scanner
            .decode(buf, false)?
            .map(|(lines, body)| Message {
                headers: headers_from_lines(&lines),
                body,
            }))
    }
}

impl tokio_util::codec::Decoder for MessageDecoder {
    type Item = Message;
    type Error = FrameError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, FrameError> {
        MessageDecoder::decode(self, buf)
    }
}

/// Renders a command as a client sends it (tests, and clients of the sidecar's own listener).
pub fn encode_command(line: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 2 + body.map_or(0, <[u8]>::len));
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    if let Some(body) = body {
        out.extend_from_slice(format!("Content-Length: {}\n\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    } else {
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commands(input: &[u8]) -> Result<Vec<Command>, FrameError> {
        let mut decoder = CommandDecoder::default();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(command) = decoder.decode(&mut buf)? {
            out.push(command);
        }
        Ok(out)
    }

    #[test]
    fn parses_commands_with_lf_and_crlf() -> Result<(), FrameError> {
        let parsed = commands(b"\r\n\napi status\n\nauth ClueCon\r\n\r\nexit\n\r\n")?;
        let lines: Vec<&str> = parsed.iter().map(|c| c.line.as_str()).collect();
        assert_eq!(lines, ["api status", "auth ClueCon", "exit"]);
        assert_eq!(parsed[0].keyword(), "api");
        assert_eq!(parsed[0].args(), "status");
        Ok(())
    }

    #[test]
    fn parses_headers_and_body() -> Result<(), FrameError> {
        let parsed = commands(
            b"sendevent MESSAGE\nproto: skype\nContent-Length: 5\n\nhello\n\nbgapi status\nJob-UUID: x\n\n",
        )?;
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].headers.get("proto"), Some("skype"));
        assert_eq!(parsed[0].body.as_deref(), Some(&b"hello"[..]));
        assert_eq!(parsed[1].headers.get("job-uuid"), Some("x"));
        Ok(())
    }

    #[test]
    fn waits_for_incomplete_frames() -> Result<(), FrameError> {
        let mut decoder = CommandDecoder::default();
        let mut buf = BytesMut::new();
        let input = b"sendevent CUSTOM\nContent-Length: 3\n\nabc";
        for (index, byte) in input.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let result = decoder.decode(&mut buf)?;
            if index + 1 < input.len() {
                assert!(result.is_none(), "frame complete too early at {index}");
            } else {
                assert_eq!(
                    result.and_then(|c| c.body),
                    Some(Bytes::from_static(b"abc"))
                );
            }
        }
        Ok(())
    }

    #[test]
    fn bounds_are_enforced() {
        let limits = Limits {
            max_head: 24,
            max_body: 4,
        };
        let mut decoder = CommandDecoder::new(limits);
        let mut buf = BytesMut::from(&b"api aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(FrameError::HeadTooLong { .. })
        ));
        let mut decoder = CommandDecoder::new(limits);
        let mut buf = BytesMut::from(&b"x\nContent-Length: 5\n\n"[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(FrameError::BodyTooLong { length: 5, .. })
        ));
        let mut decoder = CommandDecoder::new(limits);
        let mut buf = BytesMut::from(&b"x\nContent-Length: -1\n\n"[..]);
        assert!(matches!(
            decoder.decode(&mut buf),
            Err(FrameError::BadContentLength(_))
        ));
    }

    #[test]
    fn message_decoder_reads_server_messages() -> Result<(), FrameError> {
        let mut decoder = MessageDecoder::default();
        let mut buf = BytesMut::from(
            &b"Content-Type: api/response\nContent-Length: 3\n\n+OK\nContent-Type: auth/request\n\n"[..],
        );
        let first = decoder.decode(&mut buf)?;
        assert_eq!(
            first.as_ref().and_then(Message::content_type),
            Some("api/response")
        );
        assert_eq!(first.and_then(|m| m.body), Some(Bytes::from_static(b"+OK")));
        let second = decoder.decode(&mut buf)?;
        assert_eq!(
            second.as_ref().and_then(Message::content_type),
            Some("auth/request")
        );
        Ok(())
    }

    #[test]
    fn encode_command_round_trips() -> Result<(), FrameError> {
        let bytes = encode_command("sendevent MESSAGE", &[("to", "user1")], Some(b"hi\n\n"));
        let parsed = commands(&bytes)?;
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].headers.get("to"), Some("user1"));
        assert_eq!(parsed[0].body.as_deref(), Some(&b"hi\n\n"[..]));
        Ok(())
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const LIMITS: Limits = Limits {
            max_head: 256,
            max_body: 512,
        };

        fn feed_in_chunks(input: &[u8], chunks: &[usize]) -> Result<Vec<Command>, FrameError> {
            let mut decoder = CommandDecoder::new(LIMITS);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut rest = input;
            let mut sizes = chunks.iter().cycle();
            while !rest.is_empty() {
                let size = sizes.next().copied().unwrap_or(1).clamp(1, rest.len());
                let (chunk, tail) = rest.split_at(size);
                rest = tail;
                buf.extend_from_slice(chunk);
                while let Some(command) = decoder.decode(&mut buf)? {
                    out.push(command);
                }
                // What the decoder leaves buffered is bounded by the limits, whatever the input.
                assert!(buf.len() <= LIMITS.max_head + LIMITS.max_body + size);
            }
            Ok(out)
        }

        fn command_strategy() -> impl Strategy<Value = Vec<u8>> {
            (
                "[a-z]{1,8}( [ -~]{0,20})?",
                proptest::collection::vec(("[A-Za-z-]{1,10}", "[ -~]{0,20}"), 0..4),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            )
                .prop_map(|(line, headers, body)| {
                    let headers: Vec<(&str, &str)> = headers
                        .iter()
                        .filter(|(name, _)| !name.eq_ignore_ascii_case("Content-Length"))
                        .map(|(name, value)| (name.as_str(), value.as_str()))
                        .collect();
                    encode_command(line.trim_end(), &headers, body.as_deref())
                })
        }

        proptest! {
            #[test]
            fn arbitrary_bytes_never_panic_and_stay_bounded(
                input in proptest::collection::vec(any::<u8>(), 0..2048),
                chunks in proptest::collection::vec(1usize..64, 1..8),
            ) {
                let _ = feed_in_chunks(&input, &chunks);
            }

            #[test]
            fn header_like_garbage_never_panics(
                input in "([A-Za-z-]{0,6}(: )?[0-9 -]{0,8}[\r\n]{0,3}){0,40}",
                chunks in proptest::collection::vec(1usize..16, 1..8),
            ) {
                let _ = feed_in_chunks(input.as_bytes(), &chunks);
            }

            #[test]
            fn chunking_does_not_change_the_commands(
                commands in proptest::collection::vec(command_strategy(), 1..6),
                chunks in proptest::collection::vec(1usize..32, 1..8),
            ) {
                let stream = commands.concat();
                let whole = feed_in_chunks(&stream, &[stream.len().max(1)]);
                let chunked = feed_in_chunks(&stream, &chunks);
                prop_assert!(whole.is_ok());
                let whole = whole.unwrap_or_default();
                prop_assert_eq!(whole.len(), commands.len());
                prop_assert_eq!(chunked.ok(), Some(whole));
            }
        }
    }
}
