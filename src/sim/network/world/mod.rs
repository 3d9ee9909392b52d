//! The network's control plane: sessions, calls and their scripted progress, transfers, hold,
//! DTMF, contact requests. One mutex guards it; nothing awaits while holding it, and every
//! message to a client is a non-blocking send to that client's bounded queue.
//!
//! Here: the sessions and the shared model; `calls.rs`, `chatting.rs` and `control.rs` hold
//! what clients do with calls, what they do with chats and contacts, and the `ctl` verbs.
//!
//! Call ids: the network numbers calls, and each client's side of a call (a "leg") gets its
//! own id from the same counter. A client shows its leg id as the API call id, so two clients
//! of one account ringing for the same call show different ids, as real instances did.
//!
//! `CALL <id> FAILUREREASON <n>` codes used (the Skype API's table):
//! 1 miscellaneous error — also used for a SkypeOut call without credit (the public table has
//! no dedicated code for it); 2 user or phone number does not exist; 3 user is offline
//! (an account with no client logged in); 6 no common codec (`failbot`, after ringing).

mod calls;
mod chatting;
mod control;
mod crowd;
mod presence;
mod receipts;

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
    /// Remote people's statuses set by `ctl presence` (the rest follow `sim::presence`).
    statuses: HashMap<String, crate::sim::presence::OnlineStatus>,
    /// Contact lists that changed from the default, per account: handle → BUDDYSTATUS.
    contacts: HashMap<String, std::collections::BTreeMap<String, u8>>,
    /// Messages still SENDING, by recipient (see `receipts`).
    undelivered: HashMap<String, VecDeque<u64>>,
    /// Names each account has blocked.
    blocked: HashMap<String, HashSet<String>>,
    /// Balances `ctl balance --set` changed, per account (the rest are the accounts' own).
    balances: HashMap<String, i64>,
}

impl World {
    /// An account's SkypeOut balance; `None` for a name that is not an account.
    fn balance_of(&self, handle: &str) -> Option<i64> {
        let account = accounts::account(handle)?;
        Some(
            self.balances
                .get(account.handle.as_ref())
                .copied()
                .unwrap_or(account.balance),
        )
    }

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
                user: account.handle.to_string(),
                display_name: account.display_name.to_string(),
                balance: w.balance_of(&account.handle).unwrap_or(account.balance),
                currency: account.currency.into(),
            },
        );
        w.release_waiting(&account.handle);
        let pending = w
            .pending_auth
            .remove(account.handle.as_ref())
            .unwrap_or_default();
        for (from, text) in pending {
            w.send(id, &Down::AuthRequest { from, text });
        }
        info!(session = id, user = %account.handle, "client logged in");
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
