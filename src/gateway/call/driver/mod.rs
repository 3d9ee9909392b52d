//! Carries a call machine's actions out: it owns the call's sockets, timers and background
//! requests, turns what they report into machine inputs, and always ends with the cleanup
//! that hands the interface back.
//! `start.rs` begins each direction's call, `actions.rs` carries out what the machine asks.

mod actions;
mod start;

pub(crate) use start::{run_inbound, run_outbound};

use super::machine::{
    CallMachine, ChannelInput, Input, MediaInput, PlaceFailure, SkypeInput, Timer,
};
use super::ring::Caller;
use super::{CallContext, CallInput};
use crate::gateway::media_path::{MediaEvent, MediaPath};
use crate::gateway::registry::Direction;
use crate::skype::api::{CallEvent, CallId, CallStatus, Command, Handle, Incoming, Notification};
use crate::switch::outbound::{ChannelControl, ChannelEvent, ChannelHandle};
use std::collections::{HashMap, VecDeque};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// Results of the call's requests that run while it keeps listening.
enum Background {
    Placed(Result<CallId, PlaceFailure>),
    Originated(Result<(), ()>),
}

/// What woke the call up.
enum Woke {
    Shutdown,
    Background(Option<Result<Background, tokio::task::JoinError>>),
    Timer(Timer),
    Inbox(Option<CallInput>),
    Channel(Option<ChannelEvent>),
    Media(MediaEvent),
    Socket(Result<ChannelHandle, oneshot::error::RecvError>),
}

struct Driver {
    ctx: CallContext,
    direction: Direction,
    uuid: String,
    /// The Skype party as `sk calls` shows it.
    remote: String,
    destination: Option<Handle>,
    caller: Option<Caller>,
    skype_call: Option<CallId>,
    channel: Option<ChannelControl>,
    channel_events: Option<mpsc::Receiver<ChannelEvent>>,
    /// Inbound: the `socket` connection FreeSWITCH makes once it answered.
    socket: Option<oneshot::Receiver<ChannelHandle>>,
    media: Option<MediaPath>,
    /// Feeds the task that sends this call's DTMF to Skype, one digit after the other.
    dtmf_out: Option<mpsc::Sender<Command>>,
    /// Digits for the channel, sent in order by one task (see `dtmf_to_switch`).
    dtmf_in: Option<mpsc::Sender<String>>,
    timers: HashMap<Timer, tokio::time::Instant>,
    /// Dropped with the call, which cancels whatever still runs.
    background: JoinSet<Background>,
    inbox: mpsc::Receiver<CallInput>,
    started: Instant,
    /// How the machine said the call ended.
    ended: Option<super::machine::Ended>,
}

impl Driver {
    fn new(
        ctx: CallContext,
        direction: Direction,
        uuid: String,
        remote: &str,
        inbox: mpsc::Receiver<CallInput>,
    ) -> Driver {
        Driver {
            ctx,
            direction,
            uuid,
            remote: remote.to_string(),
            destination: None,
            caller: None,
            skype_call: None,
            channel: None,
            channel_events: None,
            socket: None,
            media: None,
            dtmf_out: None,
            dtmf_in: None,
            timers: HashMap::new(),
            background: JoinSet::new(),
            inbox,
            started: Instant::now(),
            ended: None,
        }
    }

    async fn run(mut self, mut machine: CallMachine) {
        let mut queue = VecDeque::from([Input::Start]);
        loop {
            while let Some(input) = queue.pop_front() {
                for action in machine.step(input) {
                    if let Some(result) = self.perform(action).await {
                        queue.push_back(result);
                    }
                }
            }
            if machine.is_over() {
                break;
            }
            let woke = self.wait(machine.placing()).await;
            if let Some(input) = self.input(woke) {
                queue.push_back(input);
            }
        }
        self.finish().await;
    }

