//! Chats FreeSWITCH asks us to send, as events on the inbound connection:
//! - `SEND_MESSAGE` with `proto: skype`, `from` (local Skype name), `to`, optional `hint`
//!   (interface name), the text as body;
//! - the `MESSAGE` that FreeSWITCH's own `chat SKYPE|<from>|<to>|<text>` fires with
//!   `dest_proto: SKYPE` and `Delivery-Failure: true` after finding no SKYPE chat interface
//!   (FreeSWITCH still answers that command with `Error! Message Not Sent`).

use super::outgoing::send_chat;
use crate::gateway::Gateway;
use crate::switch::inbound::next_event;
use freeswitch_esl_tokio::EslEvent;
use tracing::{info, warn};

/// A chat to send, as one event asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    pub via: &'static str,
    pub from: Option<String>,
    pub hint: Option<String>,
    pub to: String,
    pub body: String,
}

/// Reads a chat request out of an event; `None` for every other event.
pub fn chat_request(event: &EslEvent) -> Option<ChatRequest> {
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
    })
}

/// Consumes the inbound connection's events until the gateway stops.
pub async fn serve(gw: Gateway) {
    let mut events = gw.inbound.subscribe();
    while let Some(event) = next_event(&mut events, &gw.cancel, "chat requests").await {
        if let Some(request) = chat_request(&event) {
            execute(&gw, request).await;
        }
    }
}

async fn execute(gw: &Gateway, request: ChatRequest) {
    // A hint that names no interface (FreeSWITCH's own chat may carry other hints) falls
    // back to the sender's account.
    let iface = request
        .hint
        .as_deref()
        .filter(|hint| gw.interface_by_name(hint).is_some());
    match send_chat(
        gw,
        iface,
        request.from.as_deref(),
        &request.to,
        &request.body,
    )
    .await
    {
        Ok(sent) => info!(via = request.via, interface = %sent.interface, to = %request.to,
                          "chat requested by FreeSWITCH sent"),
        Err(e) => warn!(via = request.via, from = ?request.from, to = %request.to, error = %e,
                        "chat requested by FreeSWITCH not sent"),
    }
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
        let r = chat_request(&e).expect("a request");
        assert_eq!(r.from.as_deref(), Some("user1"));
        assert_eq!(r.to, "bob");
        assert_eq!(r.body, "hello");
        assert_eq!(r.via, "chat");
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
        let r = chat_request(&e).expect("a request");
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
        ] {
            assert_eq!(chat_request(&e), None);
        }
    }
}
