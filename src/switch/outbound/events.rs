//! What a controlled channel tells the sidecar: its events, sorted into the few kinds a call
//! needs, and its status (answered, hung up, socket gone) as a watchable snapshot.

use freeswitch_esl_tokio::EslEvent;

#[derive(Debug, Clone)]
pub enum ChannelEvent {
    Answered,
    Dtmf {
        digit: char,
        duration: Option<u32>,
    },
    /// `CHANNEL_HANGUP`: the channel is going down with this cause.
    Hangup {
        cause: String,
    },
    /// `CHANNEL_HANGUP_COMPLETE` (not always delivered: fixture s2b, quirk Q8).
    HangupComplete {
        cause: String,
    },
    ExecuteComplete {
        application: String,
        application_uuid: Option<String>,
        response: Option<String>,
    },
    /// `CUSTOM` events, e.g. `mod_audio_fork::connect`.
    Custom {
        subclass: String,
        event: Box<EslEvent>,
    },
    /// Everything else the channel fired (EXECUTE, PARK, STATE ...).
    Other(Box<EslEvent>),
    /// The socket is gone; always the last item of the stream.
    Disconnected {
        reason: String,
    },
}

impl ChannelEvent {
    pub fn from_esl(event: EslEvent) -> ChannelEvent {
        let name = event.header_str("Event-Name").unwrap_or("");
        let cause = |e: &EslEvent| {
            e.header_str("Hangup-Cause")
                .or_else(|| e.variable_str("hangup_cause"))
                .unwrap_or("NORMAL_CLEARING")
                .to_string()
        };
        match name {
            "CHANNEL_ANSWER" => ChannelEvent::Answered,
            "DTMF" => match event
                .header_str("DTMF-Digit")
                .and_then(|d| d.chars().next())
            {
                Some(digit) => ChannelEvent::Dtmf {
                    digit,
                    duration: event
                        .header_str("DTMF-Duration")
                        .and_then(|d| d.trim().parse().ok()),
                },
                None => ChannelEvent::Other(Box::new(event)),
            },
            "CHANNEL_HANGUP" => ChannelEvent::Hangup {
                cause: cause(&event),
            },
            "CHANNEL_HANGUP_COMPLETE" => ChannelEvent::HangupComplete {
                cause: cause(&event),
            },
            "CHANNEL_EXECUTE_COMPLETE" => ChannelEvent::ExecuteComplete {
                application: event.header_str("Application").unwrap_or("").to_string(),
                application_uuid: event.header_str("Application-UUID").map(str::to_string),
                response: event
                    .header_str("Application-Response")
                    .filter(|r| *r != "_none_")
                    .map(str::to_string),
            },
            "CUSTOM" => ChannelEvent::Custom {
                subclass: event.header_str("Event-Subclass").unwrap_or("").to_string(),
                event: Box::new(event),
            },
            _ => ChannelEvent::Other(Box::new(event)),
        }
    }
}

/// Snapshot of a controlled channel, published on every change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelStatus {
    pub answered: bool,
    /// Set once FreeSWITCH reported the hangup (event or `Answer-State: hangup`), or once the
    /// socket closed, whichever came first. `None` cause: the socket closed before any
    /// hangup event told us why.
    pub hangup: Option<Hangup>,
    /// Set once the socket is closed (disconnect notice or EOF).
    pub disconnected: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hangup {
    pub cause: Option<String>,
}

impl ChannelStatus {
    /// Fold one event into the snapshot; true if it changed.
    pub(crate) fn observe(&mut self, event: &ChannelEvent) -> bool {
        match event {
            ChannelEvent::Answered if !self.answered => {
                self.answered = true;
                true
            }
            ChannelEvent::Hangup { cause } | ChannelEvent::HangupComplete { cause } => {
                match &mut self.hangup {
                    Some(Hangup { cause: Some(_) }) => false,
                    Some(h) => {
                        h.cause = Some(cause.clone());
                        true
                    }
                    None => {
                        self.hangup = Some(Hangup {
                            cause: Some(cause.clone()),
                        });
                        true
                    }
                }
            }
            ChannelEvent::Disconnected { reason } if self.disconnected.is_none() => {
                self.disconnected = Some(reason.clone());
                if self.hangup.is_none() {
                    self.hangup = Some(Hangup { cause: None });
                }
                true
            }
            ChannelEvent::Other(e) | ChannelEvent::Custom { event: e, .. } => {
                if self.hangup.is_none() && e.header_str("Answer-State") == Some("hangup") {
                    self.hangup = Some(Hangup {
                        cause: e.header_str("Hangup-Cause").map(str::to_string),
                    });
                    return true;
                }
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esl(pairs: &[(&str, &str)]) -> EslEvent {
        let mut e = EslEvent::new();
        for (k, v) in pairs {
            e.set_header(*k, *v);
        }
        e
    }

    #[test]
    fn sorts_events() {
        assert!(matches!(
            ChannelEvent::from_esl(esl(&[
                ("Event-Name", "DTMF"),
                ("DTMF-Digit", "#"),
                ("DTMF-Duration", "2000")
            ])),
            ChannelEvent::Dtmf {
                digit: '#',
                duration: Some(2000)
            }
        ));
        assert!(matches!(
            ChannelEvent::from_esl(esl(&[("Event-Subclass", "mod_audio_fork::connect"), ("Event-Name", "CUSTOM")])),
            ChannelEvent::Custom { subclass, .. } if subclass == "mod_audio_fork::connect"
        ));
        match ChannelEvent::from_esl(esl(&[
            ("Event-Name", "CHANNEL_EXECUTE_COMPLETE"),
            ("Application", "answer"),
            ("Application-UUID", "x"),
            ("Application-Response", "_none_"),
        ])) {
            ChannelEvent::ExecuteComplete {
                application,
                application_uuid,
                response,
            } => {
                assert_eq!(application, "answer");
                assert_eq!(application_uuid.as_deref(), Some("x"));
                assert_eq!(response, None);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn status_keeps_the_first_cause_and_marks_disconnect_as_hangup() {
        let mut s = ChannelStatus::default();
        assert!(s.observe(&ChannelEvent::Answered));
        assert!(!s.observe(&ChannelEvent::Answered));
        assert!(s.observe(&ChannelEvent::Hangup {
            cause: "USER_BUSY".into()
        }));
        assert!(!s.observe(&ChannelEvent::HangupComplete {
            cause: "NORMAL_CLEARING".into()
        }));
        assert_eq!(
            s.hangup.as_ref().and_then(|h| h.cause.as_deref()),
            Some("USER_BUSY")
        );
        let mut t = ChannelStatus::default();
        assert!(t.observe(&ChannelEvent::Disconnected {
            reason: "eof".into()
        }));
        assert_eq!(t.hangup, Some(Hangup { cause: None }));
    }
}
