//! The headers FreeSWITCH puts on every event it fires (`Event-Name`, `Core-UUID`,
//! `FreeSWITCH-Hostname`, dates, calling location, `Event-Sequence`), so subscribers that
//! key on them treat the sidecar's events like FreeSWITCH's.

use super::event::Event;
use chrono::{DateTime, Local, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Identity of the event source plus the global sequence counter. One per process.
#[derive(Debug)]
pub struct EventSource {
    core_uuid: String,
    hostname: String,
    switchname: String,
    ipv4: String,
    ipv6: String,
    sequence: AtomicU64,
}

impl EventSource {
    /// A new source with a random `Core-UUID`, the machine's host name, and loopback
    /// addresses (the sidecar has no single "primary" address to report).
    pub fn new() -> Self {
        let hostname = host_name();
        EventSource {
            core_uuid: uuid::Uuid::new_v4().to_string(),
            switchname: hostname.clone(),
            hostname,
            ipv4: "127.0.0.1".into(),
            ipv6: "::1".into(),
            sequence: AtomicU64::new(0),
        }
    }

    pub fn with_identity(
        core_uuid: impl Into<String>,
        hostname: impl Into<String>,
        ipv4: impl Into<String>,
        ipv6: impl Into<String>,
    ) -> Self {
        let hostname = hostname.into();
        EventSource {
            core_uuid: core_uuid.into(),
            switchname: hostname.clone(),
            hostname,
            ipv4: ipv4.into(),
            ipv6: ipv6.into(),
            sequence: AtomicU64::new(0),
        }
    }

    pub fn core_uuid(&self) -> &str {
        &self.core_uuid
    }

    pub fn hostname(&self) -> &str {
        &self.hostname
    }

    /// A new event of type `name` carrying the standard headers; `function` names the
    /// code that fires it (`Event-Calling-Function`), file and line come from the caller.
    #[track_caller]
    pub fn event(&self, name: &str, function: &str) -> Event {
        let mut event = Event::new();
        self.stamp_at(&mut event, name, function, std::panic::Location::caller());
        event
    }

    /// A `CUSTOM` event: `Event-Subclass` comes first, before the standard headers, as in
    /// the events FreeSWITCH's modules fire.
    #[track_caller]
    pub fn custom(&self, subclass: &str, function: &str) -> Event {
        let mut event = Event::new().with_header("Event-Subclass", subclass);
        self.stamp_at(
            &mut event,
            "CUSTOM",
            function,
            std::panic::Location::caller(),
        );
        event
    }

    /// Appends the standard headers to an event that already has its own headers in front
    /// (what FreeSWITCH does to an event that arrived through `sendevent`).
    #[track_caller]
    pub fn stamp(&self, event: &mut Event, name: &str, function: &str) {
        self.stamp_at(event, name, function, std::panic::Location::caller());
    }

    fn stamp_at(
        &self,
        event: &mut Event,
        name: &str,
        function: &str,
        location: &std::panic::Location<'_>,
    ) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        let file = location
            .file()
            .rsplit('/')
            .next()
            .unwrap_or(location.file());
        let headers = &mut event.headers;
        headers.push("Event-Name", name);
        headers.push("Core-UUID", self.core_uuid.as_str());
        headers.push("FreeSWITCH-Hostname", self.hostname.as_str());
        headers.push("FreeSWITCH-Switchname", self.switchname.as_str());
        headers.push("FreeSWITCH-IPv4", self.ipv4.as_str());
        headers.push("FreeSWITCH-IPv6", self.ipv6.as_str());
        headers.push("Event-Date-Local", format_local(now));
        headers.push("Event-Date-GMT", format_gmt(now));
        headers.push("Event-Date-Timestamp", now.as_micros().to_string());
        headers.push("Event-Calling-File", file);
        headers.push("Event-Calling-Function", function);
        headers.push("Event-Calling-Line-Number", location.line().to_string());
        headers.push("Event-Sequence", sequence.to_string());
    }
}

impl Default for EventSource {
    fn default() -> Self {
        Self::new()
    }
}

/// This machine's name, as FreeSWITCH's `hostname` and its events' `FreeSWITCH-Hostname` say it.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The moment `since_epoch` after 1970-01-01 UTC (the epoch itself if out of range).
fn utc(since_epoch: Duration) -> DateTime<Utc> {
    i64::try_from(since_epoch.as_secs())
        .ok()
        .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
        .unwrap_or_default()
}

/// `YYYY-MM-DD hh:mm:ss` in the machine's local time.
pub fn format_local(since_epoch: Duration) -> String {
    utc(since_epoch)
        .with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// RFC 822 in GMT: `Sun, 22 Nov 2026 20:25:25 GMT`.
pub fn format_gmt(since_epoch: Duration) -> String {
    utc(since_epoch)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_date_has_freeswitch_s_shape() {
        let text = format_local(Duration::from_secs(1_795_379_125));
        let b = text.as_bytes();
        assert_eq!(text.len(), 19, "{text}");
        assert_eq!(
            (b[4], b[7], b[10], b[13], b[16]),
            (b'-', b'-', b' ', b':', b':')
        );
    }

    #[test]
    fn gmt_date_matches_freeswitch_capture() {
        // Event-Date-Timestamp 1795379125398059 was printed as this GMT date in s1d.
        let when = Duration::from_micros(1_795_379_125_398_059);
        assert_eq!(format_gmt(when), "Sun, 22 Nov 2026 20:25:25 GMT");
    }

    #[test]
    fn standard_headers_in_freeswitch_order() {
        let source = EventSource::with_identity("core", "vm", "192.0.2.2", "fd00::2");
        let first = source.event("MESSAGE", "deliver");
        let second = source.custom("skypopen::command", "run");
        let names: Vec<&str> = first.headers.iter().map(|(name, _)| name).collect();
        assert_eq!(
            names,
            [
                "Event-Name",
                "Core-UUID",
                "FreeSWITCH-Hostname",
                "FreeSWITCH-Switchname",
                "FreeSWITCH-IPv4",
                "FreeSWITCH-IPv6",
                "Event-Date-Local",
                "Event-Date-GMT",
                "Event-Date-Timestamp",
                "Event-Calling-File",
                "Event-Calling-Function",
                "Event-Calling-Line-Number",
                "Event-Sequence"
            ]
        );
        assert_eq!(first.header("Event-Calling-File"), Some("stamp.rs"));
        assert_eq!(first.header("Event-Sequence"), Some("1"));
        assert_eq!(
            second.headers.iter().next(),
            Some(("Event-Subclass", "skypopen::command"))
        );
        assert_eq!(second.header("Event-Name"), Some("CUSTOM"));
        assert_eq!(second.header("Event-Sequence"), Some("2"));
    }
}
