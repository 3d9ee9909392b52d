//! Conversion of the original module's `skypopen.conf.xml` into this sidecar's TOML
//! (`[defaults]` + `[[interface]]`), with the original's parsing quirks applied so that the
//! result behaves as the old file did:
//!
//! - global parameter names match case-sensitively, except `debug`;
//! - interface parameter names match case-insensitively; `X11-display` and `X11_display` are
//!   one parameter;
//! - a boolean is true only for exactly `true` or `1`;
//! - an interface is `<interface id="N" name="...">`, id 1..63.
//!
//! What cannot be carried (unknown names, passwords, invalid interfaces) is listed in
//! [`Migration::notes`]; secret values are never repeated there.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::collections::BTreeSet;
use std::fmt::Write as _;

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("not well-formed XML at byte {position}: {message}")]
    Xml { position: u64, message: String },
    #[error(
        "no <global_settings> or <per_interface_settings> found: is this a skypopen.conf.xml?"
    )]
    NotSkypopen,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The converted configuration, ready for `conf/skypopen.toml`.
    pub toml: String,
    /// One line per thing that was not carried over, or carried with a changed meaning.
    pub notes: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Bool,
}

/// The parameters both scopes share, in output order.
const PARAMS: &[(&str, Kind)] = &[
    ("dialplan", Kind::Text),
    ("context", Kind::Text),
    ("destination", Kind::Text),
    ("skype_user", Kind::Text),
    ("report_incoming_chatmessages", Kind::Bool),
    ("silent_mode", Kind::Bool),
    ("write_silence_when_idle", Kind::Bool),
    ("setsockopt", Kind::Bool),
];

/// The original keeps 64 slots and rejects slot 0.
const MAX_INTERFACE_ID: i64 = 63;

