//! Calls from clients: dialling, the scripted progress of a call, answer, hangup, transfer,
//! hold, DTMF and the audio legs.

use super::*;

impl Network {
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

    pub(super) fn schedule(self: &Arc<Self>, call: u64, after: Duration, step: Step) {
        let net = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            net.advance(call, step);
        });
    }

    pub(super) fn advance(self: &Arc<Self>, call_id: u64, step: Step) {
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
                    let funded = w.balance_of(&caller.handle).is_none_or(|b| b > 0);
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

    pub(super) fn ring_sessions(&self, w: &mut World, call_id: u64, sessions: &[u64], from: &str) {
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

    pub(super) fn fail(&self, w: &mut World, call_id: u64, reason: u32) {
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
    pub(super) fn connect(
        self: &Arc<Self>,
        w: &mut World,
        call_id: u64,
        callee_behaviour: Behaviour,
    ) {
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

    pub(super) fn side_media(&self, w: &World, side: &Side, fallback: Behaviour) -> MediaSide {
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

    pub(super) fn start_media(
        self: &Arc<Self>,
        w: &World,
        call_id: u64,
        callee_behaviour: Behaviour,
    ) {
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

    pub(super) fn end(&self, w: &mut World, call_id: u64) {
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
    pub(super) fn locate<'w>(&self, w: &'w World, leg: u64) -> Option<(u64, Role, &'w Call)> {
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
    pub(super) fn connect_answered(self: &Arc<Self>, w: &mut World, call_id: u64) {
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
}
