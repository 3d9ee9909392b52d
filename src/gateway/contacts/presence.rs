//! Contacts' presence into FreeSWITCH as PRESENCE_IN events, with the headers its own presence
//! producers use, so a SIP phone subscribed to `<handle>@<domain>` follows a Skype contact.
//!
//! Changes are coalesced: the latest state per (interface, contact) waits in a map, and one
//! task fires at most [`PER_ROUND`] events every [`ROUND`], so a flood of changes costs at most
//! that many events and never queues behind calls or chats for long.

use crate::gateway::Gateway;
use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

const ROUND: Duration = Duration::from_millis(250);
const PER_ROUND: usize = 200;

/// What one contact looks like to FreeSWITCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceState {
    pub login: String,
    pub handle: String,
    /// The Skype ONLINESTATUS.
    pub status: String,
    /// In a call with one of our interfaces.
    pub busy: bool,
}

/// The `status` and `rpid` FreeSWITCH (mod_sofia's PIDF) understands for a Skype status:
/// "Unregistered" makes the tuple closed, "Available" open with no activity, and rpid `away`,
/// `busy` and `on-the-phone` are the activities phones show.
pub fn status_and_rpid(skype_status: &str, busy: bool) -> (&'static str, &'static str) {
    if busy {
        return ("On The Phone", "on-the-phone");
    }
    match skype_status {
        "ONLINE" | "SKYPEME" | "SKYPEOUT" => ("Available", "unknown"),
        "AWAY" => ("Away", "away"),
        "NA" => ("Not Available", "away"),
        "DND" => ("Do Not Disturb", "busy"),
        _ => ("Unregistered", "unknown"),
    }
}

/// The event's headers, in order.
pub fn headers(state: &PresenceState, domain: &str, host: &str) -> Vec<(&'static str, String)> {
    let (status, rpid) = status_and_rpid(&state.status, state.busy);
    let mut headers = vec![
        ("proto", "skype".to_string()),
        ("login", state.login.clone()),
        ("from", format!("{}@{domain}", state.handle)),
        ("status", status.to_string()),
        ("rpid", rpid.to_string()),
        ("event_type", "presence".to_string()),
        ("alt_event_type", "dialog".to_string()),
        ("event_count", "1".to_string()),
        ("skype_status", state.status.clone()),
        ("skypopen_host", host.to_string()),
    ];
    if state.busy {
        headers.push(("answer-state", "confirmed".to_string()));
    }
    headers
}

/// The states waiting to be fired, latest per (interface, contact).
#[derive(Default)]
pub struct PresenceQueue {
    waiting: DashMap<(String, String), PresenceState>,
    wake: Notify,
}

impl PresenceQueue {
    pub fn push(&self, state: PresenceState) {
        let key = (state.login.clone(), state.handle.to_ascii_lowercase());
        self.waiting.insert(key, state);
        self.wake.notify_one();
    }

    fn take(&self, at_most: usize) -> Vec<PresenceState> {
        let keys: Vec<(String, String)> = self
            .waiting
            .iter()
            .take(at_most)
            .map(|e| e.key().clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| self.waiting.remove(&k).map(|(_, v)| v))
            .collect()
    }
}

/// Fires what waits, round after round, until the gateway stops.
pub async fn publish(gw: Gateway, queue: Arc<PresenceQueue>) {
    let mut domain: Option<String> = gw.settings.presence.domain.clone();
    loop {
        tokio::select! {
            _ = gw.cancel.cancelled() => return,
            _ = queue.wake.notified() => {}
        }
        loop {
            let round = queue.take(PER_ROUND);
            if round.is_empty() {
                break;
            }
            let Some(domain) = presence_domain(&gw, &mut domain).await else {
                // FreeSWITCH unreachable: these are states, not messages; what is current
                // is sent again when the contacts are read after the reconnect.
                break;
            };
            for state in &round {
                let headers = headers(state, &domain, &gw.settings.cluster.host);
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
                if let Err(e) = gw.switch.fire("PRESENCE_IN", &headers, "").await {
                    debug!(contact = %state.handle, error = %e, "presence not sent");
                }
            }
            debug!(events = round.len(), "presence sent");
            tokio::select! {
                _ = gw.cancel.cancelled() => return,
                _ = tokio::time::sleep(ROUND) => {}
            }
        }
    }
}

/// `presence.domain`, else FreeSWITCH's own `domain` global variable (read once).
async fn presence_domain(gw: &Gateway, known: &mut Option<String>) -> Option<String> {
    if let Some(domain) = known {
        return Some(domain.clone());
    }
    match gw.switch.global_var("domain").await {
        Ok(Some(domain)) => {
            info!(%domain, "presence domain from FreeSWITCH");
            *known = Some(domain.clone());
            Some(domain)
        }
        Ok(None) => {
            warn!("FreeSWITCH has no `domain` variable; set [presence] domain");
            None
        }
        Err(e) => {
            debug!(error = %e, "cannot read FreeSWITCH's domain");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: &str, busy: bool) -> PresenceState {
        PresenceState {
            login: "interface1".into(),
            handle: "alice".into(),
            status: status.into(),
            busy,
        }
    }

    #[test]
    fn skype_statuses_become_what_phones_show() {
        assert_eq!(status_and_rpid("ONLINE", false), ("Available", "unknown"));
        assert_eq!(status_and_rpid("AWAY", false), ("Away", "away"));
        assert_eq!(status_and_rpid("DND", false), ("Do Not Disturb", "busy"));
        assert_eq!(status_and_rpid("OFFLINE", false).0, "Unregistered");
        assert_eq!(
            status_and_rpid("ONLINE", true),
            ("On The Phone", "on-the-phone")
        );
    }

    #[test]
    fn the_event_names_the_contact_at_the_domain() {
        let h = headers(&state("AWAY", false), "10.0.0.5", "box-a");
        let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
        assert_eq!(get("from"), Some("alice@10.0.0.5"));
        assert_eq!(get("login"), Some("interface1"));
        assert_eq!(get("proto"), Some("skype"));
        assert_eq!(get("answer-state"), None);
        let busy = headers(&state("ONLINE", true), "d", "h");
        assert!(busy.contains(&("answer-state", "confirmed".to_string())));
    }

    #[test]
    fn the_queue_keeps_the_latest_state_per_contact() {
        let q = PresenceQueue::default();
        for status in ["AWAY", "NA", "ONLINE"] {
            q.push(state(status, false));
        }
        let round = q.take(10);
        assert_eq!(round.len(), 1);
        assert_eq!(round[0].status, "ONLINE");
        assert!(q.take(10).is_empty());
    }
}
