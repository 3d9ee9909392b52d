//! The machine's actions, carried out on the call's channel, its Skype session and the
//! gateway's shared state.

use super::{Background, Driver};
use crate::config::MediaMode;
use crate::gateway::call::machine::{Action, AnswerFailure, ChannelVar, Input, PlaceFailure};
use crate::gateway::call::CallDone;
use crate::gateway::media_path;
use crate::gateway::registry::Direction;
use crate::gateway::LiveCall;
use crate::skype::api::{CallAction, Command, Notification, ProfileProperty};
use crate::skype::session::SessionError;
use crate::switch::originate::InboundOriginate;
use crate::switch::HangupCause;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

/// Digits waiting to be sent to Skype on one call.
const DTMF_QUEUE: usize = 32;
/// How long the client may take to confirm a Skype hangup.
const SKYPE_HANGUP_WAIT: Duration = Duration::from_secs(2);
/// How long FreeSWITCH may take to confirm that it answered the channel.
const CHANNEL_ANSWER_WAIT: Duration = Duration::from_secs(5);

impl Driver {
    /// Does one action; the ones that ask something return the answer as the next input.
    pub(super) async fn perform(&mut self, action: Action) -> Option<Input> {
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
            Action::Ended(ended) => self.ended = Some(ended),
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
        self.contact_busy(true);
    }

    /// A contact in a call with this interface shows as on the phone, and as itself again
    /// when the call ends.
    fn contact_busy(&self, busy: bool) {
        let gw = &self.ctx.gw;
        let cfg = &self.ctx.cfg;
        if let Some(state) = gw.contacts.presence(cfg.id, &cfg.name, &self.remote, busy) {
            gw.presence.push(state);
        }
    }

    /// Channel variables as the original module set them (`skype_user`, ...), so the
    /// dialplan and CDRs can tell which account carried the call. Values come from our
    /// configuration or are numeric ids, never from Skype.
    async fn set_var(&self, var: ChannelVar) {
        let Some(channel) = &self.channel else { return };
        let (name, value) = match var {
            ChannelVar::SkypeUser => ("skype_user", self.ctx.cfg.skype_user.clone()),
            ChannelVar::Interface => ("skypopen_interface", self.ctx.cfg.name.clone()),
            ChannelVar::Host => ("skypopen_host", self.ctx.gw.settings.cluster.host.clone()),
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
                    host: &gw.settings.cluster.host,
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
    /// One sender per call keeps the digits in order: a task per digit let two `uuid_send_dtmf`
    /// race, and "45" arrived as "54".
    fn dtmf_to_switch(&mut self, digits: String) {
        let Some(channel) = self.channel.clone() else {
            return;
        };
        let queue = self.dtmf_in.get_or_insert_with(|| {
            let (tx, mut rx) = mpsc::channel::<String>(DTMF_QUEUE);
            self.ctx.gw.tasks.spawn(
                async move {
                    while let Some(digits) = rx.recv().await {
                        match channel.send_dtmf(&digits).await {
                            Ok(()) => debug!(%digits, "DTMF to FreeSWITCH"),
                            Err(e) => warn!(%digits, error = %e, "DTMF not delivered"),
                        }
                    }
                }
                .in_current_span(),
            );
            tx
        });
        if let Err(e) = queue.try_send(digits) {
            warn!(digits = %e.into_inner(), "DTMF to FreeSWITCH dropped: the channel is not keeping up");
        }
    }

    pub(super) fn bridged(&self) -> bool {
        self.channel.as_ref().is_some_and(|c| {
            c.data().variable("bridge_uuid").is_some() || c.data().variable("signal_bond").is_some()
        })
    }

    /// A per-call switch: the channel variable when the channel sets it, else the interface's
    /// setting. Booleans as the original read them: `true` or `1`.
    pub(super) fn flag(&self, name: &str, default: bool) -> bool {
        self.channel
            .as_ref()
            .and_then(|c| c.data().variable(name))
            .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
            .unwrap_or(default)
    }

    /// Gives everything the call held back and tells the interface it is free.
    pub(super) async fn finish(mut self) {
        let gw = self.ctx.gw.clone();
        if let Some(media) = self.media.take() {
            media.close(self.channel.as_ref()).await;
        }
        if let Some(caller) = self.caller.take() {
            gw.ring_claims.remove(&caller.claim);
            if let Some(claim) = caller.cluster_claim {
                gw.cluster.release(claim).await;
            }
        }
        gw.pending_inbound.remove(&self.uuid);
        if gw.live_calls.remove(&self.uuid).is_some() {
            self.contact_busy(false);
        }
        if let Some(ended) = self.ended {
            let direction = self.direction.label();
            gw.metrics.call_ended(direction, ended.cause().as_str());
        }
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
