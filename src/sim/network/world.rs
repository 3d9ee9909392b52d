//! The network's control plane: sessions, calls and their scripted progress, transfers, hold,
//! DTMF, contact requests. One mutex guards it; nothing awaits while holding it, and every
//! message to a client is a non-blocking send to that client's bounded queue.
//!
//! Call ids: the network numbers calls, and each client's side of a call (a "leg") gets its
//! own id from the same counter. A client shows its leg id as the API call id, so two clients
//! of one account ringing for the same call show different ids, as real instances did.
//!
//! `CALL <id> FAILUREREASON <n>` codes used (the Skype API's table):
//! 1 miscellaneous error — also used for a SkypeOut call without credit (the public table has
//! no dedicated code for it); 2 user or phone number does not exist; 3 user is offline
//! (an account with no client logged in); 6 no common codec (`failbot`, after ringing).

use super::chats::Chats;
use super::media::{self, Behaviour, CallMedia, Generator, MediaSide, Recording};
use super::NetworkConfig;
use crate::sim::accounts::{self, Bot, Identity};
use crate::sim::proto::{AudioSource, ChatMessageInfo, Down, Fault, Frame, Reply};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

pub const FAILURE_MISC: u32 = 1;
pub const FAILURE_USER_OFFLINE: u32 = 3;
pub const FAILURE_NO_COMMON_CODEC: u32 = 6;

const ERROR_UNKNOWN_IDENTITY: &str = "ERROR 92 CALL: Unrecognised identity";
const ERROR_ACTION_FAILED: &str = "ERROR 559 CALL: Action failed";
const ERROR_TRANSFER_FAILED: &str = "ERROR 592 ALTER CALL: Transferring failed";
/// Finished calls kept for `ctl heard`.
const HISTORY: usize = 64;

#[derive(Debug)]
pub struct Session {
    pub user: String,
    pub tx: mpsc::Sender<Frame>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    Routing,
    Ringing,
    EarlyMedia,
    InProgress,
    Ended,
}

#[derive(Debug, Clone)]
struct Side {
    handle: String,
    identity: Identity,
    /// The client leg on this side once known: (leg id, session id).
    leg: Option<(u64, u64)>,
}

#[derive(Debug)]
struct Call {
    id: u64,
    caller: Side,
    callee: Side,
    state: CallState,
    /// Legs ringing on the callee side: (leg, session).
    ringing: Vec<(u64, u64)>,
    /// What a remote caller says once the call is up.
    caller_source: AudioSource,
    hangup_after: Option<f64>,
    started: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Routing,
    Ring,
    Answer,
    Busy,
    Refuse,
    Fail,
    RingTimeout,
    HangupAfter,
}

pub struct Network {
    pub config: NetworkConfig,
    world: Mutex<World>,
    /// Live call audio by call id; the audio path touches only this, never the world lock.
    media: dashmap::DashMap<u64, Arc<CallMedia>>,
}

#[derive(Default)]
struct World {
    next_id: u64,
    sessions: HashMap<u64, Session>,
    calls: HashMap<u64, Call>,
    /// Leg id → call id.
    legs: HashMap<u64, u64>,
    finished: VecDeque<Arc<CallMedia>>,
    chats: Chats,
    /// Contact requests not yet delivered (the account was offline): user → (from, text).
    pending_auth: HashMap<String, Vec<(String, String)>>,
    authorized: HashMap<String, HashSet<String>>,
}

impl World {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn send(&self, session: u64, msg: &Down) {
        if let Some(s) = self.sessions.get(&session) {
            match Frame::json(msg) {
                Ok(frame) => {
                    if s.tx.try_send(frame).is_err() {
                        warn!(session, user = %s.user, "client queue full or closed, message dropped");
                    }
                }
                Err(e) => warn!(error = %e, "cannot encode message"),
            }
        }
    }

    fn status(&self, side: &Side, status: &str) {
        if let Some((leg, session)) = side.leg {
            self.send(
                session,
                &Down::Status {
                    call: leg,
                    status: status.into(),
                },
            );
        }
    }

    fn sessions_of(&self, user: &str) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.user.eq_ignore_ascii_case(user))
            .map(|(id, _)| *id)
            .collect();
        v.sort_unstable();
        v
    }
}

impl Network {
    pub fn new(config: NetworkConfig) -> Arc<Network> {
        Arc::new(Network {
            config,
            world: Mutex::new(World {
                next_id: 100,
                ..World::default()
            }),
            media: dashmap::DashMap::new(),
        })
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        media::lock(&self.world)
    }

    // ----- sessions -------------------------------------------------------------------

