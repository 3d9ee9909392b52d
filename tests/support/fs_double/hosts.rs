//! The dialplan `skypopen hosts-dialplan` writes for several sidecar hosts, as FreeSWITCH runs
//! it: per host `unset skypopen_overflow_reason`, `set skypopen_step`, `socket <host> async
//! full`, then a re-hunt that ends a call its host took and lost (DESTINATION_OUT_OF_ORDER),
//! offers any other to the next host (handed back, or the host unreachable), and ends it with
//! NORMAL_CIRCUIT_CONGESTION after the last.

use super::socket::serve_socket;
use super::Core;
use std::net::SocketAddr;
use std::sync::Arc;

pub async fn run(core: Arc<Core>, uuid: String, hosts: Vec<SocketAddr>) {
    for (index, addr) in hosts.iter().enumerate() {
        let up = core.with(|st| {
            let Some(c) = st.channels.get_mut(&uuid) else {
                return false;
            };
            if !c.is_up() {
                return false;
            }
            c.unset_variable("skypopen_overflow_reason");
            c.set_variable("skypopen_step", (index + 2).to_string());
            c.set_variable("current_application_data", format!("{addr} async full"));
            c.set_variable("socket_host", addr.ip().to_string());
            true
        });
        if !up {
            return;
        }
        serve_socket(core.clone(), uuid.clone(), *addr, true, true, None).await;
        let (up, taken) = core.with(|st| {
            st.channels
                .get(&uuid)
                .map(|c| (c.is_up(), c.variable("skypopen_host").is_some()))
                .unwrap_or((false, false))
        });
        if !up {
            return;
        }
        if taken {
            core.with(|st| st.hangup(&uuid, "DESTINATION_OUT_OF_ORDER", false));
            return;
        }
    }
    core.with(|st| st.hangup(&uuid, "NORMAL_CIRCUIT_CONGESTION", false));
}
