//! The configuration's tables as typed sections (`[switch]`, `[listener]`, `[clients]`,
//! `[state]`, `[calls]`, `[log]`) and the resolved interface.

use super::{defaults, ConfigError, Secret};
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which media transport carries call audio between FreeSWITCH and the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaMode {
    AudioFork,
    Unicast,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwitchSettings {
    #[serde(default = "defaults::esl")]
    pub esl: SocketAddr,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "defaults::outbound_listen")]
    pub outbound_listen: SocketAddr,
    #[serde(default = "defaults::media_listen")]
    pub media_listen: SocketAddr,
    #[serde(default = "defaults::media_url")]
    pub media_url: String,
    #[serde(default = "defaults::media")]
    pub media: MediaMode,
    /// UDP ports the sidecar listens on for `unicast` media (one per call).
    #[serde(default = "defaults::unicast_ports")]
    pub unicast_ports: String,
    /// The address FreeSWITCH binds for `unicast` (its `local-ip`).
    #[serde(default = "defaults::unicast_ip")]
    pub unicast_ip: std::net::IpAddr,
    /// A connection from FreeSWITCH (a `socket` or an audio fork's websocket) that has not
    /// finished its handshake by then is closed: a half-open or dripping peer holds nothing.
    #[serde(default = "defaults::handshake_timeout_secs")]
    pub handshake_timeout_secs: f64,
}

impl SwitchSettings {
    pub fn handshake_timeout(&self) -> Duration {
        secs(self.handshake_timeout_secs)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerSettings {
    #[serde(default = "defaults::listener_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// A list, or (from the environment) one comma-separated string.
    #[serde(default = "defaults::allow", deserialize_with = "list_or_commas")]
    pub allow: Vec<String>,
    /// Networks whose failed logins never ban them (the operator's own tools); empty means
    /// loopback.
    #[serde(default, deserialize_with = "list_or_commas")]
    pub admin: Vec<String>,
    /// A connection must log in within this many seconds.
    #[serde(default = "defaults::auth_timeout_secs")]
    pub auth_timeout_secs: f64,
}

impl ListenerSettings {
    pub fn auth_timeout(&self) -> Duration {
        secs(self.auth_timeout_secs)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    Sim,
    Skype,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientsSettings {
    #[serde(default = "defaults::kind")]
    pub kind: ClientKind,
    #[serde(default = "defaults::yes")]
    pub manage: bool,
    /// `"embedded"` starts `skype-sim network` as a child, otherwise the address of a running one.
    #[serde(default = "defaults::network")]
    pub network: String,
    #[serde(default = "defaults::network_listen")]
    pub network_listen: SocketAddr,
    #[serde(default = "defaults::audio_ports")]
    pub audio_ports: String,
    /// Path of the `skype-sim` binary; empty means "next to the running executable, else $PATH".
    #[serde(default)]
    pub sim_binary: Option<PathBuf>,
    /// Real client command line (`kind = "skype"`); `{display}` and `{dbpath}` are substituted.
    #[serde(default)]
    pub command: Vec<String>,
    /// Per-interface profile directories for real clients live below this directory.
    #[serde(default)]
    pub dbpath_root: Option<PathBuf>,
    /// Real clients' passwords: one file per Skype account, named after it (mode 0600).
    #[serde(default)]
    pub credentials_dir: Option<PathBuf>,
    #[serde(default = "defaults::xvfb")]
    pub xvfb: String,
    /// Arguments after the display number when the sidecar starts its own X server.
    /// Left out: [`ClientsSettings::xvfb_args`] picks by `kind`.
    #[serde(default)]
    pub xvfb_args: Option<Vec<String>>,
    /// How long a started client may take to publish `_SKYPE_INSTANCE` before it is restarted.
    #[serde(default = "defaults::ready_timeout_secs")]
    pub ready_timeout_secs: u64,
    /// Between SIGTERM and SIGKILL when stopping a child.
    #[serde(default = "defaults::stop_grace_secs")]
    pub stop_grace_secs: u64,
}

impl ClientsSettings {
    /// `Xvfb`'s arguments: as configured, else small for emulated clients and a usable screen
    /// for real ones.
    pub fn xvfb_args(&self) -> Vec<String> {
        match (&self.xvfb_args, self.kind) {
            (Some(args), _) => args.clone(),
            (None, ClientKind::Sim) => defaults::xvfb_args_sim(),
            (None, ClientKind::Skype) => defaults::xvfb_args_real(),
        }
    }

    pub fn ready_timeout(&self) -> Duration {
        Duration::from_secs(self.ready_timeout_secs)
    }

    pub fn stop_grace(&self) -> Duration {
        Duration::from_secs(self.stop_grace_secs)
    }

    /// Whether `skype-sim network` runs as the sidecar's child.
    pub fn embedded_network(&self) -> bool {
        self.network == "embedded"
    }

    /// The address the emulated clients connect to.
    pub fn network_address(&self) -> String {
        if self.embedded_network() {
            self.network_listen.to_string()
        } else {
            self.network.clone()
        }
    }

    /// The password of a real client's Skype account, read when the client is (re)started so
    /// that it is never kept in the settings or put on a command line.
    pub fn skype_password(&self, skype_user: &str) -> Result<Secret, ConfigError> {
        super::secret::skype_password(self.credentials_dir.as_deref(), skype_user)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    #[serde(default = "defaults::state_dir")]
    pub dir: PathBuf,
}

/// This sidecar among several behind one FreeSWITCH.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// Names this sidecar in `sk list`, its logs, the channel variables of the calls it
    /// originates and the events it fires.
    #[serde(default = "defaults::host_name")]
    pub host: String,
    /// Set when the same Skype account is served by sidecars on several hosts: a ring, an
    /// incoming chat and a `chat SKYPE|...` request are then claimed in FreeSWITCH's mod_hash
    /// first, so only one host acts on each.
    #[serde(default)]
    pub arbitrate: bool,
}

/// Skype contacts' presence as FreeSWITCH PRESENCE_IN events.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceSettings {
    /// The domain of `from: <handle>@<domain>`, the address SIP phones subscribe to; unset,
    /// FreeSWITCH's own `domain` variable.
    pub domain: Option<String>,
}

/// Outgoing chats.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatSettings {
    /// A message the client has not reported SENT within this long is reported FAILED
    /// (`skypopen::chat_status`); a SENT that comes later is still reported.
    pub sent_timeout_secs: f64,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            sent_timeout_secs: 60.0,
        }
    }
}

