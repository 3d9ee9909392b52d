//! The call as a state machine with no I/O: it takes what happened (a Skype call status, a
//! channel event, a media event, a timer, the result of something it asked for) and answers
//! with what to do. The driver (`driver.rs`) owns the sockets, the clock and the `select!`.
//!
//! Both directions share one machine because the protocol shares most of a call: once the
//! Skype call is in progress, holds, DTMF both ways, a side going away and the teardown are the
//! same; only the set-up differs (outbound: `CALL` then progress relayed to the channel;
//! inbound: `originate`, the `socket` connecting back, then `ALTER CALL <id> ANSWER`).

mod signals;

pub use signals::*;

use crate::gateway::causes::{SkypeOutcome, FAILURE_MISC};
use crate::gateway::registry::{CallFlow, Direction, IfaceState};
use crate::skype::api::CallStatus;
use std::time::Duration;
use tracing::{debug, info, warn};

/// How long a failed audio set-up waits for the Skype call's own ending: a caller hanging up
/// right after the answer makes the audio ALTERs fail (ERROR 559) just before its
/// STATUS FINISHED arrives, and that is a normal hangup, not a client gone.
pub const ENDING_GRACE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Outbound: `CALL` sent, no id yet.
    Placing,
    /// Outbound: placed, waiting for ringing, answer or the end.
    Dialing,
    /// Inbound: `originate` sent, waiting for the socket.
    Originating,
    /// Inbound: socket connected, `ANSWER` sent.
    Answering,
    /// Both sides know the call (inbound after ANSWER was accepted).
    Connected,
    /// The audio could not be set up; waiting briefly for Skype's own ending.
    Grace,
    /// A SkypeOut failure waits for the balance to tell "no credit" from the rest.
    Balance(Option<u32>),
    Over,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    Closed,
    Opening,
    Open,
}

#[derive(Debug)]
pub struct CallMachine {
    setup: Setup,
    stage: Stage,
    skype_call_known: bool,
    channel_attached: bool,
    channel_gone: bool,
    answered: bool,
    ringing: bool,
    media: Media,
    failure_reason: Option<u32>,
    out: Vec<Action>,
}

impl CallMachine {
    /// An outbound call: the channel is there, the Skype call is not placed yet.
    pub fn outbound(setup: Setup) -> CallMachine {
        CallMachine::new(setup, Stage::Placing, false, true)
    }

    /// An inbound call: the Skype call rings, FreeSWITCH does not know it yet.
    pub fn inbound(setup: Setup) -> CallMachine {
        CallMachine::new(setup, Stage::Originating, true, false)
    }

    fn new(setup: Setup, stage: Stage, skype_call_known: bool, channel: bool) -> CallMachine {
        CallMachine {
            setup,
            stage,
            skype_call_known,
            channel_attached: channel,
            channel_gone: false,
            answered: false,
            ringing: false,
            media: Media::Closed,
            failure_reason: None,
            out: Vec::new(),
        }
    }

    pub fn is_over(&self) -> bool {
        self.stage == Stage::Over
    }

    /// The CALL reply is awaited: Skype notifications wait in the inbox until it is in, so
    /// that a status is never seen before the call it belongs to.
    pub fn placing(&self) -> bool {
        self.stage == Stage::Placing
    }

    #[cfg(test)]
    pub fn answered(&self) -> bool {
        self.answered
    }

    /// Takes one input; returns what to do, in order.
    pub fn step(&mut self, input: Input) -> Vec<Action> {
        if self.stage != Stage::Over {
            self.take(input);
        }
        std::mem::take(&mut self.out)
    }

    fn emit(&mut self, action: Action) {
        self.out.push(action);
    }

    fn state(&mut self, state: IfaceState, flow: CallFlow) {
        self.emit(Action::Registry(state, flow));
    }

    fn take(&mut self, input: Input) {
        match input {
            Input::Start => self.start(),
            Input::Shutdown => self.end(Ended::Shutdown),
            Input::Placed(result) => self.placed(result),
            Input::Originated(Ok(())) => debug!("originate succeeded"),
            Input::Originated(Err(())) if self.stage == Stage::Originating => {
                warn!("originate failed; rejecting the Skype call");
                self.end(Ended::BySwitch)
            }
            Input::Originated(Err(())) => {}
            Input::SocketConnected => self.socket_connected(),
            Input::SkypeAnswered(result) => self.skype_answered(result),
            Input::ChannelAnswered(Ok(())) => self.open_media(),
            Input::ChannelAnswered(Err(())) => {
                warn!("cannot answer the channel");
                self.end(Ended::BySwitch)
            }
            Input::MediaOpened(result) => self.media_opened(result),
            Input::Balance(balance) => self.balance(balance),
            Input::Skype(skype) => self.skype(skype),
            Input::Channel(channel) => self.channel(channel),
            Input::Media(media) => self.media_event(media),
            Input::Timer(timer) => self.timer(timer),
        }
    }

