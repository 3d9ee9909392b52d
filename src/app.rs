//! `skypopen run`: wires every part of the sidecar together and stops them on SIGTERM.

use crate::config::Settings;
use crate::gateway::observe::GatewayCollector;
use crate::gateway::Gateway;
use crate::metrics::http::HealthCheck;
use crate::metrics::Metrics;
use crate::shutdown::{self, CancellationToken};
use crate::skype::process::{ClientEvent, ClientState, Subject};
use crate::switch::esl::EventSource;
use crate::switch::inbound::LinkState;
use crate::switch::inbound::{spawn_inbound, InboundConfig};
use crate::switch::listener::{CommandTable, EventBus, Listener, ListenerConfig, StatusSource};
use crate::switch::media::MediaServer;
use crate::switch::outbound::{OutboundAcceptor, OutboundOptions};
use crate::switch::SwitchLink;
use anyhow::Context as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// How long each step of a stop waits: the calls' teardown, then the other tasks.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What `status` on the listener adds: one line per interface.
struct GatewayStatus(Gateway);

impl StatusSource for GatewayStatus {
    fn status_lines(&self) -> Vec<String> {
        let slots = self.0.registry.snapshot();
        let mut lines = vec![format!(
            "{} interface(s), {} call(s) up",
            slots.len(),
            self.0.live_calls.len()
        )];
        lines.extend(slots.iter().map(|s| {
            format!(
                "interface {} ({}) {}",
                s.name,
                s.skype_user,
                s.state.label()
            )
        }));
        lines
    }
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let log_bus = crate::telemetry::init(&settings.log, &settings.cluster.host);
    let settings = Arc::new(settings);
    let stop = CancellationToken::new();
    info!(
        config = %settings.path.display(),
        interfaces = settings.interfaces.len(),
        freeswitch = %settings.switch.esl,
        media = ?settings.switch.media,
        "skypopen starting"
    );
    for warning in settings.warnings() {
        warn!(%warning, "configuration");
    }
    for iface in &settings.interfaces {
        info!(
            interface = %iface.name,
            id = iface.id,
            display = %iface.x11_display,
            skype_user = %iface.skype_user,
            destination = %format!("{}/{}/{}", iface.destination, iface.context, iface.dialplan),
            "interface configured"
        );
    }

    let supervisor = if settings.clients.manage {
        Some(crate::skype::process::Supervisor::start(
            &settings,
            stop.child_token(),
        ))
    } else {
        info!("clients.manage = false: attaching to clients started by someone else");
        None
    };

    let inbound = spawn_inbound(InboundConfig::from_settings(&settings), stop.child_token());
    // At once: the link subscribes the request streams before the first event can arrive.
    let switch = SwitchLink::new(inbound, settings.switch_password.clone());
    let media = MediaServer::start(
        settings.switch.media_listen,
        Some(&settings.switch.media_url),
        settings.switch.handshake_timeout(),
        stop.child_token(),
    )
    .await
    .context("cannot start the audio fork server")?;
    let metrics = Metrics::new();
    let gateway = Gateway::new(
        settings.clone(),
        switch,
        media,
        metrics.clone(),
        stop.clone(),
    );
    if let Some(supervisor) = &supervisor {
        let _ = gateway.supervisor.set(supervisor.clone());
    }
    for iface in &settings.interfaces {
        gateway.add_interface(iface.clone());
    }

    let (channels_tx, channels_rx) = mpsc::channel(64);
    let acceptor =
        OutboundAcceptor::bind(settings.switch.outbound_listen, outbound_options(&settings))
            .await
            .with_context(|| {
                format!(
                    "cannot listen for FreeSWITCH's socket connections on {}",
                    settings.switch.outbound_listen
                )
            })?;
    info!(listen = %settings.switch.outbound_listen, "waiting for FreeSWITCH socket connections");
    gateway
        .tasks
        .spawn(acceptor.run(channels_tx, stop.child_token()));
    gateway
        .tasks
        .spawn(gateway.clone().dispatch_channels(channels_rx));

