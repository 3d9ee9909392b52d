//! Environment overrides (`SKYPOPEN__SECTION__KEY`) and secrets from files or the environment.
//! One test in this file: the environment is shared by every test of a process.

mod support;

use skypopen::config::Settings;

#[test]
fn environment_overrides_and_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("skypopen.toml");
    let listener_secret = dir.path().join("listener.secret");
    std::fs::write(&listener_secret, "from-a-file\n").expect("write secret");
    std::fs::write(
        &path,
        format!(
            "[switch]\nesl = \"127.0.0.1:8021\"\n\
             [listener]\npassword_file = {listener_secret:?}\n\
             [defaults]\nskype_user = \"user1\"\ndestination = \"5000\"\n\
             [[interface]]\nid = 1\nname = \"a\"\nx11_display = \":101\"\n"
        ),
    )
    .expect("write config");

    std::env::set_var("SKYPOPEN__SWITCH__ESL", "10.1.2.3:8021");
    std::env::set_var("SKYPOPEN__SWITCH__MEDIA", "unicast");
    // A string stays a string: leading zeros of a number survive.
    std::env::set_var("SKYPOPEN__DEFAULTS__DESTINATION", "0039");
    std::env::set_var("SKYPOPEN__CLIENTS__MANAGE", "false");
    std::env::set_var("SKYPOPEN__LISTENER__ALLOW", "10.0.0.0/8, 192.168.1.7");
    std::env::set_var("SKYPOPEN_SWITCH_PASSWORD", "from-the-environment");

    let s = Settings::load(&path).expect("load with overrides");
    assert_eq!(s.switch.esl.to_string(), "10.1.2.3:8021");
    assert_eq!(s.switch.media, skypopen::config::MediaMode::Unicast);
    assert_eq!(s.interfaces[0].destination, "0039");
    assert!(!s.clients.manage);
    let allow: Vec<String> = s.listener_allow.iter().map(|n| n.to_string()).collect();
    assert_eq!(allow, ["10.0.0.0/8", "192.168.1.7/32"]);
    assert_eq!(s.switch_password.expose(), "from-the-environment");
    assert_eq!(s.listener_password.expose(), "from-a-file");
    assert!(!format!("{s:?}").contains("from-the-environment"));
    assert!(!format!("{s:?}").contains("from-a-file"));

    // The password variable beats an inline password (the shipped file has one); a file
    // beats both.
    std::env::set_var("SKYPOPEN__SWITCH__PASSWORD", "inline-override");
    let s = Settings::load(&path).expect("load with inline password");
    assert_eq!(s.switch_password.expose(), "from-the-environment");
    std::env::remove_var("SKYPOPEN_SWITCH_PASSWORD");
    let s = Settings::load(&path).expect("load with inline password only");
    assert_eq!(s.switch_password.expose(), "inline-override");

    // A secret file that cannot be read is a problem of its own, reported like the others.
    std::env::set_var(
        "SKYPOPEN__LISTENER__PASSWORD_FILE",
        "/nonexistent/listener.secret",
    );
    let err = Settings::load(&path).expect_err("unreadable secret file");
    assert!(
        err.to_string().contains(
            "environment SKYPOPEN__LISTENER__PASSWORD_FILE: listener.password_file: cannot read \
             /nonexistent/listener.secret"
        ),
        "{err}"
    );
}
