//! A child process's standard error, kept in a file and shown only when the test fails, so a
//! passing suite's output stays readable (the emulator's processes log every step).
//! `SKYPOPEN_TEST_CHILD_LOGS=1` shows them always.

use std::io::Write as _;
use std::process::Stdio;

pub struct ChildLog {
    what: String,
    file: tempfile::NamedTempFile,
}

impl ChildLog {
    pub fn new(what: &str) -> ChildLog {
        ChildLog {
            what: what.to_string(),
            file: tempfile::NamedTempFile::new().expect("a temporary log file"),
        }
    }

    /// Where the child writes.
    pub fn stdio(&self) -> Stdio {
        Stdio::from(self.file.reopen().expect("the log file reopens"))
    }
}

impl Drop for ChildLog {
    fn drop(&mut self) {
        if !std::thread::panicking() && std::env::var_os("SKYPOPEN_TEST_CHILD_LOGS").is_none() {
            return;
        }
        let text = std::fs::read_to_string(self.file.path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(200);
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "---- {} (last {} lines) ----",
            self.what,
            lines.len() - from
        );
        for line in &lines[from..] {
            let _ = writeln!(err, "{line}");
        }
        let _ = writeln!(err, "---- end of {} ----", self.what);
    }
}
