//! `skypopen migrate-config`: the original module's XML to TOML, checked by loading the result.

mod support;

use skypopen::config::Settings;
use std::path::Path;
use std::process::Command;

struct Migrated {
    toml: String,
    notes: String,
    settings: Settings,
}

fn migrate(xml: &str) -> Migrated {
    let dir = tempfile::tempdir().expect("temp dir");
    let xml_path = dir.path().join("skypopen.conf.xml");
    std::fs::write(&xml_path, xml).expect("write xml");
    let out = Command::new(env!("CARGO_BIN_EXE_skypopen"))
        .arg("migrate-config")
        .arg(&xml_path)
        .output()
        .expect("run migrate-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = String::from_utf8(out.stdout).expect("utf-8 toml");
    let toml_path = dir.path().join("skypopen.toml");
    std::fs::write(&toml_path, &toml).expect("write toml");
    let settings = Settings::load(&toml_path)
        .unwrap_or_else(|err| panic!("migrated TOML does not load: {err}\n{toml}"));
    let notes = String::from_utf8_lossy(&out.stderr).replace(&xml_path.display().to_string(), "@");
    Migrated {
        toml,
        notes,
        settings,
    }
}

/// The shape of the module's shipped sample (spec 10.2), written from its description.
const SAMPLE: &str = r#"<configuration name="skypopen.conf" description="Skypopen Configuration">
  <global_settings>
    <param name="debug" value="0"/>
    <param name="dialplan" value="XML"/>
    <param name="context" value="default"/>
    <param name="destination" value="5000"/>
    <param name="skype_user" value="user1"/>
    <param name="report_incoming_chatmessages" value="true"/>
    <param name="silent_mode" value="false"/>
    <param name="write_silence_when_idle" value="true"/>
    <param name="setsockopt" value="true"/>
  </global_settings>
  <!-- one Skype client per interface, each on its own X display -->
  <per_interface_settings>
    <interface id="1" name="interface1">
      <param name="X11-display" value=":101"/>
      <param name="skype_user" value="user1"/>
    </interface>
    <interface id="2" name="interface2">
      <param name="X11-display" value=":102"/>
      <param name="skype_user" value="user2"/>
    </interface>
  </per_interface_settings>
</configuration>
"#;

#[test]
fn the_sample_configuration_converts_and_loads() {
    let m = migrate(SAMPLE);
    assert_eq!(
        m.notes,
        "@: global param \"debug\": not carried; the original parsed it but never used it \
         (use [log] level instead)\n"
    );
    assert!(m.toml.contains(
        "[defaults]                           # the original's global_settings\n\
         dialplan = \"XML\"\ncontext = \"default\"\ndestination = \"5000\"\n\
         skype_user = \"user1\"\nreport_incoming_chatmessages = true\nsilent_mode = false\n\
         write_silence_when_idle = true\nsetsockopt = true\n"
    ));
    let s = &m.settings;
    assert_eq!(s.interfaces.len(), 2);
    let two = s.interface("interface2").expect("interface2");
    assert_eq!(
        (two.id, two.x11_display.as_str(), two.skype_user.as_str()),
        (2, ":102", "user2")
    );
    assert!(two.setsockopt && two.write_silence_when_idle && !two.silent_mode);
    assert_eq!(two.destination, "5000");
}

/// What the last installer wrote (spec 11.1): five clients skype101..skype105, "one" mode
/// (a single global account), chats and silence off.
fn installer_xml() -> String {
    let mut interfaces = String::new();
    for k in 1..=5 {
        let n = 100 + k;
        interfaces.push_str(&format!(
            "    <interface id=\"{k}\" name=\"skype{n}\">\n      \
             <param name=\"X11-display\" value=\":{n}\"/>\n    </interface>\n"
        ));
    }
    format!(
        "<?xml version=\"1.0\"?>\n<configuration name=\"skypopen.conf\" description=\"Skypopen\">\n  \
         <global_settings>\n    <param name=\"debug\" value=\"8\"/>\n    \
         <param name=\"skype_user\" value=\"mycompany.one\"/>\n    \
         <param name=\"report_incoming_chatmessages\" value=\"false\"/>\n    \
         <param name=\"write_silence_when_idle\" value=\"false\"/>\n    \
         <param name=\"setsockopt\" value=\"true\"/>\n  </global_settings>\n  \
         <per_interface_settings>\n{interfaces}  </per_interface_settings>\n</configuration>\n"
    )
}

#[test]
fn the_installer_configuration_converts_and_loads() {
    let m = migrate(&installer_xml());
    assert_eq!(m.notes.lines().count(), 1, "{}", m.notes);
    let s = &m.settings;
    let names: Vec<&str> = s.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        ["skype101", "skype102", "skype103", "skype104", "skype105"]
    );
    for (k, iface) in s.interfaces.iter().enumerate() {
        assert_eq!(iface.id as usize, k + 1);
        assert_eq!(iface.x11_display, format!(":{}", 101 + k));
        assert_eq!(iface.skype_user, "mycompany.one");
        assert!(!iface.report_incoming_chatmessages);
        assert!(!iface.write_silence_when_idle);
        assert!(iface.setsockopt);
        // Not in the file: the original's built-in defaults.
        assert_eq!(
            (
                iface.dialplan.as_str(),
                iface.context.as_str(),
                iface.destination.as_str()
            ),
            ("XML", "default", "5000")
        );
    }
}