    /// Registers a logged-in client; returns its session id, or why it was refused.
    pub fn login(&self, user: &str, tx: mpsc::Sender<Frame>) -> Result<u64, String> {
        let Some(account) = accounts::account(user) else {
            return Err(format!("no account named {user:?}"));
        };
        let mut w = self.world();
        let id = w.id();
        w.sessions.insert(
            id,
            Session {
                user: account.handle.to_string(),
                tx,
            },
        );
        w.send(
            id,
            &Down::Welcome {
                user: account.handle.into(),
                display_name: account.display_name.into(),
                balance: account.balance,
                currency: account.currency.into(),
            },
        );
        let pending = w.pending_auth.remove(account.handle).unwrap_or_default();
        for (from, text) in pending {
            w.send(id, &Down::AuthRequest { from, text });
        }
        info!(session = id, user = account.handle, "client logged in");
        Ok(id)
    }

    /// A client connection closed: its calls end as if it hung up.
    pub fn logout(self: &Arc<Self>, session: u64) {
        let legs: Vec<u64> = {
            let mut w = self.world();
            let user = w.sessions.remove(&session).map(|s| s.user);
            info!(
                session,
                user = user.as_deref().unwrap_or("?"),
                "client logged out"
            );
            w.calls
                .values()
                .flat_map(|c| {
                    c.ringing
                        .iter()
                        .copied()
                        .chain(c.caller.leg)
                        .chain(c.callee.leg)
                        .filter(|(_, s)| *s == session)
                        .map(|(leg, _)| leg)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        for leg in legs {
            let _ = self.hangup(session, leg);
        }
    }

    pub fn session_user(&self, session: u64) -> Option<String> {
        self.world().sessions.get(&session).map(|s| s.user.clone())
    }

    // ----- calls from clients -----------------------------------------------------------

    pub fn dial(self: &Arc<Self>, session: u64, target: &str) -> Reply {
        let mut w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return Reply::Error {
                line: "ERROR 36 Not online".into(),
            };
        };
        let target = target.trim();
        let Some(identity) = accounts::identify(target) else {
            info!(user = %user, target, "dial to unknown identity");
            return Reply::Error {
                line: ERROR_UNKNOWN_IDENTITY.into(),
            };
        };
        let handle = accounts::canonical(target).unwrap_or_else(|| target.to_string());
        let id = w.id();
        let leg = w.id();
        w.legs.insert(leg, id);
        w.calls.insert(
            id,
            Call {
                id,
                caller: Side {
                    handle: user.clone(),
                    identity: Identity::User,
                    leg: Some((leg, session)),
                },
                callee: Side {
                    handle: handle.clone(),
                    identity,
                    leg: None,
                },
                state: CallState::Routing,
                ringing: Vec::new(),
                caller_source: AudioSource::Silence,
                hangup_after: None,
                started: Instant::now(),
            },
        );
        info!(call = id, leg, from = %user, to = %handle, "call placed");
        drop(w);
        self.schedule(id, self.config.routing_delay, Step::Routing);
        Reply::Dialled { call: leg }
    }

    fn schedule(self: &Arc<Self>, call: u64, after: Duration, step: Step) {
        let net = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            net.advance(call, step);
        });
    }

