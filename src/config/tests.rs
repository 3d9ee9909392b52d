//! Loading, merging and resolving configurations.

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
    let err = load_str("[clients]\naudio_ports = \"8000-9000\"\n[defaults]\nskype_user = \"u\"\n")
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

#[test]
fn connection_timeouts_must_be_positive_and_bounded() {
    let base = "[defaults]\nskype_user = \"u\"\n";
    let err = load_str(&format!(
        "[switch]\nhandshake_timeout_secs = 0\n[listener]\nauth_timeout_secs = 7200\n{base}"
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("switch.handshake_timeout_secs: 0 must be a number of seconds above 0"),
        "{err}"
    );
    assert!(err.contains("listener.auth_timeout_secs: 7200"), "{err}");
    let s = load_str(&format!("[switch]\nhandshake_timeout_secs = 2.5\n{base}")).unwrap();
    assert_eq!(
        s.switch.handshake_timeout(),
        std::time::Duration::from_millis(2500)
    );
}

fn interfaces_toml(entries: &[(u32, &str)]) -> String {
    let mut text = String::from("[defaults]\nskype_user = \"u\"\n");
    for (i, (id, display)) in entries.iter().enumerate() {
        text.push_str(&format!(
            "[[interface]]\nid = {id}\nname = \"i{i}\"\nx11_display = \"{display}\"\n"
        ));
    }
    text
}

#[test]
fn ids_go_to_4095_and_more_interfaces_than_that_are_refused_in_one_line() {
    let s = load_str(&interfaces_toml(&[(64, ":164"), (4095, ":4195")])).unwrap();
    assert_eq!(s.interfaces.len(), 2);
    let err = load_str(&interfaces_toml(&[(4096, ":1")]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("interface[0].id: 4096 is not in 1..=4095"),
        "{err}"
    );

    let displays: Vec<String> = (0..5000).map(|n| format!(":{}", 10 + n)).collect();
    let many: Vec<(u32, &str)> = displays
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u32 + 1, d.as_str()))
        .collect();
    let err = load_str(&interfaces_toml(&many)).unwrap_err().to_string();
    assert!(
        err.contains("5000 interfaces configured; one sidecar serves at most 4095"),
        "{err}"
    );
    assert_eq!(err.matches("interface").count(), 2, "one line: {err}");
}

#[test]
fn two_spellings_of_one_x_server_are_refused() {
    for (a, b) in [
        (":101", ":101.0"),
        (":101", "unix:101"),
        (":101.1", "localhost:101"),
    ] {
        let err = load_str(&interfaces_toml(&[(1, a), (2, b)]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!(
                "interface[1].x11_display: x11_display {b:?} is the same X server as {a:?} (also interface[0])"
            )),
            "{err}"
        );
    }
    // Another host's display 101 is another server.
    load_str(&interfaces_toml(&[(1, ":101"), (2, "otherhost:101")])).unwrap();
}

#[test]
fn a_host_name_that_cannot_travel_in_variables_is_refused() {
    let problems = match load_str("[cluster]\nhost = \"box a,b\"\n") {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    };
    assert!(
        problems
            .iter()
            .any(|p| p.to_string().contains("cluster.host") && p.to_string().contains("host name")),
        "{problems:?}"
    );
    let ok = load_str("[cluster]\nhost = \"box-a.example\"\narbitrate = true\n").unwrap();
    assert_eq!(ok.cluster.host, "box-a.example");
    assert!(ok.cluster.arbitrate);
}

#[test]
fn a_presence_domain_that_would_break_the_from_header_is_refused() {
    let problems = match load_str("[presence]\ndomain = \"a b@c\"\n") {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    };
    assert!(
        problems
            .iter()
            .any(|p| p.to_string().contains("presence.domain")),
        "{problems:?}"
    );
    let ok = load_str("[presence]\ndomain = \"pbx.example.com\"\n").unwrap();
    assert_eq!(ok.presence.domain.as_deref(), Some("pbx.example.com"));
}
