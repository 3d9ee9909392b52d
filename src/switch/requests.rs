//! What FreeSWITCH asks of the sidecar on the inbound connection, read out of its events into
//! typed requests, so nothing beyond `switch/` handles raw events:
//! - `SEND_MESSAGE` with `proto: skype`, `from` (local Skype name), `to`, optional `hint`
//!   (interface name), the text as body;
//! - the `MESSAGE` that FreeSWITCH's own `chat SKYPE|<from>|<to>|<text>` fires with
//!   `dest_proto: SKYPE` and `Delivery-Failure: true` after finding no SKYPE chat interface
//!   (FreeSWITCH still answers that command with `Error! Message Not Sent`);
//! - `CUSTOM skypopen::command`: a command line for the `sk` family, its result expected back
//!   as `CUSTOM skypopen::command_result` with the same `Job-UUID`.

use freeswitch_esl_tokio::EslEvent;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// A chat to send, as one event asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    /// Which kind of event asked: `SEND_MESSAGE` or `chat`.
    pub via: &'static str,
    pub from: Option<String>,
    pub hint: Option<String>,
    pub to: String,
    pub body: String,
    /// The event's identity in FreeSWITCH (`Core-UUID:Event-Sequence`): every sidecar
    /// subscribed sees the same value for the same request.
    pub event_id: Option<String>,
    /// The requester's own id for the chat (`skypopen_chat_id` header), which its
    /// `skypopen::chat_status` notices carry.
    pub chat_id: Option<String>,
}

/// A command line for the `sk` family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    pub line: String,
    /// The requester's `Job-UUID`, returned with the result.
    pub job: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwitchRequest {
    Chat(ChatRequest),
    Command(CommandRequest),
    /// A SIP phone subscribed to `skype+<handle>@<host>`: mod_sofia asks the producer of that
    /// protocol for the contact's current presence.
    PresenceProbe {
        handle: String,
    },
}

impl SwitchRequest {
    /// The request an event carries; `None` for every other event.
    pub fn from_event(event: &EslEvent) -> Option<SwitchRequest> {
        chat_request(event)
            .map(SwitchRequest::Chat)
            .or_else(|| command_request(event).map(SwitchRequest::Command))
            .or_else(|| presence_probe(event))
    }
}

/// The requests arriving on the inbound connection, from the moment of subscribing.
pub struct Requests {
    events: broadcast::Receiver<Arc<EslEvent>>,
}

impl Requests {
    pub(crate) fn new(events: broadcast::Receiver<Arc<EslEvent>>) -> Requests {
        Requests { events }
    }

    /// The next request; `None` once `cancel` fires or the connection is gone for good.
    /// `what` names the consumer in the line logged when it falls behind.
    pub async fn next(&mut self, cancel: &CancellationToken, what: &str) -> Option<SwitchRequest> {
        loop {
            let event = super::inbound::next_event(&mut self.events, cancel, what).await?;
            if let Some(request) = SwitchRequest::from_event(&event) {
                return Some(request);
            }
        }
    }
}

