//! The headers FreeSWITCH puts on every event it fires (`Event-Name`, `Core-UUID`,
//! `FreeSWITCH-Hostname`, dates, calling location, `Event-Sequence`), so subscribers that
//! key on them treat the sidecar's events like FreeSWITCH's.

use super::event::Event;
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

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Calendar date of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    weekday: usize,
}

fn civil(seconds: i64) -> Civil {
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: of_day / 3600,
        minute: of_day % 3600 / 60,
        second: of_day % 60,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as usize,
    }
}

/// `YYYY-MM-DD hh:mm:ss` in the machine's local time.
pub fn format_local(since_epoch: Duration) -> String {
    let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX / 2);
    let c = civil(seconds + local_offset_seconds(seconds));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// RFC 822 in GMT: `Sun, 22 Nov 2026 20:25:25 GMT`.
pub fn format_gmt(since_epoch: Duration) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX / 2);
    let c = civil(seconds);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[c.weekday],
        c.day,
        MONTHS[(c.month as usize).saturating_sub(1) % 12],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// The local time zone's offset from UTC at `seconds`, from the C library's time zone data
/// (0 when it cannot tell).
fn local_offset_seconds(seconds: i64) -> i64 {
    // time_t is 64-bit on every target the sidecar runs on.
    let time: libc::time_t = seconds;
    // SAFETY: localtime_r only writes into the zeroed `tm` we own and reads `time`.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&time, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
