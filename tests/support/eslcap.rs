//! Reader for the `.eslcap` captures of a real FreeSWITCH (format "ESLCAP/1", described in
//! the fixtures' README): `@<seq> <dir> <t_rel> <len>\n<len raw bytes>\n` records after
//! `#` comment lines.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Bytes the ESL client side wrote.
    ClientToServer,
    /// Bytes FreeSWITCH wrote.
    ServerToClient,
    /// FreeSWITCH closed the connection.
    Eof,
    /// A comment of the capture script, not on the wire.
    Note,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub seq: u32,
    pub direction: Direction,
    pub t_rel: f64,
    pub data: Vec<u8>,
}

impl Record {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Debug, Clone)]
pub struct Capture {
    pub title: String,
    pub comments: Vec<String>,
    pub records: Vec<Record>,
}

impl Capture {
    pub fn records(&self, direction: Direction) -> impl Iterator<Item = &Record> + '_ {
        self.records
            .iter()
            .filter(move |record| record.direction == direction)
    }

    /// All bytes written in one direction, in order (the exact TCP stream).
    pub fn stream(&self, direction: Direction) -> Vec<u8> {
        self.records(direction)
            .flat_map(|record| record.data.iter().copied())
            .collect()
    }

    /// The `NOTE` texts, in order.
    pub fn notes(&self) -> Vec<String> {
        self.records(Direction::Note).map(Record::text).collect()
    }
}

/// The captures the tests replay, kept in the repository so that a clone alone passes its
/// tests (`tests/fixtures/freeswitch-1.10.12/README.md` says what each shows).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/freeswitch-1.10.12")
}

/// Reads a capture by file name from [`fixtures_dir`].
pub fn load(name: &str) -> Result<Capture, String> {
    read(&fixtures_dir().join(name))
}

pub fn read(path: &Path) -> Result<Capture, String> {
    let data = std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()))?;
    parse(&data).map_err(|err| format!("{}: {err}", path.display()))
}

pub fn parse(data: &[u8]) -> Result<Capture, String> {
    let mut pos = 0;
    let mut title = String::new();
    let mut comments = Vec::new();
    while data.get(pos) == Some(&b'#') {
        let eol = find_newline(data, pos)?;
        let line = String::from_utf8_lossy(&data[pos..eol]).into_owned();
        match line.strip_prefix("#ESLCAP/1") {
            Some(rest) => title = rest.trim().to_string(),
            None => comments.push(line.trim_start_matches('#').trim().to_string()),
        }
        pos = eol + 1;
    }
    let mut records = Vec::new();
    while pos < data.len() {
        let eol = find_newline(data, pos)?;
        let header = std::str::from_utf8(&data[pos..eol])
            .map_err(|_| format!("record header at byte {pos} is not UTF-8"))?;
        let fields: Vec<&str> = header.split(' ').collect();
        let [seq, direction, t_rel, length] = fields[..] else {
            return Err(format!("bad record header {header:?}"));
        };
        let seq = seq
            .strip_prefix('@')
            .and_then(|seq| seq.parse().ok())
            .ok_or_else(|| format!("bad sequence in {header:?}"))?;
        let direction = match direction {
            "C>S" => Direction::ClientToServer,
            "S>C" => Direction::ServerToClient,
            "EOF" => Direction::Eof,
            "NOTE" => Direction::Note,
            other => return Err(format!("unknown direction {other:?}")),
        };
        let t_rel = t_rel
            .parse()
            .map_err(|_| format!("bad time in {header:?}"))?;
        let length: usize = length
            .parse()
            .map_err(|_| format!("bad length in {header:?}"))?;
        let start = eol + 1;
        let end = start + length;
        if data.get(end) != Some(&b'\n') {
            return Err(format!("record {seq} is not followed by its separator"));
        }
        records.push(Record {
            seq,
            direction,
            t_rel,
            data: data[start..end].to_vec(),
        });
        pos = end + 1;
    }
    Ok(Capture {
        title,
        comments,
        records,
    })
}

fn find_newline(data: &[u8], from: usize) -> Result<usize, String> {
    data[from..]
        .iter()
        .position(|byte| *byte == b'\n')
        .map(|offset| from + offset)
        .ok_or_else(|| format!("unterminated line at byte {from}"))
}
