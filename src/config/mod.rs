//! Typed settings, loaded with the `config` crate from TOML plus `SKYPOPEN__SECTION__KEY`
//! environment overrides. The `[defaults]` table carries the original module's
//! `global_settings`; each `[[interface]]` may override any of them.

mod secret;
pub mod validate;

pub use secret::Secret;
pub use validate::Problem;

use serde::Deserialize;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Default location of the configuration file, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "conf/skypopen.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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
    #[serde(default = "defaults::allow")]
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
    #[serde(default = "defaults::xvfb")]
    pub xvfb: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    #[serde(default = "defaults::state_dir")]
    pub dir: PathBuf,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceEntry {
    pub id: u32,
    pub name: String,
    pub x11_display: String,
    #[serde(flatten)]
    pub params: InterfaceParams,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default = "defaults::switch")]
    switch: SwitchSettings,
    #[serde(default = "defaults::listener")]
    listener: ListenerSettings,
    #[serde(default = "defaults::clients")]
    clients: ClientsSettings,
    #[serde(default = "defaults::state")]
    state: StateSettings,
    #[serde(default = "defaults::log")]
    log: LogSettings,
    #[serde(default)]
    defaults: InterfaceParams,
    #[serde(default)]
    interface: Vec<InterfaceEntry>,
}

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
    pub interfaces: Vec<InterfaceConfig>,
}

impl Settings {
    /// Load `path` (TOML) with environment overrides and validate it. Every problem found is
    /// reported at once.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let raw = load_raw(path)?;
        let mut problems = Vec::new();
        let settings = resolve(path, raw, &mut problems)?;
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    pub fn interface(&self, name: &str) -> Option<&InterfaceConfig> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}

fn load_raw(path: &Path) -> Result<RawSettings, ConfigError> {
    let load_err = |source| ConfigError::Load {
        path: path.to_path_buf(),
        source,
    };
    ::config::Config::builder()
        .add_source(::config::File::from(path).format(::config::FileFormat::Toml))
        .add_source(
            ::config::Environment::with_prefix("SKYPOPEN")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("listener.allow"),
        )
        .build()
        .map_err(load_err)?
        .try_deserialize::<RawSettings>()
        .map_err(load_err)
}

fn resolve(
    path: &Path,
    raw: RawSettings,
    problems: &mut Vec<Problem>,
) -> Result<Settings, ConfigError> {
    let switch_password = secret::resolve(
        raw.switch.password.clone(),
        raw.switch.password_file.as_deref(),
        "SKYPOPEN_SWITCH_PASSWORD",
    )?;
    let listener_password = secret::resolve(
        raw.listener.password.clone(),
        raw.listener.password_file.as_deref(),
        "SKYPOPEN_LISTENER_PASSWORD",
    )?;
    let audio_ports =
        validate::port_range("clients.audio_ports", &raw.clients.audio_ports, problems);
    let unicast_ports =
        validate::port_range("switch.unicast_ports", &raw.switch.unicast_ports, problems);
    let listener_allow = validate::allow_list(&raw.listener.allow, problems);
    validate::media_url(&raw.switch.media_url, problems);
    validate::log_level(&raw.log.level, problems);
    let builtin = builtin_params();
    let defaults = raw.defaults.or(&builtin);
    let interfaces: Vec<InterfaceConfig> = raw
        .interface
        .iter()
        .enumerate()
        .map(|(index, entry)| resolve_interface(index, entry, &defaults, problems))
        .collect();
    validate::interfaces(&interfaces, problems);
    Ok(Settings {
        path: path.to_path_buf(),
        switch: raw.switch,
        switch_password,
        listener: raw.listener,
        listener_password,
        listener_allow,
        clients: raw.clients,
        audio_ports,
        unicast_ports,
        state: raw.state,
        log: raw.log,
        interfaces,
    })
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
    index: usize,
    entry: &InterfaceEntry,
    defaults: &InterfaceParams,
    problems: &mut Vec<Problem>,
) -> InterfaceConfig {
    let p = entry.params.or(defaults);
    let key = |k: &str| format!("interface[{index}].{k}");
    let skype_user = p.skype_user.unwrap_or_else(|| {
        problems.push(Problem::new(
            key("skype_user"),
            "missing: set it here or in [defaults]",
        ));
        String::new()
    });
    InterfaceConfig {
        id: entry.id,
        name: entry.name.clone(),
        x11_display: entry.x11_display.clone(),
        skype_user,
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
    }
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
    pub fn media() -> MediaMode {
        MediaMode::AudioFork
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
            xvfb: xvfb(),
        }
    }
    pub fn state() -> StateSettings {
        StateSettings { dir: state_dir() }
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
        assert_eq!(s.switch.media, MediaMode::AudioFork);
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
    fn unknown_keys_are_rejected() {
        let err = load_str("[switch]\nesll = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.to_string().contains("esll"), "{err}");
    }
}
