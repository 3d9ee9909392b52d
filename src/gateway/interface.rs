//! One actor per interface: it owns the Skype session's event stream, keeps the registry's
//! view of the interface current, and routes every `CALL <id> ...` notification to the task of
//! the call with that id.

use super::call::{self, CallDone, CallInput};
use super::cluster::{ring_key, Subject, Verdict};
use super::contacts::{read_one, Change, PresenceState};
use super::registry::{IfaceState, Reservation};
use super::Gateway;
use crate::config::InterfaceConfig;
use crate::shutdown::CancellationToken;
use crate::skype::api::{
    CallAction, CallEvent, CallId, CallProperty, CallStatus, Command, ConnStatus, Handle, Incoming,
    Notification,
};
use crate::skype::session::{self, SessionConfig, SessionEvent, SessionHandle};
use crate::skype::x11;
use crate::switch::outbound::ChannelHandle;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, info, warn, Instrument};

/// Depth of each call's inbox of Skype notifications.
const CALL_INBOX: usize = 64;
/// How long one interface's transfer of a caller's ring keeps its siblings from transferring
/// their legs of the same ring.
const TRANSFER_DEDUPE: Duration = Duration::from_secs(2);
/// How long a busy interface waits for a sibling that is taking a ring to say whose.
const SIBLING_PATIENCE: Duration = Duration::from_secs(2);
/// How long a busy host lets a host with a free interface claim a ring first.
const OTHER_HOSTS_PATIENCE: Duration = Duration::from_millis(500);
/// A call that does not take a notification within this long is stuck; it loses it.
const FORWARD_PATIENCE: Duration = Duration::from_secs(1);

/// What other parts of the sidecar hold to reach an interface.
#[derive(Clone)]
pub struct InterfaceHandle {
    pub cfg: InterfaceConfig,
    pub session: SessionHandle,
    pub(crate) requests: mpsc::Sender<InterfaceRequest>,
    pub stop: CancellationToken,
}

pub(crate) enum InterfaceRequest {
    /// Place an outbound call on this interface (already reserved by the hunt or by name).
    PlaceCall {
        destination: Handle,
        channel: ChannelHandle,
        reservation: Reservation,
    },
}

struct Route {
    serial: u64,
    inbox: mpsc::Sender<CallInput>,
}

struct Actor {
    gw: Gateway,
    cfg: InterfaceConfig,
    session: SessionHandle,
    calls: HashMap<CallId, Route>,
    /// An outbound call whose `CALL` reply has not told its id yet.
    unbound: Option<Route>,
    next_serial: u64,
    done_tx: mpsc::Sender<CallDone>,
    chat: super::chat::InterfaceChat,
    stop: CancellationToken,
}

pub(crate) fn spawn(gw: Gateway, cfg: InterfaceConfig) -> InterfaceHandle {
    let stop = gw.cancel.child_token();
    let link = x11::spawn_controller_link(&cfg.x11_display, stop.clone());
    let session = session::spawn(SessionConfig::for_interface(&cfg), link, stop.clone());
    let (requests, requests_rx) = mpsc::channel(16);
    let (done_tx, done_rx) = mpsc::channel(16);
    let handle = InterfaceHandle {
        cfg: cfg.clone(),
        session: session.handle.clone(),
        requests,
        stop: stop.clone(),
    };
    let span = tracing::info_span!("interface", interface = %cfg.name);
    let chat = super::chat::InterfaceChat::spawn(
        gw.clone(),
        cfg.clone(),
        session.handle.clone(),
        stop.clone(),
    );
    let gw_tasks = gw.tasks.clone();
    let actor = Actor {
        gw,
        cfg,
        session: session.handle,
        calls: HashMap::new(),
        unbound: None,
        next_serial: 0,
        done_tx,
        chat,
        stop,
    };
    gw_tasks.spawn(
        actor
            .run(session.events, requests_rx, done_rx)
            .instrument(span),
    );
    handle
}

