//! Plays FreeSWITCH's side of a captured `socket` connection against the sidecar's acceptor:
//! connects to it, and answers each command the acceptor sends with what FreeSWITCH sent after
//! the matching command in the capture.
//!
//! Commands are matched by their first word, in order; capture commands the sidecar does not
//! send are skipped with their output. An `event-uuid` the sidecar chose replaces the one in the
//! capture (same length, so Content-Length values stay right).

use crate::support::eslcap::{Direction, Record};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the replay saw, for assertions.
#[derive(Debug, Default)]
pub struct ReplayLog {
    pub received: Vec<String>,
    pub skipped: Vec<String>,
    pub finished: bool,
}

pub async fn replay_socket(target: SocketAddr, records: Vec<Record>) -> std::io::Result<ReplayLog> {
    let mut stream = TcpStream::connect(target).await?;
    let mut log = ReplayLog::default();
    let mut buf = Vec::new();
    let mut cursor = 0;
    loop {
        let Some(command) = read_command(&mut stream, &mut buf).await? else {
            return Ok(log);
        };
        let word = first_word(&command);
        log.received
            .push(String::from_utf8_lossy(&command).into_owned());
        // Find the capture's next command with the same first word.
        let Some(found) = records[cursor..]
            .iter()
            .position(|r| r.direction == Direction::ClientToServer && first_word(&r.data) == word)
            .map(|i| i + cursor)
        else {
            // Not in the capture: a real FreeSWITCH would still answer something; stay silent
            // so that the test sees the difference as a timeout.
            continue;
        };
        for skipped in &records[cursor..found] {
            if skipped.direction == Direction::ClientToServer {
                log.skipped.push(skipped.text());
            }
        }
        let substitution = event_uuid(&records[found].data).zip(event_uuid(&command));
        cursor = found + 1;
        while cursor < records.len() && records[cursor].direction != Direction::ClientToServer {
            let record = &records[cursor];
            cursor += 1;
            match record.direction {
                Direction::ServerToClient => {
                    let mut bytes = record.data.clone();
                    if let Some((old, new)) = &substitution {
                        replace_all(&mut bytes, old.as_bytes(), new.as_bytes());
                    }
                    stream.write_all(&bytes).await?;
                }
                Direction::Eof => {
                    stream.shutdown().await?;
                    log.finished = true;
                    return Ok(log);
                }
                _ => {}
            }
        }
        stream.flush().await?;
    }
}

fn event_uuid(command: &[u8]) -> Option<String> {
    header_lines(command)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("event-uuid"))
        .map(|(_, v)| v)
        .filter(|v| v.len() == 36)
}

fn replace_all(bytes: &mut [u8], old: &[u8], new: &[u8]) {
    debug_assert_eq!(old.len(), new.len());
    let mut i = 0;
    while i + old.len() <= bytes.len() {
        if &bytes[i..i + old.len()] == old {
            bytes[i..i + old.len()].copy_from_slice(new);
            i += old.len();
        } else {
            i += 1;
        }
    }
}

/// One ESL command: lines up to an empty line, plus `Content-Length` bytes of body.
pub async fn read_command(
    stream: &mut (impl AsyncReadExt + Unpin),
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    loop {
        // FreeSWITCH ignores CR and discards empty lines before a command.
        while buf.first() == Some(&b'\n') || buf.starts_with(b"\r\n") {
            let n = if buf[0] == b'\n' { 1 } else { 2 };
            buf.drain(..n);
        }
        if let Some(end) = header_end(buf) {
            let head = buf[..end].to_vec();
            let body_len = header_lines(&head)
                .into_iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= end + body_len {
                let command: Vec<u8> = buf.drain(..end + body_len).collect();
                return Ok(Some(command));
            }
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Index just past the blank line ending a header block (`\n\n`, CRs ignored).
fn header_end(buf: &[u8]) -> Option<usize> {
    let mut newlines = 0;
    for (i, b) in buf.iter().enumerate() {
        match b {
            b'\n' => {
                newlines += 1;
                if newlines == 2 {
                    return Some(i + 1);
                }
            }
            b'\r' => {}
            _ => newlines = 0,
        }
    }
    None
}

/// The first word of a command, lowercased (`sendmsg`, `api`, ...).
pub fn first_word(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    text.split(char::is_whitespace)
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Header lines of one wire message (up to the blank line), as (name, raw value) pairs.
pub fn header_lines(message: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\n\n").next().unwrap_or("");
    head.lines()
        .filter_map(|l| l.split_once(": ").or_else(|| l.split_once(':')))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
