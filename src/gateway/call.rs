//! One task per call. It owns the Skype call id, the FreeSWITCH channel, the media path and the
//! timers, and it always ends by tearing down both sides and returning the interface.
//!
//! Outbound (FreeSWITCH to Skype): `CALL <dest>`, progress relayed (RINGING → ring_ready,
//! EARLYMEDIA → pre_answer with audio), on INPROGRESS the media path opens and the channel is
//! answered. Inbound (Skype to FreeSWITCH): the caller is looked up, `originate` brings the call
//! into the dialplan with a `socket` back to us; when that socket connects (FreeSWITCH has
//! answered) the Skype call is answered and the media path opens.

use super::causes::{HangupCause, SkypeOutcome, FAILURE_MISC};
use super::dialstring::{self, Pick};
use super::interface::{CallDone, InterfaceHandle, InterfaceRequest};
use super::media_path::{self, MediaEvent, MediaPath};
use super::originate::InboundOriginate;
use super::registry::{CallFlow, ClaimError, Direction, IfaceState, Reservation};
use super::{Gateway, LiveCall};
use crate::config::{InterfaceConfig, MediaMode};
use crate::skype::api::{
    self, CallAction, CallEvent, CallId, CallProperty, CallStatus, Command, Handle, Incoming,
    Notification, ProfileProperty,
};
use crate::skype::session::{SessionError, SessionHandle};
use crate::switch::outbound::{ChannelControl, ChannelEvent, ChannelHandle};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn, Instrument};

/// Digits waiting to be sent to Skype on one call.
const DTMF_QUEUE: usize = 32;

/// What the interface actor forwards to a call.
#[derive(Debug, Clone)]
pub enum CallInput {
    Skype(Incoming),
    /// The client window or session went away.
    ClientGone(String),
    /// The client lost the Skype network (CONNSTATUS OFFLINE, ERROR 36).
    NotOnline,
}

impl CallInput {
    /// The Skype notification, or the outcome when the client or its network went away:
    /// those end a call the same way in every phase. `phase` only words the log line.
    fn into_skype(self, phase: &str) -> Result<Incoming, SkypeOutcome> {
        match self {
            CallInput::Skype(incoming) => Ok(incoming),
            CallInput::ClientGone(reason) => {
                warn!(%reason, "Skype client gone {phase}");
                Err(SkypeOutcome::ClientGone)
            }
            CallInput::NotOnline => Err(SkypeOutcome::NotOnline),
        }
    }
}

/// What every call task needs from its interface.
pub(crate) struct CallContext {
    pub gw: Gateway,
    pub cfg: InterfaceConfig,
    pub session: SessionHandle,
    pub serial: u64,
    pub done: mpsc::Sender<CallDone>,
}

pub(crate) struct Outbound {
    pub ctx: CallContext,
    pub destination: Handle,
    pub channel: ChannelHandle,
    pub reservation: Reservation,
    pub inbox: mpsc::Receiver<CallInput>,
}

pub(crate) struct Inbound {
    pub ctx: CallContext,
    pub skype_call: CallId,
    pub reservation: Reservation,
    pub inbox: mpsc::Receiver<CallInput>,
}

/// Rejects (or ends) a Skype call: `ALTER CALL <id> HANGUP` then `END HANGUP`, the order the
/// original module was seen to use; the client answers the second with an error we ignore.
pub(crate) fn reject(session: &SessionHandle, id: CallId) {
    for action in [CallAction::Hangup, CallAction::EndHangup] {
        if let Err(e) = session.send(Command::AlterCall { id, action }) {
            debug!(skype_call = %id, error = %e, "cannot send hangup to the client");
        }
    }
}

/// A new `socket` connection that is not an inbound call's: pick the interface, check the
/// destination, and hand the call to the interface, or hang the channel up with the cause.
pub(crate) async fn place_outbound(gw: Gateway, channel: ChannelHandle) {
    let uuid = channel.uuid().to_string();
    let span = tracing::info_span!("call", call = %uuid);
    async move {
        let (iface, destination, reservation) = match route_outbound(&gw, &channel) {
            Ok(routed) => routed,
            Err(cause) => {
                let _ = channel.control.hangup(cause.as_str()).await;
                return;
            }
        };
        info!(interface = %iface.cfg.name, %destination, "outbound call");
        if iface
            .requests
            .send(InterfaceRequest::PlaceCall {
                destination,
                channel,
                reservation,
            })
            .await
            .is_err()
        {
            warn!(interface = %iface.cfg.name, "interface stopped while placing a call");
        }
    }
    .instrument(span)
    .await
}

