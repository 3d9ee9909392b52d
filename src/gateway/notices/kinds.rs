//! The notices and their headers. Every value is one line of inert text (control characters
//! dropped, cut short), so a hostile name or request text cannot break an event; the full text
//! of a contact request rides in the body, which is length-delimited.

/// What became of an outgoing chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatOutcome {
    /// The client says the message reached the Skype network (`STATUS SENT`).
    Sent,
    /// The recipient read it (`STATUS READ`).
    Read,
    /// Refused by every client that could send it, or not SENT in time.
    Failed,
}

impl ChatOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatOutcome::Sent => "SENT",
            ChatOutcome::Read => "READ",
            ChatOutcome::Failed => "FAILED",
        }
    }
}

/// What the interface did with a contact request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestHandling {
    Accepted,
    Denied,
    /// Waits for `sk auth <interface> accept|deny <handle>`.
    Asked,
}

impl RequestHandling {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestHandling::Accepted => "accepted",
            RequestHandling::Denied => "denied",
            RequestHandling::Asked => "asked",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    ChatStatus {
        chat_id: String,
        interface: String,
        skype_user: String,
        to: String,
        outcome: ChatOutcome,
        skype_message_id: Option<u64>,
        chatname: Option<String>,
        reason: Option<String>,
        /// `Core-UUID:Event-Sequence` of the FreeSWITCH event that asked for the chat.
        request_event: Option<String>,
    },
    ContactRequest {
        interface: String,
        skype_user: String,
        from: String,
        text: String,
        handling: RequestHandling,
    },
    Balance {
        interface: String,
        skype_user: String,
        balance: i64,
        previous: Option<i64>,
    },
    InterfaceState {
        interface: String,
        interface_id: u32,
        skype_user: String,
        state: &'static str,
        previous: &'static str,
        uuid: String,
    },
}

/// Longest header value kept; longer text is cut (the body carries a request's full text).
const VALUE_LIMIT: usize = 512;
/// Longest contact request text kept in the body.
const BODY_LIMIT: usize = 16 * 1024;

fn inert(text: &str) -> String {
    crate::gateway::text::inert(text, VALUE_LIMIT)
}

impl Notice {
    pub fn subclass(&self) -> &'static str {
        match self {
            Notice::ChatStatus { .. } => "skypopen::chat_status",
            Notice::ContactRequest { .. } => "skypopen::contact_request",
            Notice::Balance { .. } => "skypopen::balance",
            Notice::InterfaceState { .. } => "skypopen::interface_state",
        }
    }

    /// The headers after `Event-Subclass`, in order.
    pub fn headers(&self, host: &str) -> Vec<(&'static str, String)> {
        let (interface, skype_user) = match self {
            Notice::ChatStatus {
                interface,
                skype_user,
                ..
            }
            | Notice::ContactRequest {
                interface,
                skype_user,
                ..
            }
            | Notice::Balance {
                interface,
                skype_user,
                ..
            }
            | Notice::InterfaceState {
                interface,
                skype_user,
                ..
            } => (interface, skype_user),
        };
        let mut h = vec![
            ("skypopen_interface", inert(interface)),
            ("skypopen_skype_user", inert(skype_user)),
            ("skypopen_host", inert(host)),
        ];
        match self {
            Notice::ChatStatus {
                chat_id,
                to,
                outcome,
                skype_message_id,
                chatname,
                reason,
                request_event,
                ..
            } => {
                h.push(("skypopen_chat_id", inert(chat_id)));
                h.push(("chat_status", outcome.as_str().to_string()));
                h.push(("to", inert(to)));
                if let Some(id) = skype_message_id {
                    h.push(("skype_message_id", id.to_string()));
                }
                if let Some(chatname) = chatname {
                    h.push(("skype_chatname", inert(chatname)));
                }
                if let Some(reason) = reason {
                    h.push(("reason", inert(reason)));
                }
                if let Some(event) = request_event {
                    h.push(("skypopen_request_event", inert(event)));
                }
            }
            Notice::ContactRequest {
                from,
                text,
                handling,
                ..
            } => {
                h.push(("from", inert(from)));
                h.push(("handling", handling.as_str().to_string()));
                h.push(("text", inert(text)));
            }
            Notice::Balance {
                balance, previous, ..
            } => {
                h.push(("balance", balance.to_string()));
                if let Some(previous) = previous {
                    h.push(("previous_balance", previous.to_string()));
                }
            }
            Notice::InterfaceState {
                interface_id,
                state,
                previous,
                uuid,
                ..
            } => {
                h.push(("skypopen_interface_id", interface_id.to_string()));
                h.push(("state", state.to_string()));
                h.push(("previous_state", previous.to_string()));
                if !uuid.is_empty() {
                    h.push(("Unique-ID", inert(uuid)));
                }
            }
        }
        h
    }

    /// A contact request's whole text (NUL dropped, at most 16 KiB); empty for the others.
    pub fn body(&self) -> String {
        match self {
            Notice::ContactRequest { text, .. } => {
                let mut body: String = text.chars().filter(|c| *c != '\0').collect();
                if body.len() > BODY_LIMIT {
                    let mut end = BODY_LIMIT;
                    while !body.is_char_boundary(end) {
                        end -= 1;
                    }
                    body.truncate(end);
                }
                body
            }
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(from: &str, text: &str) -> Notice {
        Notice::ContactRequest {
            interface: "interface1".into(),
            skype_user: "user1".into(),
            from: from.into(),
            text: text.into(),
            handling: RequestHandling::Asked,
        }
    }

    #[test]
    fn hostile_text_stays_inert_in_headers_and_whole_in_the_body() {
        let text = format!(
            "line one\r\nEvent-Name: SHUTDOWN\r\n\r\n{}",
            "x".repeat(10_000)
        );
        let n = request("mallory\r\nX: y", &text);
        for (name, value) in n.headers("box") {
            assert!(!value.contains(['\r', '\n', '\0']), "{name}: {value:?}");
            assert!(value.chars().count() <= VALUE_LIMIT);
        }
        let get = |k: &str| {
            n.headers("box")
                .into_iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v)
        };
        assert_eq!(get("from").as_deref(), Some("malloryX: y"));
        assert_eq!(get("handling").as_deref(), Some("asked"));
        assert!(n.body().starts_with("line one\r\nEvent-Name"));
        assert_eq!(n.body().len(), text.len());
        let huge = request("bob", &"é".repeat(20_000));
        assert!(huge.body().len() <= BODY_LIMIT);
    }

    #[test]
    fn chat_status_names_the_id_the_command_returned() {
        let n = Notice::ChatStatus {
            chat_id: "c-1".into(),
            interface: "interface1".into(),
            skype_user: "user1".into(),
            to: "alice".into(),
            outcome: ChatOutcome::Failed,
            skype_message_id: None,
            chatname: None,
            reason: Some("not sent in 5 s".into()),
            request_event: None,
        };
        assert_eq!(n.subclass(), "skypopen::chat_status");
        let h = n.headers("box");
        assert!(h.contains(&("skypopen_chat_id", "c-1".into())));
        assert!(h.contains(&("chat_status", "FAILED".into())));
        assert!(h.contains(&("reason", "not sent in 5 s".into())));
        assert!(!h.iter().any(|(n, _)| *n == "skype_message_id"));
    }
}
