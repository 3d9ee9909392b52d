//! The gateway's one view of FreeSWITCH outside a call's own `socket`: typed commands
//! (`originate`, `uuid_kill`), exact-case events, typed requests and the link's state. The
//! gateway builds no command text and sees no raw event; the ESL crate stays behind this door.
//!
//! Two connections serve it: the inbound ESL client (commands and the event stream) and the
//! exact-case event writer (see `event_link.rs` for why it cannot be the same connection).

use super::esl::reply::api_outcome;
use super::event_link::{EventWriter, LinkError};
use super::inbound::{InboundError, InboundHandle, LinkState};
use super::originate::InboundOriginate;
use super::requests::Requests;
use crate::config::Secret;
use freeswitch_esl_tokio::HangupCause;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Clone)]
pub struct SwitchLink {
    inbound: InboundHandle,
    writer: EventWriter,
    /// Subscribed when the link is made, so nothing FreeSWITCH asks for between the
    /// connection's first event and a consumer's start is lost (a broadcast has no replay).
    early: Arc<Mutex<EarlyRequests>>,
}

#[derive(Default)]
struct EarlyRequests {
    chats: Option<Requests>,
    commands: Option<Requests>,
}

#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error(transparent)]
    Link(#[from] InboundError),
    /// The command ran and FreeSWITCH said it failed.
    #[error("{command} failed: {reply}")]
    Failed {
        command: &'static str,
        reply: String,
    },
}

impl SwitchLink {
    /// Make it right after the inbound connection is spawned: its request streams start
    /// here.
    pub fn new(inbound: InboundHandle, password: Secret) -> SwitchLink {
        let writer = EventWriter::new(inbound.addr(), password);
        let early = EarlyRequests {
            chats: Some(Requests::new(inbound.subscribe())),
            commands: Some(Requests::new(inbound.subscribe())),
        };
        SwitchLink {
            inbound,
            writer,
            early: Arc::new(Mutex::new(early)),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.inbound.addr()
    }

    /// Where the inbound connection stands, watched.
    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.inbound.state()
    }

    /// Brings an incoming Skype call into the dialplan with `bgapi originate` and waits up to
    /// `within` for the job's result.
    pub async fn originate(
        &self,
        call: &InboundOriginate<'_>,
        within: Duration,
    ) -> Result<(), SwitchError> {
        let reply = self
            .inbound
            .bgapi(&format!("originate {}", call.arguments()), within)
            .await?;
        ok_reply("originate", reply)
    }

    /// `global_getvar <name>`: the value, `None` when FreeSWITCH has no such variable.
    pub async fn global_var(&self, name: &str) -> Result<Option<String>, SwitchError> {
        if name.is_empty() || name.contains(|c: char| c.is_whitespace()) {
            return Ok(None);
        }
        let output = self.inbound.api(&format!("global_getvar {name}")).await?;
        let value = output.trim();
        Ok((!value.is_empty() && !value.starts_with("-ERR")).then(|| value.to_string()))
    }

    /// `uuid_kill <uuid> <cause>`.
    pub async fn kill(&self, uuid: &str, cause: HangupCause) -> Result<(), SwitchError> {
        let reply = self
            .inbound
            .api(&format!("uuid_kill {uuid} {}", cause.as_str()))
            .await?;
        ok_reply("uuid_kill", reply)
    }

    /// Fires an event with its header names exactly as given; returns its `Event-UUID`.
    pub async fn fire(
        &self,
        name: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<String, LinkError> {
        self.writer.sendevent(name, headers, body).await
    }

    /// `api <command>`: the output as FreeSWITCH wrote it. For the typed commands of this
    /// module tree only.
    pub(super) async fn api_text(&self, command: &str) -> Result<String, InboundError> {
        self.inbound.api(command).await
    }

    /// What FreeSWITCH asks for, for the chat sender: since the link was made the first time,
    /// from now on after that.
    pub fn chat_requests(&self) -> Requests {
        self.take_early(|early| early.chats.take())
    }

    /// Presence probes, from now on (a probe missed while starting is answered by the full
    /// contact read that follows every client's start).
    pub fn presence_requests(&self) -> Requests {
        Requests::new(self.inbound.subscribe())
    }

    /// The same for the `sk` command runner.
    pub fn command_requests(&self) -> Requests {
        self.take_early(|early| early.commands.take())
    }

    fn take_early(&self, take: impl FnOnce(&mut EarlyRequests) -> Option<Requests>) -> Requests {
        let early = {
            let mut early = self
                .early
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            take(&mut early)
        };
        early.unwrap_or_else(|| Requests::new(self.inbound.subscribe()))
    }
}

fn ok_reply(command: &'static str, output: String) -> Result<(), SwitchError> {
    api_outcome(&output).map_err(|reply| SwitchError::Failed { command, reply })
}