    fn advance(self: &Arc<Self>, call_id: u64, step: Step) {
        let mut w = self.world();
        let Some(call) = w.calls.get(&call_id) else {
            return;
        };
        if call.state == CallState::Ended {
            return;
        }
        debug!(call = call_id, ?step, state = ?call.state, "call step");
        let caller = call.caller.clone();
        let callee = call.callee.clone();
        match step {
            Step::Routing => {
                w.status(&caller, "ROUTING");
                if callee.identity == Identity::Pstn {
                    let funded = accounts::account(&caller.handle).is_none_or(|a| a.balance > 0);
                    if !funded {
                        self.fail(&mut w, call_id, FAILURE_MISC);
                        return;
                    }
                    if let Some(c) = w.calls.get_mut(&call_id) {
                        c.state = CallState::EarlyMedia;
                    }
                    w.status(&caller, "EARLYMEDIA");
                    self.start_media(&w, call_id, Behaviour::Source(Generator::ringback()));
                    drop(w);
                    self.schedule(call_id, self.config.pstn_answer_delay, Step::Answer);
                } else {
                    drop(w);
                    self.schedule(call_id, self.config.ring_delay, Step::Ring);
                }
            }
            Step::Ring => {
                if callee.identity == Identity::User {
                    let targets: Vec<u64> = w
                        .sessions_of(&callee.handle)
                        .into_iter()
                        .filter(|s| Some(*s) != caller.leg.map(|(_, s)| s))
                        .collect();
                    if targets.is_empty() {
                        self.fail(&mut w, call_id, FAILURE_USER_OFFLINE);
                        return;
                    }
                    self.ring_sessions(&mut w, call_id, &targets, &caller.handle);
                }
                if let Some(c) = w.calls.get_mut(&call_id) {
                    c.state = CallState::Ringing;
                }
                w.status(&caller, "RINGING");
                drop(w);
                let next = match callee.identity {
                    Identity::Bot(Bot::Echo) => Some((self.config.bot_answer_delay, Step::Answer)),
                    Identity::Bot(Bot::InstantEcho) => {
                        Some((Duration::from_millis(50), Step::Answer))
                    }
                    Identity::Bot(Bot::Busy) => Some((self.config.bot_answer_delay, Step::Busy)),
                    Identity::Bot(Bot::Refuse) => {
                        Some((self.config.bot_answer_delay, Step::Refuse))
                    }
                    Identity::Bot(Bot::Fail) => Some((self.config.bot_answer_delay, Step::Fail)),
                    _ => None,
                };
                if let Some((after, step)) = next {
                    self.schedule(call_id, after, step);
                }
                self.schedule(call_id, self.config.ring_timeout, Step::RingTimeout);
            }
            Step::Answer => {
                if !matches!(
                    call.state,
                    CallState::Ringing | CallState::EarlyMedia | CallState::Routing
                ) {
                    return;
                }
                let behaviour = match callee.identity {
                    Identity::Bot(Bot::InstantEcho) => Behaviour::InstantEcho,
                    Identity::Remote => match Generator::from_source(&call.caller_source) {
                        Ok(g) => Behaviour::Source(g),
                        Err(e) => {
                            warn!(call = call_id, error = %e, "bad audio source, silence instead");
                            Behaviour::Source(Generator::Silence)
                        }
                    },
                    _ => Behaviour::Echo {
                        delay: self.config.echo_delay,
                        queue: VecDeque::new(),
                    },
                };
                self.connect(&mut w, call_id, behaviour);
            }
            Step::Busy => {
                w.status(&caller, "BUSY");
                self.end(&mut w, call_id);
            }
            Step::Refuse => {
                w.status(&caller, "REFUSED");
                self.end(&mut w, call_id);
            }
            Step::Fail => self.fail(&mut w, call_id, FAILURE_NO_COMMON_CODEC),
            Step::RingTimeout => {
                if !matches!(call.state, CallState::Ringing | CallState::Routing) {
                    return;
                }
                info!(call = call_id, "no answer");
                for (leg, session) in call.ringing.clone() {
                    w.send(
                        session,
                        &Down::Status {
                            call: leg,
                            status: "MISSED".into(),
                        },
                    );
                }
                w.status(&caller, "MISSED");
                self.end(&mut w, call_id);
            }
            Step::HangupAfter => {
                if call.state == CallState::InProgress {
                    w.status(&caller, "FINISHED");
                    w.status(&callee, "FINISHED");
                    self.end(&mut w, call_id);
                }
            }
        }
    }

    fn ring_sessions(&self, w: &mut World, call_id: u64, sessions: &[u64], from: &str) {
        let call_type = if accounts::is_pstn(from) {
            "INCOMING_PSTN"
        } else {
            "INCOMING_P2P"
        };
        for &session in sessions {
            let leg = w.id();
            w.legs.insert(leg, call_id);
            if let Some(c) = w.calls.get_mut(&call_id) {
                c.ringing.push((leg, session));
            }
            w.send(
                session,
                &Down::Incoming {
                    call: leg,
                    partner_handle: from.to_string(),
                    partner_dispname: accounts::display_name(from),
                    call_type: call_type.into(),
                },
            );
            info!(call = call_id, leg, session, "ringing");
        }
    }

    fn fail(&self, w: &mut World, call_id: u64, reason: u32) {
        let Some(call) = w.calls.get(&call_id) else {
            return;
        };
        let caller = call.caller.clone();
        if let Some((leg, session)) = caller.leg {
            w.send(
                session,
                &Down::FailureReason {
                    call: leg,
                    code: reason,
                },
            );
        }
        w.status(&caller, "FAILED");
        info!(call = call_id, reason, "call failed");
        self.end(w, call_id);
    }

    /// Both sides are up: INPROGRESS to the client legs, audio flowing.
    fn connect(self: &Arc<Self>, w: &mut World, call_id: u64, callee_behaviour: Behaviour) {
        let Some(call) = w.calls.get_mut(&call_id) else {
            return;
        };
        call.state = CallState::InProgress;
        let (caller, callee) = (call.caller.clone(), call.callee.clone());
        let hangup_after = call.hangup_after;
        if let Some(existing) = self.media.get(&call_id).map(|m| Arc::clone(&m)) {
            existing.set_behaviour(1, callee_behaviour);
        } else {
            self.start_media(w, call_id, callee_behaviour);
        }
        w.status(&caller, "INPROGRESS");
        w.status(&callee, "INPROGRESS");
        info!(call = call_id, "call in progress");
        if let Some(seconds) = hangup_after {
            self.schedule(
                call_id,
                Duration::from_secs_f64(seconds.max(0.0)),
                Step::HangupAfter,
            );
        }
    }

