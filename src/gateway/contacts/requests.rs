//! Contact requests (`USER <h> RECEIVEDAUTHREQUEST <text>`), handled as each interface's
//! `contact_requests` says: accepted (the original module's way), denied, or asked, which
//! keeps the request for `sk auth <interface> accept|deny <handle>`. Each one is told as a
//! `skypopen::contact_request` notice.
//!
//! A flood is cut per interface: a bucket of [`BURST`] requests refilled one per
//! [`REFILL`]; requests past it are left unanswered (as a person ignoring them would), not
//! told, and counted in one log line per [`FLOOD_LOG_EVERY`].

use crate::config::{ContactRequests, InterfaceConfig};
use crate::gateway::notices::{Notice, RequestHandling};
use crate::gateway::Gateway;
use crate::skype::api::{Command, Handle};
use crate::skype::session::SessionHandle;
use dashmap::DashMap;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tracing::{info, warn};

pub const BURST: f64 = 20.0;
pub const REFILL: Duration = Duration::from_secs(3);
const FLOOD_LOG_EVERY: Duration = Duration::from_secs(10);
/// Requests kept waiting for `sk auth` per interface; the oldest go first.
pub const ASKED_LIMIT: usize = 1000;
/// A request's text as kept for `sk auth` (the notice's body has up to 16 KiB).
const TEXT_KEPT: usize = 512;

