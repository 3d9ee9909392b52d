//! Carries a call machine's actions out: it owns the call's sockets, timers and background
//! requests, turns what they report into machine inputs, and always ends with the cleanup
//! that hands the interface back.

use super::machine::{
    Action, AnswerFailure, CallMachine, ChannelInput, ChannelVar, Input, MediaInput, PlaceFailure,
    Setup, SkypeInput, Timeouts, Timer,
};
use super::ring::{self, Caller};
use super::{CallContext, CallDone, CallInput, Inbound, Outbound};
use crate::config::MediaMode;
use crate::gateway::media_path::{self, MediaEvent, MediaPath};
use crate::gateway::registry::Direction;
use crate::gateway::LiveCall;
use crate::skype::api::{
    CallAction, CallEvent, CallId, CallStatus, Command, Handle, Incoming, Notification,
    ProfileProperty,
};
use crate::skype::session::SessionError;
use crate::switch::originate::InboundOriginate;
use crate::switch::outbound::{ChannelControl, ChannelEvent, ChannelHandle};
use crate::switch::HangupCause;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::{debug, info, warn, Instrument};

/// Digits waiting to be sent to Skype on one call.
const DTMF_QUEUE: usize = 32;
/// How long the client may take to confirm a Skype hangup.
const SKYPE_HANGUP_WAIT: Duration = Duration::from_secs(2);
/// How long FreeSWITCH may take to confirm that it answered the channel.
const CHANNEL_ANSWER_WAIT: Duration = Duration::from_secs(5);

/// The outbound call task.
pub(crate) async fn run_outbound(call: Outbound) {
    let Outbound {
        ctx,
        destination,
        channel,
        reservation,
        inbox,
    } = call;
    let uuid = channel.uuid().to_string();
    let span = tracing::info_span!("call", interface = %ctx.cfg.name, call = %uuid,
                                   skype_call = tracing::field::Empty);
    async move {
        reservation.commit();
        ctx.gw.registry.set_uuid(ctx.cfg.id, &uuid);
        ctx.gw.registry.count_call(ctx.cfg.id, Direction::Outbound);
        let setup = Setup {
            direction: Direction::Outbound,
            timeouts: timeouts(&ctx),
            pstn: destination.as_str().starts_with('+'),
        };
        let (control, events) = channel.into_parts();
        let mut driver = Driver::new(ctx, Direction::Outbound, uuid, destination.as_str(), inbox);
        driver.destination = Some(destination);
        driver.channel = Some(control);
        driver.channel_events = Some(events);
        driver.run(CallMachine::outbound(setup)).await;
    }
    .instrument(span)
    .await
}

/// The inbound call task.
pub(crate) async fn run_inbound(call: Inbound) {
    let Inbound {
        ctx,
        skype_call,
        reservation,
        inbox,
    } = call;
    let uuid = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("call", interface = %ctx.cfg.name, call = %uuid, skype_call = %skype_call);
    async move {
        let Some(caller) = ring::take(&ctx, skype_call, reservation).await else {
            ctx.gw.registry.release(ctx.cfg.id);
            let _ = ctx.done.send(CallDone { serial: ctx.serial }).await;
            return;
        };
        ctx.gw.registry.set_uuid(ctx.cfg.id, &uuid);
        ctx.gw.registry.count_call(ctx.cfg.id, Direction::Inbound);
        info!(caller = %caller.handle, name = %caller.name, destination = %ctx.cfg.destination,
              "incoming Skype call");
        let setup = Setup {
            direction: Direction::Inbound,
            timeouts: timeouts(&ctx),
            pstn: false,
        };
        let (socket_tx, socket_rx) = oneshot::channel();
        ctx.gw.pending_inbound.insert(uuid.clone(), socket_tx);
        let mut driver = Driver::new(ctx, Direction::Inbound, uuid, &caller.handle, inbox);
        driver.skype_call = Some(skype_call);
        driver.caller = Some(caller);
        driver.socket = Some(socket_rx);
        driver.run(CallMachine::inbound(setup)).await;
    }
    .instrument(span)
    .await
}