impl ChatSettings {
    pub fn sent_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.sent_timeout_secs.clamp(0.1, 86_400.0))
    }
}

/// What an interface does with a contact request (`USER <h> RECEIVEDAUTHREQUEST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContactRequests {
    /// Authorize at once (the original module's behaviour).
    Accept,
    /// Refuse at once.
    Deny,
    /// Fire `skypopen::contact_request` and wait for `sk auth`.
    Ask,
}

/// Where Prometheus scrapes `/metrics` and a monitor asks `/health`; off when unset.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    pub listen: Option<SocketAddr>,
}

/// The gateway's call timers, in seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSettings {
    /// From `CALL <dest>` to the far end ringing (or answering).
    #[serde(default = "defaults::setup_timeout_secs")]
    pub setup_timeout_secs: f64,
    /// How long the far end of an outbound call may ring before NO_ANSWER.
    #[serde(default = "defaults::ring_timeout_secs")]
    pub ring_timeout_secs: f64,
    /// From `ALTER CALL <id> ANSWER` to `STATUS INPROGRESS` on an inbound call.
    #[serde(default = "defaults::answer_timeout_secs")]
    pub answer_timeout_secs: f64,
    /// From `originate` to its `socket` connecting back (the dialplan answered).
    #[serde(default = "defaults::originate_timeout_secs")]
    pub originate_timeout_secs: f64,
    /// On SIGTERM, how long live calls may go on before they are ended with SYSTEM_SHUTDOWN.
    #[serde(default)]
    pub drain_secs: f64,
}