#[derive(Debug, Clone)]
struct Asked {
    handle: String,
    text: String,
    at: Instant,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    dropped: u64,
    logged: Option<Instant>,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket {
            tokens: BURST,
            at: now,
            dropped: 0,
            logged: None,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() / REFILL.as_secs_f64();
        self.tokens = (self.tokens + refill).min(BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Per interface: the asked requests and the flood bucket.
#[derive(Default)]
pub struct AuthRequests {
    asked: DashMap<u32, BTreeMap<String, Asked>>,
    buckets: DashMap<u32, Bucket>,
}

impl AuthRequests {
    /// Room for one more request on `iface` now; false when flooded (and logs the flood).
    fn admit(&self, iface: &InterfaceConfig, now: Instant) -> bool {
        let mut bucket = self
            .buckets
            .entry(iface.id)
            .or_insert_with(|| Bucket::new(now));
        if bucket.take(now) {
            return true;
        }
        bucket.dropped += 1;
        let due = bucket
            .logged
            .is_none_or(|at| now.saturating_duration_since(at) >= FLOOD_LOG_EVERY);
        if due {
            warn!(interface = %iface.name, dropped = bucket.dropped,
                  "contact request flood: requests past the limit are left unanswered");
            bucket.logged = Some(now);
        }
        false
    }

    fn ask(&self, iface: u32, handle: &str, text: &str) {
        let mut asked = self.asked.entry(iface).or_default();
        asked.insert(
            handle.to_ascii_lowercase(),
            Asked {
                handle: handle.to_string(),
                text: text.chars().take(TEXT_KEPT).collect(),
                at: Instant::now(),
            },
        );
        while asked.len() > ASKED_LIMIT {
            let oldest = asked
                .iter()
                .min_by_key(|(_, a)| a.at)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(key) => asked.remove(&key),
                None => break,
            };
        }
    }

    fn answered(&self, iface: u32, handle: &str) -> Option<Asked> {
        self.asked
            .get_mut(&iface)
            .and_then(|mut asked| asked.remove(&handle.to_ascii_lowercase()))
    }

    /// Forgets an interface (removed).
    pub fn forget(&self, iface: u32) {
        self.asked.remove(&iface);
        self.buckets.remove(&iface);
    }

    /// How many requests wait for `sk auth` on `iface`.
    pub fn waiting(&self, iface: u32) -> usize {
        self.asked.get(&iface).map(|a| a.len()).unwrap_or(0)
    }
}

/// A request arrived on `cfg`'s client.
pub fn on_request(
    gw: &Gateway,
    cfg: &InterfaceConfig,
    session: &SessionHandle,
    handle: &str,
    text: &str,
) {
    if !gw.auth_requests.admit(cfg, Instant::now()) {
        return;
    }
    let Ok(valid) = Handle::new(handle) else {
        warn!(from = %handle.escape_debug(), "contact request from an invalid name; ignored");
        return;
    };
    let handling = match cfg.contact_requests {
        ContactRequests::Accept => answer(session, valid, true),
        ContactRequests::Deny => answer(session, valid, false),
        ContactRequests::Ask => {
            gw.auth_requests.ask(cfg.id, handle, text);
            RequestHandling::Asked
        }
    };
    info!(from = %handle, handling = handling.as_str(), "contact request");
    gw.notices.post(Notice::ContactRequest {
        interface: cfg.name.clone(),
        skype_user: cfg.skype_user.clone(),
        from: handle.to_string(),
        text: text.to_string(),
        handling,
    });
}

fn answer(session: &SessionHandle, handle: Handle, accept: bool) -> RequestHandling {
    let (command, handling) = if accept {
        (Command::AuthorizeUser(handle), RequestHandling::Accepted)
    } else {
        (Command::DenyUser(handle), RequestHandling::Denied)
    };
    if let Err(e) = session.send(command) {
        warn!(error = %e, "cannot answer a contact request");
    }
    handling
}

/// `sk auth <interface>`: the requests waiting; `sk auth <interface> accept|deny <handle>`.
pub async fn sk_auth(gw: &Gateway, words: &[&str]) -> String {
    const USAGE: &str = "-ERR Usage: sk auth interface_name [accept|deny skype_handle]\n";
    let Some(name) = words.first() else {
        return USAGE.to_string();
    };
    let Some(iface) = gw.interface_by_name(name) else {
        return format!("-ERR no interface named '{name}'\n");
    };
    match words[1..] {
        [] => {
            let mut out = String::new();
            let listed: Vec<Asked> = gw
                .auth_requests
                .asked
                .get(&iface.cfg.id)
                .map(|asked| asked.values().cloned().collect())
                .unwrap_or_default();
            for asked in &listed {
                let _ = writeln!(
                    out,
                    "{}\t{}s\t{}",
                    asked.handle,
                    asked.at.elapsed().as_secs(),
                    asked.text
                );
            }
            let _ = writeln!(out, "Total waiting: {}", listed.len());
            out
        }
        [verb, handle] => {
            let accept = match verb.to_ascii_lowercase().as_str() {
                "accept" => true,
                "deny" => false,
                _ => return USAGE.to_string(),
            };
            let valid = match Handle::new(handle) {
                Ok(valid) => valid,
                Err(e) => return format!("-ERR {e}\n"),
            };
            let asked = gw.auth_requests.answered(iface.cfg.id, handle);
            let handling = answer(&iface.session, valid, accept);
            info!(interface = %iface.cfg.name, from = %handle, handling = handling.as_str(),
                  "contact request answered by sk auth");
            gw.notices.post(Notice::ContactRequest {
                interface: iface.cfg.name.clone(),
                skype_user: iface.cfg.skype_user.clone(),
                from: handle.to_string(),
                text: asked.map(|a| a.text).unwrap_or_default(),
                handling,
            });
            format!("+OK {} {handle}\n", handling.as_str())
        }
        _ => USAGE.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_lets_a_burst_through_then_one_per_refill() {
        let start = Instant::now();
        let mut b = Bucket::new(start);
        let passed = (0..100).filter(|_| b.take(start)).count();
        assert_eq!(passed, BURST as usize);
        assert!(!b.take(start + REFILL / 2));
        assert!(b.take(start + REFILL * 2));
    }

    #[test]
    fn asked_requests_are_bounded_and_answered_once() {
        let r = AuthRequests::default();
        for i in 0..(ASKED_LIMIT + 5) {
            r.ask(1, &format!("user{i}"), "hi");
        }
        assert_eq!(r.waiting(1), ASKED_LIMIT);
        assert!(r.answered(1, "USER1004").is_some());
        assert!(r.answered(1, "user1004").is_none());
    }
}
