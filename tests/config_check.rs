//! `skypopen check`: every problem at once, each with its file line (or environment variable),
//! its key and what is wrong, compared against golden output.

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn check(config: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_skypopen"));
    command.arg("--config").arg(config).arg("check");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run skypopen check")
}

fn write_config(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("skypopen.toml");
    std::fs::write(&path, text).expect("write config");
    (dir, path)
}

const BROKEN: &str = r#"[switch]
esl = "localhost"
esll = "127.0.0.1:1"
media_url = "http://127.0.0.1:8086"
outbound_listen = "127.0.0.1:8022"

[listener]
allow = ["127.0.0.0/8", "nonsense"]

[clients]
audio_ports = "9000-100"
manage = "perhaps"
network = "nowhere"
kind = "skipe"

[logs]
level = "info"

[defaults]
skype_usr = "x"

[[interface]]
id = 1
name = "a"
x11_display = ":101"

[[interface]]
id = 0
name = "a"
x11_display = "101"
skype_user = "u"

[[interface]]
name = "c"
skype_user = "u"
"#;

const BROKEN_GOLDEN: &str = r#"@:2: switch.esl: invalid socket address syntax
@:3: switch.esll: unknown key (did you mean "esl"?)
@:4: switch.media_url: "http://127.0.0.1:8086" must start with ws:// or wss://
@:7: listener.listen: 127.0.0.1:8022 is already used by switch.outbound_listen
@:8: listener.allow[1]: "nonsense" is not an address or CIDR block
@:11: clients.audio_ports: "9000-100" is not a port range LOW-HIGH with 1024 <= LOW < HIGH <= 65535
@:12: clients.manage: invalid type: string "perhaps", expected a boolean
@:13: clients.network: "nowhere" is neither "embedded" nor an address HOST:PORT
@:14: clients.kind: unknown value "skipe"
@:16: logs: unknown key (did you mean "log"?)
@:20: defaults.skype_usr: unknown key (did you mean "skype_user"?)
@:22: interface[0].skype_user: missing: set it here or in [defaults]
@:28: interface[1].id: 0 is not in 1..=4095
@:29: interface[1].name: duplicate name "a" (also interface[0])
@:30: interface[1].x11_display: "101" is not an X display like ":101"
@:33: interface[2].id: missing (required)
@:33: interface[2].x11_display: missing (required)
@: 17 problem(s)
"#;