/// The interface and Skype destination for a new outbound channel, or the cause to refuse
/// it with.
fn route_outbound(
    gw: &Gateway,
    channel: &ChannelHandle,
) -> Result<(InterfaceHandle, Handle, Reservation), HangupCause> {
    let number = channel.data().destination_number().unwrap_or("");
    let target = dialstring::parse(number).map_err(|e| {
        warn!(error = %e, "refusing call");
        SkypeOutcome::InvalidDestination.cause()
    })?;
    let destination = api::validate_destination(&target.destination).map_err(|e| {
        warn!(destination = %target.destination, error = %e, "refusing call: invalid Skype destination");
        SkypeOutcome::InvalidDestination.cause()
    })?;
    let reservation = match &target.pick {
        Pick::Hunt => gw.registry.hunt(None),
        Pick::Named(name) => gw.registry.claim(name),
    };
    let reservation = reservation.map_err(|e| {
        let cause = match e {
            ClaimError::NotFound(_) => HangupCause::ChanNotImplemented,
            _ => SkypeOutcome::NoIdleInterface.cause(),
        };
        warn!(%destination, error = %e, cause = cause.as_str(), "refusing call: no interface");
        cause
    })?;
    let Some(iface) = gw
        .interfaces
        .get(&reservation.id())
        .map(|i| i.value().clone())
    else {
        warn!("interface vanished while placing a call");
        return Err(SkypeOutcome::NoIdleInterface.cause());
    };
    Ok((iface, destination, reservation))
}

/// Everything a running call holds, and the teardown that every path ends with.
struct Call {
    ctx: CallContext,
    direction: Direction,
    uuid: String,
    skype_call: Option<CallId>,
    channel: Option<ChannelControl>,
    channel_events: Option<mpsc::Receiver<ChannelEvent>>,
    media: Option<MediaPath>,
    answered: bool,
    failure_reason: Option<u32>,
    ring_claim: Option<(String, String)>,
    /// Feeds the task that sends this call's DTMF to Skype, one digit after the other.
    dtmf_out: Option<mpsc::Sender<Command>>,
}

/// How the call ended, and which side still needs telling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// Skype ended it (or never got it going): hang the channel up with this cause.
    BySkype(SkypeOutcome),
    /// FreeSWITCH ended it: hang the Skype call up.
    BySwitch,
    /// The sidecar is stopping.
    Shutdown,
}

impl Call {
    /// A call known to neither side yet; each flow fills in what it starts with.
    fn new(ctx: CallContext, direction: Direction, uuid: String) -> Self {
        Call {
            ctx,
            direction,
            uuid,
            skype_call: None,
            channel: None,
            channel_events: None,
            media: None,
            answered: false,
            failure_reason: None,
            ring_claim: None,
            dtmf_out: None,
        }
    }

    /// Hands the interface back to its actor.
    async fn report_done(&self) {
        let _ = self
            .ctx
            .done
            .send(CallDone {
                serial: self.ctx.serial,
            })
            .await;
    }

    fn id(&self) -> u32 {
        self.ctx.cfg.id
    }

    fn set_state(&self, state: IfaceState, flow: CallFlow) {
        self.ctx.gw.registry.set_state(self.id(), state);
        self.ctx.gw.registry.set_callflow(self.id(), flow);
    }

