//! The `skype-sim ctl` verbs: what a test or an operator makes the network's parties do.

use super::*;

impl Network {
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
        if w.blocks(&to, &from) {
            return Ok(json!({"from": from, "to": to, "delivered_to": 0, "blocked": true}));
        }
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

    /// `ctl balance [--user U [--set N]]`: reads balances, or sets one (the account's clients
    /// hear `PROFILE PSTN_BALANCE N`).
    pub fn ctl_balance(&self, user: Option<&str>, set: Option<i64>) -> Result<Value, String> {
        let mut w = self.world();
        if let Some(balance) = set {
            let account = user
                .and_then(accounts::account)
                .ok_or("--set needs --user naming an account")?;
            let handle = account.handle.to_string();
            w.balances.insert(handle.clone(), balance);
            w.tell_account(&handle, &Down::Balance { balance });
        }
        let list: Vec<Value> = accounts::accounts()
            .filter(|a| user.is_none_or(|u| a.handle.eq_ignore_ascii_case(u)))
            .map(|a| {
                let balance = w.balance_of(&a.handle).unwrap_or(a.balance);
                json!({"user": a.handle, "balance": balance, "currency": a.currency})
            })
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
