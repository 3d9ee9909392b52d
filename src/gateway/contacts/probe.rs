//! Answers mod_sofia's `PRESENCE_PROBE`s: when a SIP phone subscribes to `skype+<handle>@<host>`
//! the switch asks the producer of that protocol for the current state, so the phone shows it
//! at once rather than at the contact's next change.

use crate::gateway::Gateway;
use crate::switch::requests::SwitchRequest;
use tracing::debug;

/// Serves probes until the gateway stops.
pub async fn answer_probes(gw: Gateway) {
    let mut requests = gw.switch.presence_requests();
    while let Some(request) = requests.next(&gw.cancel, "presence probes").await {
        let SwitchRequest::PresenceProbe { handle } = request else {
            continue;
        };
        let busy = gw
            .live_calls
            .iter()
            .any(|call| call.remote.eq_ignore_ascii_case(&handle));
        // The first interface (by id) that lists the contact speaks for it.
        let mut ids: Vec<u32> = gw.interfaces.iter().map(|e| *e.key()).collect();
        ids.sort_unstable();
        let state = ids.into_iter().find_map(|id| {
            let name = gw.interfaces.get(&id)?.cfg.name.clone();
            gw.contacts.presence(id, &name, &handle, busy)
        });
        match state {
            Some(state) => gw.presence.push(state),
            None => debug!(contact = %handle, "presence probe for no contact of ours"),
        }
    }
}
