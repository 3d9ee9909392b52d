//! A channel of the double: the state FreeSWITCH keeps for a leg, rendered into the header
//! blocks its events and the `connect` reply carry (names and order as in the captures).

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Default)]
pub struct Profile {
    pub dialplan: String,
    pub caller_id_name: Option<String>,
    pub caller_id_number: Option<String>,
    pub orig_caller_id_name: Option<String>,
    pub orig_caller_id_number: Option<String>,
    pub callee_id_name: Option<String>,
    pub callee_id_number: Option<String>,
    pub ani: Option<String>,
    pub destination: String,
    pub context: String,
    pub index: u32,
    pub created_us: u64,
}

/// How the `socket` application controls the channel.
#[derive(Debug, Clone)]
pub struct SocketBinding {
    pub subscriber: u64,
    pub full: bool,
    pub is_async: bool,
    /// `None`: no linger; `Some(None)`: bare `linger`; `Some(Some(s))`: `linger s`.
    pub linger: Option<Option<u64>>,
    pub connected: bool,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub uuid: String,
    pub name: String,
    pub direction: &'static str,
    pub profile: Profile,
    pub call_state: &'static str,
    pub answer_state: &'static str,
    pub answered_us: u64,
    pub progress_us: u64,
    pub progress_media_us: u64,
    pub hangup_us: u64,
    pub hangup_cause: Option<String>,
    pub codec: String,
    pub rate: u32,
    pub variables: Vec<(String, String)>,
    pub other_leg: Option<String>,
    pub socket: Option<SocketBinding>,
    /// Digits of the DTMF events this channel fired.
    pub dtmf: Vec<char>,
    /// Applications run on it through `sendmsg execute`, with their argument.
    pub executed: Vec<(String, String)>,
    /// `uuid_audio_fork` commands that reached it.
    pub forks: Vec<String>,
    /// Cancelled when the channel hangs up (media hooks watch it).
    pub ended: CancellationToken,
}

impl Channel {
    pub fn new(uuid: String, name: String, direction: &'static str, profile: Profile) -> Channel {
        Channel {
            uuid,
            name,
            direction,
            profile,
            call_state: "RINGING",
            answer_state: "ringing",
            answered_us: 0,
            progress_us: 0,
            progress_media_us: 0,
            hangup_us: 0,
            hangup_cause: None,
            codec: "L16".into(),
            rate: 8000,
            variables: Vec::new(),
            other_leg: None,
            socket: None,
            dtmf: Vec::new(),
            executed: Vec::new(),
            forks: Vec::new(),
            ended: CancellationToken::new(),
        }
    }

    pub fn is_up(&self) -> bool {
        self.hangup_cause.is_none()
    }

    pub fn is_answered(&self) -> bool {
        self.answered_us != 0
    }

    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set_variable(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.variables.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.variables.push((name.to_string(), value)),
        }
    }

    pub fn unset_variable(&mut self, name: &str) {
        self.variables.retain(|(k, _)| k != name);
    }

    fn state(&self) -> (&'static str, u32) {
        if self.hangup_cause.is_some() {
            ("CS_EXECUTE", 10)
        } else {
            ("CS_EXECUTE", 4)
        }
    }

    /// `Caller-*` (or `Channel-*` in CHANNEL_DATA) profile fields.
    pub fn profile_block(&self, prefix: &str) -> Vec<(String, String)> {
        let p = &self.profile;
        let mut out = Vec::new();
        let mut push = |name: &str, value: String| out.push((format!("{prefix}-{name}"), value));
        push("Direction", self.direction.into());
        push("Logical-Direction", self.direction.into());
        push("Dialplan", p.dialplan.clone());
        let optional = [
            ("Caller-ID-Name", &p.caller_id_name),
            ("Caller-ID-Number", &p.caller_id_number),
            ("Orig-Caller-ID-Name", &p.orig_caller_id_name),
            ("Orig-Caller-ID-Number", &p.orig_caller_id_number),
            ("Callee-ID-Name", &p.callee_id_name),
            ("Callee-ID-Number", &p.callee_id_number),
            ("ANI", &p.ani),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                push(name, v.clone());
            }
        }
        push("Destination-Number", p.destination.clone());
        push("Unique-ID", self.uuid.clone());
        push("Source", "mod_loopback".into());
        push("Context", p.context.clone());
        push("Channel-Name", self.name.clone());
        push("Profile-Index", p.index.to_string());
        push("Profile-Created-Time", p.created_us.to_string());
        push("Channel-Created-Time", p.created_us.to_string());
        push("Channel-Answered-Time", self.answered_us.to_string());
        push("Channel-Progress-Time", self.progress_us.to_string());
        push(
            "Channel-Progress-Media-Time",
            self.progress_media_us.to_string(),
        );
        push("Channel-Hangup-Time", self.hangup_us.to_string());
        for name in [
            "Channel-Transfer-Time",
            "Channel-Resurrect-Time",
            "Channel-Bridged-Time",
            "Channel-Last-Hold",
            "Channel-Hold-Accum",
        ] {
            push(name, "0".into());
        }
        push("Screen-Bit", "true".into());
        push("Privacy-Hide-Name", "false".into());
        push("Privacy-Hide-Number", "false".into());
        out
    }

    /// The channel block every channel event carries.
    pub fn channel_block(&self) -> Vec<(String, String)> {
        let (state, number) = self.state();
        let mut out = vec![
            ("Channel-State".to_string(), state.to_string()),
            ("Channel-Call-State".into(), self.call_state.into()),
            ("Channel-State-Number".into(), number.to_string()),
            ("Channel-Name".into(), self.name.clone()),
            ("Unique-ID".into(), self.uuid.clone()),
            ("Call-Direction".into(), self.direction.into()),
            ("Presence-Call-Direction".into(), self.direction.into()),
            ("Channel-HIT-Dialplan".into(), "true".into()),
            ("Channel-Call-UUID".into(), self.uuid.clone()),
            ("Answer-State".into(), self.answer_state.into()),
        ];
        if let Some(cause) = &self.hangup_cause {
            out.push(("Hangup-Cause".into(), cause.clone()));
        }
        let bit_rate = (self.rate * 16).to_string();
        for dir in ["Read", "Write"] {
            out.push((format!("Channel-{dir}-Codec-Name"), self.codec.clone()));
            out.push((format!("Channel-{dir}-Codec-Rate"), self.rate.to_string()));
            out.push((format!("Channel-{dir}-Codec-Bit-Rate"), bit_rate.clone()));
        }
        out
    }

    pub fn variables_block(&self) -> Vec<(String, String)> {
        self.variables
            .iter()
            .map(|(k, v)| (format!("variable_{k}"), v.clone()))
            .collect()
    }

    /// Headers after the standard ones in a channel event.
    pub fn event_body_headers(&self) -> Vec<(String, String)> {
        let mut out = self.channel_block();
        out.extend(self.profile_block("Caller"));
        out.extend(self.variables_block());
        out
    }

    /// Headers after the standard ones in the `connect` reply (CHANNEL_DATA).
    pub fn channel_data_headers(&self) -> Vec<(String, String)> {
        let mut out = self.profile_block("Channel");
        out.extend(self.channel_block());
        out.extend(self.profile_block("Caller"));
        out.extend(self.variables_block());
        out
    }
}