    fn side_media(&self, w: &World, side: &Side, fallback: Behaviour) -> MediaSide {
        let (session, behaviour) = match side.leg {
            Some((leg, session)) => match w.sessions.get(&session) {
                Some(s) => (
                    Some(session),
                    Behaviour::Client {
                        leg,
                        sink: s.tx.clone(),
                    },
                ),
                None => (Some(session), fallback),
            },
            None => (None, fallback),
        };
        MediaSide {
            handle: side.handle.clone(),
            session,
            behaviour: Mutex::new(behaviour),
            recording: Mutex::new(Recording::default()),
        }
    }

    fn start_media(self: &Arc<Self>, w: &World, call_id: u64, callee_behaviour: Behaviour) {
        let Some(call) = w.calls.get(&call_id) else {
            return;
        };
        let caller_fallback = match Generator::from_source(&call.caller_source) {
            Ok(g) => Behaviour::Source(g),
            Err(e) => {
                warn!(call = call_id, error = %e, "bad audio source, silence instead");
                Behaviour::Source(Generator::Silence)
            }
        };
        let sides = [
            self.side_media(w, &call.caller, caller_fallback),
            self.side_media(w, &call.callee, callee_behaviour),
        ];
        let m = Arc::new(CallMedia::new(call_id, sides));
        self.media.insert(call_id, Arc::clone(&m));
        // The clock always runs: sides can change behaviour later (ringback → echo).
        tokio::spawn(media::run_clock(m));
    }

    fn end(&self, w: &mut World, call_id: u64) {
        let Some(call) = w.calls.get_mut(&call_id) else {
            return;
        };
        call.state = CallState::Ended;
        let legs: Vec<u64> = call
            .ringing
            .iter()
            .map(|(l, _)| *l)
            .chain(call.caller.leg.map(|(l, _)| l))
            .chain(call.callee.leg.map(|(l, _)| l))
            .collect();
        let secs = call.started.elapsed().as_secs_f64();
        for leg in legs {
            w.legs.remove(&leg);
        }
        w.calls.remove(&call_id);
        if let Some((_, m)) = self.media.remove(&call_id) {
            m.ended.store(true, Ordering::Relaxed);
            w.finished.push_back(m);
            while w.finished.len() > HISTORY {
                w.finished.pop_front();
            }
        }
        info!(call = call_id, seconds = secs, "call ended");
    }

