//! The double's media sides replaced by probes: a fork client or a `unicast` leg per channel.

use crate::support::fs_double::{ChannelMedia, ForkRequest, MediaHook, UnicastRequest};
use crate::support::probe::{run_fork_probe, run_udp_probe, ProbeRef};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

#[derive(Default)]
pub struct ProbeHook {
    pub probes: Mutex<HashMap<String, ProbeRef>>,
    pub errors: Mutex<Vec<String>>,
}

impl ProbeHook {
    pub fn add(&self, uuid: &str) -> ProbeRef {
        let probe = ProbeRef::default();
        self.probes
            .lock()
            .unwrap()
            .insert(uuid.to_string(), Arc::clone(&probe));
        probe
    }

    pub fn probe(&self, uuid: &str) -> Option<ProbeRef> {
        self.probes.lock().unwrap().get(uuid).cloned()
    }
}

pub struct HookRef(pub Arc<ProbeHook>);

impl MediaHook for HookRef {
    fn fork_start(&self, request: ForkRequest, channel: ChannelMedia) {
        let probe = self.0.add(channel.uuid());
        tokio::spawn(run_fork_probe(
            request.url,
            request.metadata,
            probe,
            channel.ended(),
        ));
    }

    fn unicast(&self, request: UnicastRequest, channel: ChannelMedia) {
        let hook = Arc::clone(&self.0);
        tokio::spawn(async move {
            let local = format!("{}:{}", request.local_ip, request.local_port);
            let remote = format!("{}:{}", request.remote_ip, request.remote_port);
            let bound = match remote.parse::<SocketAddr>() {
                Ok(remote) => UdpSocket::bind(&local).await.map(|s| (s, remote)),
                Err(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)),
            };
            match bound {
                Ok((socket, remote)) => {
                    let probe = hook.add(channel.uuid());
                    run_udp_probe(socket, remote, channel.rate(), probe, channel.ended()).await;
                }
                Err(e) => hook
                    .errors
                    .lock()
                    .unwrap()
                    .push(format!("{local} → {remote}: {e}")),
            }
        });
    }
}
