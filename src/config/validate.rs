//! Checks that serde cannot express. Each adds a [`Problem`] naming the key, so that
//! `skypopen check` can list everything that is wrong at once.

use super::locate::Location;
use super::{
    CallSettings, ClientKind, ClientsSettings, InterfaceConfig, ListenerSettings, SwitchSettings,
};
use std::collections::HashMap;
use std::ops::RangeInclusive;

/// One thing wrong with the configuration: where (file and line, or environment variable),
/// which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: Location,
    pub key: String,
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            location: Location::Unknown,
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.location != Location::Unknown {
            write!(f, "{}: ", self.location)?;
        }
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Parses `"LOW-HIGH"`; on error records a problem and returns an empty range.
pub fn port_range(key: &str, text: &str, problems: &mut Vec<Problem>) -> RangeInclusive<u16> {
    let parsed = text.split_once('-').and_then(|(lo, hi)| {
        let lo: u16 = lo.trim().parse().ok()?;
        let hi: u16 = hi.trim().parse().ok()?;
        (lo >= 1024 && lo < hi).then_some(lo..=hi)
    });
    parsed.unwrap_or_else(|| {
        problems.push(Problem::new(
            key,
            format!("{text:?} is not a port range LOW-HIGH with 1024 <= LOW < HIGH <= 65535"),
        ));
        #[allow(clippy::reversed_empty_ranges)]
        (1..=0)
    })
}

pub fn allow_list(entries: &[String], problems: &mut Vec<Problem>) -> Vec<ipnet::IpNet> {
    network_list("listener.allow", entries, problems)
}

/// Addresses or CIDR blocks; each bad entry is a problem of its own (`key[i]`).
pub fn network_list(
    key: &str,
    entries: &[String],
    problems: &mut Vec<Problem>,
) -> Vec<ipnet::IpNet> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let parsed = text
                .parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            parsed
                .map_err(|_| {
                    problems.push(Problem::new(
                        format!("{key}[{i}]"),
                        format!("{text:?} is not an address or CIDR block"),
                    ))
                })
                .ok()
        })
        .collect()
}

pub fn media_url(url: &str, problems: &mut Vec<Problem>) {
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        problems.push(Problem::new(
            "switch.media_url",
            format!("{url:?} must start with ws:// or wss://"),
        ));
    }
}

/// A connection timeout: above 0 (0 would close every connection at once), at most an hour.
pub fn timeout_secs(key: &str, value: f64, problems: &mut Vec<Problem>) {
    if !(value > 0.0 && value <= 3_600.0) {
        problems.push(Problem::new(
            key,
            format!("{value} must be a number of seconds above 0 and at most 3600"),
        ));
    }
}

/// Every call timer is a positive number of seconds, at most a day.
pub fn call_timers(calls: &CallSettings, problems: &mut Vec<Problem>) {
    let timers = [
        ("calls.setup_timeout_secs", calls.setup_timeout_secs),
        ("calls.ring_timeout_secs", calls.ring_timeout_secs),
        ("calls.answer_timeout_secs", calls.answer_timeout_secs),
        ("calls.originate_timeout_secs", calls.originate_timeout_secs),
    ];
    for (key, value) in timers {
        if !(value > 0.0 && value <= 86_400.0) {
            problems.push(Problem::new(
                key,
                format!("{value} must be a number of seconds above 0 and at most 86400"),
            ));
        }
    }
    if !(calls.drain_secs >= 0.0 && calls.drain_secs <= 3_600.0) {
        problems.push(Problem::new(
            "calls.drain_secs",
            format!(
                "{} must be a number of seconds from 0 to 3600",
                calls.drain_secs
            ),
        ));
    }
}

pub fn log_level(level: &str, problems: &mut Vec<Problem>) {
    if tracing_subscriber::EnvFilter::try_new(level).is_err() {
        problems.push(Problem::new(
            "log.level",
            format!(
                "{level:?} is not a valid filter (e.g. \"info\" or \"info,skypopen::skype=debug\")"
            ),
        ));
    }
}