    /// Waits for the next thing that happens to the call. Cancel-safe: every branch either
    /// loses nothing when dropped or is polled to completion by this select.
    async fn wait(&mut self, placing: bool) -> Woke {
        let next_timer = self
            .timers
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(t, at)| (*t, *at));
        tokio::select! {
            _ = self.ctx.gw.calls_stop.cancelled() => Woke::Shutdown,
            done = self.background.join_next(), if !self.background.is_empty() => Woke::Background(done),
            timer = fire(next_timer) => Woke::Timer(timer),
            input = self.inbox.recv(), if !placing => Woke::Inbox(input),
            event = next_channel_event(&mut self.channel_events) => Woke::Channel(event),
            event = media_event(&mut self.media) => Woke::Media(event),
            socket = socket_connects(&mut self.socket) => Woke::Socket(socket),
        }
    }

    /// The machine input for what woke the call, if it means anything to it.
    fn input(&mut self, woke: Woke) -> Option<Input> {
        match woke {
            Woke::Shutdown => Some(Input::Shutdown),
            Woke::Background(None) => None,
            Woke::Background(Some(Err(e))) => {
                warn!(error = %e, "a request of the call failed");
                None
            }
            Woke::Background(Some(Ok(Background::Placed(result)))) => {
                if let Ok(id) = result {
                    self.skype_call = Some(id);
                    tracing::Span::current().record("skype_call", tracing::field::display(id));
                }
                Some(Input::Placed(result.map(|_| ())))
            }
            Woke::Background(Some(Ok(Background::Originated(result)))) => {
                Some(Input::Originated(result))
            }
            Woke::Timer(timer) => {
                self.timers.remove(&timer);
                Some(Input::Timer(timer))
            }
            // The interface stopped.
            Woke::Inbox(None) => Some(Input::Shutdown),
            Woke::Inbox(Some(input)) => self.skype_input(input).map(Input::Skype),
            Woke::Channel(event) => self.channel_input(event).map(Input::Channel),
            Woke::Media(MediaEvent::Stopped(why)) => {
                info!(%why, "media path stopped");
                Some(Input::Media(MediaInput::Stopped))
            }
            Woke::Media(MediaEvent::InbandDigit(digit)) => {
                Some(Input::Media(MediaInput::InbandDigit(digit)))
            }
            Woke::Socket(Ok(channel)) => {
                let (control, events) = channel.into_parts();
                self.channel = Some(control);
                self.channel_events = Some(events);
                Some(Input::SocketConnected)
            }
            // The gateway dropped the waiter: it is stopping.
            Woke::Socket(Err(_)) => Some(Input::Shutdown),
        }
    }

    fn skype_input(&self, input: CallInput) -> Option<SkypeInput> {
        let incoming: Incoming = match input {
            CallInput::ClientGone(reason) => {
                warn!(%reason, "Skype client gone");
                return Some(SkypeInput::ClientGone);
            }
            CallInput::NotOnline => return Some(SkypeInput::NotOnline),
            CallInput::Skype(incoming) => incoming,
        };
        let Notification::Call { event, .. } = &incoming.notification else {
            return None;
        };
        match event {
            CallEvent::Status(status) => Some(SkypeInput::Status(status.clone())),
            // A tagged DTMF is the echo of our own `SET CALL .. DTMF`, not a remote key press.
            CallEvent::Dtmf(digits) if incoming.tag.is_none() => Some(SkypeInput::Dtmf {
                digits: digits.clone(),
                bridged: self.bridged(),
                also_when_bridged: self.flag(
                    "skype_add_outband_dtmf_also_when_bridged",
                    self.ctx.cfg.skype_add_outband_dtmf_also_when_bridged,
                ),
            }),
            CallEvent::FailureReason(n) => Some(SkypeInput::FailureReason(*n)),
            CallEvent::VmDuration(0) => Some(SkypeInput::Status(CallStatus::InProgress)),
            _ => None,
        }
    }

    fn channel_input(&mut self, event: Option<ChannelEvent>) -> Option<ChannelInput> {
        match event {
            None => {
                self.channel_events = None;
                Some(ChannelInput::Closed)
            }
            Some(ChannelEvent::Dtmf { digit, .. }) => Some(ChannelInput::Dtmf(digit)),
            Some(ChannelEvent::Hangup { cause }) | Some(ChannelEvent::HangupComplete { cause }) => {
                info!(%cause, "FreeSWITCH side hung up");
                Some(ChannelInput::HungUp)
            }
            Some(ChannelEvent::Disconnected { reason }) => {
                info!(%reason, "FreeSWITCH socket closed");
                self.channel_events = None;
                Some(ChannelInput::Closed)
            }
            Some(ChannelEvent::Custom { subclass, .. }) => {
                debug!(%subclass, "channel custom event");
                None
            }
            Some(_) => None,
        }
    }
}

async fn fire(next: Option<(Timer, tokio::time::Instant)>) -> Timer {
    match next {
        Some((timer, at)) => {
            tokio::time::sleep_until(at).await;
            timer
        }
        None => std::future::pending().await,
    }
}

async fn next_channel_event(
    events: &mut Option<mpsc::Receiver<ChannelEvent>>,
) -> Option<ChannelEvent> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn media_event(media: &mut Option<MediaPath>) -> MediaEvent {
    match media {
        Some(m) => m.next_event().await,
        None => std::future::pending().await,
    }
}

async fn socket_connects(
    socket: &mut Option<oneshot::Receiver<ChannelHandle>>,
) -> Result<ChannelHandle, oneshot::error::RecvError> {
    let Some(rx) = socket.as_mut() else {
        return std::future::pending().await;
    };
    let result = rx.await;
    *socket = None;
    result
}