    fn start(&mut self) {
        match self.setup.direction {
            Direction::Outbound => {
                self.state(IfaceState::Dialing, CallFlow::Unplaced);
                self.emit(Action::Publish);
                self.emit(Action::SetVar(ChannelVar::SkypeUser));
                self.emit(Action::SetVar(ChannelVar::Interface));
                self.emit(Action::SetVar(ChannelVar::Host));
                self.emit(Action::PlaceCall);
            }
            Direction::Inbound => {
                self.state(IfaceState::Prering, CallFlow::Ringing);
                self.emit(Action::Publish);
                self.emit(Action::Originate);
                self.emit(Action::Arm(Timer::Originate, self.setup.timeouts.originate));
            }
        }
    }

    fn placed(&mut self, result: Result<(), PlaceFailure>) {
        if self.stage != Stage::Placing {
            return;
        }
        match result {
            Ok(()) => {
                self.skype_call_known = true;
                self.stage = Stage::Dialing;
                self.emit(Action::Publish);
                self.emit(Action::SetVar(ChannelVar::SkypeCallId));
                self.emit(Action::Arm(Timer::Setup, self.setup.timeouts.setup));
                info!("Skype call placed");
            }
            Err(failure) => {
                let outcome = match failure {
                    PlaceFailure::UnknownIdentity => SkypeOutcome::UnknownIdentity,
                    PlaceFailure::NotOnline => SkypeOutcome::NotOnline,
                    PlaceFailure::ClientGone => SkypeOutcome::ClientGone,
                    PlaceFailure::Other => SkypeOutcome::Failed { reason: None },
                };
                self.end(Ended::BySkype(outcome));
            }
        }
    }

    fn socket_connected(&mut self) {
        if self.stage != Stage::Originating {
            return;
        }
        self.channel_attached = true;
        self.stage = Stage::Answering;
        self.emit(Action::Disarm(Timer::Originate));
        self.emit(Action::Publish);
        info!("FreeSWITCH answered; answering the Skype call");
        self.state(IfaceState::PreAnswer, CallFlow::Ringing);
        self.emit(Action::AnswerSkype);
    }

    fn skype_answered(&mut self, result: Result<(), AnswerFailure>) {
        if self.stage != Stage::Answering {
            return;
        }
        match result {
            Ok(()) => {
                self.stage = Stage::Connected;
                if !self.answered {
                    self.emit(Action::Arm(Timer::Answer, self.setup.timeouts.answer));
                }
            }
            Err(failure) => {
                warn!(?failure, "the client did not answer the call");
                self.end(Ended::BySkype(match failure {
                    AnswerFailure::ClientGone => SkypeOutcome::ClientGone,
                    AnswerFailure::Refused => SkypeOutcome::Cancelled,
                }));
            }
        }
    }

    fn open_media(&mut self) {
        if self.media == Media::Closed {
            self.media = Media::Opening;
            self.emit(Action::OpenMedia);
        }
    }

    fn media_opened(&mut self, result: Result<(), ()>) {
        if self.media != Media::Opening {
            return;
        }
        match result {
            Ok(()) => {
                self.media = Media::Open;
                if self.answered {
                    info!("call up");
                }
            }
            Err(()) if !self.answered => {
                // Early media only: the call goes on, and the answer tries again.
                self.media = Media::Closed;
                warn!("early media not available");
            }
            Err(()) => {
                self.media = Media::Closed;
                warn!("no audio path");
                self.stage = Stage::Grace;
                self.emit(Action::Arm(Timer::EndingGrace, ENDING_GRACE));
            }
        }
    }

    fn skype(&mut self, input: SkypeInput) {
        match input {
            SkypeInput::ClientGone => {
                warn!("Skype client gone");
                self.end(Ended::BySkype(SkypeOutcome::ClientGone))
            }
            SkypeInput::NotOnline => self.end(Ended::BySkype(SkypeOutcome::NotOnline)),
            SkypeInput::FailureReason(reason) => self.failure_reason = Some(reason),
            SkypeInput::Dtmf {
                digits,
                bridged,
                also_when_bridged,
            } => self.dtmf_from_skype(digits, bridged && !also_when_bridged),
            SkypeInput::Status(status) => self.status(status),
        }
    }

