//! Typed settings, loaded with the `config` crate from TOML plus `SKYPOPEN__SECTION__KEY`
//! environment overrides. The `[defaults]` table carries the original module's
//! `global_settings`; each `[[interface]]` may override any of them.
//!
//! Loading checks the merged tree key by key ([`schema`]) so that `skypopen check` can list
//! every problem at once, each with its file line or environment variable ([`locate`]).

pub mod legacy;
pub mod locate;
mod schema;
mod secret;
pub mod validate;

pub use locate::Location;
pub use secret::Secret;
pub use validate::Problem;

use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default location of the configuration file, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "conf/skypopen.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read configuration {path}: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: ::config::ConfigError,
    },
    #[error("cannot read secret file {path}: {source}")]
    SecretFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no password for Skype account {user:?}: put it in a file named after the account in \
         [clients] credentials_dir, or in ${variable}"
    )]
    MissingCredential { user: String, variable: String },
    #[error("invalid configuration {path}:\n{}", render_problems(.problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn render_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

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
    #[serde(default = "defaults::xvfb_args")]
    pub xvfb_args: Vec<String>,
    /// How long a started client may take to publish `_SKYPE_INSTANCE` before it is restarted.
    #[serde(default = "defaults::ready_timeout_secs")]
    pub ready_timeout_secs: u64,
    /// Between SIGTERM and SIGKILL when stopping a child.
    #[serde(default = "defaults::stop_grace_secs")]
    pub stop_grace_secs: u64,
}

impl ClientsSettings {
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
        secret::skype_password(self.credentials_dir.as_deref(), skype_user)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    #[serde(default = "defaults::state_dir")]
    pub dir: PathBuf,
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
}

impl InterfaceParams {
    /// `self` wins where set, `fallback` fills the gaps.
    fn or(&self, fallback: &InterfaceParams) -> InterfaceParams {
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
        }
    }
}

/// The keys of an `[[interface]]` table that are not [`InterfaceParams`]. All optional here so
/// that each missing one is reported, not only the first.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InterfaceIdentity {
    id: Option<u32>,
    name: Option<String>,
    x11_display: Option<String>,
}

/// The top-level tables.
const SECTIONS: &[&str] = &[
    "switch",
    "listener",
    "clients",
    "state",
    "log",
    "calls",
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
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    pub switch: SwitchSettings,
    pub switch_password: Secret,
    pub listener: ListenerSettings,
    pub listener_password: Secret,
    pub listener_allow: Vec<ipnet::IpNet>,
    pub clients: ClientsSettings,
    pub audio_ports: RangeInclusive<u16>,
    pub unicast_ports: RangeInclusive<u16>,
    pub state: StateSettings,
    pub log: LogSettings,
    pub calls: CallSettings,
    pub interfaces: Vec<InterfaceConfig>,
}

impl Settings {
    /// Load `path` (TOML) with `SKYPOPEN__SECTION__KEY` environment overrides and validate it.
    /// Every problem found is reported at once, each with its file line or variable.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let merged = merge(path, &text)?;
        let mut problems = Vec::new();
        let settings = resolve(path, merged, &mut problems);
        if problems.is_empty() {
            return Ok(settings);
        }
        let locator = locate::Locator::new(path, &text);
        for problem in &mut problems {
            problem.location = locator.locate(&problem.key);
        }
        // In file order, then the environment, as an operator reads and fixes them.
        problems.sort_by_key(|p| match &p.location {
            Location::File { line, .. } => (0, line.unwrap_or(0)),
            Location::Environment { .. } => (1, 0),
            Location::Unknown => (2, 0),
        });
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }

    pub fn interface(&self, name: &str) -> Option<&InterfaceConfig> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}

type Tree = ::config::Map<String, ::config::Value>;

