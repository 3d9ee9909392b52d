//! The keys of the messages FreeSWITCH has accepted, newest last, bounded, and kept in a small
//! state file so a sidecar killed between delivering a message and marking it SEEN does not
//! deliver it again after a restart.

use super::message::MessageKey;
use std::collections::{HashSet, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Keys kept: far more than can be waiting between delivery and SEEN, and enough to cover a
/// sibling interface of the same account that sees a message late.
pub const LEDGER_CAPACITY: usize = 4096;

pub const LEDGER_FILE: &str = "chat-delivered.keys";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot write chat state file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read chat state file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct Ledger {
    path: PathBuf,
    capacity: usize,
    order: VecDeque<MessageKey>,
    known: HashSet<MessageKey>,
}

impl Ledger {
    /// An empty ledger that will live at `dir/LEDGER_FILE`.
    pub fn empty(dir: &Path, capacity: usize) -> Ledger {
        Ledger {
            path: dir.join(LEDGER_FILE),
            capacity: capacity.max(1),
            order: VecDeque::new(),
            known: HashSet::new(),
        }
    }

    /// Loads the state file; a missing file is an empty ledger, unreadable lines are skipped.
    /// Blocking: call from a blocking thread.
    pub fn load(dir: &Path, capacity: usize) -> Result<Ledger, LedgerError> {
        let mut ledger = Ledger::empty(dir, capacity);
        let text = match std::fs::read_to_string(&ledger.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ledger),
            Err(source) => {
                return Err(LedgerError::Read {
                    path: ledger.path,
                    source,
                })
            }
        };
        for key in text.lines().filter_map(|l| MessageKey::from_hex(l.trim())) {
            ledger.insert(key);
        }
        Ok(ledger)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    pub fn contains(&self, key: MessageKey) -> bool {
        self.known.contains(&key)
    }

    /// Records a key, forgetting the oldest beyond capacity. Returns false if it was known.
    pub fn insert(&mut self, key: MessageKey) -> bool {
        if !self.known.insert(key) {
            return false;
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.known.remove(&old);
            }
        }
        true
    }

    /// The file's content: one hex key a line, oldest first.
    pub fn render(&self) -> String {
        let mut text = String::with_capacity(self.order.len() * 33);
        for key in &self.order {
            key.push_hex(&mut text);
            text.push('\n');
        }
        text
    }

    /// What to write, taken under the caller's lock and written outside the runtime.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            path: self.path.clone(),
            text: self.render(),
        }
    }

    /// Writes the state file now. Blocking.
    pub fn persist(&self) -> Result<(), LedgerError> {
        self.snapshot().write()
    }
}

/// The state file's content at one moment.
#[derive(Debug)]
pub struct Snapshot {
    path: PathBuf,
    text: String,
}

impl Snapshot {
    /// Writes the state file atomically: a temporary file beside it renamed over it, so a
    /// killed process leaves the old or the new content, never a torn one. Not synced: the
    /// write sits between FreeSWITCH's acceptance and SEEN, and a sync there widens the window
    /// in which a kill makes a message come twice; only a machine crash can lose the newest
    /// keys, with the same effect. Blocking.
    pub fn write(&self) -> Result<(), LedgerError> {
        write_atomically(&self.path, self.text.as_bytes()).map_err(|source| LedgerError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

fn write_atomically(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(content)?;
    }
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_beyond_capacity() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ledger = Ledger::empty(dir.path(), 3);
        for k in 1..=5u128 {
            assert!(ledger.insert(MessageKey(k)));
        }
        assert!(!ledger.insert(MessageKey(5)));
        assert_eq!(ledger.len(), 3);
        assert!(!ledger.contains(MessageKey(2)));
        assert!(ledger.contains(MessageKey(3)));
        assert!(ledger.contains(MessageKey(5)));
    }

    #[test]
    fn survives_a_reload_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ledger = Ledger::empty(&dir.path().join("state"), 10);
        ledger.insert(MessageKey(0xabc));
        ledger.insert(MessageKey(u128::MAX));
        ledger.persist().expect("persist");
        let again = Ledger::load(&dir.path().join("state"), 10).expect("load");
        assert!(again.contains(MessageKey(0xabc)));
        assert!(again.contains(MessageKey(u128::MAX)));
        assert_eq!(again.len(), 2);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("state"))
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [LEDGER_FILE]);
    }

    #[test]
    fn a_missing_file_is_empty_and_garbage_lines_are_skipped() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(Ledger::load(dir.path(), 10).expect("load").is_empty());
        std::fs::write(
            dir.path().join(LEDGER_FILE),
            format!("junk\n{}\n\n", MessageKey(7).to_hex()),
        )
        .expect("write");
        let ledger = Ledger::load(dir.path(), 10).expect("load");
        assert_eq!(ledger.len(), 1);
        assert!(ledger.contains(MessageKey(7)));
    }

    #[test]
    fn reload_keeps_only_the_newest_capacity() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ledger = Ledger::empty(dir.path(), 100);
        for k in 0..10u128 {
            ledger.insert(MessageKey(k));
        }
        ledger.persist().expect("persist");
        let small = Ledger::load(dir.path(), 4).expect("load");
        assert_eq!(small.len(), 4);
        assert!(small.contains(MessageKey(9)));
        assert!(!small.contains(MessageKey(5)));
    }
}