    /// Finds the call and which role `leg` has in it.
    fn locate<'w>(&self, w: &'w World, leg: u64) -> Option<(u64, Role, &'w Call)> {
        let call_id = *w.legs.get(&leg)?;
        let call = w.calls.get(&call_id)?;
        let role = if call.caller.leg.map(|(l, _)| l) == Some(leg) {
            Role::Caller
        } else if call.callee.leg.map(|(l, _)| l) == Some(leg) {
            Role::Callee
        } else if call.ringing.iter().any(|(l, _)| *l == leg) {
            Role::Ringing
        } else {
            return None;
        };
        Some((call_id, role, call))
    }

    pub fn answer(self: &Arc<Self>, session: u64, leg: u64) -> Reply {
        let mut w = self.world();
        let call_id = match self.locate(&w, leg) {
            Some((id, Role::Ringing, call)) if call.state == CallState::Ringing => id,
            _ => return action_failed(),
        };
        let Some(call) = w.calls.get_mut(&call_id) else {
            return action_failed();
        };
        let others: Vec<(u64, u64)> = call
            .ringing
            .iter()
            .copied()
            .filter(|(l, _)| *l != leg)
            .collect();
        call.ringing.clear();
        call.callee.leg = Some((leg, session));
        for (other_leg, other_session) in others {
            w.legs.remove(&other_leg);
            w.send(
                other_session,
                &Down::Status {
                    call: other_leg,
                    status: "MISSED".into(),
                },
            );
        }
        self.connect_answered(&mut w, call_id);
        Reply::Ok
    }

    /// A client answered: the callee side is that client.
    fn connect_answered(self: &Arc<Self>, w: &mut World, call_id: u64) {
        let Some(call) = w.calls.get(&call_id) else {
            return;
        };
        let callee = call.callee.clone();
        let behaviour = match callee
            .leg
            .and_then(|(leg, s)| w.sessions.get(&s).map(|x| (leg, x)))
        {
            Some((leg, s)) => Behaviour::Client {
                leg,
                sink: s.tx.clone(),
            },
            None => Behaviour::Source(Generator::Silence),
        };
        self.connect(w, call_id, behaviour);
    }

    /// Ends a call on behalf of the client owning `leg`; returns the status that client
    /// reports for itself.
    pub fn hangup(self: &Arc<Self>, _session: u64, leg: u64) -> Reply {
        let mut w = self.world();
        let Some((call_id, role, call)) = self.locate(&w, leg) else {
            return action_failed();
        };
        let (caller, callee, state) = (call.caller.clone(), call.callee.clone(), call.state);
        let ringing = call.ringing.clone();
        let answered = state == CallState::InProgress;
        let own = match role {
            Role::Caller if !answered => {
                for (l, s) in &ringing {
                    w.send(
                        *s,
                        &Down::Status {
                            call: *l,
                            status: "MISSED".into(),
                        },
                    );
                }
                "CANCELLED"
            }
            Role::Ringing => {
                let remaining: Vec<(u64, u64)> =
                    ringing.iter().copied().filter(|(l, _)| *l != leg).collect();
                if !remaining.is_empty() {
                    // Another instance of the account still rings: only this one declines.
                    w.legs.remove(&leg);
                    if let Some(c) = w.calls.get_mut(&call_id) {
                        c.ringing = remaining;
                    }
                    return Reply::Ended {
                        status: "REFUSED".into(),
                    };
                }
                w.status(&caller, "REFUSED");
                "REFUSED"
            }
            Role::Caller => {
                w.status(&callee, "FINISHED");
                "FINISHED"
            }
            Role::Callee => {
                w.status(&caller, "FINISHED");
                "FINISHED"
            }
        };
        info!(call = call_id, leg, status = own, "hung up by client");
        self.end(&mut w, call_id);
        Reply::Ended { status: own.into() }
    }

    pub fn transfer(self: &Arc<Self>, leg: u64, target: &str) -> Reply {
        let mut w = self.world();
        let failed = Reply::Error {
            line: ERROR_TRANSFER_FAILED.into(),
        };
        let Some((call_id, Role::Ringing, _)) = self.locate(&w, leg) else {
            return failed;
        };
        let Some(session) = w
            .calls
            .get(&call_id)
            .and_then(|c| c.ringing.iter().find(|(l, _)| *l == leg).map(|(_, s)| *s))
        else {
            return failed;
        };
        if accounts::identify(target) != Some(Identity::User) {
            return failed;
        }
        let targets = w.sessions_of(target);
        if targets.is_empty() {
            return failed;
        }
        let Some(caller) = w.calls.get(&call_id).map(|c| c.caller.handle.clone()) else {
            return failed;
        };
        for status in ["TRANSFERRING", "TRANSFERRED"] {
            w.send(
                session,
                &Down::Status {
                    call: leg,
                    status: status.into(),
                },
            );
        }
        w.legs.remove(&leg);
        if let Some(c) = w.calls.get_mut(&call_id) {
            c.ringing.retain(|(l, _)| *l != leg);
            c.callee.handle = target.to_ascii_lowercase();
        }
        info!(call = call_id, leg, target, "call transferred");
        self.ring_sessions(&mut w, call_id, &targets, &caller);
        Reply::Ok
    }

    pub fn hold(&self, leg: u64, on: bool) -> Reply {
        let w = self.world();
        let (call_id, role, call) = match self.locate(&w, leg) {
            Some(found @ (_, _, call)) if call.state == CallState::InProgress => found,
            _ => return action_failed(),
        };
        let other = if role == Role::Caller {
            &call.callee
        } else {
            &call.caller
        };
        w.status(other, if on { "REMOTEHOLD" } else { "INPROGRESS" });
        if let Some(m) = self.media.get(&call_id) {
            m.held.store(on, Ordering::Relaxed);
        }
        Reply::Ok
    }

    pub fn dtmf(&self, leg: u64, digit: char) -> Reply {
        let w = self.world();
        let Some((call_id, role, call)) = self.locate(&w, leg) else {
            return action_failed();
        };
        let (other, other_index) = if role == Role::Caller {
            (&call.callee, 1)
        } else {
            (&call.caller, 0)
        };
        if let Some((l, s)) = other.leg {
            w.send(s, &Down::Dtmf { call: l, digit });
        }
        if let Some(m) = self.media.get(&call_id) {
            media::lock(&m.sides[other_index].recording)
                .signalled_dtmf
                .push(digit);
        }
        Reply::Ok
    }

    /// A frame of audio from a client's leg.
    pub fn audio(&self, session: u64, leg: u64, pcm: bytes::Bytes) {
        let call_id = match self.world().legs.get(&leg) {
            Some(c) => *c,
            None => return,
        };
        if let Some(m) = self.media.get(&call_id).map(|m| Arc::clone(&m)) {
            m.from_client(session, pcm);
        }
    }

    // ----- chats and contacts -------------------------------------------------------

    pub fn chat_create(&self, session: u64, partner: &str) -> Reply {
        let mut w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        let partner = accounts::canonical(partner).unwrap_or_else(|| partner.to_string());
        Reply::Chat {
            chat: w.chats.dialog(&user, &partner),
        }
    }

    pub fn chat_partner(&self, session: u64, chat: &str) -> Reply {
        let w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        match w.chats.partner(chat, &user) {
            Some(handle) => Reply::Partner { handle },
            None => Reply::Error {
                line: "ERROR 105 Invalid chat name".into(),
            },
        }
    }

    pub fn chat_send(&self, session: u64, chat: &str, body: &str) -> Reply {
        let mut w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        let id = w.id();
        match w.chats.post(id, chat, &user, body) {
            Some((_, to)) => {
                self.deliver_chat(&w, id, &to);
                Reply::ChatSent { message: id }
            }
            None => Reply::Error {
                line: "ERROR 105 Invalid chat name".into(),
            },
        }
    }

    fn deliver_chat(&self, w: &World, message: u64, to: &str) -> usize {
        let sessions = w.sessions_of(to);
        for s in &sessions {
            w.send(*s, &Down::ChatReceived { message });
        }
        sessions.len()
    }

    pub fn chat_get(&self, message: u64) -> Reply {
        match self.world().chats.get(message) {
            Some(m) => Reply::Message { message: m.clone() },
            None => Reply::Error {
                line: "ERROR 14 Invalid message id".into(),
            },
        }
    }

    pub fn chat_seen(&self, session: u64, message: u64) -> Reply {
        let mut w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        if w.chats.get(message).is_none() {
            return Reply::Error {
                line: "ERROR 14 Invalid message id".into(),
            };
        }
        w.chats.seen(&user, message);
        Reply::Ok
    }

    pub fn missed_chats(&self, session: u64) -> Reply {
        let w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        Reply::Ids {
            ids: w.chats.unseen(&user),
        }
    }

    pub fn authorize(&self, session: u64, handle: &str) -> Reply {
        let mut w = self.world();
        let Some(user) = w.sessions.get(&session).map(|s| s.user.clone()) else {
            return not_online();
        };
        w.authorized
            .entry(user)
            .or_default()
            .insert(handle.to_ascii_lowercase());
        Reply::Ok
    }

    pub fn user_info(&self, handle: &str) -> Reply {
        let w = self.world();
        Reply::User {
            handle: handle.to_string(),
            display_name: accounts::display_name(handle),
            online: !w.sessions_of(handle).is_empty()
                || matches!(accounts::identify(handle), Some(Identity::Bot(_))),
        }
    }

    // ----- ctl ------------------------------------------------------------------------

    pub fn ctl_call(
        self: &Arc<Self>,
        from: &str,
        to: &str,
        source: AudioSource,
        seconds: Option<f64>,
    ) -> Result<Value, String> {
        let from_identity = accounts::identify(from).ok_or(format!("unknown party {from:?}"))?;
        if from_identity == Identity::User {
            return Err(format!(
                "{from} is an account clients log in as; calls from it are placed by its client"
            ));
        }
        if accounts::identify(to) != Some(Identity::User) {
            return Err(format!("{to:?} is not an account clients log in as"));
        }
        Generator::from_source(&source)?;
        let mut w = self.world();
        let targets = w.sessions_of(to);
        if targets.is_empty() {
            return Err(format!("{to} has no client logged in"));
        }
        let from = accounts::canonical(from).unwrap_or_else(|| from.to_string());
        let id = w.id();
        w.calls.insert(
            id,
            Call {
                id,
                caller: Side {
                    handle: from.clone(),
                    identity: from_identity,
                    leg: None,
                },
                callee: Side {
                    handle: to.to_ascii_lowercase(),
                    identity: Identity::User,
                    leg: None,
                },
                state: CallState::Ringing,
                ringing: Vec::new(),
                caller_source: source,
                hangup_after: seconds,
                started: Instant::now(),
            },
        );
        self.ring_sessions(&mut w, id, &targets, &from);
        let legs: Vec<u64> = w
            .calls
            .get(&id)
            .map(|c| c.ringing.iter().map(|(l, _)| *l).collect())
            .unwrap_or_default();
        drop(w);
        self.schedule(id, self.config.ring_timeout, Step::RingTimeout);
        Ok(json!({"call": id, "from": from, "to": to, "legs": legs}))
    }

    /// A remote person answers a call a client placed to them.
    pub fn ctl_answer(self: &Arc<Self>, call: u64, source: AudioSource) -> Result<Value, String> {
        let generator = Generator::from_source(&source)?;
        let mut w = self.world();
        let c = w
            .calls
            .get_mut(&call)
            .ok_or(format!("no live call {call}"))?;
        if c.callee.identity != Identity::Remote || c.state != CallState::Ringing {
            return Err(format!(
                "call {call} is not ringing a remote party (state {:?})",
                c.state
            ));
        }
        c.caller_source = AudioSource::Silence;
        self.connect(&mut w, call, Behaviour::Source(generator));
        Ok(json!({"call": call, "status": "INPROGRESS"}))
    }

    pub fn ctl_refuse(&self, call: u64) -> Result<Value, String> {
        let mut w = self.world();
        let c = w.calls.get(&call).ok_or(format!("no live call {call}"))?;
        if c.callee.identity != Identity::Remote || c.state != CallState::Ringing {
            return Err(format!("call {call} is not ringing a remote party"));
        }
        let caller = c.caller.clone();
        w.status(&caller, "REFUSED");
        self.end(&mut w, call);
        Ok(json!({"call": call, "status": "REFUSED"}))
    }

    /// The remote side (or the network) ends a call.
    pub fn ctl_hangup(&self, call: u64) -> Result<Value, String> {
        let mut w = self.world();
        let c = w.calls.get(&call).ok_or(format!("no live call {call}"))?;
        let (caller, callee, ringing, state) = (
            c.caller.clone(),
            c.callee.clone(),
            c.ringing.clone(),
            c.state,
        );
        for (l, s) in ringing {
            w.send(
                s,
                &Down::Status {
                    call: l,
                    status: "MISSED".into(),
                },
            );
        }
        let status = if state == CallState::InProgress {
            "FINISHED"
        } else {
            "REFUSED"
        };
        w.status(&caller, status);
        w.status(&callee, "FINISHED");
        self.end(&mut w, call);
        Ok(json!({"call": call, "status": status}))
    }

    pub fn ctl_dtmf(&self, call: u64, digits: &str, inband: bool) -> Result<Value, String> {
        let w = self.world();
        let c = w.calls.get(&call).ok_or(format!("no live call {call}"))?;
        if inband {
            let m = self
                .media
                .get(&call)
                .ok_or(format!("call {call} has no audio yet"))?;
            let side = m
                .sides
                .iter()
                .position(|s| s.session.is_none())
                .ok_or("both sides are clients; in-band DTMF comes from their audio")?;
            m.set_behaviour(
                side,
                Behaviour::Source(Generator::Dtmf(crate::media::dsp::DtmfSequence::new(
                    digits, 100, 100,
                ))),
            );
        } else {
            for side in [&c.caller, &c.callee] {
                if let Some((l, s)) = side.leg {
                    for digit in digits.chars() {
                        w.send(s, &Down::Dtmf { call: l, digit });
                    }
                }
            }
        }
        Ok(json!({"call": call, "digits": digits, "inband": inband}))
    }

    pub fn ctl_hold(&self, call: u64, on: bool) -> Result<Value, String> {
        let w = self.world();
        let c = w.calls.get(&call).ok_or(format!("no live call {call}"))?;
        if c.state != CallState::InProgress {
            return Err(format!("call {call} is not in progress"));
        }
        let status = if on { "REMOTEHOLD" } else { "INPROGRESS" };
        w.status(&c.caller, status);
        w.status(&c.callee, status);
        if let Some(m) = self.media.get(&call) {
            m.held.store(on, Ordering::Relaxed);
        }
        Ok(json!({"call": call, "status": status}))
    }

    /// What `party` received on its latest call (or on `call`).
    pub fn ctl_heard(&self, party: &str, call: Option<u64>) -> Result<(Value, Vec<i16>), String> {
        let w = self.world();
        let mut candidates: Vec<Arc<CallMedia>> = w.finished.iter().cloned().collect();
        candidates.extend(self.media.iter().map(|m| Arc::clone(m.value())));
        drop(w);
        let found = candidates
            .into_iter()
            .filter(|m| call.is_none_or(|c| m.call == c))
            .filter_map(|m| m.side_of_handle(party).map(|i| (m, i)))
            .max_by_key(|(m, _)| m.call)
            .ok_or(format!("{party} has no recorded call"))?;
        let (m, side) = found;
        let rec = media::lock(&m.sides[side].recording);
        let summary = crate::media::dsp::summarize(&rec.samples);
        let value = json!({
            "call": m.call,
            "party": party,
            "live": !m.ended.load(Ordering::Relaxed),
            "seconds": summary.seconds,
            "active_seconds": summary.active_seconds,
            "frequency_hz": summary.frequency_hz,
            "rms_dbfs": summary.rms_dbfs,
            "dtmf": summary.dtmf,
            "dtmf_signalled": rec.signalled_dtmf,
        });
        Ok((value, rec.samples.clone()))
    }

    pub fn ctl_chat(&self, from: &str, to: &str, text: &str) -> Result<Value, String> {
        let from = accounts::canonical(from).ok_or(format!("unknown party {from:?}"))?;
        let to = accounts::canonical(to).ok_or(format!("unknown party {to:?}"))?;
        let mut w = self.world();
        let chat = w.chats.dialog(&from, &to);
        let id = w.id();
        w.chats
            .post(id, &chat, &from, text)
            .ok_or("cannot post to that chat")?;
        let delivered = self.deliver_chat(&w, id, &to);
        Ok(json!({"message": id, "chat": chat, "delivered_to": delivered}))
    }

    pub fn ctl_inbox(&self, party: &str) -> Result<Value, String> {
        let w = self.world();
        let msgs: Vec<ChatMessageInfo> = w.chats.inbox(party);
        Ok(json!({"party": party, "messages": msgs}))
    }

    pub fn ctl_auth_request(&self, from: &str, to: &str, text: &str) -> Result<Value, String> {
        let from = accounts::canonical(from).ok_or(format!("unknown party {from:?}"))?;
        if accounts::identify(to) != Some(Identity::User) {
            return Err(format!("{to:?} is not an account clients log in as"));
        }
        let to = to.to_ascii_lowercase();
        let mut w = self.world();
        let sessions = w.sessions_of(&to);
        if sessions.is_empty() {
            w.pending_auth
                .entry(to.clone())
                .or_default()
                .push((from.clone(), text.to_string()));
        }
        for s in &sessions {
            w.send(
                *s,
                &Down::AuthRequest {
                    from: from.clone(),
                    text: text.to_string(),
                },
            );
        }
        Ok(json!({"from": from, "to": to, "delivered_to": sessions.len()}))
    }

    pub fn ctl_contacts(&self, user: &str) -> Result<Value, String> {
        let w = self.world();
        let mut list: Vec<String> = w
            .authorized
            .get(&user.to_ascii_lowercase())
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        list.sort();
        Ok(json!({"user": user, "authorized": list}))
    }

    pub fn ctl_calls(&self) -> Value {
        let w = self.world();
        let mut calls: Vec<&Call> = w.calls.values().collect();
        calls.sort_by_key(|c| c.id);
        let list: Vec<Value> = calls
            .iter()
            .map(|c| {
                json!({
                    "call": c.id,
                    "from": c.caller.handle,
                    "to": c.callee.handle,
                    "state": format!("{:?}", c.state).to_uppercase(),
                    "caller_leg": c.caller.leg.map(|(l, _)| l),
                    "callee_leg": c.callee.leg.map(|(l, _)| l),
                    "ringing_legs": c.ringing.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
                    "seconds": c.started.elapsed().as_secs_f64(),
                })
            })
            .collect();
        json!({ "calls": list })
    }

    pub fn ctl_status(&self) -> Value {
        let w = self.world();
        let mut online: HashMap<String, usize> = HashMap::new();
        for s in w.sessions.values() {
            *online.entry(s.user.clone()).or_default() += 1;
        }
        json!({"online": online, "live_calls": w.calls.len()})
    }

    pub fn ctl_balance(&self, user: Option<&str>) -> Result<Value, String> {
        let list: Vec<Value> = accounts::accounts()
            .iter()
            .filter(|a| user.is_none_or(|u| a.handle.eq_ignore_ascii_case(u)))
            .map(|a| json!({"user": a.handle, "balance": a.balance, "currency": a.currency}))
            .collect();
        if list.is_empty() {
            return Err(format!("no account {:?}", user.unwrap_or_default()));
        }
        Ok(json!({ "balances": list }))
    }

    pub fn ctl_fault(&self, user: &str, fault: Fault) -> Result<Value, String> {
        let w = self.world();
        let sessions = w.sessions_of(user);
        if sessions.is_empty() {
            return Err(format!("{user} has no client logged in"));
        }
        for s in &sessions {
            w.send(
                *s,
                &Down::Fault {
                    fault: fault.clone(),
                },
            );
        }
        Ok(json!({"user": user, "clients": sessions.len()}))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Caller,
    Callee,
    Ringing,
}

fn action_failed() -> Reply {
    Reply::Error {
        line: ERROR_ACTION_FAILED.into(),
    }
}

fn not_online() -> Reply {
    Reply::Error {
        line: "ERROR 36 Not online".into(),
    }
}