/// The file and the environment overrides as one tree, still untyped.
fn merge(path: &Path, text: &str) -> Result<Tree, ConfigError> {
    let load_err = |source| ConfigError::Load {
        path: path.to_path_buf(),
        source,
    };
    // No `try_parsing`: the typed structs convert strings themselves, and parsing would turn a
    // destination like "0039" into the number 39.
    ::config::Config::builder()
        .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
        .add_source(
            ::config::Environment::with_prefix("SKYPOPEN")
                .prefix_separator("__")
                .separator("__"),
        )
        .build()
        .map_err(load_err)?
        .cache
        .into_table()
        .map_err(load_err)
}

fn section<T: serde::de::DeserializeOwned>(
    tree: &mut Tree,
    name: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    tree.remove(name)
        .and_then(|value| schema::section(name, value, problems))
}

fn resolve(path: &Path, mut tree: Tree, problems: &mut Vec<Problem>) -> Settings {
    let mut unknown: Vec<String> = tree
        .keys()
        .filter(|k| !SECTIONS.contains(&k.as_str()))
        .cloned()
        .collect();
    unknown.sort();
    for key in unknown {
        let message = schema::unknown_key_message(&key, SECTIONS);
        problems.push(Problem::new(key, message));
    }
    let switch: SwitchSettings =
        section(&mut tree, "switch", problems).unwrap_or_else(defaults::switch);
    let listener: ListenerSettings =
        section(&mut tree, "listener", problems).unwrap_or_else(defaults::listener);
    let clients: ClientsSettings =
        section(&mut tree, "clients", problems).unwrap_or_else(defaults::clients);
    let state: StateSettings =
        section(&mut tree, "state", problems).unwrap_or_else(defaults::state);
    let log: LogSettings = section(&mut tree, "log", problems).unwrap_or_else(defaults::log);
    let calls: CallSettings = section(&mut tree, "calls", problems).unwrap_or_else(defaults::calls);
    validate::call_timers(&calls, problems);
    let defaults_params: InterfaceParams =
        section(&mut tree, "defaults", problems).unwrap_or_default();
    let entries = tree
        .remove("interface")
        .map(|v| interface_entries(v, problems))
        .unwrap_or_default();

    let switch_password = password(
        "switch",
        switch.password.clone(),
        switch.password_file.as_deref(),
        "SKYPOPEN_SWITCH_PASSWORD",
        problems,
    );
    let listener_password = password(
        "listener",
        listener.password.clone(),
        listener.password_file.as_deref(),
        "SKYPOPEN_LISTENER_PASSWORD",
        problems,
    );
    let unicast_ports =
        validate::port_range("switch.unicast_ports", &switch.unicast_ports, problems);
    validate::media_url(&switch.media_url, problems);
    let listener_allow = validate::allow_list(&listener.allow, problems);
    let audio_ports = validate::port_range("clients.audio_ports", &clients.audio_ports, problems);
    validate::clients(&clients, problems);
    validate::listen_addresses(&switch, &listener, &clients, problems);
    validate::audio_ports_clear(&audio_ports, &switch, &listener, &clients, problems);
    validate::log_level(&log.level, problems);

    let builtin = builtin_params();
    let defaults = defaults_params.or(&builtin);
    let interfaces: Vec<InterfaceConfig> = entries
        .iter()
        .filter_map(|entry| resolve_interface(entry, &defaults, problems))
        .collect();
    validate::interfaces(&interfaces, problems);
    validate::credentials(&clients, &interfaces, problems);
    Settings {
        path: path.to_path_buf(),
        switch,
        switch_password,
        listener,
        listener_password,
        listener_allow,
        clients,
        audio_ports,
        unicast_ports,
        state,
        log,
        calls,
        interfaces,
    }
}