    gateway.tasks.spawn(crate::gateway::contacts::publish(
        gateway.clone(),
        Arc::clone(&gateway.presence),
    ));
    gateway
        .tasks
        .spawn(crate::gateway::contacts::answer_probes(gateway.clone()));
    observe(&gateway, supervisor.as_ref());
    if let Some(listen) = settings.metrics.listen {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen for metrics on {listen}"))?;
        info!(%listen, "metrics on /metrics, health on /health");
        let g = gateway.clone();
        let health: HealthCheck = Arc::new(move || crate::gateway::observe::health(&g));
        let cancel = stop.child_token();
        let metrics = Arc::clone(&gateway.metrics);
        gateway.tasks.spawn(async move {
            if let Err(e) = crate::metrics::http::serve(listener, metrics, health, cancel).await {
                warn!(error = %e, "metrics server stopped");
            }
        });
    }

    let status: Arc<dyn StatusSource> = Arc::new(GatewayStatus(gateway.clone()));
    let table = Arc::new(CommandTable::with_builtins(
        Instant::now(),
        crate::switch::esl::stamp::host_name(),
        Some(status),
    ));
    crate::gateway::commands::register(&table, &gateway);
    let events = EventBus::new(Arc::new(EventSource::new()));
    gateway.notices.attach_bus(events.clone());
    gateway.tasks.spawn(crate::gateway::notices::publish(
        Arc::clone(&gateway.notices),
        gateway.switch.clone(),
        settings.cluster.host.clone(),
        stop.child_token(),
    ));
    crate::gateway::chat::start(&gateway, events.clone());
    let listener = Listener::bind(
        ListenerConfig::from_settings(&settings),
        table,
        events,
        log_bus,
    )
    .await
    .context("cannot start the ESL listener")?;
    let listener_task = tokio::spawn(listener.run(stop.child_token()));

    match shutdown::signalled().await {
        Ok(signal) => info!(signal, "stopping"),
        Err(err) => warn!(error = %err, "cannot watch signals; stopping"),
    }
    // Calls first, while the clients, the switch link and the listener still serve them.
    let stopping = Instant::now();
    let ended = gateway.stop_calls(settings.calls.drain(), STOP_GRACE).await;
    stop.cancel();
    gateway.tasks.close();
    if tokio::time::timeout(STOP_GRACE, gateway.tasks.wait())
        .await
        .is_err()
    {
        warn!("some gateway tasks did not stop in time");
    }
    if tokio::time::timeout(STOP_GRACE, listener_task)
        .await
        .is_err()
    {
        warn!("listener did not stop in time");
    }
    if let Some(supervisor) = supervisor {
        supervisor.stopped().await;
    }
    info!(
        calls_ended = ended,
        took_ms = stopping.elapsed().as_millis() as u64,
        "stopped"
    );
    Ok(())
}

/// Metrics read from the gateway at scrape time, and the ones counted from the switch link's
/// and the supervisor's changes.
fn observe(gateway: &Gateway, supervisor: Option<&crate::skype::process::SupervisorHandle>) {
    gateway
        .metrics
        .register_collector(Box::new(GatewayCollector::new(gateway)));
    let mut link = gateway.switch.state();
    let metrics = Arc::clone(&gateway.metrics);
    let cancel = gateway.cancel.clone();
    gateway.tasks.spawn(async move {
        // The first connection is not a reconnect.
        let up_now = *link.borrow_and_update() == LinkState::Up;
        let (mut was_up, mut ever_up) = (up_now, up_now);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = link.changed() => if changed.is_err() { return },
            }
            let up = *link.borrow_and_update() == LinkState::Up;
            if up && !was_up {
                if ever_up {
                    metrics.esl_reconnects.inc();
                }
                ever_up = true;
            }
            was_up = up;
        }
    });
    let Some(supervisor) = supervisor else { return };
    let mut events = supervisor.subscribe();
    let metrics = Arc::clone(&gateway.metrics);
    let cancel = gateway.cancel.clone();
    gateway.tasks.spawn(async move {
        loop {
            let event = tokio::select! {
                _ = cancel.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(ClientEvent {
                    subject: Subject::Interface(name),
                    state: ClientState::Backoff { .. },
                }) => {
                    metrics
                        .client_restarts
                        .get_or_create(&vec![("interface", name)])
                        .inc();
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

fn outbound_options(settings: &Settings) -> OutboundOptions {
    OutboundOptions {
        handshake_timeout: settings.switch.handshake_timeout(),
        ..OutboundOptions::default()
    }
}