    fn status(&mut self, status: CallStatus) {
        debug!(%status, "Skype call status");
        if let Some(outcome) = terminal_outcome(&status, self.failure_reason) {
            return self.skype_ended(&status, outcome);
        }
        match self.stage {
            Stage::Dialing | Stage::Answering | Stage::Connected => {}
            // Before the socket connects and while ANSWER is on its way, only an ending counts.
            _ => return debug!(%status, "status ignored for now"),
        }
        match status {
            CallStatus::Routing if self.is_outbound() && !self.answered => {
                self.state(IfaceState::Dialing, CallFlow::Routing)
            }
            CallStatus::Ringing if self.is_outbound() && !self.answered => {
                self.state(IfaceState::Ringing, CallFlow::Ringing);
                self.ringing_started();
                self.emit(Action::RingReady);
            }
            CallStatus::EarlyMedia if self.is_outbound() && !self.answered => {
                self.state(IfaceState::Dialing, CallFlow::EarlyMedia);
                self.ringing_started();
                self.emit(Action::PreAnswer);
                self.open_media();
            }
            CallStatus::InProgress if !self.answered => {
                self.answered = true;
                self.state(IfaceState::Up, CallFlow::InProgress);
                match self.setup.direction {
                    Direction::Outbound => {
                        self.emit(Action::Disarm(Timer::Setup));
                        self.emit(Action::Disarm(Timer::Ring));
                        self.emit(Action::AnswerChannel);
                    }
                    Direction::Inbound => {
                        self.emit(Action::Disarm(Timer::Answer));
                        self.open_media();
                    }
                }
                if self.media == Media::Open {
                    info!("call up");
                }
            }
            CallStatus::InProgress => {
                self.state(IfaceState::Up, CallFlow::InProgress);
                info!("call resumed");
            }
            CallStatus::RemoteHold | CallStatus::LocalHold | CallStatus::OnHold => {
                self.state(IfaceState::Up, CallFlow::RemoteHold);
                info!(%status, "call on hold; keeping it and its audio ports");
            }
            other => debug!(status = %other, "status ignored"),
        }
    }

    fn is_outbound(&self) -> bool {
        self.setup.direction == Direction::Outbound
    }

    fn ringing_started(&mut self) {
        if !self.ringing {
            self.ringing = true;
            self.emit(Action::Disarm(Timer::Setup));
            self.emit(Action::Arm(Timer::Ring, self.setup.timeouts.ring));
        }
    }

    /// A terminal Skype status, in whatever stage it arrives.
    fn skype_ended(&mut self, status: &CallStatus, outcome: SkypeOutcome) {
        match (self.stage, self.setup.direction) {
            (Stage::Originating, _) => {
                info!(%status, "Skype caller gave up before FreeSWITCH answered");
                self.end(Ended::BySkype(SkypeOutcome::Cancelled))
            }
            (Stage::Answering | Stage::Connected, Direction::Inbound) if !self.answered => {
                self.end(Ended::BySkype(SkypeOutcome::Cancelled))
            }
            (Stage::Grace, _) => {
                info!(%status, "the Skype call ended while its audio was set up");
                self.end(Ended::BySkype(outcome))
            }
            (Stage::Dialing | Stage::Connected, Direction::Outbound) if needs_balance(outcome) => {
                if self.setup.pstn {
                    self.stage = Stage::Balance(self.failure_reason);
                    self.emit(Action::AskBalance);
                } else {
                    self.end(Ended::BySkype(outcome))
                }
            }
            (Stage::Balance(_), _) => {}
            _ => self.end(Ended::BySkype(outcome)),
        }
    }

    fn balance(&mut self, balance: Option<i64>) {
        let Stage::Balance(reason) = self.stage else {
            return;
        };
        let outcome = match balance {
            Some(cents) if cents <= 0 => {
                info!(balance = cents, "SkypeOut call failed without credit");
                SkypeOutcome::NoCredit
            }
            _ => SkypeOutcome::Failed { reason },
        };
        self.end(Ended::BySkype(outcome))
    }

    fn dtmf_from_skype(&mut self, digits: String, held_back: bool) {
        if !self.channel_attached || self.channel_gone {
            return;
        }
        // While the channel is bridged the digit is assumed to travel in-band too (the
        // original's rule), unless the call says to send it out-of-band as well.
        if held_back {
            info!(%digits, "signalled DTMF not queued: the channel is bridged and skype_add_outband_dtmf_also_when_bridged is off");
            return;
        }
        self.dtmf_to_switch(&digits);
    }

    fn dtmf_to_switch(&mut self, digits: &str) {
        let digits: String = digits
            .chars()
            .filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
            .collect();
        if !digits.is_empty() && self.channel_attached && !self.channel_gone {
            self.emit(Action::DtmfToSwitch(digits));
        }
    }