fn password(
    section: &str,
    inline: Option<Secret>,
    file: Option<&Path>,
    env_name: &str,
    problems: &mut Vec<Problem>,
) -> Secret {
    secret::resolve(inline, file, env_name).unwrap_or_else(|err| {
        let message = match err {
            ConfigError::SecretFile { path, source } => {
                format!("cannot read {}: {source}", path.display())
            }
            other => other.to_string(),
        };
        problems.push(Problem::new(format!("{section}.password_file"), message));
        Secret::new(String::new())
    })
}

struct InterfaceEntry {
    index: usize,
    identity: InterfaceIdentity,
    params: InterfaceParams,
}

/// Every `[[interface]]` table, checked key by key. Each entry keeps its index so that
/// problems name the table the operator wrote.
fn interface_entries(value: ::config::Value, problems: &mut Vec<Problem>) -> Vec<InterfaceEntry> {
    let list = match value.kind {
        ::config::ValueKind::Array(list) => list,
        _ => {
            problems.push(Problem::new(
                "interface",
                "must be an array of tables, written [[interface]]",
            ));
            return Vec::new();
        }
    };
    let identity_keys = schema::field_names::<InterfaceIdentity>();
    list.into_iter()
        .enumerate()
        .filter_map(|(index, value)| {
            let prefix = format!("interface[{index}]");
            let table = schema::table_or_problem(&prefix, value, problems)?;
            let (identity, params): (Tree, Tree) = table
                .into_iter()
                .partition(|(k, _)| identity_keys.contains(&k.as_str()));
            let identity: InterfaceIdentity =
                schema::section(&prefix, ::config::Value::from(identity), problems)?;
            let kept =
                schema::checked_keys::<InterfaceParams>(&prefix, params, identity_keys, problems);
            let params =
                InterfaceParams::deserialize(::config::Value::from(kept)).unwrap_or_default();
            Some(InterfaceEntry {
                index,
                identity,
                params,
            })
        })
        .collect()
}

/// The original module's defaults (spec 10.2). `skype_user` has none: it is required.
fn builtin_params() -> InterfaceParams {
    InterfaceParams {
        dialplan: Some("XML".into()),
        context: Some("default".into()),
        destination: Some("5000".into()),
        skype_user: None,
        report_incoming_chatmessages: Some(true),
        silent_mode: Some(false),
        write_silence_when_idle: Some(true),
        setsockopt: Some(false),
        skype_get_inband_dtmf: Some(false),
        skype_add_outband_dtmf_also_when_bridged: Some(false),
        auto_authorize: Some(true),
    }
}

fn resolve_interface(
    entry: &InterfaceEntry,
    defaults: &InterfaceParams,
    problems: &mut Vec<Problem>,
) -> Option<InterfaceConfig> {
    let key = |k: &str| format!("interface[{}].{k}", entry.index);
    let identity = &entry.identity;
    let missing = [
        ("id", identity.id.is_none()),
        ("name", identity.name.is_none()),
        ("x11_display", identity.x11_display.is_none()),
    ];
    for (name, is_missing) in missing {
        if is_missing {
            problems.push(Problem::new(key(name), "missing (required)"));
        }
    }
    let p = entry.params.or(defaults);
    if p.skype_user.is_none() {
        problems.push(Problem::new(
            key("skype_user"),
            "missing: set it here or in [defaults]",
        ));
    }
    Some(InterfaceConfig {
        id: identity.id?,
        name: identity.name.clone()?,
        x11_display: identity.x11_display.clone()?,
        skype_user: p.skype_user.unwrap_or_default(),
        dialplan: p.dialplan.unwrap_or_default(),
        context: p.context.unwrap_or_default(),
        destination: p.destination.unwrap_or_default(),
        report_incoming_chatmessages: p.report_incoming_chatmessages.unwrap_or(true),
        silent_mode: p.silent_mode.unwrap_or(false),
        write_silence_when_idle: p.write_silence_when_idle.unwrap_or(true),
        setsockopt: p.setsockopt.unwrap_or(false),
        skype_get_inband_dtmf: p.skype_get_inband_dtmf.unwrap_or(false),
        skype_add_outband_dtmf_also_when_bridged: p
            .skype_add_outband_dtmf_also_when_bridged
            .unwrap_or(false),
        auto_authorize: p.auto_authorize.unwrap_or(true),
    })
}

