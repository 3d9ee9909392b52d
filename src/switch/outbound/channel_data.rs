//! The `CHANNEL_DATA` block FreeSWITCH answers `connect` with: every channel header and variable
//! of the channel that ran `socket`, already URL-decoded by the ESL client.

use freeswitch_esl_tokio::EslResponse;

/// Who may be commanded over the socket: `full` lifts the restriction on `api`, `linger`,
/// `event` (spec A3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Full,
    SingleChannel,
}

/// `async` sockets park the channel and answer `sendmsg` at once; `static` ones run each
/// application inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketMode {
    Async,
    Static,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerId {
    pub name: Option<String>,
    pub number: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelDataError {
    #[error("connect reply is not CHANNEL_DATA (Event-Name {0:?})")]
    NotChannelData(Option<String>),
    #[error("connect reply was refused: {0}")]
    Refused(String),
    #[error("CHANNEL_DATA has no Unique-ID")]
    MissingUuid,
}

/// Parsed reply to `connect`.
#[derive(Debug, Clone)]
pub struct ChannelData {
    reply: EslResponse,
    uuid: String,
}

impl ChannelData {
    pub fn from_reply(reply: EslResponse) -> Result<ChannelData, ChannelDataError> {
        if let Some(text) = reply.reply_text() {
            if text.starts_with("-ERR") {
                return Err(ChannelDataError::Refused(text.trim_end().to_string()));
            }
        }
        let name = reply.header("Event-Name");
        if name != Some("CHANNEL_DATA") {
            return Err(ChannelDataError::NotChannelData(name.map(str::to_string)));
        }
        let uuid = reply
            .header("Unique-ID")
            .or_else(|| reply.header("Channel-Unique-ID"))
            .or_else(|| reply.header("Caller-Unique-ID"))
            .filter(|u| !u.is_empty())
            .ok_or(ChannelDataError::MissingUuid)?
            .to_string();
        Ok(ChannelData { reply, uuid })
    }

    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// Any header of the block, looked up case-insensitively (as FreeSWITCH does).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.reply.header(name)
    }

    /// A channel variable by its bare name (`skypopen_call_id`, not `variable_skypopen_call_id`).
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.reply.header(format!("variable_{name}"))
    }

    /// Every header in wire order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.reply
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn destination_number(&self) -> Option<&str> {
        self.header("Caller-Destination-Number")
            .or_else(|| self.header("Channel-Destination-Number"))
    }

    pub fn channel_name(&self) -> Option<&str> {
        self.header("Channel-Name")
    }

    /// `inbound` for a leg that runs the dialplan (a SIP caller, a loopback B-leg),
    /// `outbound` for an originated leg.
    pub fn call_direction(&self) -> Option<&str> {
        self.header("Call-Direction")
    }

    pub fn answer_state(&self) -> Option<&str> {
        self.header("Answer-State")
    }

    pub fn is_answered(&self) -> bool {
        self.answer_state() == Some("answered")
    }

    /// The party that is calling. On an originated loopback A-leg FreeSWITCH flips the caller
    /// id (`variable_channel_cid_flipped: yes`): `Caller-Caller-ID-*` then holds the callee
    /// side and the real caller is in the `Orig` fields (fixture s4, quirk Q11).
    pub fn caller_id(&self) -> CallerId {
        let owned = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_string);
        if self.variable("channel_cid_flipped") == Some("yes") {
            return CallerId {
                name: owned(
                    self.variable("origination_caller_id_name")
                        .or_else(|| self.header("Caller-Orig-Caller-ID-Name")),
                ),
                number: owned(
                    self.variable("origination_caller_id_number")
                        .or_else(|| self.header("Caller-Orig-Caller-ID-Number")),
                ),
            };
        }
        CallerId {
            name: owned(
                self.header("Caller-Caller-ID-Name")
                    .or_else(|| self.header("Channel-Caller-ID-Name")),
            ),
            number: owned(
                self.header("Caller-Caller-ID-Number")
                    .or_else(|| self.header("Channel-Caller-ID-Number")),
            ),
        }
    }

    /// Sample rate of the channel's read codec (what `unicast` and the fork see before
    /// resampling).
    pub fn codec_rate(&self) -> Option<u32> {
        self.header("Channel-Read-Codec-Rate")
            .or_else(|| self.variable("read_rate"))
            .and_then(|r| r.trim().parse().ok())
    }

    pub fn codec_name(&self) -> Option<&str> {
        self.header("Channel-Read-Codec-Name")
            .or_else(|| self.variable("read_codec"))
    }

    pub fn control(&self) -> Control {
        match self.header("Control") {
            Some(c) if c.eq_ignore_ascii_case("full") => Control::Full,
            _ => Control::SingleChannel,
        }
    }

    pub fn socket_mode(&self) -> SocketMode {
        match self.header("Socket-Mode") {
            Some(m) if m.eq_ignore_ascii_case("async") => SocketMode::Async,
            _ => SocketMode::Static,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(pairs: &[(&str, &str)]) -> EslResponse {
        EslResponse::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            None,
        )
    }

    #[test]
    fn flipped_loopback_a_leg_reports_the_original_caller() {
        let data = ChannelData::from_reply(reply(&[
            ("Event-Name", "CHANNEL_DATA"),
            ("Unique-ID", "u-1"),
            ("Caller-Caller-ID-Name", "Outbound Call"),
            ("Caller-Caller-ID-Number", "default"),
            ("Caller-Orig-Caller-ID-Name", "Bob B"),
            ("Caller-Orig-Caller-ID-Number", "bob"),
            ("variable_channel_cid_flipped", "yes"),
            ("Control", "full"),
            ("Socket-Mode", "async"),
            ("Channel-Read-Codec-Rate", "8000"),
        ]))
        .unwrap();
        assert_eq!(
            data.caller_id(),
            CallerId {
                name: Some("Bob B".into()),
                number: Some("bob".into())
            }
        );
        assert_eq!(data.control(), Control::Full);
        assert_eq!(data.socket_mode(), SocketMode::Async);
        assert_eq!(data.codec_rate(), Some(8000));
    }

    #[test]
    fn unflipped_leg_reports_its_caller_id() {
        let data = ChannelData::from_reply(reply(&[
            ("Event-Name", "CHANNEL_DATA"),
            ("Channel-Unique-ID", "u-2"),
            ("Caller-Caller-ID-Name", "Alice"),
            ("Caller-Caller-ID-Number", "1000"),
            ("Control", "single-channel"),
        ]))
        .unwrap();
        assert_eq!(data.uuid(), "u-2");
        assert_eq!(data.caller_id().number.as_deref(), Some("1000"));
        assert_eq!(data.control(), Control::SingleChannel);
        assert_eq!(data.socket_mode(), SocketMode::Static);
    }

    #[test]
    fn refusals_and_foreign_replies_are_errors() {
        assert!(matches!(
            ChannelData::from_reply(reply(&[("Reply-Text", "-ERR command not found")])),
            Err(ChannelDataError::Refused(_))
        ));
        assert!(matches!(
            ChannelData::from_reply(reply(&[("Reply-Text", "+OK")])),
            Err(ChannelDataError::NotChannelData(None))
        ));
        assert!(matches!(
            ChannelData::from_reply(reply(&[("Event-Name", "CHANNEL_DATA")])),
            Err(ChannelDataError::MissingUuid)
        ));
    }
}