#[test]
fn every_problem_is_listed_with_file_line_and_key() {
    let (_dir, path) = write_config(BROKEN);
    let out = check(&path, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = BROKEN_GOLDEN.replace('@', &path.display().to_string());
    assert_eq!(stderr, expected);
}

#[test]
fn problems_from_the_environment_name_the_variable() {
    let (_dir, path) = write_config("[defaults]\nskype_user = \"u\"\n");
    let out = check(
        &path,
        &[
            ("SKYPOPEN__SWITCH__ESL", "nowhere"),
            ("SKYPOPEN__CLIENTS__NOPE", "1"),
            ("SKYPOPEN__LISTENER__ALLOW", "10.0.0.0/8,zz"),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "environment SKYPOPEN__SWITCH__ESL: switch.esl: invalid socket address syntax\n\
         environment SKYPOPEN__CLIENTS__NOPE: clients.nope: unknown key (known keys: audio_ports, \
         command, credentials_dir, dbpath_root, kind, manage, network, network_listen, \
         ready_timeout_secs, sim_binary, stop_grace_secs, xvfb, xvfb_args)\n\
         environment SKYPOPEN__LISTENER__ALLOW: listener.allow[1]: \"zz\" is not an address or CIDR block\n\
         {}: 3 problem(s)\n",
        path.display()
    );
    assert_eq!(stderr, expected);
}

#[test]
fn syntax_errors_are_reported_with_their_position() {
    let (_dir, path) = write_config("[switch\nesl = 1\n");
    let out = check(&path, &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 1"), "{stderr}");
}

#[test]
fn the_shipped_configuration_passes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/skypopen.toml");
    let out = check(&path, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(": OK, 2 interface(s)\n"), "{stdout}");
    // The real limits follow.
    assert!(
        stdout.contains("  interfaces: 2 (one sidecar serves at most 4095)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  calls at once: at most 2 (one call per interface)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("open files: "), "{stdout}");
}

#[test]
fn real_clients_need_a_command_and_a_password_per_account() {
    let dir = tempfile::tempdir().expect("temp dir");
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).expect("creds dir");
    std::fs::write(creds.join("alice"), "pw\n").expect("write pw");
    let text = format!(
        "[clients]\nkind = \"skype\"\ncredentials_dir = {creds:?}\n\
         [[interface]]\nid = 1\nname = \"a\"\nx11_display = \":101\"\nskype_user = \"alice\"\n\
         [[interface]]\nid = 2\nname = \"b\"\nx11_display = \":102\"\nskype_user = \"bob\"\n"
    );
    let path = dir.path().join("skypopen.toml");
    std::fs::write(&path, text).expect("write config");
    let out = check(&path, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let p = path.display();
    assert_eq!(
        stderr,
        format!(
            "{p}:1: clients.command: required with kind = \"skype\" and manage = true: the \
             client's command line, e.g. [\"/opt/skype/skype\", \"--dbpath={{dbpath}}\", \
             \"--pipelogin\"]\n\
             {p}:13: interface[1].skype_user: no password for Skype account \"bob\": put it in \
             a file named after the account in [clients] credentials_dir, or in \
             $SKYPOPEN_SKYPE_PASSWORD_BOB\n\
             {p}: 2 problem(s)\n"
        )
    );
}

#[test]
fn a_listener_open_to_other_hosts_with_the_stock_password_is_warned_about() {
    let (_dir, path) = write_config(
        "[listener]\nlisten = \"0.0.0.0:8022\"\npassword = \"ClueCon\"\n\
         [defaults]\nskype_user = \"u\"\n",
    );
    let out = check(&path, &[]);
    assert!(out.status.success(), "a warning, not a problem");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("warning: listener.password: the listener on 0.0.0.0:8022"),
        "{stderr}"
    );
    // The environment's password wins over the inline one, and the warning goes.
    let out = check(&path, &[("SKYPOPEN_LISTENER_PASSWORD", "s3cret")]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn what_a_new_user_gets_wrong_is_reported_once_and_where_it_is() {
    // A value of the wrong type is one problem, not also "missing".
    let (_dir, path) = write_config(
        "[defaults]\nskype_user = \"u\"\n\
         [[interface]]\nid = \"one\"\nname = \"a\"\nx11_display = \":5\"\n",
    );
    let out = check(&path, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        format!(
            "{0}:4: interface[0].id: invalid type: string \"one\", expected an integer\n\
             {0}: 1 problem(s)\n",
            path.display()
        )
    );
    // A misspelt section in a variable is the variable's fault, not the file's.
    let (_dir, path) = write_config("[defaults]\nskype_user = \"u\"\n");
    let out = check(&path, &[("SKYPOPEN__SWTICH__ESL", "127.0.0.1:1")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "environment SKYPOPEN__SWTICH__ESL: swtich: unknown key (did you mean \"switch\"?)"
        ),
        "{stderr}"
    );
    // A file that is not there: the reason once.
    let out = check(Path::new("/nonexistent/skypopen.toml"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn without_a_config_option_the_checkout_or_the_system_file_is_used_or_the_search_said() {
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_skypopen"))
        .arg("check")
        .current_dir(elsewhere.path())
        .env_remove("SKYPOPEN_CONFIG")
        .output()
        .expect("run skypopen check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if Path::new("/etc/skypopen/skypopen.toml").exists() {
        assert!(out.status.success(), "{stderr}");
    } else {
        assert!(!out.status.success());
        assert!(
            stderr.contains(
                "no configuration file: looked at conf/skypopen.toml and \
                 /etc/skypopen/skypopen.toml; pass --config <file> or set SKYPOPEN_CONFIG"
            ),
            "{stderr}"
        );
    }
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/skypopen.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_skypopen"))
        .arg("check")
        .current_dir(elsewhere.path())
        .env("SKYPOPEN_CONFIG", &shipped)
        .output()
        .expect("run skypopen check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