impl Actor {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<SessionEvent>,
        mut requests: mpsc::Receiver<InterfaceRequest>,
        mut done: mpsc::Receiver<CallDone>,
    ) {
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => break,
                event = events.recv() => match event {
                    Some(event) => self.on_session_event(event).await,
                    None => break,
                },
                Some(request) = requests.recv() => self.on_request(request),
                Some(CallDone { serial }) = done.recv() => self.forget(serial),
            }
        }
        self.gw.registry.set_available(self.cfg.id, false);
        info!("interface stopped");
    }

    fn forget(&mut self, serial: u64) {
        self.calls.retain(|_, route| route.serial != serial);
        if self.unbound.as_ref().is_some_and(|r| r.serial == serial) {
            self.unbound = None;
        }
    }

    fn new_route(&mut self) -> (Route, mpsc::Receiver<CallInput>, u64) {
        self.next_serial += 1;
        let (inbox, rx) = mpsc::channel(CALL_INBOX);
        (
            Route {
                serial: self.next_serial,
                inbox,
            },
            rx,
            self.next_serial,
        )
    }

    fn on_request(&mut self, request: InterfaceRequest) {
        match request {
            InterfaceRequest::PlaceCall {
                destination,
                channel,
                reservation,
            } => {
                let (route, inbox, serial) = self.new_route();
                self.unbound = Some(route);
                self.gw.call_tasks.spawn(call::run_outbound(call::Outbound {
                    ctx: self.call_context(serial),
                    destination,
                    channel,
                    reservation,
                    inbox,
                }));
            }
        }
    }

    fn call_context(&self, serial: u64) -> call::CallContext {
        call::CallContext {
            gw: self.gw.clone(),
            cfg: self.cfg.clone(),
            session: self.session.clone(),
            serial,
            done: self.done_tx.clone(),
        }
    }

    async fn on_session_event(&mut self, event: SessionEvent) {
        let id = self.cfg.id;
        match event {
            SessionEvent::Ready { user } => {
                info!(skype_user = %user, "Skype client ready");
                self.gw.registry.set_available(id, true);
                self.chat.on_ready();
                self.gw.tasks.spawn(
                    super::contacts::refresh(
                        self.gw.clone(),
                        id,
                        self.cfg.name.clone(),
                        self.session.clone(),
                    )
                    .in_current_span(),
                );
            }
            SessionEvent::Lost { reason } => {
                warn!(%reason, "Skype client lost");
                self.gw.registry.set_available(id, false);
                self.broadcast(CallInput::ClientGone(reason)).await;
            }
            SessionEvent::Error(failure) => {
                warn!(error = %failure, "Skype client unusable");
                self.gw.registry.set_available(id, false);
            }
            SessionEvent::Notification(incoming) => self.on_notification(incoming).await,
        }
    }

    async fn broadcast(&mut self, input: CallInput) {
        let routes: Vec<mpsc::Sender<CallInput>> = self
            .calls
            .values()
            .chain(self.unbound.iter())
            .map(|r| r.inbox.clone())
            .collect();
        for inbox in routes {
            let _ = inbox.send_timeout(input.clone(), FORWARD_PATIENCE).await;
        }
    }

    async fn on_notification(&mut self, incoming: Incoming) {
        self.chat.on_notification(&incoming);
        if let Some(notice) = self
            .gw
            .chat
            .receipts
            .on_notification(self.cfg.id, &incoming)
        {
            self.gw.notices.post(notice);
        }
        match &incoming.notification {
            Notification::Call { id, event } => {
                let (id, event) = (*id, event.clone());
                self.on_call_notification(id, event, incoming).await;
            }
            Notification::ConnStatus(status) => {
                let online = *status == ConnStatus::Online;
                info!(connstatus = %status, "Skype network connection");
                self.gw.registry.set_available(self.cfg.id, online);
                if *status == ConnStatus::Offline {
                    self.broadcast(CallInput::NotOnline).await;
                }
            }
            Notification::Error { code: 36, text } => {
                warn!(%text, "Skype client is not online (ERROR 36)");
                self.gw.registry.set_available(self.cfg.id, false);
                self.broadcast(CallInput::NotOnline).await;
            }
            Notification::AuthRequest { handle, text } => {
                super::contacts::on_auth_request(&self.gw, &self.cfg, &self.session, handle, text);
            }
            // Untagged: the client's own news, not the answer to `sk balances`.
            Notification::Profile { .. } if incoming.tag.is_none() => {
                if let Some(balance) = incoming.notification.pstn_balance() {
                    info!(balance, "SkypeOut balance changed");
                    self.gw.notices.balance(&self.cfg, balance);
                }
            }
            Notification::User {
                handle,
                property,
                value,
            } => {
                match self
                    .gw
                    .contacts
                    .update(self.cfg.id, handle, property, value)
                {
                    Some(Change::Status { handle, status }) => {
                        // Debug: a list of thousands moving at once is no news per line.
                        debug!(contact = %handle, %status, "contact presence");
                        self.gw.presence.push(PresenceState {
                            login: self.cfg.name.clone(),
                            handle,
                            status,
                            busy: false,
                        });
                    }
                    Some(Change::Added { handle }) => {
                        info!(contact = %handle, "contact added");
                        self.gw.tasks.spawn(
                            read_one(
                                self.gw.clone(),
                                self.cfg.id,
                                self.cfg.name.clone(),
                                self.session.clone(),
                                handle,
                            )
                            .in_current_span(),
                        );
                    }
                    None => {}
                }
            }
            other => debug!(notification = %other, "notification"),
        }
    }

    async fn on_call_notification(&mut self, id: CallId, event: CallEvent, incoming: Incoming) {
        if let Some(route) = self.calls.get(&id) {
            let inbox = route.inbox.clone();
            if inbox
                .send_timeout(CallInput::Skype(incoming), FORWARD_PATIENCE)
                .await
                .is_err()
            {
                warn!(skype_call = %id, "call task did not take a notification");
            }
            return;
        }
        let status = match &event {
            CallEvent::Status(status) => status.clone(),
            _ => {
                debug!(skype_call = %id, %event, "notification for a call we do not track");
                return;
            }
        };
        match status {
            // Only our own `CALL` starts with these: bind the id to the waiting outbound call.
            CallStatus::Unplaced | CallStatus::Routing if self.unbound.is_some() => {
                if let Some(route) = self.unbound.take() {
                    let inbox = route.inbox.clone();
                    self.calls.insert(id, route);
                    let _ = inbox
                        .send_timeout(CallInput::Skype(incoming), FORWARD_PATIENCE)
                        .await;
                }
            }
            CallStatus::Ringing if incoming.tag.is_none() => self.on_ring(id),
            other => debug!(skype_call = %id, status = %other, "status of a call we do not track"),
        }
    }

    /// An incoming ring: take it if idle, else think about a transfer (spec 5.4).
    fn on_ring(&mut self, id: CallId) {
        if self.gw.is_draining() {
            info!(skype_call = %id, "incoming call refused: the sidecar is stopping");
            call::reject(&self.session, id);
            return;
        }
        match self.gw.registry.claim_for_ring(self.cfg.id) {
            Ok(reservation) => {
                let (route, inbox, serial) = self.new_route();
                self.calls.insert(id, route);
                self.gw.call_tasks.spawn(call::run_inbound(call::Inbound {
                    ctx: self.call_context(serial),
                    skype_call: id,
                    reservation,
                    inbox,
                }));
            }
            Err(busy) => {
                debug!(skype_call = %id, reason = %busy, "ring on a busy interface");
                self.gw.tasks.spawn(
                    transfer_or_reject(self.gw.clone(), self.cfg.clone(), self.session.clone(), id)
                        .in_current_span(),
                );
            }
        }
    }
}