    fn publish(&self, remote: &str) {
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
                remote: remote.to_string(),
                local,
                started: Instant::now(),
            },
        );
    }

    /// Opens the audio ports, tells the client about them, and connects the FreeSWITCH side.
    async fn open_media(&mut self) -> Result<(), String> {
        if self.media.is_some() {
            return Ok(());
        }
        let (Some(id), Some(channel)) = (self.skype_call, self.channel.clone()) else {
            return Err("media before the call is known on both sides".into());
        };
        let inband = self.flag("skype_get_inband_dtmf", self.ctx.cfg.skype_get_inband_dtmf);
        let media = media_path::open(
            &self.ctx.gw,
            &self.ctx.cfg,
            &self.ctx.session,
            id,
            &channel,
            inband,
        )
        .await
        .map_err(|e| e.to_string())?;
        self.media = Some(media);
        Ok(())
    }

    /// Channel variables as the original module set them (`skype_user`, ...), so the
    /// dialplan and CDRs can tell which account carried the call. Values come from our
    /// configuration or are numeric ids, never from Skype.
    async fn set_channel_var(&self, name: &str, value: &str) {
        let Some(channel) = &self.channel else { return };
        if let Err(e) = channel
            .execute("set", Some(&format!("{name}={value}")))
            .await
        {
            debug!(%name, error = %e, "cannot set channel variable");
        }
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
            tokio::spawn(
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

    /// A per-call switch: the channel variable when the channel sets it, else the interface's
    /// setting. Booleans as the original read them: `true` or `1`.
    fn flag(&self, name: &str, default: bool) -> bool {
        self.channel
            .as_ref()
            .and_then(|c| c.data().variable(name))
            .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
            .unwrap_or(default)
    }

    /// What Skype reports mid-call besides statuses: a remote key press, or the reason a
    /// failure will carry.
    fn take_detail(&mut self, progress: Progress) {
        match progress {
            Progress::Dtmf(d) => self.signalled_dtmf_to_switch(&d),
            Progress::FailureReason(n) => self.failure_reason = Some(n),
            Progress::Status(_) | Progress::Other => {}
        }
    }

    /// Signalled DTMF from Skype. While the channel is bridged the digit is assumed to travel
    /// in-band too, so it is only queued when `skype_add_outband_dtmf_also_when_bridged` says so
    /// (the original's rule).
    fn signalled_dtmf_to_switch(&self, digits: &str) {
        let bridged = self.channel.as_ref().is_some_and(|c| {
            c.data().variable("bridge_uuid").is_some() || c.data().variable("signal_bond").is_some()
        });
        let also = self.flag(
            "skype_add_outband_dtmf_also_when_bridged",
            self.ctx.cfg.skype_add_outband_dtmf_also_when_bridged,
        );
        if bridged && !also {
            info!(%digits, "signalled DTMF not queued: the channel is bridged and skype_add_outband_dtmf_also_when_bridged is off");
            return;
        }
        self.dtmf_to_switch(digits);
    }

    /// DTMF from the remote Skype party goes into the call with `uuid_send_dtmf` on our
    /// channel, so the far end of the channel (the dialplan side) receives it.
    fn dtmf_to_switch(&self, digits: &str) {
        let Some(channel) = self.channel.clone() else {
            return;
        };
        let digits: String = digits
            .chars()
            .filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
            .collect();
        if digits.is_empty() {
            return;
        }
        let command = format!("uuid_send_dtmf {} {digits}", self.uuid);
        tokio::spawn(
            async move {
                match channel.api(&command).await {
                    Ok(reply) if reply.starts_with("+OK") => debug!(%command, "DTMF to FreeSWITCH"),
                    Ok(reply) => warn!(%command, reply = %reply.trim(), "DTMF not delivered"),
                    Err(e) => warn!(%command, error = %e, "DTMF not delivered"),
                }
            }
            .in_current_span(),
        );
    }

    /// The common end of every call.
    async fn finish(mut self, ended: Ended) {
        let gw = self.ctx.gw.clone();
        if let Some(media) = self.media.take() {
            media.close(self.channel.as_ref()).await;
        }
        match ended {
            Ended::BySkype(outcome) => {
                let cause = outcome.cause();
                if let Some(channel) = &self.channel {
                    if !channel.is_hung_up() {
                        info!(cause = cause.as_str(), "Skype side ended the call");
                        let _ = channel.hangup(cause.as_str()).await;
                    }
                } else if self.direction == Direction::Inbound {
                    // Never reached FreeSWITCH's socket: cancel the originate if it is still
                    // ringing there.
                    let kill = format!(
                        "uuid_kill {} {}",
                        self.uuid,
                        HangupCause::OriginatorCancel.as_str()
                    );
                    if let Err(e) = gw.inbound.api(&kill).await {
                        debug!(error = %e, "uuid_kill after Skype hangup");
                    }
                }
                if !matches!(outcome, SkypeOutcome::Finished) {
                    if let Some(id) = self.skype_call {
                        reject(&self.ctx.session, id);
                    }
                }
                if !self.answered {
                    gw.registry.count_failure(self.id(), self.direction);
                }
                info!(outcome = ?outcome, cause = cause.as_str(), "call ended");
            }
            Ended::BySwitch | Ended::Shutdown => {
                if let Some(id) = self.skype_call {
                    reject(&self.ctx.session, id);
                }
                if let Some(channel) = &self.channel {
                    if !channel.is_hung_up() {
                        let _ = channel.hangup(HangupCause::NormalClearing.as_str()).await;
                    }
                }
                if !self.answered {
                    gw.registry.count_failure(self.id(), self.direction);
                }
                info!(by = ?ended, "call ended");
            }
        }
        if let Some(key) = self.ring_claim.take() {
            gw.ring_claims.remove(&key);
        }
        gw.pending_inbound.remove(&self.uuid);
        gw.live_calls.remove(&self.uuid);
        gw.registry.release(self.id());
        self.report_done().await;
    }
}

/// How long a failed audio setup waits for the Skype call's own ending: a caller hanging up
/// right after the answer makes the audio ALTERs fail (ERROR 559) just before its
/// STATUS FINISHED arrives, and that is a normal hangup, not a client gone.
const ENDING_GRACE: Duration = Duration::from_millis(500);

/// Why the call ended after its audio ports could not be set up: the ending Skype reports
/// within [`ENDING_GRACE`], else the client is taken to be gone.
async fn ending_after_media_failure(inbox: &mut mpsc::Receiver<CallInput>) -> SkypeOutcome {
    let reported = async {
        while let Some(input) = inbox.recv().await {
            let incoming = match input.into_skype("while its audio was set up") {
                Ok(incoming) => incoming,
                Err(outcome) => return outcome,
            };
            if let Progress::Status(status) = progress(&incoming) {
                if let Some(outcome) = terminal_outcome(&status, None) {
                    info!(%status, "the Skype call ended while its audio was set up");
                    return outcome;
                }
            }
        }
        SkypeOutcome::ClientGone
    };
    tokio::time::timeout(ENDING_GRACE, reported)
        .await
        .unwrap_or(SkypeOutcome::ClientGone)
}

/// What the status of a Skype call means for the call task.
enum Progress {
    Status(CallStatus),
    Dtmf(String),
    FailureReason(u32),
    Other,
}

fn progress(input: &Incoming) -> Progress {
    match &input.notification {
        Notification::Call { event, .. } => match event {
            CallEvent::Status(status) => Progress::Status(status.clone()),
            // A tagged DTMF is the echo of our own `SET CALL .. DTMF`, not a remote key press.
            CallEvent::Dtmf(d) if input.tag.is_none() => Progress::Dtmf(d.clone()),
            CallEvent::FailureReason(n) => Progress::FailureReason(*n),
            CallEvent::VmDuration(0) => Progress::Status(CallStatus::InProgress),
            _ => Progress::Other,
        },
        _ => Progress::Other,
    }
}

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

/// The outbound call task.
pub(crate) async fn run_outbound(call: Outbound) {
    let Outbound {
        ctx,
        destination,
        channel,
        reservation,
        mut inbox,
    } = call;
    let uuid = channel.uuid().to_string();
    let span = tracing::info_span!("call", interface = %ctx.cfg.name, call = %uuid);
    async move {
        reservation.commit();
        let (control, events) = channel.into_parts();
        let mut call = Call::new(ctx, Direction::Outbound, uuid.clone());
        call.channel = Some(control);
        call.channel_events = Some(events);
        call.ctx.gw.registry.set_uuid(call.id(), &uuid);
        call.ctx
            .gw
            .registry
            .count_call(call.id(), Direction::Outbound);
        call.set_state(IfaceState::Dialing, CallFlow::Unplaced);
        call.publish(destination.as_str());
        let (user, name) = (call.ctx.cfg.skype_user.clone(), call.ctx.cfg.name.clone());
        call.set_channel_var("skype_user", &user).await;
        call.set_channel_var("skypopen_interface", &name).await;
        let ended = outbound_flow(&mut call, destination, &mut inbox).await;
        call.finish(ended).await;
    }
    .instrument(span)
    .await
}

async fn outbound_flow(
    call: &mut Call,
    destination: Handle,
    inbox: &mut mpsc::Receiver<CallInput>,
) -> Ended {
    let placed = call.ctx.session.request(Command::Call(destination.clone()));
    let id = tokio::select! {
        placed = placed => match placed {
            Ok(Notification::Call { id, .. }) => id,
            Ok(other) => {
                warn!(reply = %other, "unexpected reply to CALL");
                return Ended::BySkype(SkypeOutcome::Failed { reason: None });
            }
            Err(SessionError::Rejected { code: 92, text }) => {
                info!(%destination, %text, "Skype does not know the destination");
                return Ended::BySkype(SkypeOutcome::UnknownIdentity);
            }
            Err(SessionError::Rejected { code: 36, .. }) => return Ended::BySkype(SkypeOutcome::NotOnline),
            Err(e @ (SessionError::ClientGone { .. } | SessionError::NotReady { .. } | SessionError::Stopped)) => {
                warn!(error = %e, "cannot place the call");
                return Ended::BySkype(SkypeOutcome::ClientGone);
            }
            Err(e) => {
                warn!(error = %e, "cannot place the call");
                return Ended::BySkype(SkypeOutcome::Failed { reason: None });
            }
        },
        _ = hung_up(call.channel.as_ref()) => return Ended::BySwitch,
    };
    call.skype_call = Some(id);
    call.publish(destination.as_str());
    call.set_channel_var("skypopen_call_id", &id.to_string())
        .await;
    info!(skype_call = %id, "Skype call placed");

    let setup = tokio::time::sleep(call.ctx.gw.settings.calls.setup_timeout());
    tokio::pin!(setup);
    let mut ringing_since: Option<Instant> = None;
    loop {
        let ring_deadline = ringing_since.map(|t| t + call.ctx.gw.settings.calls.ring_timeout());
        tokio::select! {
            _ = call.ctx.gw.cancel.cancelled() => return Ended::Shutdown,
            _ = &mut setup, if ringing_since.is_none() && !call.answered => {
                warn!("no progress from Skype");
                return Ended::BySkype(SkypeOutcome::SetupTimeout);
            }
            _ = sleep_until_opt(ring_deadline), if !call.answered => {
                info!("the far end did not answer within calls.ring_timeout_secs");
                return Ended::BySkype(SkypeOutcome::RingTimeout);
            }
            input = inbox.recv() => {
                let Some(input) = input else { return Ended::Shutdown };
                match input.into_skype("mid-call") {
                    Err(outcome) => return Ended::BySkype(outcome),
                    Ok(incoming) => match progress(&incoming) {
                        Progress::Status(status) => {
                            if let Some(ended) = on_outbound_status(call, status, &mut ringing_since).await {
                                // Only a failed audio setup reports ClientGone here.
                                return match ended {
                                    Ended::BySkype(SkypeOutcome::ClientGone) => {
                                        Ended::BySkype(ending_after_media_failure(inbox).await)
                                    }
                                    other => other,
                                };
                            }
                        }
                        detail => call.take_detail(detail),
                    },
                }
            }
            event = next_channel_event(&mut call.channel_events) => {
                if let Some(ended) = on_channel_event(call, event) {
                    return ended;
                }
            }
            event = media_event(&mut call.media) => {
                if let Some(ended) = on_media_event(call, event) {
                    return ended;
                }
            }
        }
    }
}

async fn on_outbound_status(
    call: &mut Call,
    status: CallStatus,
    ringing_since: &mut Option<Instant>,
) -> Option<Ended> {
    debug!(%status, "Skype call status");
    if let Some(outcome) = terminal_outcome(&status, call.failure_reason) {
        let outcome = refine_pstn_failure(call, outcome).await;
        return Some(Ended::BySkype(outcome));
    }
    let channel = call.channel.clone()?;
    match status {
        CallStatus::Routing => call.set_state(IfaceState::Dialing, CallFlow::Routing),
        CallStatus::Ringing => {
            call.set_state(IfaceState::Ringing, CallFlow::Ringing);
            ringing_since.get_or_insert_with(Instant::now);
            if let Err(e) = channel.execute("ring_ready", None).await {
                debug!(error = %e, "ring_ready");
            }
        }
        CallStatus::EarlyMedia => {
            call.set_state(IfaceState::Dialing, CallFlow::EarlyMedia);
            ringing_since.get_or_insert_with(Instant::now);
            if let Err(e) = channel.execute("pre_answer", None).await {
                debug!(error = %e, "pre_answer");
            }
            if let Err(e) = call.open_media().await {
                warn!(error = %e, "early media not available");
            }
        }
        CallStatus::InProgress if !call.answered => {
            call.set_state(IfaceState::Up, CallFlow::InProgress);
            call.answered = true;
            if let Err(e) = channel
                .execute_wait("answer", None, Duration::from_secs(5))
                .await
            {
                warn!(error = %e, "cannot answer the channel");
                return Some(Ended::BySwitch);
            }
            if let Err(e) = call.open_media().await {
                warn!(error = %e, "no audio path");
                return Some(Ended::BySkype(SkypeOutcome::ClientGone));
            }
            info!("call up");
        }
        CallStatus::InProgress => {
            call.set_state(IfaceState::Up, CallFlow::InProgress);
            info!("call resumed");
        }
        CallStatus::RemoteHold | CallStatus::OnHold => {
            call.set_state(IfaceState::Up, CallFlow::RemoteHold);
            info!("call on hold; keeping it and its audio ports");
        }
        CallStatus::LocalHold => {
            call.set_state(IfaceState::Up, CallFlow::RemoteHold);
            info!("call put on hold by the client; keeping it");
        }
        other => debug!(status = %other, "status ignored"),
    }
    None
}

/// A SkypeOut call that FAILED with no specific reason: the client tells no "no credit"
/// code, so the balance decides whether the call was barred for want of credit.
async fn refine_pstn_failure(call: &Call, outcome: SkypeOutcome) -> SkypeOutcome {
    let SkypeOutcome::Failed { reason } = outcome else {
        return outcome;
    };
    let is_pstn = call
        .ctx
        .gw
        .live_calls
        .get(&call.uuid)
        .is_some_and(|c| c.remote.starts_with('+'));
    if !is_pstn || !matches!(reason, None | Some(FAILURE_MISC)) {
        return outcome;
    }
    let balance = call
        .ctx
        .session
        .request(Command::GetProfile(ProfileProperty::PstnBalance))
        .await
        .ok()
        .and_then(|reply| reply.pstn_balance());
    match balance {
        Some(cents) if cents <= 0 => {
            info!(balance = cents, "SkypeOut call failed without credit");
            SkypeOutcome::NoCredit
        }
        _ => outcome,
    }
}

/// The FreeSWITCH side's events during the call.
fn on_channel_event(call: &mut Call, event: Option<ChannelEvent>) -> Option<Ended> {
    match event {
        None => {
            call.channel_events = None;
            Some(Ended::BySwitch)
        }
        Some(ChannelEvent::Dtmf { digit, .. }) => {
            call.dtmf_to_skype(digit);
            None
        }
        Some(ChannelEvent::Hangup { cause }) | Some(ChannelEvent::HangupComplete { cause }) => {
            info!(%cause, "FreeSWITCH side hung up");
            Some(Ended::BySwitch)
        }
        Some(ChannelEvent::Disconnected { reason }) => {
            info!(%reason, "FreeSWITCH socket closed");
            call.channel_events = None;
            Some(Ended::BySwitch)
        }
        Some(ChannelEvent::Custom { subclass, .. }) => {
            debug!(%subclass, "channel custom event");
            None
        }
        Some(_) => None,
    }
}

/// The audio path's events during the call: it closing ends the call as a client gone.
fn on_media_event(call: &Call, event: MediaEvent) -> Option<Ended> {
    match event {
        MediaEvent::Stopped(why) => {
            warn!(%why, "audio path closed");
            Some(Ended::BySkype(SkypeOutcome::ClientGone))
        }
        MediaEvent::InbandDigit(digit) => {
            info!(%digit, "in-band DTMF from Skype");
            call.dtmf_to_switch(&digit.to_string());
            None
        }
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

async fn hung_up(channel: Option<&ChannelControl>) {
    match channel {
        Some(c) => {
            c.hungup().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// The inbound call task.
pub(crate) async fn run_inbound(call: Inbound) {
    let Inbound {
        ctx,
        skype_call,
        reservation,
        mut inbox,
    } = call;
    let uuid = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!("call", interface = %ctx.cfg.name, call = %uuid, skype_call = %skype_call);
    async move {
        let mut call = Call::new(ctx, Direction::Inbound, uuid);
        call.skype_call = Some(skype_call);
        let ended = match inbound_flow(&mut call, reservation, &mut inbox).await {
            Some(ended) => ended,
            None => {
                // Another interface of the same account took this ring.
                call.ctx.gw.registry.release(call.id());
                call.report_done().await;
                return;
            }
        };
        call.finish(ended).await;
    }
    .instrument(span)
    .await
}

async fn partner(session: &SessionHandle, id: CallId, property: CallProperty) -> Option<String> {
    match session.request(Command::GetCall { id, property }).await {
        Ok(Notification::Call {
            event: CallEvent::PartnerHandle(v) | CallEvent::PartnerDispname(v),
            ..
        }) => Some(v),
        Ok(other) => {
            debug!(reply = %other, "unexpected reply");
            None
        }
        Err(e) => {
            warn!(error = %e, "cannot read the caller");
            None
        }
    }
}

/// `None` when another interface of the same account already took this ring.
async fn inbound_flow(
    call: &mut Call,
    reservation: Reservation,
    inbox: &mut mpsc::Receiver<CallInput>,
) -> Option<Ended> {
    let id = call.skype_call?;
    let session = call.ctx.session.clone();
    let caller = partner(&session, id, CallProperty::PartnerHandle)
        .await
        .unwrap_or_default();
    let caller_name = partner(&session, id, CallProperty::PartnerDispname)
        .await
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| caller.clone());
    let gw = call.ctx.gw.clone();
    let key = (
        call.ctx.cfg.skype_user.to_ascii_lowercase(),
        caller.to_ascii_lowercase(),
    );
    match gw.ring_claims.entry(key.clone()) {
        dashmap::mapref::entry::Entry::Occupied(taken) => {
            debug!(%caller, by = taken.get(), "ring already taken by a sibling interface");
            drop(reservation);
            return None;
        }
        dashmap::mapref::entry::Entry::Vacant(free) => {
            free.insert(call.id());
        }
    }
    call.ring_claim = Some(key);
    reservation.commit();
    let cfg = call.ctx.cfg.clone();
    gw.registry.set_uuid(call.id(), &call.uuid);
    gw.registry.count_call(call.id(), Direction::Inbound);
    call.set_state(IfaceState::Prering, CallFlow::Ringing);
    call.publish(&caller);
    info!(%caller, name = %caller_name, destination = %cfg.destination, "incoming Skype call");

    let initial = gw
        .transfers
        .remove(&cfg.id)
        .map(|(_, note)| note)
        .filter(|n| {
            n.at.elapsed() < Duration::from_secs(30) && n.caller.eq_ignore_ascii_case(&caller)
        });
    let (socket_tx, socket_rx) = oneshot::channel();
    gw.pending_inbound.insert(call.uuid.clone(), socket_tx);
    let media_mode = gw.settings.switch.media;
    let socket_addr = gw.settings.switch.outbound_listen.to_string();
    let args = InboundOriginate {
        uuid: &call.uuid,
        caller_handle: &caller,
        caller_name: &caller_name,
        interface: &cfg.name,
        skype_call_id: &id.to_string(),
        skype_user: &cfg.skype_user,
        initial_skype_user: initial.as_ref().map(|n| n.initial_skype_user.as_str()),
        destination: &cfg.destination,
        context: &cfg.context,
        dialplan: &cfg.dialplan,
        socket_addr: &socket_addr,
        send_silence_when_idle: media_mode == MediaMode::AudioFork,
        extra: &[],
    }
    .arguments();
    let inbound = gw.inbound.clone();
    let originate_timeout = gw.settings.calls.originate_timeout();
    let originate = async move {
        inbound
            .bgapi(&format!("originate {args}"), originate_timeout)
            .await
    };
    tokio::pin!(originate);
    let mut originate_done = false;
    tokio::pin!(socket_rx);
    let deadline = tokio::time::sleep(originate_timeout);
    tokio::pin!(deadline);

    // Ringing: wait for FreeSWITCH to answer (the socket connects back).
    let channel = loop {
        tokio::select! {
            _ = gw.cancel.cancelled() => return Some(Ended::Shutdown),
            _ = &mut deadline => {
                warn!("FreeSWITCH did not answer in time");
                return Some(Ended::BySkype(SkypeOutcome::RingTimeout));
            }
            result = &mut originate, if !originate_done => {
                originate_done = true;
                match result {
                    Ok(reply) if reply.trim_start().starts_with("+OK") => debug!("originate succeeded"),
                    Ok(reply) => {
                        warn!(reply = %reply.trim(), "originate failed; rejecting the Skype call");
                        return Some(Ended::BySwitch);
                    }
                    Err(e) => {
                        warn!(error = %e, "originate failed; rejecting the Skype call");
                        return Some(Ended::BySwitch);
                    }
                }
            }
            channel = &mut socket_rx => match channel {
                Ok(channel) => break channel,
                Err(_) => return Some(Ended::Shutdown),
            },
            input = inbox.recv() => match input.map(|i| i.into_skype("while ringing")) {
                None => return Some(Ended::Shutdown),
                Some(Err(outcome)) => return Some(Ended::BySkype(outcome)),
                Some(Ok(incoming)) => match progress(&incoming) {
                    Progress::Status(status) => {
                        if terminal_outcome(&status, None).is_some() {
                            info!(%status, "Skype caller gave up before FreeSWITCH answered");
                            return Some(Ended::BySkype(SkypeOutcome::Cancelled));
                        }
                    }
                    Progress::Dtmf(_) | Progress::FailureReason(_) | Progress::Other => {}
                },
            },
        }
    };
    let (control, events) = channel.into_parts();
    call.channel = Some(control.clone());
    call.channel_events = Some(events);
    call.publish(&caller);
    info!("FreeSWITCH answered; answering the Skype call");
    call.set_state(IfaceState::PreAnswer, CallFlow::Ringing);
    if let Err(e) = session
        .request(Command::AlterCall {
            id,
            action: CallAction::Answer,
        })
        .await
    {
        warn!(error = %e, "the client did not answer the call");
        return Some(Ended::BySkype(match e {
            SessionError::ClientGone { .. } | SessionError::Stopped => SkypeOutcome::ClientGone,
            _ => SkypeOutcome::Cancelled,
        }));
    }
    let answer_deadline = tokio::time::sleep(gw.settings.calls.answer_timeout());
    tokio::pin!(answer_deadline);
    loop {
        tokio::select! {
            _ = gw.cancel.cancelled() => return Some(Ended::Shutdown),
            _ = &mut answer_deadline, if !call.answered => {
                warn!("Skype call did not go in progress after ANSWER");
                return Some(Ended::BySkype(SkypeOutcome::SetupTimeout));
            }
            input = inbox.recv() => match input.map(|i| i.into_skype("mid-call")) {
                None => return Some(Ended::Shutdown),
                Some(Err(outcome)) => return Some(Ended::BySkype(outcome)),
                Some(Ok(incoming)) => match progress(&incoming) {
                    Progress::Status(status) => {
                        if let Some(outcome) = terminal_outcome(&status, None) {
                            return Some(Ended::BySkype(if call.answered { outcome } else { SkypeOutcome::Cancelled }));
                        }
                        match status {
                            CallStatus::InProgress if !call.answered => {
                                call.answered = true;
                                call.set_state(IfaceState::Up, CallFlow::InProgress);
                                if let Err(e) = call.open_media().await {
                                    warn!(error = %e, "no audio path");
                                    return Some(Ended::BySkype(ending_after_media_failure(inbox).await));
                                }
                                info!("call up");
                            }
                            CallStatus::InProgress => call.set_state(IfaceState::Up, CallFlow::InProgress),
                            CallStatus::RemoteHold | CallStatus::LocalHold | CallStatus::OnHold => {
                                call.set_state(IfaceState::Up, CallFlow::RemoteHold);
                                info!("call on hold; keeping it and its audio ports");
                            }
                            other => debug!(status = %other, "status"),
                        }
                    }
                    detail => call.take_detail(detail),
                },
            },
            event = next_channel_event(&mut call.channel_events) => {
                if let Some(ended) = on_channel_event(call, event) {
                    return Some(ended);
                }
            }
            event = media_event(&mut call.media) => {
                if let Some(ended) = on_media_event(call, event) {
                    return Some(ended);
                }
            }
        }
    }
}
