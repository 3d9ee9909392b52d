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

fn expect_ok(command: &str, output: String) -> Result<(), OutboundError> {
    api_outcome(&output).map_err(|reply| OutboundError::Refused {
        command: command.into(),
        reply,
    })
}
