//! Typed settings, loaded with the `config` crate from TOML plus `SKYPOPEN__SECTION__KEY`
//! environment overrides. The `[defaults]` table carries the original module's
//! `global_settings`; each `[[interface]]` may override any of them.
//!
//! Loading checks the merged tree key by key ([`schema`]) so that `skypopen check` can list
//! every problem at once, each with its file line or environment variable ([`locate`]).

pub mod capacity;
mod defaults;
/// `Xvfb`'s arguments for an emulated client's display (tests start theirs the same way).
pub use defaults::xvfb_args_sim as sim_xvfb_args;
pub mod legacy;
pub mod locate;
mod schema;
mod secret;
mod sections;
pub mod validate;

pub use locate::Location;
pub use secret::Secret;
pub use sections::*;
pub use validate::Problem;

use serde::Deserialize;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Default location of the configuration file, relative to the working directory.
/// The configuration of a checkout, relative to its root.
pub const DEFAULT_CONFIG_PATH: &str = "conf/skypopen.toml";
/// Where the installed package keeps it.
pub const SYSTEM_CONFIG_PATH: &str = "/etc/skypopen/skypopen.toml";

/// The configuration to use when the command line names none: `$SKYPOPEN_CONFIG`, else the
/// checkout's file when run from a checkout, else the system one. Never a path that only
/// works from one working directory without saying so: the error lists where it looked.
pub fn default_config_path() -> Result<PathBuf, ConfigError> {
    if let Some(path) = std::env::var_os("SKYPOPEN_CONFIG") {
        return Ok(PathBuf::from(path));
    }
    let candidates = [
        PathBuf::from(DEFAULT_CONFIG_PATH),
        PathBuf::from(SYSTEM_CONFIG_PATH),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| ConfigError::NotFound {
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" and "),
        })
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The reason is part of each message and deliberately not a `source`: printed with its
    // chain (`{:#}`), it would appear twice.
    #[error("cannot read configuration {path}: {reason}")]
    Read {
        path: PathBuf,
        reason: std::io::Error,
    },
    #[error("cannot read configuration {path}: {reason}")]
    Load {
        path: PathBuf,
        reason: ::config::ConfigError,
    },
    #[error(
        "no configuration file: looked at {looked}; pass --config <file> or set SKYPOPEN_CONFIG"
    )]
    NotFound { looked: String },
    #[error("cannot read secret file {path}: {reason}")]
    SecretFile {
        path: PathBuf,
        reason: std::io::Error,
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

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub path: PathBuf,
    pub switch: SwitchSettings,
    pub switch_password: Secret,
    pub listener: ListenerSettings,
    pub listener_password: Secret,
    pub listener_allow: Vec<ipnet::IpNet>,
    pub listener_admin: Vec<ipnet::IpNet>,
    pub clients: ClientsSettings,
    pub audio_ports: RangeInclusive<u16>,
    pub unicast_ports: RangeInclusive<u16>,
    pub state: StateSettings,
    pub log: LogSettings,
    pub calls: CallSettings,
    pub metrics: MetricsSettings,
    pub cluster: ClusterSettings,
    pub presence: PresenceSettings,
    pub chat: ChatSettings,
    pub interfaces: Vec<InterfaceConfig>,
}

impl Settings {
    /// Load `path` (TOML) with `SKYPOPEN__SECTION__KEY` environment overrides and validate it.
    /// Every problem found is reported at once, each with its file line or variable.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            reason: source,
        })?;
        Settings::from_text(path, &text)
    }

    /// The configuration in `text` (with the environment's overrides); `path` names it in
    /// problems. What [`Settings::load`] does once the file is read.
    pub fn from_text(path: &Path, text: &str) -> Result<Settings, ConfigError> {
        let merged = merge(path, text)?;
        let mut problems = Vec::new();
        let settings = resolve(path, merged, &mut problems);
        if problems.is_empty() {
            return Ok(settings);
        }
        let locator = locate::Locator::new(path, text);
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

    /// What is allowed but almost surely unwanted; `check` prints these and `run` logs them.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let listen = self.listener.listen;
        if !listen.ip().is_loopback() && self.listener_password.expose() == secret::DEFAULT_PASSWORD
        {
            out.push(format!(
                "listener.password: the listener on {listen} is reachable from other hosts and \
                 accepts FreeSWITCH's stock password ClueCon; set listener.password_file or \
                 SKYPOPEN_LISTENER_PASSWORD"
            ));
        }
        out
    }

    pub fn interface(&self, name: &str) -> Option<&InterfaceConfig> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}

type Tree = ::config::Map<String, ::config::Value>;

/// The file and the environment overrides as one tree, still untyped.
fn merge(path: &Path, text: &str) -> Result<Tree, ConfigError> {
    let load_err = |reason| ConfigError::Load {
        path: path.to_path_buf(),
        reason,
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
    let metrics: MetricsSettings = section(&mut tree, "metrics", problems).unwrap_or_default();
    let cluster: ClusterSettings =
        section(&mut tree, "cluster", problems).unwrap_or_else(defaults::cluster);
    validate::host_name(&cluster.host, problems);
    let presence: PresenceSettings = section(&mut tree, "presence", problems).unwrap_or_default();
    validate::presence_domain(presence.domain.as_deref(), problems);
    let chat: ChatSettings = section(&mut tree, "chat", problems).unwrap_or_default();
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
    let listener_admin = validate::network_list("listener.admin", &listener.admin, problems);
    validate::timeout_secs(
        "listener.auth_timeout_secs",
        listener.auth_timeout_secs,
        problems,
    );
    validate::timeout_secs(
        "switch.handshake_timeout_secs",
        switch.handshake_timeout_secs,
        problems,
    );
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
        listener_admin,
        clients,
        audio_ports,
        unicast_ports,
        state,
        log,
        calls,
        metrics,
        cluster,
        presence,
        chat,
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
            ConfigError::SecretFile { path, reason } => {
                format!("cannot read {}: {reason}", path.display())
            }
            other => other.to_string(),
        };
        problems.push(Problem::new(format!("{section}.password_file"), message));
        Secret::new(String::new())
    })
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

struct InterfaceEntry {
    index: usize,
    identity: InterfaceIdentity,
    /// The identity keys the table wrote, valid or not.
    given: Vec<String>,
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
            // A key given with a bad value is reported as such, not once more as missing.
            let given: Vec<String> = identity.keys().cloned().collect();
            let identity: InterfaceIdentity =
                schema::section(&prefix, ::config::Value::from(identity), problems)?;
            let kept =
                schema::checked_keys::<InterfaceParams>(&prefix, params, identity_keys, problems);
            let params =
                InterfaceParams::deserialize(::config::Value::from(kept)).unwrap_or_default();
            Some(InterfaceEntry {
                index,
                identity,
                given,
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
        // Unset: `auto_authorize` decides, as it did before this setting existed.
        contact_requests: None,
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
        if is_missing && !entry.given.iter().any(|k| k == name) {
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
        contact_requests: p
            .contact_requests
            .unwrap_or(if p.auto_authorize.unwrap_or(true) {
                ContactRequests::Accept
            } else {
                ContactRequests::Ask
            }),
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
            given: Vec::new(),
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

#[cfg(test)]
mod tests;