fn chat_request(event: &EslEvent) -> Option<ChatRequest> {
    let header = |name: &str| {
        event
            .header_str(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let is = |name: &str, value: &str| {
        event
            .header_str(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(value))
    };
    let via = match event.header_str("Event-Name")? {
        "SEND_MESSAGE" if is("proto", "skype") => "SEND_MESSAGE",
        "MESSAGE" if is("dest_proto", "skype") && is("Delivery-Failure", "true") => "chat",
        _ => return None,
    };
    Some(ChatRequest {
        via,
        from: header("from"),
        hint: header("hint"),
        to: header("to").unwrap_or_default(),
        body: event.body().unwrap_or("").to_string(),
        event_id: header("Core-UUID")
            .zip(header("Event-Sequence"))
            .map(|(core, sequence)| format!("{core}:{sequence}")),
        chat_id: header("skypopen_chat_id"),
    })
}

/// `PRESENCE_PROBE` for `proto: skype`, `to: skype+<handle>@<host>` (what mod_sofia fires when
/// a phone subscribes to that address).
fn presence_probe(event: &EslEvent) -> Option<SwitchRequest> {
    if event.header_str("Event-Name") != Some("PRESENCE_PROBE")
        || !event
            .header_str("proto")
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("skype"))
    {
        return None;
    }
    let to = event.header_str("to")?.trim();
    let user = to.split('@').next().unwrap_or(to);
    let handle = user.split_once('+').map_or(user, |(_, handle)| handle);
    (!handle.is_empty()).then(|| SwitchRequest::PresenceProbe {
        handle: handle.to_string(),
    })
}

/// The command line of a `CUSTOM skypopen::command` event: its `command` header, else its body.
fn command_request(event: &EslEvent) -> Option<CommandRequest> {
    if event.header_str("Event-Name") != Some("CUSTOM")
        || event.header_str("Event-Subclass") != Some("skypopen::command")
    {
        return None;
    }
    let line = event
        .header_str("command")
        .map(str::to_string)
        .or_else(|| event.body().map(str::to_string))
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())?;
    Some(CommandRequest {
        line,
        job: event.header_str("Job-UUID").map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(headers: &[(&str, &str)], body: &str) -> EslEvent {
        let mut e = EslEvent::new();
        for (n, v) in headers {
            e.set_header(*n, *v);
        }
        e.set_body(body);
        e
    }

    fn chat(e: &EslEvent) -> Option<ChatRequest> {
        match SwitchRequest::from_event(e) {
            Some(SwitchRequest::Chat(c)) => Some(c),
            _ => None,
        }
    }

    #[test]
    fn fs_chat_failure_copy_is_a_request() {
        // The event of fixture s1b, `chat SKYPE|user1|bob|hello`.
        let e = event(
            &[
                ("Event-Name", "MESSAGE"),
                ("proto", "global"),
                ("from", "user1"),
                ("to", "bob"),
                ("skip_global_process", "true"),
                ("blocking", "true"),
                ("dest_proto", "SKYPE"),
                ("Delivery-Failure", "true"),
            ],
            "hello",
        );
        let r = chat(&e).expect("a request");
        assert_eq!(r.from.as_deref(), Some("user1"));
        assert_eq!(r.to, "bob");
        assert_eq!(r.body, "hello");
        assert_eq!(r.via, "chat");
    }

    #[test]
    fn a_sofia_probe_for_a_skype_contact_names_the_handle() {
        // As mod_sofia fires it when a phone subscribes to skype+alice@127.0.0.1.
        let probe = |proto: &str, to: &str| {
            SwitchRequest::from_event(&event(
                &[
                    ("Event-Name", "PRESENCE_PROBE"),
                    ("proto", proto),
                    ("login", "internal"),
                    ("from", "1000@127.0.0.1"),
                    ("to", to),
                    ("event_type", "presence"),
                ],
                "",
            ))
        };
        assert_eq!(
            probe("skype", "skype+alice@127.0.0.1"),
            Some(SwitchRequest::PresenceProbe {
                handle: "alice".into()
            })
        );
        assert_eq!(probe("sip", "1001@127.0.0.1"), None);
        assert_eq!(probe("skype", "skype+@127.0.0.1"), None);
    }

    #[test]
    fn send_message_with_skype_proto_is_a_request() {
        let e = event(
            &[
                ("Event-Name", "SEND_MESSAGE"),
                ("proto", "skype"),
                ("from", "user1"),
                ("to", "bob"),
                ("hint", "interface1"),
            ],
            "héllo ✓",
        );
        let r = chat(&e).expect("a request");
        assert_eq!(r.hint.as_deref(), Some("interface1"));
        assert_eq!(r.body, "héllo ✓");
    }

    #[test]
    fn other_events_are_not_requests() {
        for e in [
            // Our own incoming chats coming back.
            event(&[("Event-Name", "MESSAGE"), ("proto", "skype")], "x"),
            // A chat for another protocol.
            event(
                &[
                    ("Event-Name", "MESSAGE"),
                    ("dest_proto", "sip"),
                    ("Delivery-Failure", "true"),
                ],
                "x",
            ),
            // A delivered copy: someone else handled it.
            event(
                &[
                    ("Event-Name", "MESSAGE"),
                    ("dest_proto", "SKYPE"),
                    ("Delivery-Failure", "false"),
                ],
                "x",
            ),
            event(&[("Event-Name", "SEND_MESSAGE"), ("proto", "sip")], "x"),
            event(&[("Event-Name", "CHANNEL_ANSWER")], ""),
            // Our own command results coming back.
            event(
                &[
                    ("Event-Name", "CUSTOM"),
                    ("Event-Subclass", "skypopen::command_result"),
                    ("command", "sk list"),
                ],
                "",
            ),
        ] {
            assert_eq!(SwitchRequest::from_event(&e), None);
        }
    }

    #[test]
    fn commands_come_from_the_header_or_the_body_with_their_job() {
        let header = event(
            &[
                ("Event-Name", "CUSTOM"),
                ("Event-Subclass", "skypopen::command"),
                ("command", " sk list "),
                ("Job-UUID", "j-1"),
            ],
            "",
        );
        assert_eq!(
            SwitchRequest::from_event(&header),
            Some(SwitchRequest::Command(CommandRequest {
                line: "sk list".into(),
                job: Some("j-1".into())
            }))
        );
        let body = event(
            &[
                ("Event-Name", "CUSTOM"),
                ("Event-Subclass", "skypopen::command"),
            ],
            "sk balances\n",
        );
        assert_eq!(
            SwitchRequest::from_event(&body),
            Some(SwitchRequest::Command(CommandRequest {
                line: "sk balances".into(),
                job: None
            }))
        );
        let empty = event(
            &[
                ("Event-Name", "CUSTOM"),
                ("Event-Subclass", "skypopen::command"),
            ],
            "  ",
        );
        assert_eq!(SwitchRequest::from_event(&empty), None);
    }
}
