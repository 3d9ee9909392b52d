//! What goes into the call machine and what comes out of it: the inputs the driver feeds,
//! the actions it carries out, and the few settings a call starts with.

use crate::gateway::causes::{HangupCause, SkypeOutcome};
use crate::gateway::registry::{CallFlow, Direction, IfaceState};
use crate::skype::api::CallStatus;
use std::time::Duration;

/// The call timers, from `[calls]`.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Outbound: from `CALL` to ringing (or answer).
    pub setup: Duration,
    /// Outbound: how long the far end may ring.
    pub ring: Duration,
    /// Inbound: from `ALTER CALL .. ANSWER` to `STATUS INPROGRESS`.
    pub answer: Duration,
    /// Inbound: from `originate` to its socket connecting back.
    pub originate: Duration,
}

/// What a call is told about itself when it starts.
#[derive(Debug, Clone, Copy)]
pub struct Setup {
    pub direction: Direction,
    pub timeouts: Timeouts,
    /// The Skype party is a phone number (SkypeOut): a bare failure may mean no credit.
    pub pstn: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    Setup,
    Ring,
    Answer,
    Originate,
    EndingGrace,
}

/// Why `CALL <dest>` did not give a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceFailure {
    /// ERROR 92: Skype does not know the destination.
    UnknownIdentity,
    /// ERROR 36: the client is not online.
    NotOnline,
    /// The client or its session is gone.
    ClientGone,
    /// Anything else.
    Other,
}

/// Why `ALTER CALL <id> ANSWER` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFailure {
    ClientGone,
    /// The client refused: the caller gave up in the meantime.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkypeInput {
    Status(CallStatus),
    /// A remote key press; `bridged` says whether the channel is bridged right now, and
    /// `also_when_bridged` is `skype_add_outband_dtmf_also_when_bridged` as the channel (or
    /// else the interface) sets it.
    Dtmf {
        digits: String,
        bridged: bool,
        also_when_bridged: bool,
    },
    FailureReason(u32),
    /// The client window or session went away.
    ClientGone,
    /// The client lost the Skype network (CONNSTATUS OFFLINE, ERROR 36).
    NotOnline,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelInput {
    Dtmf(char),
    HungUp,
    /// The `socket` connection closed.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaInput {
    /// The media path stopped by itself.
    Stopped,
    InbandDigit(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Start,
    Placed(Result<(), PlaceFailure>),
    /// The `originate` job's result (inbound).
    Originated(Result<(), ()>),
    /// FreeSWITCH answered and its `socket` connected back (inbound).
    SocketConnected,
    SkypeAnswered(Result<(), AnswerFailure>),
    ChannelAnswered(Result<(), ()>),
    MediaOpened(Result<(), ()>),
    /// The SkypeOut balance in cents, when it could be read.
    Balance(Option<i64>),
    Skype(SkypeInput),
    Channel(ChannelInput),
    Media(MediaInput),
    Timer(Timer),
    Shutdown,
}

/// Channel variables the machine asks for; the driver supplies the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelVar {
    SkypeUser,
    Interface,
    /// `skypopen_host`: which sidecar carries the call when several serve one switch.
    Host,
    SkypeCallId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Registry(IfaceState, CallFlow),
    /// Refresh the call as `sk calls` shows it.
    Publish,
    SetVar(ChannelVar),
    /// `CALL <dest>`; answered with [`Input::Placed`].
    PlaceCall,
    /// `originate` into the dialplan; answered with [`Input::Originated`].
    Originate,
    /// `ALTER CALL <id> ANSWER`; answered with [`Input::SkypeAnswered`].
    AnswerSkype,
    RingReady,
    PreAnswer,
    /// Answer the channel; answered with [`Input::ChannelAnswered`].
    AnswerChannel,
    /// Answered with [`Input::MediaOpened`].
    OpenMedia,
    CloseMedia,
    DtmfToSkype(char),
    DtmfToSwitch(String),
    /// Read the SkypeOut balance; answered with [`Input::Balance`].
    AskBalance,
    Arm(Timer, Duration),
    Disarm(Timer),
    HangupChannel(HangupCause),
    /// An inbound call that never reached its socket: kill the ringing originate.
    CancelOriginate,
    /// `ALTER CALL <id> HANGUP` (and `END HANGUP`).
    RejectSkype,
    /// The call never got answered: count it as a failure of the interface.
    CountFailure,
    /// The last action: the call is over.
    Ended(Ended),
}

/// How the call ended, and which side still needed telling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Skype ended it (or never got it going): the channel is hung up with its cause.
    BySkype(SkypeOutcome),
    /// FreeSWITCH ended it: the Skype call is hung up.
    BySwitch,
    /// The sidecar is stopping.
    Shutdown,
}

impl Ended {
    /// The cause the FreeSWITCH channel gets.
    pub fn cause(self) -> HangupCause {
        match self {
            Ended::BySkype(outcome) => outcome.cause(),
            Ended::BySwitch => HangupCause::NormalClearing,
            Ended::Shutdown => HangupCause::SystemShutdown,
        }
    }
}
