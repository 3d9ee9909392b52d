//! Reader for the ESLCAP/1 captures of a real FreeSWITCH (see the fixtures' README): records of
//! what each side of one Event Socket connection wrote.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// What the ESL client side wrote (for `socket` captures: the application).
    ClientToServer,
    /// What FreeSWITCH wrote.
    ServerToClient,
    Eof,
    Note,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub seq: u32,
    pub dir: Dir,
    pub t_rel: f64,
    pub data: Vec<u8>,
}

impl Record {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The first word of a client command (`sendmsg`, `api`, ...).
    pub fn command_word(&self) -> String {
        first_word(&self.data)
    }
}

pub fn first_word(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    text.split(|c: char| c.is_whitespace())
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The fixtures folder: `$SKYPOPEN_FIXTURES`, else `shared/fixtures/freeswitch-1.10.12` in the
/// nearest ancestor of the crate that has it (CI keeps `shared/` beside the clone).
pub fn fixtures_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SKYPOPEN_FIXTURES") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for ancestor in manifest.ancestors() {
        let candidate = ancestor.join("shared/fixtures/freeswitch-1.10.12");
        if candidate.is_dir() {
            return candidate;
        }
    }
    manifest.join("../shared/fixtures/freeswitch-1.10.12")
}

pub fn load(name: &str) -> Vec<Record> {
    let path = fixtures_dir().join(name);
    let data = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    parse(&data).unwrap_or_else(|e| panic!("fixture {} is malformed: {e}", path.display()))
}

pub fn parse(data: &[u8]) -> Result<Vec<Record>, String> {
    let mut pos = 0;
    while data.get(pos) == Some(&b'#') {
        pos = find(data, pos, b'\n').ok_or("unterminated comment")? + 1;
    }
    let mut records = Vec::new();
    while pos < data.len() {
        let eol = find(data, pos, b'\n').ok_or("unterminated record header")?;
        let header = std::str::from_utf8(&data[pos..eol]).map_err(|e| e.to_string())?;
        let parts: Vec<&str> = header.split(' ').collect();
        if parts.len() != 4 || !parts[0].starts_with('@') {
            return Err(format!("bad record header {header:?}"));
        }
        let seq = parts[0][1..].parse().map_err(|_| "bad seq")?;
        let dir = match parts[1] {
            "C>S" => Dir::ClientToServer,
            "S>C" => Dir::ServerToClient,
            "EOF" => Dir::Eof,
            "NOTE" => Dir::Note,
            other => return Err(format!("bad direction {other}")),
        };
        let t_rel = parts[2].parse().map_err(|_| "bad time")?;
        let len: usize = parts[3].parse().map_err(|_| "bad length")?;
        let start = eol + 1;
        let end = start + len;
        if data.get(end) != Some(&b'\n') {
            return Err(format!("record {seq} is not followed by a newline"));
        }
        records.push(Record {
            seq,
            dir,
            t_rel,
            data: data[start..end].to_vec(),
        });
        pos = end + 1;
    }
    Ok(records)
}

fn find(data: &[u8], from: usize, byte: u8) -> Option<usize> {
    data[from..]
        .iter()
        .position(|b| *b == byte)
        .map(|i| i + from)
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
