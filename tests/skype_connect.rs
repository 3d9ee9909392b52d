//! The FreeSWITCH files shipped with skypopen: the Skype Connect SIP trunk (gateway + inbound
//! and outbound dialplan) and the sidecar's own dialplan. Parsed as XML; the dialplan regexes
//! run on sample numbers as FreeSWITCH would.

mod support;

use quick_xml::events::Event;
use regex::Regex;
use std::path::Path;

#[derive(Debug, Clone)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    /// Names of the enclosing elements, outermost first.
    ancestors: Vec<String>,
    /// Index of the enclosing `<extension>` in document order, if any.
    extension: Option<usize>,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every element of a repository file, in document order.
fn elements(relative: &str) -> Vec<Element> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{relative}: {e}"));
    let mut reader = quick_xml::Reader::from_str(&text);
    reader.config_mut().trim_text(true);
    let mut out = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut extensions = 0usize;
    let mut current_extension: Option<usize> = None;
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("{relative}: not well-formed XML: {e}"));
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if name == "extension" {
                    current_extension = Some(extensions);
                    extensions += 1;
                }
                let attributes = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap_or_else(|err| panic!("{relative}: attribute: {err}"));
                        let value = a
                            .unescape_value()
                            .unwrap_or_else(|err| panic!("{relative}: attribute value: {err}"));
                        (
                            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                            value.into_owned(),
                        )
                    })
                    .collect();
                out.push(Element {
                    name: name.clone(),
                    attributes,
                    ancestors: stack.clone(),
                    extension: current_extension,
                });
                if !empty {
                    stack.push(name);
                }
            }
            Event::End(e) => {
                if e.name().as_ref() == b"extension" {
                    current_extension = None;
                }
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "{relative}: unclosed elements {stack:?}");
    out
}

fn named<'a>(all: &'a [Element], name: &str) -> Vec<&'a Element> {
    all.iter().filter(|e| e.name == name).collect()
}

/// FreeSWITCH's `$${name}` pre-processor variables, from `<X-PRE-PROCESS cmd="set">` lines.
fn preprocess(all: &[Element], text: &str) -> String {
    let mut out = text.to_string();
    for e in named(all, "X-PRE-PROCESS") {
        if e.attr("cmd") == Some("set") {
            if let Some((k, v)) = e.attr("data").and_then(|d| d.split_once('=')) {
                out = out.replace(&format!("$${{{k}}}"), v);
            }
        }
    }
    out
}

fn condition_regex(all: &[Element], extension: &str) -> Regex {
    let index = named(all, "extension")
        .iter()
        .position(|e| e.attr("name") == Some(extension))
        .unwrap_or_else(|| panic!("no extension {extension}"));
    let condition = all
        .iter()
        .find(|e| e.name == "condition" && e.extension == Some(index))
        .expect("a condition");
    assert_eq!(condition.attr("field"), Some("destination_number"));
    let expression = preprocess(all, condition.attr("expression").expect("expression"));
    Regex::new(&expression).unwrap_or_else(|e| panic!("{expression}: {e}"))
}

