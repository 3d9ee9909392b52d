//! The typed commands a call sends on its own channel, so callers pass values, not command
//! text: hang up with a cause, set a variable, send DTMF into the call, start and stop the
//! audio fork.

use super::{ChannelControl, OutboundError};
use crate::switch::esl::reply::api_outcome;
use crate::switch::media::{audio_fork_start, audio_fork_stop, ForkToken};
use freeswitch_esl_tokio::HangupCause;

impl ChannelControl {
    /// Hangs the channel up with `cause`.
    pub async fn hangup_with(&self, cause: HangupCause) -> Result<(), OutboundError> {
        self.hangup(cause.as_str()).await
    }

    /// `set <name>=<value>` on the channel.
    pub async fn set_var(&self, name: &str, value: &str) -> Result<(), OutboundError> {
        self.execute("set", Some(&format!("{name}={value}"))).await
    }

    /// Hands the channel over to the next `socket` action of its dialplan (the next sidecar
    /// host) rather than hanging it up: the channel variables say why and who, then
    /// `resume`. The socket closes when the caller drops its last handle.
    pub async fn hand_back(&self, reason: OverflowReason, host: &str) -> Result<(), OutboundError> {
        for (name, value) in [
            ("skypopen_overflow_reason", reason.as_str()),
            ("skypopen_overflow_host", host),
        ] {
            let command = format!("uuid_setvar {} {name} {value}", self.uuid());
            let reply = self.api(&command).await?;
            expect_ok("uuid_setvar", reply)?;
        }
        self.resume_dialplan().await
    }

    /// `uuid_send_dtmf <uuid> <digits>`: the digits reach the far end of this channel.
    pub async fn send_dtmf(&self, digits: &str) -> Result<(), OutboundError> {
        let command = format!("uuid_send_dtmf {} {digits}", self.uuid());
        let reply = self.api(&command).await?;
        expect_ok("uuid_send_dtmf", reply)
    }

    /// `uuid_audio_fork <uuid> start ...` towards `url`, tagged with `token`.
    pub async fn start_audio_fork(
        &self,
        url: &str,
        token: &ForkToken,
    ) -> Result<(), OutboundError> {
        let command =
            audio_fork_start(self.uuid(), url, token).map_err(|_| OutboundError::InvalidInput {
                what: "audio fork url",
            })?;
        let reply = self.api(&command).await?;
        expect_ok("uuid_audio_fork", reply)
    }

    /// `uuid_audio_fork <uuid> stop audio_fork`.
    pub async fn stop_audio_fork(&self) -> Result<(), OutboundError> {
        let command = audio_fork_stop(self.uuid()).map_err(|_| OutboundError::InvalidInput {
            what: "channel uuid",
        })?;
        let reply = self.api(&command).await?;
        expect_ok("uuid_audio_fork", reply)
    }
}

/// Why a sidecar gave a channel back (`skypopen_overflow_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowReason {
    /// Every interface that could carry the call is busy or down.
    NoIdleInterface,
    /// The dial string names an interface this host does not have (another host may).
    UnknownInterface,
    /// The sidecar is stopping and takes no new call.
    Stopping,
}

impl OverflowReason {
    pub fn as_str(self) -> &'static str {
        match self {
            OverflowReason::NoIdleInterface => "no_idle_interface",
            OverflowReason::UnknownInterface => "unknown_interface",
            OverflowReason::Stopping => "stopping",
        }
    }
}

fn expect_ok(command: &str, output: String) -> Result<(), OutboundError> {
    api_outcome(&output).map_err(|reply| OutboundError::Refused {
        command: command.into(),
        reply,
    })
}