#[cfg(test)]
impl InterfaceConfig {
    /// An interface with the original module's defaults, resolved as a config file would be.
    pub(crate) fn with_defaults(
        id: u32,
        name: &str,
        x11_display: &str,
        skype_user: &str,
    ) -> InterfaceConfig {
        let entry = InterfaceEntry {
            index: 0,
            identity: InterfaceIdentity {
                id: Some(id),
                name: Some(name.into()),
                x11_display: Some(x11_display.into()),
            },
            params: InterfaceParams {
                skype_user: Some(skype_user.into()),
                ..InterfaceParams::default()
            },
        };
        let mut problems = Vec::new();
        let resolved = resolve_interface(&entry, &builtin_params(), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        resolved.expect("every required key is set")
    }
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

mod defaults {
    use super::*;

    pub fn esl() -> SocketAddr {
        ([127, 0, 0, 1], 8021).into()
    }
    pub fn outbound_listen() -> SocketAddr {
        ([127, 0, 0, 1], 8084).into()
    }
    pub fn media_listen() -> SocketAddr {
        ([127, 0, 0, 1], 8086).into()
    }
    pub fn media_url() -> String {
        "ws://127.0.0.1:8086".into()
    }
    /// Measured on FreeSWITCH 1.10.12 (tests/reports/bench-real-switch.md): less added
    /// delay and less FreeSWITCH CPU per call than the audio fork, on a stock switch.
    pub fn media() -> MediaMode {
        MediaMode::Unicast
    }
    pub fn unicast_ports() -> String {
        "40001-48000".into()
    }
    pub fn unicast_ip() -> std::net::IpAddr {
        [127, 0, 0, 1].into()
    }
    pub fn listener_listen() -> SocketAddr {
        ([127, 0, 0, 1], 8022).into()
    }
    pub fn allow() -> Vec<String> {
        vec!["127.0.0.0/8".into(), "::1/128".into()]
    }
    pub fn kind() -> ClientKind {
        ClientKind::Sim
    }
    pub fn yes() -> bool {
        true
    }
    pub fn network() -> String {
        "embedded".into()
    }
    pub fn network_listen() -> SocketAddr {
        ([127, 0, 0, 1], 8099).into()
    }
    pub fn audio_ports() -> String {
        "32769-40000".into()
    }
    pub fn xvfb() -> String {
        "Xvfb".into()
    }
    pub fn xvfb_args() -> Vec<String> {
        // -noreset: otherwise the server resets, wiping root properties such as
        // _SKYPE_INSTANCE, whenever its last client disconnects.
        ["-noreset", "-nolisten", "tcp", "-screen", "0", "640x480x24"]
            .map(String::from)
            .to_vec()
    }
    pub fn ready_timeout_secs() -> u64 {
        30
    }
    pub fn stop_grace_secs() -> u64 {
        5
    }
    pub fn state_dir() -> PathBuf {
        PathBuf::from("/var/lib/skypopen")
    }
    pub fn log_format() -> LogFormat {
        LogFormat::Text
    }
    pub fn log_level() -> String {
        "info".into()
    }
    pub fn switch() -> SwitchSettings {
        SwitchSettings {
            esl: esl(),
            password: None,
            password_file: None,
            outbound_listen: outbound_listen(),
            media_listen: media_listen(),
            media_url: media_url(),
            media: media(),
            unicast_ports: unicast_ports(),
            unicast_ip: unicast_ip(),
        }
    }
    pub fn listener() -> ListenerSettings {
        ListenerSettings {
            listen: listener_listen(),
            password: None,
            password_file: None,
            allow: allow(),
        }
    }
    pub fn clients() -> ClientsSettings {
        ClientsSettings {
            kind: kind(),
            manage: true,
            network: network(),
            network_listen: network_listen(),
            audio_ports: audio_ports(),
            sim_binary: None,
            command: Vec::new(),
            dbpath_root: None,
            credentials_dir: None,
            xvfb: xvfb(),
            xvfb_args: xvfb_args(),
            ready_timeout_secs: ready_timeout_secs(),
            stop_grace_secs: stop_grace_secs(),
        }
    }
    pub fn state() -> StateSettings {
        StateSettings { dir: state_dir() }
    }
    pub fn setup_timeout_secs() -> f64 {
        30.0
    }
    pub fn ring_timeout_secs() -> f64 {
        60.0
    }
    pub fn answer_timeout_secs() -> f64 {
        10.0
    }
    pub fn originate_timeout_secs() -> f64 {
        60.0
    }
    pub fn calls() -> CallSettings {
        CallSettings {
            setup_timeout_secs: setup_timeout_secs(),
            ring_timeout_secs: ring_timeout_secs(),
            answer_timeout_secs: answer_timeout_secs(),
            originate_timeout_secs: originate_timeout_secs(),
            drain_secs: 0.0,
        }
    }
    pub fn log() -> LogSettings {
        LogSettings {
            format: log_format(),
            level: log_level(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn load_str(toml: &str) -> Result<Settings, ConfigError> {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(toml.as_bytes()).unwrap();
        Settings::load(file.path())
    }

    #[test]
    fn shipped_default_config_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
        let s = Settings::load(&path).unwrap();
        assert_eq!(s.interfaces.len(), 2);
        assert_eq!(s.interfaces[1].skype_user, "user2");
        assert_eq!(s.audio_ports, 32769..=40000);
        assert_eq!(s.switch.media, MediaMode::Unicast);
    }

    #[test]
    fn interface_overrides_defaults_and_builtins_fill_gaps() {
        let s = load_str(
            r#"
            [defaults]
            skype_user = "user1"
            destination = "9196"
            [[interface]]
            id = 1
            name = "a"
            x11_display = ":101"
            [[interface]]
            id = 2
            name = "b"
            x11_display = ":102"
            skype_user = "user2"
            silent_mode = true
            "#,
        )
        .unwrap();
        let a = s.interface("a").unwrap();
        assert_eq!(
            (a.skype_user.as_str(), a.destination.as_str()),
            ("user1", "9196")
        );
        assert_eq!(a.context, "default");
        assert!(!a.silent_mode);
        let b = s.interface("b").unwrap();
        assert_eq!(b.skype_user, "user2");
        assert!(b.silent_mode);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = load_str(
            r#"
            [clients]
            audio_ports = "9000-100"
            [[interface]]
            id = 1
            name = "a"
            x11_display = ":101"
            [[interface]]
            id = 1
            name = "a"
            x11_display = ":101"
            skype_user = "u"
            "#,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("clients.audio_ports"), "{text}");
        assert!(text.contains("interface[0].skype_user"), "{text}");
        assert!(text.contains("duplicate id 1"), "{text}");
        assert!(text.contains("duplicate name \"a\""), "{text}");
        assert!(text.contains("duplicate x11_display \":101\""), "{text}");
    }

    #[test]
    fn service_ports_inside_the_audio_range_are_reported() {
        let err =
            load_str("[clients]\naudio_ports = \"8000-9000\"\n[defaults]\nskype_user = \"u\"\n")
                .unwrap_err();
        let text = err.to_string();
        for port in [
            "8084 of switch.outbound_listen",
            "8022 of listener.listen",
            "8099 of clients.network_listen",
        ] {
            assert!(
                text.contains(&format!("clients.audio_ports: includes port {port}")),
                "{text}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = load_str("[switch]\nesll = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.to_string().contains("esll"), "{err}");
    }
}