#[test]
fn quirks_and_what_could_not_be_carried() {
    let xml = r#"<configuration name="skypopen.conf">
  <global_settings>
    <param name="Destination" value="9999"/>
    <param name="silent_mode" value="yes"/>
    <param name="skype_password" value="s3cr3t-global"/>
  </global_settings>
  <per_interface_settings>
    <interface id="1" name="a">
      <param name="X11_display" value=":101"/>
      <param name="SKYPE_USER" value="alice"/>
      <param name="Silent_Mode" value="1"/>
      <param name="skype_password" value="s3cr3t-alice"/>
      <param name="hold_music" value="x.wav"/>
    </interface>
    <interface id="0" name="zero"><param name="X11-display" value=":100"/></interface>
    <interface id="3"><param name="x11-display" value=":103"/><param name="skype_user" value="carol"/></interface>
  </per_interface_settings>
</configuration>
"#;
    let m = migrate(xml);
    assert!(!m.notes.contains("s3cr3t") && !m.toml.contains("s3cr3t"));
    let expected = [
        "@: global param \"Destination\": not carried (global names are case-sensitive: the original ignored it, not \"destination\")",
        "@: global param \"silent_mode\": value \"yes\" written as false (the original took only \"true\" and \"1\" as true)",
        "@: global param \"skype_password\": not carried; passwords do not belong in this file: put each account's password in [clients] credentials_dir/<account> (mode 0600) or in $SKYPOPEN_SKYPE_PASSWORD_<ACCOUNT>",
        "@: interface id=\"1\" name=\"a\" param \"skype_password\": not carried; passwords do not belong in this file: put each account's password in [clients] credentials_dir/<account> (mode 0600) or in $SKYPOPEN_SKYPE_PASSWORD_<ACCOUNT>",
        "@: interface id=\"1\" name=\"a\" param \"hold_music\": not carried (the original ignored it)",
        "@: interface id=\"0\" name=\"zero\": not carried; id must be a number from 1 to 63",
        "@: interface id=\"3\": has no name (the original called it \"N/A\"); named \"interface3\"",
    ];
    assert_eq!(m.notes.lines().collect::<Vec<_>>(), expected);
    let s = &m.settings;
    assert_eq!(s.interfaces.len(), 2);
    let a = s.interface("a").expect("a");
    assert!(a.silent_mode);
    assert_eq!(a.skype_user, "alice");
    assert_eq!(a.destination, "5000");
    let three = s.interface("interface3").expect("interface3");
    assert_eq!((three.id, three.x11_display.as_str()), (3, ":103"));
}

#[test]
fn unreadable_input_fails_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_skypopen"))
        .arg("migrate-config")
        .arg(Path::new("/nonexistent/skypopen.conf.xml"))
        .output()
        .expect("run migrate-config");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/skypopen.conf.xml")
    );
}