impl CallSettings {
    pub fn setup_timeout(&self) -> std::time::Duration {
        secs(self.setup_timeout_secs)
    }
    pub fn ring_timeout(&self) -> std::time::Duration {
        secs(self.ring_timeout_secs)
    }
    pub fn answer_timeout(&self) -> std::time::Duration {
        secs(self.answer_timeout_secs)
    }
    pub fn originate_timeout(&self) -> std::time::Duration {
        secs(self.originate_timeout_secs)
    }
    pub fn drain(&self) -> std::time::Duration {
        secs(self.drain_secs)
    }
}

/// Validation keeps timers positive and finite; this only guards the conversion.
fn secs(value: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(value).unwrap_or(std::time::Duration::from_secs(1))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    #[serde(default = "defaults::log_format")]
    pub format: LogFormat,
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

/// The original module's per-interface parameters. In `[defaults]` every field is a default;
/// in `[[interface]]` every field is an optional override.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InterfaceParams {
    pub dialplan: Option<String>,
    pub context: Option<String>,
    pub destination: Option<String>,
    pub skype_user: Option<String>,
    pub report_incoming_chatmessages: Option<bool>,
    pub silent_mode: Option<bool>,
    pub write_silence_when_idle: Option<bool>,
    pub setsockopt: Option<bool>,
    pub skype_get_inband_dtmf: Option<bool>,
    pub skype_add_outband_dtmf_also_when_bridged: Option<bool>,
    pub auto_authorize: Option<bool>,
    pub contact_requests: Option<ContactRequests>,
}

impl InterfaceParams {
    /// `self` wins where set, `fallback` fills the gaps.
    pub(super) fn or(&self, fallback: &InterfaceParams) -> InterfaceParams {
        InterfaceParams {
            dialplan: self.dialplan.clone().or_else(|| fallback.dialplan.clone()),
            context: self.context.clone().or_else(|| fallback.context.clone()),
            destination: self
                .destination
                .clone()
                .or_else(|| fallback.destination.clone()),
            skype_user: self
                .skype_user
                .clone()
                .or_else(|| fallback.skype_user.clone()),
            report_incoming_chatmessages: self
                .report_incoming_chatmessages
                .or(fallback.report_incoming_chatmessages),
            silent_mode: self.silent_mode.or(fallback.silent_mode),
            write_silence_when_idle: self
                .write_silence_when_idle
                .or(fallback.write_silence_when_idle),
            setsockopt: self.setsockopt.or(fallback.setsockopt),
            skype_get_inband_dtmf: self
                .skype_get_inband_dtmf
                .or(fallback.skype_get_inband_dtmf),
            skype_add_outband_dtmf_also_when_bridged: self
                .skype_add_outband_dtmf_also_when_bridged
                .or(fallback.skype_add_outband_dtmf_also_when_bridged),
            auto_authorize: self.auto_authorize.or(fallback.auto_authorize),
            contact_requests: self.contact_requests.or(fallback.contact_requests),
        }
    }
}

/// The top-level tables.
pub(super) const SECTIONS: &[&str] = &[
    "switch",
    "listener",
    "clients",
    "state",
    "log",
    "calls",
    "metrics",
    "cluster",
    "presence",
    "chat",
    "defaults",
    "interface",
];

/// One interface with every parameter resolved (per-interface value, else `[defaults]`, else
/// the original module's default).
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceConfig {
    pub id: u32,
    pub name: String,
    pub x11_display: String,
    pub skype_user: String,
    pub dialplan: String,
    pub context: String,
    pub destination: String,
    pub report_incoming_chatmessages: bool,
    pub silent_mode: bool,
    pub write_silence_when_idle: bool,
    pub setsockopt: bool,
    pub skype_get_inband_dtmf: bool,
    pub skype_add_outband_dtmf_also_when_bridged: bool,
    pub auto_authorize: bool,
    /// `contact_requests`, else `auto_authorize` (true: accept; false: ask).
    pub contact_requests: ContactRequests,
}

/// Accepts `["a", "b"]` or `"a,b"` (an environment variable can only be a string).
fn list_or_commas<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCommas {
        List(Vec<String>),
        Commas(String),
    }
    Ok(match ListOrCommas::deserialize(deserializer)? {
        ListOrCommas::List(list) => list,
        ListOrCommas::Commas(text) => text
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    })
}