fn timeouts(ctx: &CallContext) -> Timeouts {
    let calls = &ctx.gw.settings.calls;
    Timeouts {
        setup: calls.setup_timeout(),
        ring: calls.ring_timeout(),
        answer: calls.answer_timeout(),
        originate: calls.originate_timeout(),
    }
}

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
    timers: HashMap<Timer, tokio::time::Instant>,
    /// Dropped with the call, which cancels whatever still runs.
    background: JoinSet<Background>,
    inbox: mpsc::Receiver<CallInput>,
    started: Instant,
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
            timers: HashMap::new(),
            background: JoinSet::new(),
            inbox,
            started: Instant::now(),
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

    /// Does one action; the ones that ask something return the answer as the next input.
    async fn perform(&mut self, action: Action) -> Option<Input> {
        let gw = self.ctx.gw.clone();
        let id = self.ctx.cfg.id;
        match action {
            Action::Registry(state, flow) => {
                gw.registry.set_state(id, state);
                gw.registry.set_callflow(id, flow);
            }
            Action::Publish => self.publish(),
            Action::SetVar(var) => self.set_var(var).await,
            Action::PlaceCall => self.place_call(),
            Action::Originate => self.originate(),
            Action::AnswerSkype => return Some(Input::SkypeAnswered(self.answer_skype().await)),
            Action::RingReady => self.execute("ring_ready").await,
            Action::PreAnswer => self.execute("pre_answer").await,
            Action::AnswerChannel => {
                let answered = match &self.channel {
                    Some(channel) => channel
                        .execute_wait("answer", None, CHANNEL_ANSWER_WAIT)
                        .await
                        .map(|_| ())
                        .map_err(|e| warn!(error = %e, "cannot answer the channel")),
                    None => Err(()),
                };
                return Some(Input::ChannelAnswered(answered));
            }
            Action::OpenMedia => return Some(Input::MediaOpened(self.open_media().await)),
            Action::CloseMedia => {
                if let Some(media) = self.media.take() {
                    media.close(self.channel.as_ref()).await;
                }
            }
            Action::DtmfToSkype(digit) => self.dtmf_to_skype(digit),
            Action::DtmfToSwitch(digits) => self.dtmf_to_switch(digits),
            Action::AskBalance => return Some(Input::Balance(self.balance().await)),
            Action::Arm(timer, after) => {
                self.timers
                    .insert(timer, tokio::time::Instant::now() + after);
            }
            Action::Disarm(timer) => {
                self.timers.remove(&timer);
            }
            Action::HangupChannel(cause) => {
                if let Some(channel) = self.channel.as_ref().filter(|c| !c.is_hung_up()) {
                    if let Err(e) = channel.hangup_with(cause).await {
                        debug!(error = %e, "hangup");
                    }
                }
            }
            Action::CancelOriginate => {
                if let Err(e) = gw
                    .switch
                    .kill(&self.uuid, HangupCause::OriginatorCancel)
                    .await
                {
                    debug!(error = %e, "uuid_kill after the Skype side ended");
                }
            }
            Action::RejectSkype => self.hang_up_skype().await,
            Action::CountFailure => gw.registry.count_failure(id, self.direction),
            Action::Ended(_) => {}
        }
        None
    }

    /// `ALTER CALL <id> HANGUP`, waiting (briefly) for the client to take it, so that a stop
    /// right after the call cannot cut the link before the hangup left; then `END HANGUP`.
    async fn hang_up_skype(&self) {
        let Some(id) = self.skype_call else { return };
        let hangup = Command::AlterCall {
            id,
            action: CallAction::Hangup,
        };
        match tokio::time::timeout(SKYPE_HANGUP_WAIT, self.ctx.session.request(hangup)).await {
            Ok(Ok(_)) => debug!("Skype call hung up"),
            Ok(Err(e)) => debug!(error = %e, "Skype hangup not confirmed"),
            Err(_) => debug!("Skype hangup not confirmed in time"),
        }
        if let Err(e) = self.ctx.session.send(Command::AlterCall {
            id,
            action: CallAction::EndHangup,
        }) {
            debug!(error = %e, "cannot send END HANGUP to the client");
        }
    }

    fn publish(&self) {
        let local = self
            .channel
            .as_ref()
            .map(|c| {
                let cid = c.data().caller_id();
                format!(
                    "{} <{}>",
                    cid.name.unwrap_or_default(),
                    cid.number.unwrap_or_default()
                )
            })
            .unwrap_or_default();
        self.ctx.gw.live_calls.insert(
            self.uuid.clone(),
            LiveCall {
                uuid: self.uuid.clone(),
                interface: self.ctx.cfg.name.clone(),
                skype_call_id: self.skype_call.map(|c| c.0),
                inbound: self.direction == Direction::Inbound,
                remote: self.remote.clone(),
                local,
                started: self.started,
            },
        );
    }

    /// Channel variables as the original module set them (`skype_user`, ...), so the
    /// dialplan and CDRs can tell which account carried the call. Values come from our
    /// configuration or are numeric ids, never from Skype.
    async fn set_var(&self, var: ChannelVar) {
        let Some(channel) = &self.channel else { return };
        let (name, value) = match var {
            ChannelVar::SkypeUser => ("skype_user", self.ctx.cfg.skype_user.clone()),
            ChannelVar::Interface => ("skypopen_interface", self.ctx.cfg.name.clone()),
            ChannelVar::SkypeCallId => match self.skype_call {
                Some(id) => ("skypopen_call_id", id.to_string()),
                None => return,
            },
        };
        if let Err(e) = channel.set_var(name, &value).await {
            debug!(%name, error = %e, "cannot set channel variable");
        }
    }

    async fn execute(&self, app: &str) {
        if let Some(channel) = &self.channel {
            if let Err(e) = channel.execute(app, None).await {
                debug!(app, error = %e, "channel application failed");
            }
        }
    }

    fn place_call(&mut self) {
        let Some(destination) = self.destination.clone() else {
            self.background
                .spawn(async { Background::Placed(Err(PlaceFailure::Other)) });
            return;
        };
        let session = self.ctx.session.clone();
        self.background.spawn(
            async move {
                let placed = match session.request(Command::Call(destination.clone())).await {
                    Ok(Notification::Call { id, .. }) => Ok(id),
                    Ok(other) => {
                        warn!(reply = %other, "unexpected reply to CALL");
                        Err(PlaceFailure::Other)
                    }
                    Err(SessionError::Rejected { code: 92, text }) => {
                        info!(%destination, %text, "Skype does not know the destination");
                        Err(PlaceFailure::UnknownIdentity)
                    }
                    Err(SessionError::Rejected { code: 36, .. }) => Err(PlaceFailure::NotOnline),
                    Err(
                        e @ (SessionError::ClientGone { .. }
                        | SessionError::NotReady { .. }
                        | SessionError::Stopped),
                    ) => {
                        warn!(error = %e, "cannot place the call");
                        Err(PlaceFailure::ClientGone)
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot place the call");
                        Err(PlaceFailure::Other)
                    }
                };
                Background::Placed(placed)
            }
            .in_current_span(),
        );
    }

    fn originate(&mut self) {
        let gw = self.ctx.gw.clone();
        let cfg = self.ctx.cfg.clone();
        let uuid = self.uuid.clone();
        let skype_call = self.skype_call.map(|c| c.to_string()).unwrap_or_default();
        let (handle, name, initial) = match &self.caller {
            Some(c) => (
                c.handle.clone(),
                c.name.clone(),
                c.initial_skype_user.clone(),
            ),
            None => Default::default(),
        };
        self.background.spawn(
            async move {
                let socket_addr = gw.settings.switch.outbound_listen.to_string();
                let call = InboundOriginate {
                    uuid: &uuid,
                    caller_handle: &handle,
                    caller_name: &name,
                    interface: &cfg.name,
                    skype_call_id: &skype_call,
                    skype_user: &cfg.skype_user,
                    initial_skype_user: initial.as_deref(),
                    destination: &cfg.destination,
                    context: &cfg.context,
                    dialplan: &cfg.dialplan,
                    socket_addr: &socket_addr,
                    send_silence_when_idle: gw.settings.switch.media == MediaMode::AudioFork,
                    extra: &[],
                };
                let within = gw.settings.calls.originate_timeout();
                let result = gw.switch.originate(&call, within).await;
                Background::Originated(result.map_err(|e| warn!(error = %e, "originate failed")))
            }
            .in_current_span(),
        );
    }

    async fn answer_skype(&self) -> Result<(), AnswerFailure> {
        let Some(id) = self.skype_call else {
            return Err(AnswerFailure::ClientGone);
        };
        let answer = Command::AlterCall {
            id,
            action: CallAction::Answer,
        };
        match self.ctx.session.request(answer).await {
            Ok(_) => Ok(()),
            Err(e) => {
                warn!(error = %e, "the client did not answer the call");
                Err(match e {
                    SessionError::ClientGone { .. } | SessionError::Stopped => {
                        AnswerFailure::ClientGone
                    }
                    _ => AnswerFailure::Refused,
                })
            }
        }
    }

    /// Opens the audio ports, tells the client about them, and connects the FreeSWITCH side.
    async fn open_media(&mut self) -> Result<(), ()> {
        let (Some(id), Some(channel)) = (self.skype_call, self.channel.clone()) else {
            warn!("media before the call is known on both sides");
            return Err(());
        };
        let inband = self.flag("skype_get_inband_dtmf", self.ctx.cfg.skype_get_inband_dtmf);
        match media_path::open(
            &self.ctx.gw,
            &self.ctx.cfg,
            &self.ctx.session,
            id,
            &channel,
            inband,
        )
        .await
        {
            Ok(media) => {
                self.media = Some(media);
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "cannot open the media path");
                Err(())
            }
        }
    }

    async fn balance(&self) -> Option<i64> {
        self.ctx
            .session
            .request(Command::GetProfile(ProfileProperty::PstnBalance))
            .await
            .ok()
            .and_then(|reply| reply.pstn_balance())
    }

    /// DTMF from the FreeSWITCH channel goes to Skype as `SET CALL <id> DTMF <d>`.
    fn dtmf_to_skype(&mut self, digit: char) {
        let Some(id) = self.skype_call else { return };
        let cmd = match Command::dtmf(id, digit) {
            Ok(cmd) => cmd,
            Err(e) => {
                info!(%digit, error = %e, "DTMF digit Skype cannot carry; dropped");
                return;
            }
        };
        // One sender per call keeps the digits in order; each is tagged, so the client's
        // echo is a reply and never loops back as a remote key press.
        let queue = self.dtmf_out.get_or_insert_with(|| {
            let (tx, mut rx) = mpsc::channel::<Command>(DTMF_QUEUE);
            let session = self.ctx.session.clone();
            self.ctx.gw.tasks.spawn(
                async move {
                    while let Some(cmd) = rx.recv().await {
                        if let Err(e) = session.request(cmd).await {
                            debug!(error = %e, "DTMF to Skype not confirmed");
                        }
                    }
                }
                .in_current_span(),
            );
            tx
        });
        match queue.try_send(cmd) {
            Ok(()) => debug!(%digit, "DTMF to Skype"),
            Err(_) => warn!(%digit, "DTMF to Skype dropped: the client is not keeping up"),
        }
    }

    /// DTMF from the remote Skype party goes into the call with `uuid_send_dtmf` on our
    /// channel, so the far end of the channel (the dialplan side) receives it.
    fn dtmf_to_switch(&self, digits: String) {
        let Some(channel) = self.channel.clone() else {
            return;
        };
        self.ctx.gw.tasks.spawn(
            async move {
                match channel.send_dtmf(&digits).await {
                    Ok(()) => debug!(%digits, "DTMF to FreeSWITCH"),
                    Err(e) => warn!(%digits, error = %e, "DTMF not delivered"),
                }
            }
            .in_current_span(),
        );
    }

    fn bridged(&self) -> bool {
        self.channel.as_ref().is_some_and(|c| {
            c.data().variable("bridge_uuid").is_some() || c.data().variable("signal_bond").is_some()
        })
    }

    /// A per-call switch: the channel variable when the channel sets it, else the interface's
    /// setting. Booleans as the original read them: `true` or `1`.
    fn flag(&self, name: &str, default: bool) -> bool {
        self.channel
            .as_ref()
            .and_then(|c| c.data().variable(name))
            .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
            .unwrap_or(default)
    }

    /// Gives everything the call held back and tells the interface it is free.
    async fn finish(mut self) {
        let gw = self.ctx.gw.clone();
        if let Some(media) = self.media.take() {
            media.close(self.channel.as_ref()).await;
        }
        if let Some(caller) = self.caller.take() {
            gw.ring_claims.remove(&caller.claim);
        }
        gw.pending_inbound.remove(&self.uuid);
        gw.live_calls.remove(&self.uuid);
        gw.registry.release(self.ctx.cfg.id);
        let _ = self
            .ctx
            .done
            .send(CallDone {
                serial: self.ctx.serial,
            })
            .await;
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