/// With several hosts serving the account, one whose interface is free takes the ring; a busy
/// host waits that long first, then claims the ring in mod_hash so that only one host
/// transfers it. Unclaimed (FreeSWITCH cannot be asked): this host goes ahead.
async fn transfer_is_ours(gw: &Gateway, account_caller: &(String, String)) -> bool {
    if !gw.cluster.arbitrates() {
        return true;
    }
    tokio::time::sleep(OTHER_HOSTS_PATIENCE).await;
    let key = ring_key(&account_caller.0, &account_caller.1);
    match gw.cluster.claim(Subject::Ring, &key).await {
        Ok(Verdict::Mine(claim)) => {
            let cluster = gw.clone();
            gw.tasks.spawn(async move {
                tokio::time::sleep(TRANSFER_DEDUPE).await;
                cluster.cluster.release(claim).await;
            });
            true
        }
        Ok(Verdict::Theirs { .. } | Verdict::Done) => false,
        Err(e) => {
            warn!(error = %e, "cannot claim the ring in FreeSWITCH; transferring it here");
            true
        }
    }
}

/// A ring on a busy interface. If another interface of the same account is free it rings
/// there too and will take the call; otherwise hand it to a free interface of another account
/// with `ALTER CALL <id> TRANSFER`, or reject it.
async fn transfer_or_reject(gw: Gateway, cfg: InterfaceConfig, session: SessionHandle, id: CallId) {
    if gw
        .registry
        .by_user(&cfg.skype_user)
        .iter()
        .any(|s| s.id != cfg.id && s.is_free())
    {
        debug!(skype_call = %id, "a sibling interface of the same account is free; it takes the ring");
        return;
    }
    let caller = match session
        .request(Command::GetCall {
            id,
            property: CallProperty::PartnerHandle,
        })
        .await
    {
        Ok(Notification::Call {
            event: CallEvent::PartnerHandle(h),
            ..
        }) => h,
        Ok(_) | Err(_) => String::new(),
    };
    // A sibling that is free, or has just taken a ring, may be taking this one: wait until it
    // has told which caller it took before deciding (spec 5.4 rules 1 and 2).
    let account_caller = (
        cfg.skype_user.to_ascii_lowercase(),
        caller.to_ascii_lowercase(),
    );
    let patience = tokio::time::Instant::now() + SIBLING_PATIENCE;
    loop {
        if gw.ring_claims.contains_key(&account_caller) {
            debug!(skype_call = %id, %caller, "a sibling interface took this ring");
            return;
        }
        let siblings = gw.registry.by_user(&cfg.skype_user);
        let others = siblings.iter().filter(|s| s.id != cfg.id);
        let mut deciding = false;
        for sibling in others {
            if sibling.is_free() {
                debug!(skype_call = %id, "a sibling interface of the same account is free; it takes the ring");
                return;
            }
            deciding |= sibling.state == IfaceState::Prering;
        }
        if !deciding || tokio::time::Instant::now() >= patience {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every busy interface of the account sees its own leg of the same ring: one of them
    // transfers it, the others leave it (spec 5.4 rule 4).
    let marker = (
        format!("transfer:{}", cfg.skype_user.to_ascii_lowercase()),
        caller.to_ascii_lowercase(),
    );
    match gw.ring_claims.entry(marker.clone()) {
        dashmap::mapref::entry::Entry::Occupied(_) => {
            debug!(skype_call = %id, %caller, "a sibling interface is transferring this ring");
            return;
        }
        dashmap::mapref::entry::Entry::Vacant(free) => {
            free.insert(cfg.id);
        }
    }
    let claims = gw.clone();
    gw.tasks.spawn(async move {
        tokio::time::sleep(TRANSFER_DEDUPE).await;
        claims.ring_claims.remove(&marker);
    });
    if !transfer_is_ours(&gw, &account_caller).await {
        debug!(skype_call = %id, %caller, "another host takes or transfers this ring");
        return;
    }
    if let Ok(reservation) = gw.registry.hunt(Some(&cfg.skype_user)) {
        let Some(target) = gw.registry.get(reservation.id()) else {
            return;
        };
        match Handle::new(&target.skype_user) {
            Ok(user) => {
                gw.transfers.insert(
                    target.id,
                    super::TransferNote {
                        caller: caller.clone(),
                        initial_skype_user: cfg.skype_user.clone(),
                        at: std::time::Instant::now(),
                    },
                );
                info!(skype_call = %id, %caller, to = %target.name, skype_user = %target.skype_user,
                      "interface busy: transferring the incoming call");
                let _ = session.send(Command::AlterCall {
                    id,
                    action: CallAction::Transfer(user),
                });
            }
            Err(e) => warn!(error = %e, "cannot transfer to an invalid account name"),
        }
        // The transferred call arrives on the target as a normal ring.
        drop(reservation);
        return;
    }
    info!(skype_call = %id, %caller, "interface busy and nobody free to transfer to: rejecting");
    call::reject(&session, id);
}