/// `(application, data)` of an extension's actions, in order.
fn actions(all: &[Element], extension: &str) -> Vec<(String, String)> {
    let index = named(all, "extension")
        .iter()
        .position(|e| e.attr("name") == Some(extension))
        .unwrap_or_else(|| panic!("no extension {extension}"));
    all.iter()
        .filter(|e| e.name == "action" && e.extension == Some(index))
        .map(|e| {
            (
                e.attr("application").unwrap_or_default().to_string(),
                e.attr("data").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn captures(re: &Regex, number: &str) -> Option<Vec<String>> {
    re.captures(number).map(|c| {
        c.iter()
            .skip(1)
            .flatten()
            .map(|m| m.as_str().to_string())
            .collect()
    })
}

#[test]
fn the_gateway_has_every_skype_connect_parameter() {
    let all = elements("conf/sip_profiles/external/skype.xml");
    let gateways = named(&all, "gateway");
    assert_eq!(gateways.len(), 1);
    assert_eq!(gateways[0].attr("name"), Some("skype"));
    let params: Vec<(&str, &str)> = named(&all, "param")
        .iter()
        .inspect(|p| assert_eq!(p.ancestors.last().map(String::as_str), Some("gateway")))
        .map(|p| (p.attr("name").unwrap_or(""), p.attr("value").unwrap_or("")))
        .collect();
    let mut names: Vec<&str> = params.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "caller-id-in-from",
            "contact-params",
            "extension",
            "extension-in-contact",
            "from-domain",
            "from-user",
            "password",
            "proxy",
            "realm",
            "retry-seconds",
            "username",
        ]
    );
    let value = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    assert_eq!(value("extension-in-contact"), Some("true"));
    assert_eq!(value("retry-seconds"), Some("30"));
    assert_eq!(value("caller-id-in-from"), Some("false"));
    for host in ["realm", "proxy", "from-domain"] {
        assert_eq!(value(host), Some("sip.skype.com"), "{host}");
    }
    // The SIP user is one value everywhere; the password is never written into this file.
    for user in ["username", "from-user", "extension"] {
        assert_eq!(value(user), Some("$${skype_connect_user}"), "{user}");
    }
    assert_eq!(value("password"), Some("$${skype_connect_password}"));
}

#[test]
fn outbound_takes_the_prefix_and_only_the_prefix() {
    let all = elements("dialplan/default/01_skype.xml");
    let re = condition_regex(&all, "skype_connect_outbound");
    assert_eq!(
        captures(&re, "00390612345678"),
        Some(vec!["390612345678".to_string()])
    );
    assert_eq!(
        captures(&re, "0014155550123"),
        Some(vec!["14155550123".to_string()])
    );
    for not_routed in [
        "390612345678",
        "0390612345678",
        "1000",
        "5000",
        "00",
        "000390612345678",
        "00 39061234567",
        "skype/echo123",
        "+390612345678",
    ] {
        assert!(
            !re.is_match(not_routed),
            "{not_routed} must not go to Skype Connect"
        );
    }
    let actions = actions(&all, "skype_connect_outbound");
    let bridge = actions
        .iter()
        .find(|(app, _)| app == "bridge")
        .expect("a bridge");
    assert!(bridge.1.starts_with("sofia/gateway/skype/"), "{bridge:?}");
}

#[test]
fn the_outbound_prefix_is_configurable() {
    let all = elements("dialplan/default/01_skype.xml");
    let condition = named(&all, "condition")[0].attr("expression").unwrap_or("");
    assert!(
        condition.contains("$${skype_connect_prefix}"),
        "{condition}"
    );
    let set: Vec<&str> = named(&all, "X-PRE-PROCESS")
        .iter()
        .filter_map(|e| e.attr("data"))
        .collect();
    assert_eq!(set, ["skype_connect_prefix=00"]);
}

#[test]
fn inbound_from_the_trunk_reaches_a_local_extension() {
    let all = elements("dialplan/public/01_skype.xml");
    let re = condition_regex(&all, "skype_connect_inbound");
    assert!(re.is_match("99051000123456"));
    for other in ["1000", "9905100012345", "990510001234567", "0039061234567"] {
        assert!(!re.is_match(other), "{other}");
    }
    let actions = actions(&all, "skype_connect_inbound");
    let (app, data) = actions.last().expect("an action");
    assert_eq!(app, "transfer");
    assert!(data.ends_with(" XML default"), "{data}");
}

fn sidecar_dialplan_routes(file: &str) -> Vec<Element> {
    let all = elements(file);
    let any = condition_regex(&all, "skypopen_any_interface");
    assert_eq!(any.as_str(), "^skype/(.+)$");
    assert_eq!(
        captures(&any, "skype/echo123"),
        Some(vec!["echo123".into()])
    );
    assert!(!any.is_match("skypopen/interface1/echo123"));
    let named_iface = condition_regex(&all, "skypopen_named_interface");
    assert_eq!(named_iface.as_str(), "^skypopen/([^/]+)/(.+)$");
    assert_eq!(
        captures(&named_iface, "skypopen/interface1/echo123"),
        Some(vec!["interface1".into(), "echo123".into()])
    );
    assert_eq!(
        captures(&named_iface, "skypopen/RR/+390612345678"),
        Some(vec!["RR".into(), "+390612345678".into()])
    );
    assert!(!named_iface.is_match("skypopen//echo123"));
    for extension in ["skypopen_any_interface", "skypopen_named_interface"] {
        let actions = actions(&all, extension);
        assert_eq!(
            actions.last(),
            Some(&(
                "socket".to_string(),
                "127.0.0.1:8084 async full".to_string()
            )),
            "{file} {extension}"
        );
    }
    all
}

#[test]
fn the_audio_fork_dialplan_keeps_the_channel_writing() {
    let file = "dialplan/default/00_skypopen_audio_fork.xml";
    sidecar_dialplan_routes(file);
    let all = elements(file);
    for extension in ["skypopen_any_interface", "skypopen_named_interface"] {
        let actions = actions(&all, extension);
        assert_eq!(
            actions,
            [
                ("set".to_string(), "send_silence_when_idle=-1".to_string()),
                (
                    "socket".to_string(),
                    "127.0.0.1:8084 async full".to_string()
                ),
            ]
        );
    }
}

#[test]
fn the_unicast_dialplan_never_sends_silence() {
    let all = sidecar_dialplan_routes("dialplan/default/00_skypopen_unicast.xml");
    for action in named(&all, "action") {
        let data = action.attr("data").unwrap_or("");
        assert!(
            !data.contains("send_silence_when_idle"),
            "unicast audio is chopped by send_silence_when_idle: {data}"
        );
    }
}

#[test]
fn the_inbound_example_matches_the_default_destination() {
    let all = elements("dialplan/public/00_skypopen_inbound.xml");
    let re = condition_regex(&all, "skypopen_inbound");
    assert!(re.is_match("5000"));
    assert!(!re.is_match("50001"));
}

#[test]
fn the_dialplan_socket_address_is_the_default_outbound_listener() {
    let settings = skypopen::config::Settings::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/skypopen.toml"),
    )
    .expect("shipped configuration");
    assert_eq!(
        settings.switch.outbound_listen.to_string(),
        "127.0.0.1:8084"
    );
}
