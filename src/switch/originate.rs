//! The `originate` command that brings an incoming Skype call into the FreeSWITCH dialplan.
//!
//! Everything that comes from Skype (display names, handles) is untrusted text. It goes into
//! the `{var=value,...}` block only as a single-quoted value from which every character that
//! could close the quote, the block or the line has been removed, so a display name such as
//! `x',api_on_answer=system touch /tmp/p,y='` arrives as one inert string.

use std::fmt::Write as _;

/// Characters FreeSWITCH's variable-block parser gives a meaning to, plus line breaks and other
/// controls. Removed, not escaped: FreeSWITCH has no escape for a quote inside a quoted value.
fn is_unsafe(c: char) -> bool {
    matches!(
        c,
        '\'' | '"' | '{' | '}' | '[' | ']' | '<' | '>' | '\\' | '^' | '|' | '`'
    ) || c.is_control()
}

/// A value safe to place in `{name=<value>}`: quoted, stripped of unsafe characters, bounded.
pub fn quote_value(raw: &str) -> String {
    const MAX_CHARS: usize = 128;
    let cleaned: String = raw
        .chars()
        .filter(|c| !is_unsafe(*c))
        .take(MAX_CHARS)
        .collect();
    format!("'{}'", cleaned.trim())
}

/// A variable name we generate ourselves; never from input.
fn push_var(out: &mut String, name: &str, value: &str) {
    if !out.ends_with('{') {
        out.push(',');
    }
    let _ = write!(out, "{name}={}", quote_value(value));
}

/// What we know of an incoming Skype call when we hand it to FreeSWITCH.
#[derive(Debug, Clone)]
pub struct InboundOriginate<'a> {
    pub uuid: &'a str,
    pub caller_handle: &'a str,
    pub caller_name: &'a str,
    pub interface: &'a str,
    pub skype_call_id: &'a str,
    pub skype_user: &'a str,
    /// The sidecar's `cluster.host`, so the dialplan and CDRs know which box carries the call.
    pub host: &'a str,
    pub initial_skype_user: Option<&'a str>,
    pub destination: &'a str,
    pub context: &'a str,
    pub dialplan: &'a str,
    /// Where the `socket` application connects back (the outbound acceptor).
    pub socket_addr: &'a str,
    /// Set for the audio fork (the fork plays only while the channel writes frames); never for
    /// `unicast`, where it chops the audio.
    pub send_silence_when_idle: bool,
    /// Extra `name=value` pairs from the gateway (e.g. `api_on_answer` to start media early).
    pub extra: &'a [(&'a str, String)],
}

impl InboundOriginate<'_> {
    /// `originate {vars}loopback/<dest>/<context>/<dialplan> &socket('<addr> async full')`
    /// without the leading `originate` (the caller chooses `api` or `bgapi`).
    pub fn arguments(&self) -> String {
        let mut vars = String::from("{");
        push_var(&mut vars, "origination_uuid", self.uuid);
        push_var(
            &mut vars,
            "origination_caller_id_number",
            self.caller_handle,
        );
        push_var(&mut vars, "origination_caller_id_name", self.caller_name);
        push_var(&mut vars, "skypopen_interface", self.interface);
        push_var(&mut vars, "skypopen_call_id", self.skype_call_id);
        push_var(&mut vars, "skype_user", self.skype_user);
        push_var(&mut vars, "skypopen_host", self.host);
        if let Some(initial) = self.initial_skype_user {
            push_var(&mut vars, "initial_skype_user", initial);
        }
        if self.send_silence_when_idle {
            push_var(&mut vars, "send_silence_when_idle", "-1");
        }
        for (name, value) in self.extra {
            push_var(&mut vars, name, value);
        }
        vars.push('}');
        format!(
            "{vars}loopback/{}/{}/{} &socket('{} async full')",
            path_segment(self.destination),
            path_segment(self.context),
            path_segment(self.dialplan),
            self.socket_addr
        )
    }
}

/// Dial-string segments come from our own configuration, but a `/` or a space would still
/// change the meaning of the loopback dial string, so they are dropped.
fn path_segment(text: &str) -> String {
    text.chars()
        .filter(|c| !is_unsafe(*c) && *c != '/' && !c.is_whitespace() && *c != ',')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(name: &'a str, extra: &'a [(&'a str, String)]) -> InboundOriginate<'a> {
        InboundOriginate {
            uuid: "3f1e",
            caller_handle: "bob",
            caller_name: name,
            interface: "interface1",
            skype_call_id: "42",
            skype_user: "user1",
            host: "box-a",
            initial_skype_user: None,
            destination: "5000",
            context: "default",
            dialplan: "XML",
            socket_addr: "127.0.0.1:8084",
            send_silence_when_idle: true,
            extra,
        }
    }

    #[test]
    fn shape_matches_the_captured_originate() {
        let text = request("Bob B", &[]).arguments();
        assert_eq!(
            text,
            "{origination_uuid='3f1e',origination_caller_id_number='bob',\
             origination_caller_id_name='Bob B',skypopen_interface='interface1',\
             skypopen_call_id='42',skype_user='user1',skypopen_host='box-a',\
             send_silence_when_idle='-1'}\
             loopback/5000/default/XML &socket('127.0.0.1:8084 async full')"
        );
    }

    #[test]
    fn hostile_display_names_stay_inert() {
        let text = request("x',api_on_answer=system touch /tmp/p,y='", &[]).arguments();
        assert!(
            text.contains("origination_caller_id_name='x,api_on_answer=system touch /tmp/p,y='")
        );
        // Exactly one variable block, and every quote is paired.
        assert_eq!(text.matches('{').count(), 1);
        assert_eq!(text.matches('}').count(), 1);
        assert_eq!(text.matches('\'').count() % 2, 0);
        for hostile in ["a}b", "a\r\nbgapi x", "{x=y}", "a[b]", "a|b"] {
            let q = quote_value(hostile);
            assert!(!q[1..q.len() - 1].contains(['\'', '{', '}', '\r', '\n', '[', ']', '|']));
        }
    }

    #[test]
    fn unicode_names_survive_and_length_is_bounded() {
        assert_eq!(quote_value("Jürgen 山田 🎧"), "'Jürgen 山田 🎧'");
        assert_eq!(quote_value(&"a".repeat(1000)).len(), 128 + 2);
    }
}
