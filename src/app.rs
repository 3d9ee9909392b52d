//! `skypopen run`: wires every part of the sidecar together and stops them on SIGTERM.

use crate::config::Settings;
use crate::gateway::Gateway;
use crate::shutdown::{self, CancellationToken};
use crate::switch::esl::EventSource;
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
    let log_bus = crate::telemetry::init(&settings.log);
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
    let media = MediaServer::start(
        settings.switch.media_listen,
        Some(&settings.switch.media_url),
        stop.child_token(),
    )
    .await
    .context("cannot start the audio fork server")?;
    let switch = SwitchLink::new(inbound, settings.switch_password.clone());
    let gateway = Gateway::new(settings.clone(), switch, media, stop.clone());
    if let Some(supervisor) = &supervisor {
        let _ = gateway.supervisor.set(supervisor.clone());
    }
    for iface in &settings.interfaces {
        gateway.add_interface(iface.clone());
    }

    let (channels_tx, channels_rx) = mpsc::channel(64);
    let acceptor =
        OutboundAcceptor::bind(settings.switch.outbound_listen, OutboundOptions::default())
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

    let status: Arc<dyn StatusSource> = Arc::new(GatewayStatus(gateway.clone()));
    let table = Arc::new(CommandTable::with_builtins(
        Instant::now(),
        hostname(),
        Some(status),
    ));
    crate::gateway::commands::register(&table, &gateway);
    let events = EventBus::new(Arc::new(EventSource::new()));
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

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "skypopen".to_string())
}
