//! The product logic between Skype and FreeSWITCH: interfaces and hunting, calls, chats and
//! the `sk` command family.
//!
//! The gateway knows Skype only through `skype::session` handles and FreeSWITCH only through
//! `switch::` handles. One actor per interface owns its Skype session's event stream and routes
//! each call's notifications to that call's task; every call is a task of its own that owns
//! its FreeSWITCH channel, its audio ports and its timers, so nothing of one call can reach
//! the next.

pub mod call;
pub mod causes;
pub mod chat;
pub mod cluster;
pub mod commands;
pub mod contacts;
pub mod dialstring;
pub mod interface;
pub mod media_path;
pub mod notices;
pub mod observe;
pub mod registry;
mod routing;
pub mod status;
pub mod text;

use crate::config::{InterfaceConfig, Settings};
use crate::metrics::Metrics;
use crate::shutdown::CancellationToken;
use crate::skype::audio::PortAllocator;
use crate::switch::media::MediaServer;
use crate::switch::outbound::ChannelHandle;
use crate::switch::unicast::UnicastPorts;
use crate::switch::{HangupCause, SwitchLink};
use dashmap::DashMap;
use interface::InterfaceHandle;
use registry::Registry;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// A call as `sk calls` shows it.
#[derive(Debug, Clone)]
pub struct LiveCall {
    pub uuid: String,
    pub interface: String,
    pub skype_call_id: Option<u64>,
    pub inbound: bool,
    /// The Skype party: destination of an outbound call, caller of an inbound one.
    pub remote: String,
    /// The FreeSWITCH party, as far as the channel tells.
    pub local: String,
    pub started: Instant,
}

impl LiveCall {
    pub fn direction(&self) -> registry::Direction {
        if self.inbound {
            registry::Direction::Inbound
        } else {
            registry::Direction::Outbound
        }
    }
}

/// Who transferred a call to an interface (spec 5.4), so the inbound call that arrives there
/// can carry `initial_skype_user`.
#[derive(Debug, Clone)]
pub(crate) struct TransferNote {
    pub caller: String,
    pub initial_skype_user: String,
    pub at: Instant,
}

pub struct Shared {
    pub settings: Arc<Settings>,
    pub registry: Registry,
    pub switch: SwitchLink,
    pub media: MediaServer,
    pub audio_ports: PortAllocator,
    pub unicast_ports: UnicastPorts,
    pub interfaces: DashMap<u32, InterfaceHandle>,
    /// Inbound calls waiting for their `socket` connection, by origination uuid.
    pub(crate) pending_inbound: DashMap<String, oneshot::Sender<ChannelHandle>>,
    /// Incoming rings taken by one interface, by (account, caller), so that several
    /// interfaces logged in as the same account make one FreeSWITCH call of one Skype call.
    pub(crate) ring_claims: DashMap<(String, String), u32>,
    pub(crate) transfers: DashMap<u32, TransferNote>,
    pub live_calls: DashMap<String, LiveCall>,
    /// The client supervisor, when the sidecar manages its clients (set once by `run`).
    pub supervisor: std::sync::OnceLock<crate::skype::process::SupervisorHandle>,
    pub chat: chat::ChatService,
    /// Each interface's Skype contacts and their presence.
    pub contacts: contacts::Contacts,
    /// Contacts' presence waiting to be fired into FreeSWITCH.
    pub presence: Arc<contacts::PresenceQueue>,
    /// Contact requests waiting for `sk auth`, and each interface's flood limit.
    pub auth_requests: contacts::AuthRequests,
    /// The `skypopen::` CUSTOM events waiting to be fired.
    pub notices: Arc<notices::Notices>,
    /// The other sidecar hosts serving the same accounts, as far as claims go.
    pub cluster: Arc<cluster::Cluster>,
    pub metrics: Arc<Metrics>,
    pub cancel: CancellationToken,
    /// Every task of the gateway but the calls (interfaces, chats, helpers), so a stop can
    /// wait for them to wind down.
    pub tasks: TaskTracker,
    /// The call tasks, waited for apart: they end first, while the clients and the switch link
    /// are still there to hear the hangups.
    pub(crate) call_tasks: TaskTracker,
    /// Set when the sidecar starts stopping: no new call is taken.
    pub(crate) draining: CancellationToken,
    /// Ends every live call with SYSTEM_SHUTDOWN.
    pub(crate) calls_stop: CancellationToken,
}

/// Cheap to clone; every task holds one.
#[derive(Clone)]
pub struct Gateway(Arc<Shared>);

