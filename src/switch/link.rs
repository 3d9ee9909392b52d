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
use std::time::Duration;
use tokio::sync::watch;

#[derive(Clone)]
pub struct SwitchLink {
    inbound: InboundHandle,
    writer: EventWriter,
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
    pub fn new(inbound: InboundHandle, password: Secret) -> SwitchLink {
        let writer = EventWriter::new(inbound.addr(), password);
        SwitchLink { inbound, writer }
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

    /// The chats and commands FreeSWITCH asks for, from now on.
    pub fn requests(&self) -> Requests {
        Requests::new(self.inbound.subscribe())
    }
}

fn ok_reply(command: &'static str, output: String) -> Result<(), SwitchError> {
    api_outcome(&output).map_err(|reply| SwitchError::Failed { command, reply })
}