    fn channel(&mut self, input: ChannelInput) {
        match input {
            ChannelInput::Dtmf(digit) => {
                if self.skype_call_known {
                    self.emit(Action::DtmfToSkype(digit));
                }
            }
            ChannelInput::HungUp | ChannelInput::Closed => {
                info!(?input, "FreeSWITCH side ended the call");
                self.channel_gone = true;
                self.end(Ended::BySwitch)
            }
        }
    }

    fn media_event(&mut self, input: MediaInput) {
        match input {
            MediaInput::Stopped if self.stage == Stage::Grace => {}
            MediaInput::Stopped => {
                // A side hanging up closes its audio a moment before its hangup arrives (the
                // channel's HANGUP, or STATUS FINISHED): wait briefly for the ending that
                // explains it; only silence means the client is gone. The path is still closed
                // in the teardown: its ports and the fork are held until then.
                warn!("audio path closed; waiting briefly for either side's hangup");
                self.stage = Stage::Grace;
                self.emit(Action::Arm(Timer::EndingGrace, ENDING_GRACE));
            }
            MediaInput::InbandDigit(digit) => {
                info!(%digit, "in-band DTMF from Skype");
                self.dtmf_to_switch(&digit.to_string())
            }
        }
    }

    fn timer(&mut self, timer: Timer) {
        match timer {
            Timer::Setup if self.stage == Stage::Dialing && !self.ringing && !self.answered => {
                warn!("no progress from Skype");
                self.end(Ended::BySkype(SkypeOutcome::SetupTimeout))
            }
            Timer::Ring if self.ringing && !self.answered && self.stage == Stage::Dialing => {
                info!("the far end did not answer within calls.ring_timeout_secs");
                self.end(Ended::BySkype(SkypeOutcome::RingTimeout))
            }
            Timer::Originate if self.stage == Stage::Originating => {
                warn!("FreeSWITCH did not answer in time");
                self.end(Ended::BySkype(SkypeOutcome::RingTimeout))
            }
            Timer::Answer if !self.answered && self.stage == Stage::Connected => {
                warn!("Skype call did not go in progress after ANSWER");
                self.end(Ended::BySkype(SkypeOutcome::SetupTimeout))
            }
            Timer::EndingGrace if self.stage == Stage::Grace => {
                self.end(Ended::BySkype(SkypeOutcome::ClientGone))
            }
            stale => debug!(?stale, "timer no longer relevant"),
        }
    }

    /// The common end of every call: what each side still needs to be told.
    fn end(&mut self, ended: Ended) {
        if self.media != Media::Closed {
            self.emit(Action::CloseMedia);
            self.media = Media::Closed;
        }
        let cause = ended.cause();
        let channel_live = self.channel_attached && !self.channel_gone;
        if channel_live {
            self.emit(Action::HangupChannel(cause));
        } else if !self.channel_attached
            && self.setup.direction == Direction::Inbound
            && ended != Ended::BySwitch
        {
            // Never reached FreeSWITCH's socket: cancel the originate if it still rings there.
            self.emit(Action::CancelOriginate);
        }
        let skype_finished = ended == Ended::BySkype(SkypeOutcome::Finished);
        if self.skype_call_known && !skype_finished {
            self.emit(Action::RejectSkype);
        }
        if !self.answered {
            self.emit(Action::CountFailure);
        }
        match ended {
            Ended::BySkype(outcome) => {
                info!(outcome = ?outcome, cause = cause.as_str(), "call ended by the Skype side")
            }
            other => info!(by = ?other, cause = cause.as_str(), "call ended"),
        }
        self.stage = Stage::Over;
        self.emit(Action::Ended(ended));
    }
}

/// A bare failure of a SkypeOut call may be the want of credit, which the client never names.
fn needs_balance(outcome: SkypeOutcome) -> bool {
    matches!(
        outcome,
        SkypeOutcome::Failed {
            reason: None | Some(FAILURE_MISC)
        }
    )
}

/// The outcome a terminal status means, `None` for a status the call goes on after.
fn terminal_outcome(status: &CallStatus, failure_reason: Option<u32>) -> Option<SkypeOutcome> {
    Some(match status {
        CallStatus::Finished => SkypeOutcome::Finished,
        CallStatus::Busy | CallStatus::WaitingRedialCommand => SkypeOutcome::Busy,
        CallStatus::Refused => SkypeOutcome::Refused,
        CallStatus::Missed => SkypeOutcome::Missed,
        CallStatus::Cancelled => SkypeOutcome::Cancelled,
        CallStatus::Failed => SkypeOutcome::Failed {
            reason: failure_reason,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