/// A host name travels in channel variables, event headers and mod_hash values, so it keeps
/// to the characters of a DNS label (and dots).
pub fn host_name(host: &str, problems: &mut Vec<Problem>) {
    let valid = !host.is_empty()
        && host.len() <= 63
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !valid {
        problems.push(Problem::new(
            "cluster.host",
            format!(
                "{host:?} is not a host name: 1 to 63 of letters, digits, '.', '-' and '_' \
                 (it names this sidecar in channel variables and mod_hash values)"
            ),
        ));
    }
}

/// The domain goes into event headers as `<handle>@<domain>`.
pub fn presence_domain(domain: Option<&str>, problems: &mut Vec<Problem>) {
    let Some(domain) = domain else { return };
    let valid = !domain.is_empty()
        && domain.len() <= 253
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'));
    if !valid {
        problems.push(Problem::new(
            "presence.domain",
            format!("{domain:?} is not a domain or address (letters, digits, '.', '-', ':')"),
        ));
    }
}

/// The highest interface id: 4095 rather than the original's 63, far more than one host's
/// clients, small enough that the gateway's table indexed by id stays small.
pub const MAX_INTERFACE_ID: u32 = 4095;

pub fn interfaces(list: &[InterfaceConfig], problems: &mut Vec<Problem>) {
    if list.len() > MAX_INTERFACE_ID as usize {
        // One clear line rather than one per id out of range.
        problems.push(Problem::new(
            "interface",
            format!(
                "{} interfaces configured; one sidecar serves at most {MAX_INTERFACE_ID} (ids \
                 1..={MAX_INTERFACE_ID}); run more sidecars for more",
                list.len()
            ),
        ));
        return;
    }
    let mut ids = HashMap::new();
    let mut names = HashMap::new();
    let mut servers = HashMap::new();
    for (index, iface) in list.iter().enumerate() {
        let key = |k: &str| format!("interface[{index}].{k}");
        if !(1..=MAX_INTERFACE_ID).contains(&iface.id) {
            problems.push(Problem::new(
                key("id"),
                format!("{} is not in 1..={MAX_INTERFACE_ID}", iface.id),
            ));
        }
        if iface.name.is_empty() || iface.name.contains(|c: char| c.is_whitespace() || c == '/') {
            problems.push(Problem::new(
                key("name"),
                format!("{:?} must be non-empty, without spaces or '/'", iface.name),
            ));
        }
        match x_server(&iface.x11_display) {
            None => problems.push(Problem::new(
                key("x11_display"),
                format!("{:?} is not an X display like \":101\"", iface.x11_display),
            )),
            Some(server) => {
                if let Some((first, text)) =
                    servers.insert(server, (index, iface.x11_display.clone()))
                {
                    let what = if text == iface.x11_display {
                        format!("duplicate x11_display {text:?}")
                    } else {
                        format!(
                            "x11_display {:?} is the same X server as {text:?}",
                            iface.x11_display
                        )
                    };
                    problems.push(Problem::new(
                        key("x11_display"),
                        format!("{what} (also interface[{first}]); one client per X server"),
                    ));
                }
            }
        }
        if let Some(first) = ids.insert(iface.id, index) {
            problems.push(Problem::new(
                key("id"),
                format!("duplicate id {} (also interface[{first}])", iface.id),
            ));
        }
        if let Some(first) = names.insert(iface.name.clone(), index) {
            problems.push(Problem::new(
                key("name"),
                format!("duplicate name {:?} (also interface[{first}])", iface.name),
            ));
        }
    }
}

/// Which X server a display names: (host, display number), the screen dropped and the local
/// spellings (none, `unix`, `localhost`, loopback addresses) made one, since `:101`,
/// `:101.0` and `unix:101` all reach the same server and its one Skype client.
fn x_server(display: &str) -> Option<(String, u32)> {
    if !is_display(display) {
        return None;
    }
    let (host, _) = display.rsplit_once(':')?;
    let host = match host.to_ascii_lowercase().as_str() {
        "" | "unix" | "localhost" | "127.0.0.1" | "::1" | "[::1]" => String::new(),
        other => other.to_string(),
    };
    Some((host, display_number(display)?))
}

/// `:N` or `:N.S`, optionally with a host in front.
pub fn is_display(text: &str) -> bool {
    let Some((_, rest)) = text.rsplit_once(':') else {
        return false;
    };
    let number = rest.split_once('.').map_or(rest, |(n, _)| n);
    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
}