impl std::ops::Deref for Gateway {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Gateway {
    pub fn new(
        settings: Arc<Settings>,
        switch: SwitchLink,
        media: MediaServer,
        metrics: Arc<Metrics>,
        cancel: CancellationToken,
    ) -> Gateway {
        let audio_ports = PortAllocator::new(settings.audio_ports.clone());
        let unicast_ports = UnicastPorts::new(settings.unicast_ports.clone());
        let cluster = Arc::new(cluster::Cluster::new(
            switch.clone(),
            settings.cluster.host.clone(),
            settings.cluster.arbitrate,
            cancel.child_token(),
        ));
        let notices: Arc<notices::Notices> = Arc::default();
        let registry = Registry::new();
        registry.observe(notices::state_observer(Arc::clone(&notices)));
        Gateway(Arc::new(Shared {
            settings,
            registry,
            switch,
            media,
            audio_ports,
            unicast_ports,
            interfaces: DashMap::new(),
            pending_inbound: DashMap::new(),
            ring_claims: DashMap::new(),
            transfers: DashMap::new(),
            live_calls: DashMap::new(),
            supervisor: std::sync::OnceLock::new(),
            chat: chat::ChatService::default(),
            contacts: contacts::Contacts::default(),
            presence: Arc::default(),
            notices,
            auth_requests: contacts::AuthRequests::default(),
            cluster,
            metrics,
            calls_stop: cancel.child_token(),
            cancel,
            tasks: TaskTracker::new(),
            call_tasks: TaskTracker::new(),
            draining: CancellationToken::new(),
        }))
    }

    /// Starts the interface's X11 link, API session and actor. Replaces nothing: the caller
    /// checks that the id is free.
    pub fn add_interface(&self, cfg: InterfaceConfig) {
        if !self.registry.upsert(&cfg) {
            warn!(interface = %cfg.name, id = cfg.id, "interface id out of range; not started");
            return;
        }
        let handle = interface::spawn(self.clone(), cfg.clone());
        info!(interface = %cfg.name, id = cfg.id, display = %cfg.x11_display,
              skype_user = %cfg.skype_user, "interface started");
        self.interfaces.insert(cfg.id, handle);
    }

    /// Stops an interface (its calls end) and forgets it.
    pub fn remove_interface(&self, id: u32) -> Option<InterfaceConfig> {
        let (_, handle) = self.interfaces.remove(&id)?;
        self.contacts.forget(id);
        self.auth_requests.forget(id);
        handle.stop.cancel();
        self.registry.remove(id);
        Some(handle.cfg)
    }

    /// The first half of a stop: no new calls; live calls may go on for `drain`, then they
    /// are ended with SYSTEM_SHUTDOWN and given up to `grace` to tear down. Returns how many
    /// calls were still up when their time ran out.
    pub async fn stop_calls(&self, drain: Duration, grace: Duration) -> usize {
        self.draining.cancel();
        self.call_tasks.close();
        let live = self.live_calls.len();
        if live > 0 {
            info!(
                live,
                drain_secs = drain.as_secs_f64(),
                "stopping: no new calls; live calls may go on for the drain time"
            );
        }
        if tokio::time::timeout(drain, self.call_tasks.wait())
            .await
            .is_ok()
        {
            return 0;
        }
        let left = self.live_calls.len();
        info!(calls = left, "ending the live calls (SYSTEM_SHUTDOWN)");
        self.calls_stop.cancel();
        if tokio::time::timeout(grace, self.call_tasks.wait())
            .await
            .is_err()
        {
            warn!(
                calls = self.live_calls.len(),
                "calls did not finish their teardown in time"
            );
        }
        left
    }

    /// The live calls, oldest first.
    pub fn calls_by_start(&self) -> Vec<LiveCall> {
        let mut calls: Vec<LiveCall> = self.live_calls.iter().map(|c| c.value().clone()).collect();
        calls.sort_by_key(|c| c.started);
        calls
    }

    /// Whether a stop has begun; no new call is taken then.
    pub fn is_draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    pub fn interface_by_name(&self, name: &str) -> Option<InterfaceHandle> {
        self.interfaces
            .iter()
            .find(|entry| entry.cfg.name == name)
            .map(|entry| entry.value().clone())
    }

    /// Consumes the outbound acceptor's channels: inbound calls' sockets go to the call
    /// waiting for them, everything else is an outbound call to place.
    pub async fn dispatch_channels(self, mut channels: mpsc::Receiver<ChannelHandle>) {
        loop {
            let channel = tokio::select! {
                _ = self.cancel.cancelled() => return,
                next = channels.recv() => match next {
                    Some(channel) => channel,
                    None => return,
                },
            };
            let uuid = channel.uuid().to_string();
            if channel.data().variable("skypopen_call_id").is_some() {
                match self.pending_inbound.remove(&uuid) {
                    Some((_, waiter)) => {
                        if let Err(channel) = waiter.send(channel) {
                            warn!(call = %uuid, "inbound call gave up before its socket connected");
                            self.tasks.spawn(async move {
                                let _ = channel
                                    .control
                                    .hangup_with(HangupCause::OriginatorCancel)
                                    .await;
                            });
                        }
                    }
                    None => {
                        warn!(call = %uuid, "socket connection for an inbound call nobody waits for; hanging up");
                        self.tasks.spawn(async move {
                            let _ = channel
                                .control
                                .hangup_with(HangupCause::NormalTemporaryFailure)
                                .await;
                        });
                    }
                }
                continue;
            }
            self.tasks
                .spawn(routing::place_outbound(self.clone(), channel));
        }
    }
}
