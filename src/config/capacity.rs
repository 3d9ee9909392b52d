//! What a configuration can carry, for `check` to say before the first call finds out.

use super::validate::MAX_INTERFACE_ID;
use super::{MediaMode, Settings};

/// Descriptors the sidecar holds whatever it serves (listeners, links, logs, runtime).
const FDS_BASE: u64 = 64;
/// Per interface: its X11 connection and the supervised client's and X server's pipes.
const FDS_PER_INTERFACE: u64 = 4;
/// Per call: the channel's socket, the client's two audio listeners and two connections, the
/// media leg (a UDP socket or a websocket) and slack.
const FDS_PER_CALL: u64 = 8;

/// The limits of one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    pub interfaces: usize,
    /// Calls at once: one per interface, and each takes two audio ports and, on `unicast`,
    /// a port pair.
    pub calls: usize,
    /// What bounds `calls`.
    pub calls_bound_by: &'static str,
    /// Open files the sidecar may need with every interface in a call.
    pub fds_needed: u64,
}

impl Capacity {
    pub fn of(settings: &Settings) -> Capacity {
        let interfaces = settings.interfaces.len();
        let pairs = |range: &std::ops::RangeInclusive<u16>| {
            (usize::from(*range.end()) + 1).saturating_sub(usize::from(*range.start())) / 2
        };
        let mut bounds = vec![
            (interfaces, "one call per interface"),
            (
                pairs(&settings.audio_ports),
                "clients.audio_ports (two ports per call)",
            ),
        ];
        if settings.switch.media == MediaMode::Unicast {
            bounds.push((
                pairs(&settings.unicast_ports),
                "switch.unicast_ports (a port pair per call)",
            ));
        }
        let (calls, calls_bound_by) = bounds
            .into_iter()
            .min_by_key(|(n, _)| *n)
            .unwrap_or((0, "no interfaces"));
        Capacity {
            interfaces,
            calls,
            calls_bound_by,
            fds_needed: FDS_BASE
                + FDS_PER_INTERFACE * interfaces as u64
                + FDS_PER_CALL * calls as u64,
        }
    }

    /// The lines `check` prints; `open_files` is the process's soft limit when known.
    pub fn describe(&self, open_files: Option<u64>) -> Vec<String> {
        let mut lines = vec![
            format!(
                "interfaces: {} (one sidecar serves at most {MAX_INTERFACE_ID})",
                self.interfaces
            ),
            format!(
                "calls at once: at most {} ({})",
                self.calls, self.calls_bound_by
            ),
        ];
        match open_files {
            Some(limit) if limit < self.fds_needed => lines.push(format!(
                "warning: open files: the limit is {limit}, every interface in a call needs \
                 about {}; raise it (LimitNOFILE= in the unit, ulimit -n)",
                self.fds_needed
            )),
            Some(limit) => lines.push(format!(
                "open files: about {} needed with every interface in a call, the limit is {limit}",
                self.fds_needed
            )),
            None => {}
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn settings(extra: &str, interfaces: u32) -> Settings {
        let mut text = format!("{extra}\n[defaults]\nskype_user = \"u\"\n");
        for id in 1..=interfaces {
            text.push_str(&format!(
                "[[interface]]\nid = {id}\nname = \"i{id}\"\nx11_display = \":{}\"\n",
                100 + id
            ));
        }
        Settings::from_text(Path::new("t.toml"), &text).unwrap()
    }

    #[test]
    fn calls_are_bound_by_the_scarcest_resource() {
        let c = Capacity::of(&settings("", 250));
        assert_eq!((c.interfaces, c.calls), (250, 250));
        assert_eq!(c.calls_bound_by, "one call per interface");
        let c = Capacity::of(&settings(
            "[switch]\nunicast_ports = \"40000-40099\"\n[clients]\naudio_ports = \"32769-32999\"",
            250,
        ));
        assert_eq!(c.calls, 50);
        assert!(c.calls_bound_by.starts_with("switch.unicast_ports"));
        assert_eq!(c.fds_needed, 64 + 4 * 250 + 8 * 50);
    }

    #[test]
    fn a_low_open_files_limit_is_a_warning() {
        let c = Capacity::of(&settings("", 250));
        let lines = c.describe(Some(1024));
        assert!(
            lines[2].starts_with("warning: open files: the limit is 1024"),
            "{lines:?}"
        );
        let lines = c.describe(Some(65536));
        assert!(
            lines[2].starts_with("open files: about 3064 needed"),
            "{lines:?}"
        );
    }
}