/// The display number of `:N`.
pub fn display_number(text: &str) -> Option<u32> {
    let (_, rest) = text.rsplit_once(':')?;
    rest.split_once('.').map_or(rest, |(n, _)| n).parse().ok()
}

pub fn clients(clients: &ClientsSettings, problems: &mut Vec<Problem>) {
    if !clients.embedded_network() && !is_host_port(&clients.network) {
        problems.push(Problem::new(
            "clients.network",
            format!(
                "{:?} is neither \"embedded\" nor an address HOST:PORT",
                clients.network
            ),
        ));
    }
    if clients.ready_timeout_secs == 0 {
        problems.push(Problem::new(
            "clients.ready_timeout_secs",
            "must be at least 1",
        ));
    }
    if clients.kind == ClientKind::Skype && clients.manage {
        if clients.command.is_empty() {
            problems.push(Problem::new(
                "clients.command",
                "required with kind = \"skype\" and manage = true: the client's command line, \
                 e.g. [\"/opt/skype/skype\", \"--dbpath={dbpath}\", \"--pipelogin\"]",
            ));
        }
        let wants_dbpath = clients.command.iter().any(|arg| arg.contains("{dbpath}"));
        if wants_dbpath && clients.dbpath_root.is_none() {
            problems.push(Problem::new(
                "clients.dbpath_root",
                "required: clients.command uses {dbpath}",
            ));
        }
    }
}

/// `host:port` or `[v6]:port` with a non-empty host and a port number.
pub fn is_host_port(text: &str) -> bool {
    text.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains(char::is_whitespace) && port.parse::<u16>().is_ok()
    })
}

/// Two services of the sidecar on one address would fail at bind time, one of them silently
/// late; say so before starting.
pub fn listen_addresses(
    switch: &SwitchSettings,
    listener: &ListenerSettings,
    clients: &ClientsSettings,
    problems: &mut Vec<Problem>,
) {
    let mut addresses = vec![
        ("switch.outbound_listen", switch.outbound_listen),
        ("switch.media_listen", switch.media_listen),
        ("listener.listen", listener.listen),
    ];
    if clients.manage && clients.kind == ClientKind::Sim && clients.embedded_network() {
        addresses.push(("clients.network_listen", clients.network_listen));
    }
    for (i, (key, address)) in addresses.iter().enumerate() {
        if let Some((first, _)) = addresses[..i].iter().find(|(_, a)| a == address) {
            problems.push(Problem::new(
                *key,
                format!("{address} is already used by {first}"),
            ));
        }
    }
}

/// The per-call audio ports are bound on demand: a service port inside the range would make
/// calls fail at random when the allocator picks it.
pub fn audio_ports_clear(
    audio_ports: &RangeInclusive<u16>,
    switch: &SwitchSettings,
    listener: &ListenerSettings,
    clients: &ClientsSettings,
    problems: &mut Vec<Problem>,
) {
    let mut services = vec![
        ("switch.outbound_listen", switch.outbound_listen),
        ("switch.media_listen", switch.media_listen),
        ("listener.listen", listener.listen),
    ];
    if clients.embedded_network() {
        services.push(("clients.network_listen", clients.network_listen));
    }
    for (key, address) in services {
        if audio_ports.contains(&address.port()) {
            problems.push(Problem::new(
                "clients.audio_ports",
                format!("includes port {} of {key}", address.port()),
            ));
        }
    }
}

/// Real clients log in with a password piped on stdin; check now that every account has one,
/// rather than when the first client starts.
pub fn credentials(
    clients: &ClientsSettings,
    list: &[InterfaceConfig],
    problems: &mut Vec<Problem>,
) {
    if clients.kind != ClientKind::Skype || !clients.manage {
        return;
    }
    for (index, iface) in list.iter().enumerate() {
        if iface.skype_user.is_empty() {
            continue;
        }
        if let Err(err) = clients.skype_password(&iface.skype_user) {
            problems.push(Problem::new(
                format!("interface[{index}].skype_user"),
                err.to_string(),
            ));
        }
    }
}