#[derive(Default)]
struct Values(Vec<(&'static str, String)>);

impl Values {
    /// Later occurrences win, as in the original's parameter loop.
    fn set(&mut self, name: &'static str, value: String) {
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, value));
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Interface {
    id_text: Option<String>,
    name: Option<String>,
    display: Option<String>,
    values: Values,
}

pub fn migrate(xml: &str) -> Result<Migration, LegacyError> {
    let mut reader = Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    let mut notes = Vec::new();
    let mut globals = Values::default();
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut in_globals = false;
    let mut seen_sections = false;
    let mut current: Option<Interface> = None;
    loop {
        let event = reader.read_event().map_err(|err| LegacyError::Xml {
            position: reader.error_position(),
            message: err.to_string(),
        })?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                b"global_settings" => {
                    seen_sections = true;
                    in_globals = !empty;
                }
                b"per_interface_settings" => seen_sections = true,
                b"interface" => {
                    let iface = Interface {
                        id_text: attribute(&e, "id"),
                        name: attribute(&e, "name"),
                        display: None,
                        values: Values::default(),
                    };
                    if empty {
                        interfaces.push(iface);
                    } else {
                        current = Some(iface);
                    }
                }
                b"param" => {
                    let name = attribute(&e, "name").unwrap_or_default();
                    let value = attribute(&e, "value").unwrap_or_default();
                    if let Some(iface) = current.as_mut() {
                        interface_param(iface, &name, value, &mut notes);
                    } else if in_globals {
                        global_param(&mut globals, &name, value, &mut notes);
                    }
                }
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                b"global_settings" => in_globals = false,
                b"interface" => interfaces.extend(current.take()),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_sections {
        return Err(LegacyError::NotSkypopen);
    }
    let interfaces = valid_interfaces(interfaces, &mut notes);
    if globals.get("skype_user").is_none() {
        for iface in interfaces
            .iter()
            .filter(|i| i.values.get("skype_user").is_none())
        {
            notes.push(format!(
                "interface id=\"{}\" name={:?}: has no skype_user here or in global_settings \
                 (the original refused to load); add one before starting",
                iface.id, iface.name
            ));
        }
    }
    Ok(Migration {
        toml: render(&globals, &interfaces),
        notes,
    })
}

fn attribute(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name.as_bytes())
        .and_then(|a| a.unescape_value().ok())
        .map(|v| v.into_owned())
}

fn global_param(globals: &mut Values, name: &str, value: String, notes: &mut Vec<String>) {
    if name.eq_ignore_ascii_case("debug") {
        notes.push(format!(
            "global param {name:?}: not carried; the original parsed it but never used it \
             (use [log] level instead)"
        ));
        return;
    }
    if is_password(name) {
        notes.push(password_note(&format!("global param {name:?}")));
        return;
    }
    match PARAMS.iter().find(|(known, _)| *known == name) {
        Some((known, kind)) => {
            let value = converted(&format!("global param {name:?}"), *kind, value, notes);
            globals.set(known, value);
        }
        None => {
            let hint = PARAMS
                .iter()
                .find(|(known, _)| known.eq_ignore_ascii_case(name))
                .map(|(known, _)| {
                    format!(" (global names are case-sensitive: the original ignored it, not {known:?})")
                })
                .unwrap_or_else(|| " (the original ignored it)".to_string());
            notes.push(format!("global param {name:?}: not carried{hint}"));
        }
    }
}

fn interface_param(iface: &mut Interface, name: &str, value: String, notes: &mut Vec<String>) {
    let scope = format!("interface {} param {name:?}", describe(iface));
    let lower = name.to_ascii_lowercase();
    if lower == "x11-display" || lower == "x11_display" {
        iface.display = Some(value);
        return;
    }
    if is_password(name) {
        notes.push(password_note(&scope));
        return;
    }
    match PARAMS.iter().find(|(known, _)| *known == lower) {
        Some((known, kind)) => {
            let value = converted(&scope, *kind, value, notes);
            iface.values.set(known, value);
        }
        None => notes.push(format!("{scope}: not carried (the original ignored it)")),
    }
}

fn is_password(name: &str) -> bool {
    name.to_ascii_lowercase().contains("password")
}

fn password_note(scope: &str) -> String {
    format!(
        "{scope}: not carried; passwords do not belong in this file: put each account's \
         password in [clients] credentials_dir/<account> (mode 0600) or in \
         $SKYPOPEN_SKYPE_PASSWORD_<ACCOUNT>"
    )
}

/// Booleans keep the original's meaning: anything but `true` or `1` was false.
fn converted(scope: &str, kind: Kind, value: String, notes: &mut Vec<String>) -> String {
    match kind {
        Kind::Text => value,
        Kind::Bool => {
            let truth = value == "true" || value == "1";
            if !matches!(value.as_str(), "true" | "1" | "false" | "0") {
                notes.push(format!(
                    "{scope}: value {value:?} written as false (the original took only \"true\" \
                     and \"1\" as true)"
                ));
            }
            truth.to_string()
        }
    }
}

fn describe(iface: &Interface) -> String {
    match (&iface.id_text, &iface.name) {
        (Some(id), Some(name)) => format!("id={id:?} name={name:?}"),
        (Some(id), None) => format!("id={id:?}"),
        (None, Some(name)) => format!("name={name:?}"),
        (None, None) => "(no id, no name)".to_string(),
    }
}

struct ValidInterface {
    id: i64,
    name: String,
    display: String,
    values: Values,
}

fn valid_interfaces(list: Vec<Interface>, notes: &mut Vec<String>) -> Vec<ValidInterface> {
    let mut ids = BTreeSet::new();
    let mut out = Vec::new();
    for iface in list {
        let what = format!("interface {}", describe(&iface));
        let id = iface
            .id_text
            .as_deref()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .filter(|id| (1..=MAX_INTERFACE_ID).contains(id));
        let Some(id) = id else {
            notes.push(format!(
                "{what}: not carried; id must be a number from 1 to {MAX_INTERFACE_ID}"
            ));
            continue;
        };
        if !ids.insert(id) {
            notes.push(format!(
                "{what}: not carried; id {id} is used by an earlier interface"
            ));
            continue;
        }
        let Some(display) = iface.display.clone().filter(|d| !d.is_empty()) else {
            notes.push(format!("{what}: not carried; it has no X11-display"));
            continue;
        };
        let name = match iface.name.clone().filter(|n| !n.is_empty()) {
            Some(name) => name,
            None => {
                let name = format!("interface{id}");
                notes.push(format!(
                    "{what}: has no name (the original called it \"N/A\"); named {name:?}"
                ));
                name
            }
        };
        out.push(ValidInterface {
            id,
            name,
            display,
            values: iface.values,
        });
    }
    out
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn render_values(out: &mut String, values: &Values) {
    for (name, kind) in PARAMS {
        if let Some(value) = values.get(name) {
            let rendered = match kind {
                Kind::Bool => value.to_string(),
                Kind::Text => quoted(value),
            };
            let _ = writeln!(out, "{name} = {rendered}");
        }
    }
}

fn render(globals: &Values, interfaces: &[ValidInterface]) -> String {
    let mut out = String::new();
    out.push_str(
        "# Converted by `skypopen migrate-config` from skypopen.conf.xml.\n\
         # [switch], [listener], [clients], [state] and [log] keep their defaults:\n\
         # see conf/skypopen.toml for them.\n\n",
    );
    out.push_str("[defaults]                           # the original's global_settings\n");
    render_values(&mut out, globals);
    for iface in interfaces {
        out.push_str("\n[[interface]]\n");
        let _ = writeln!(out, "id = {}", iface.id);
        let _ = writeln!(out, "name = {}", quoted(&iface.name));
        let _ = writeln!(out, "x11_display = {}", quoted(&iface.display));
        render_values(&mut out, &iface.values);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Migrates a skypopen.conf.xml made of these global and per-interface settings.
    fn migrated(globals: &str, interfaces: &str) -> Migration {
        let xml = format!(
            "<configuration name=\"skypopen.conf\">\n<global_settings>\n{globals}\n\
             </global_settings>\n<per_interface_settings>\n{interfaces}\n\
             </per_interface_settings>\n</configuration>\n"
        );
        migrate(&xml).unwrap()
    }

    #[test]
    fn global_names_are_case_sensitive_except_debug() {
        let m = migrated(
            r#"<param name="Context" value="public"/><param name="DEBUG" value="1"/>
               <param name="context" value="default"/>"#,
            "",
        );
        assert!(m.toml.contains("context = \"default\""), "{}", m.toml);
        assert!(!m.toml.contains("public"));
        assert_eq!(m.notes.len(), 2, "{:?}", m.notes);
        assert!(m.notes[0].contains("\"Context\": not carried (global names are case-sensitive"));
        assert!(m.notes[1].contains("\"DEBUG\": not carried; the original parsed it"));
    }

    #[test]
    fn interface_names_are_case_insensitive_and_display_has_two_spellings() {
        let m = migrated(
            r#"<param name="skype_user" value="u0"/>"#,
            r#"<interface id="1" name="a"><param name="X11_DISPLAY" value=":101"/>
                 <param name="Skype_User" value="u1"/></interface>
               <interface id="2" name="b"><param name="x11-display" value=":102"/></interface>"#,
        );
        assert!(m.notes.is_empty(), "{:?}", m.notes);
        assert!(m
            .toml
            .contains("id = 1\nname = \"a\"\nx11_display = \":101\"\nskype_user = \"u1\"\n"));
        assert!(m
            .toml
            .contains("id = 2\nname = \"b\"\nx11_display = \":102\"\n"));
    }

    #[test]
    fn only_true_and_1_are_true() {
        let m = migrated(
            r#"<param name="silent_mode" value="TRUE"/><param name="setsockopt" value="1"/>
               <param name="write_silence_when_idle" value="0"/>"#,
            "",
        );
        assert!(m.toml.contains("silent_mode = false\n"));
        assert!(m.toml.contains("setsockopt = true\n"));
        assert!(m.toml.contains("write_silence_when_idle = false\n"));
        assert_eq!(m.notes.len(), 1);
        assert!(m.notes[0].contains("value \"TRUE\" written as false"));
    }

    #[test]
    fn passwords_are_reported_but_never_repeated() {
        let m = migrated(
            r#"<param name="skype_password" value="hunter2"/><param name="skype_user" value="u"/>"#,
            r#"<interface id="1" name="a"><param name="X11-display" value=":1"/>
               <param name="Skype_Password" value="hunter3"/></interface>"#,
        );
        let all = format!("{}{:?}", m.toml, m.notes);
        assert!(!all.contains("hunter"), "{all}");
        assert_eq!(m.notes.len(), 2);
    }

    #[test]
    fn invalid_interfaces_are_listed_not_carried() {
        let m = migrated(
            r#"<param name="skype_user" value="u"/>"#,
            r#"<interface id="0" name="zero"><param name="X11-display" value=":1"/></interface>
               <interface id="x" name="nan"><param name="X11-display" value=":2"/></interface>
               <interface id="64" name="big"><param name="X11-display" value=":3"/></interface>
               <interface id="5" name="nodisplay"></interface>
               <interface id="6"><param name="X11-display" value=":6"/></interface>
               <interface id="6" name="again"><param name="X11-display" value=":7"/></interface>"#,
        );
        assert_eq!(m.notes.len(), 6, "{:#?}", m.notes);
        assert!(m
            .toml
            .contains("id = 6\nname = \"interface6\"\nx11_display = \":6\"\n"));
        assert_eq!(m.toml.matches("[[interface]]").count(), 1);
    }

    #[test]
    fn a_missing_account_is_pointed_out() {
        let m = migrated(
            "",
            r#"<interface id="1" name="a"><param name="X11-display" value=":1"/></interface>"#,
        );
        assert_eq!(m.notes.len(), 1);
        assert!(m.notes[0].contains("has no skype_user"), "{:?}", m.notes);
    }

    #[test]
    fn broken_xml_is_an_error() {
        assert!(matches!(
            migrate("<configuration><global_settings></configuration>"),
            Err(LegacyError::Xml { .. })
        ));
        assert!(matches!(
            migrate("<configuration/>"),
            Err(LegacyError::NotSkypopen)
        ));
    }
}
