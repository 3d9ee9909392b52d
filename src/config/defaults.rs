//! The built-in value of every setting the file may leave out.

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
/// A real client draws its windows: a screen it can use.
pub fn xvfb_args_real() -> Vec<String> {
    // -noreset: otherwise the server resets, wiping root properties such as
    // _SKYPE_INSTANCE, whenever its last client disconnects.
    ["-noreset", "-nolisten", "tcp", "-screen", "0", "640x480x24"]
        .map(String::from)
        .to_vec()
}
/// An emulated client only needs the root window's properties and ClientMessages: a tiny
/// 8-bit screen without GLX costs 3.6 MB of anonymous memory per display instead of 15 MB.
pub fn xvfb_args_sim() -> Vec<String> {
    [
        "-noreset",
        "-nolisten",
        "tcp",
        "-screen",
        "0",
        "64x64x8",
        "-extension",
        "GLX",
    ]
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
        handshake_timeout_secs: handshake_timeout_secs(),
    }
}
/// FreeSWITCH gives up its own connect after about 10 s; a peer slower than that is not it.
pub fn handshake_timeout_secs() -> f64 {
    10.0
}
pub fn listener() -> ListenerSettings {
    ListenerSettings {
        listen: listener_listen(),
        password: None,
        password_file: None,
        allow: allow(),
        admin: Vec::new(),
        auth_timeout_secs: auth_timeout_secs(),
    }
}
pub fn auth_timeout_secs() -> f64 {
    5.0
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
        xvfb_args: None,
        ready_timeout_secs: ready_timeout_secs(),
        stop_grace_secs: stop_grace_secs(),
    }
}
/// The machine's host name (what `hostname` prints) cut to what `cluster.host` allows, or
/// `skypopen` when it cannot be read.
pub fn host_name() -> String {
    let name: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(63)
        .collect();
    if name.is_empty() {
        "skypopen".to_string()
    } else {
        name
    }
}
pub fn cluster() -> ClusterSettings {
    ClusterSettings {
        host: host_name(),
        arbitrate: false,
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
