//! One supervised thing (an interface's X server and client, or the emulated network): start
//! it, wait until it is ready, watch it, restart it with backoff, stop it on cancel.

use super::backoff::Backoff;
use super::child::{self, Spec};
use super::client;
use super::xserver::{self, Instance, XServer};
use super::{ClientEvent, ClientState, Control, Subject};
use crate::config::{ClientsSettings, InterfaceConfig};
use std::process::ExitStatus;
use std::time::{Duration, Instant};
use tokio::process::Child;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument as _};

/// Readiness is polled this often while a child starts.
const READY_POLL: Duration = Duration::from_millis(200);
/// A running client's display is probed this often ...
const LIVENESS_POLL: Duration = Duration::from_secs(2);
/// ... and this many failed probes in a row count as a hang.
const LIVENESS_MISSES: u32 = 3;
/// How long Xvfb may take to accept connections.
const XSERVER_TIMEOUT: Duration = Duration::from_secs(20);

pub(super) enum Job {
    Interface(InterfaceConfig),
    /// The embedded emulated network, with `userN` accounts up to this many.
    Network {
        accounts: usize,
    },
}

pub(super) struct Runner {
    pub job: Job,
    pub clients: ClientsSettings,
    pub events: broadcast::Sender<ClientEvent>,
    pub state: watch::Sender<ClientState>,
    pub control: mpsc::Receiver<Control>,
    pub cancel: CancellationToken,
    /// Emulated clients wait for the embedded network before starting.
    pub network: Option<watch::Receiver<ClientState>>,
    /// Reads the client's `_SKYPE_INSTANCE` for the readiness and liveness polls.
    pub probe: xserver::InstanceProbe,
}

/// What ends a child's run from outside, the same way while it starts and while it runs.
enum Interrupt {
    Cancelled,
    Exited(Option<ExitStatus>),
    Restart,
}

async fn interrupted(
    cancel: &CancellationToken,
    control: &mut mpsc::Receiver<Control>,
    child: &mut Child,
) -> Interrupt {
    tokio::select! {
        _ = cancel.cancelled() => Interrupt::Cancelled,
        status = child.wait() => Interrupt::Exited(status.ok()),
        Some(Control::Restart) = control.recv() => Interrupt::Restart,
    }
}

enum Outcome {
    Cancelled,
    Restart,
    Ended {
        status: Option<ExitStatus>,
        reason: String,
        ran_for: Duration,
    },
}

impl Runner {
    fn subject(&self) -> Subject {
        match &self.job {
            Job::Interface(iface) => Subject::Interface(iface.name.clone()),
            Job::Network { .. } => Subject::Network,
        }
    }

    pub async fn run(self) {
        let span = match &self.job {
            Job::Interface(iface) => tracing::info_span!(
                "client",
                interface = %iface.name,
                display = %iface.x11_display
            ),
            Job::Network { .. } => tracing::info_span!("network"),
        };
        self.supervise().instrument(span).await
    }

    async fn supervise(mut self) {
        let mut backoff = Backoff::standard();
        let mut xserver: Option<XServer> = None;
        loop {
            self.emit(ClientState::Starting);
            match self.attempt(&mut xserver).await {
                Outcome::Cancelled => break,
                Outcome::Restart => {
                    backoff.reset();
                    self.emit(ClientState::Exited {
                        status: None,
                        reason: "restart requested".into(),
                    });
                    continue;
                }
                Outcome::Ended {
                    status,
                    reason,
                    ran_for,
                } => {
                    self.emit(ClientState::Exited { status, reason });
                    let delay = backoff.next_delay(ran_for);
                    self.emit(ClientState::Backoff { delay });
                    tokio::select! {
                        _ = self.cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                        Some(Control::Restart) = self.control.recv() => backoff.reset(),
                    }
                }
            }
        }
        if let Some(XServer::Owned(mut server)) = xserver.take() {
            child::terminate(&mut server, self.clients.stop_grace()).await;
        }
        self.emit(ClientState::Stopped);
    }

    fn emit(&self, state: ClientState) {
        match &state {
            ClientState::Starting => info!("starting"),
            ClientState::Running { pid } => info!(pid, "running"),
            ClientState::Exited { status, reason } => warn!(
                status = status.as_ref().map(child::describe).unwrap_or_default(),
                reason = %reason,
                "exited"
            ),
            ClientState::Backoff { delay } => info!(
                delay_ms = delay.as_millis() as u64,
                "restarting after a delay"
            ),
            ClientState::Stopped => info!("stopped"),
        }
        self.state.send_replace(state.clone());
        let _ = self.events.send(ClientEvent {
            subject: self.subject(),
            state,
        });
    }

    fn spec(&self) -> Result<Spec, String> {
        match &self.job {
            Job::Interface(iface) => {
                client::client_spec(&self.clients, iface).map_err(|e| e.to_string())
            }
            Job::Network { accounts } => Ok(client::network_spec(&self.clients, *accounts)),
        }
    }

    async fn attempt(&mut self, xserver: &mut Option<XServer>) -> Outcome {
        let ended = |reason: String| Outcome::Ended {
            status: None,
            reason,
            ran_for: Duration::ZERO,
        };
        if let Job::Interface(iface) = &self.job {
            let display = iface.x11_display.clone();
            if let Some(XServer::Owned(server)) = xserver.as_mut() {
                if let Ok(Some(_)) = server.try_wait() {
                    *xserver = None;
                }
            }
            if matches!(xserver, Some(XServer::Foreign)) && !xserver::answers_async(&display).await
            {
                *xserver = None;
            }
            if xserver.is_none() {
                let xvfb_args = self.clients.xvfb_args();
                let started = tokio::select! {
                    _ = self.cancel.cancelled() => return Outcome::Cancelled,
                    r = xserver::ensure(&display, &self.clients.xvfb, &xvfb_args, XSERVER_TIMEOUT) => r,
                };
                match started {
                    Ok(server) => {
                        match server.pid() {
                            Some(pid) => info!(pid, "X server started"),
                            None => info!("X server already running; reusing it"),
                        }
                        *xserver = Some(server);
                    }
                    Err(err) => return ended(err.to_string()),
                }
            }
            if let Some(network) = self.network.as_mut() {
                let ready = network.wait_for(|s| matches!(s, ClientState::Running { .. }));
                tokio::select! {
                    _ = self.cancel.cancelled() => return Outcome::Cancelled,
                    _ = tokio::time::timeout(self.clients.ready_timeout(), ready) => {}
                }
            }
        }
        let spec = match self.spec() {
            Ok(spec) => spec,
            Err(reason) => return ended(reason),
        };
        let mut child = match child::spawn(&spec).await {
            Ok(child) => child,
            Err(err) => return ended(format!("cannot start {}: {err}", spec.command_line())),
        };
        let pid = child.id().unwrap_or_default();
        info!(pid, command = %spec.command_line(), "spawned");

        let deadline = Instant::now() + self.clients.ready_timeout();
        loop {
            tokio::select! {
                interrupt = interrupted(&self.cancel, &mut self.control, &mut child) => {
                    return self
                        .conclude(interrupt, &mut child, "exited before it was ready", Duration::ZERO)
                        .await;
                }
                _ = tokio::time::sleep(READY_POLL) => {
                    if self.ready().await {
                        break;
                    }
                    if Instant::now() >= deadline {
                        let status = self.stop(&mut child).await;
                        return Outcome::Ended {
                            status,
                            reason: format!(
                                "not ready within {} s",
                                self.clients.ready_timeout().as_secs()
                            ),
                            ran_for: Duration::ZERO,
                        };
                    }
                }
            }
        }
        self.emit(ClientState::Running { pid });
        let running_since = Instant::now();
        let mut misses = 0;
        loop {
            let x_exit = async {
                match xserver.as_mut() {
                    Some(XServer::Owned(server)) => server.wait().await.ok(),
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                interrupt = interrupted(&self.cancel, &mut self.control, &mut child) => {
                    return self
                        .conclude(interrupt, &mut child, "exited", running_since.elapsed())
                        .await;
                }
                x_status = x_exit => {
                    let x_status = x_status.map(|s| child::describe(&s)).unwrap_or_default();
                    *xserver = None;
                    let status = self.stop(&mut child).await;
                    return Outcome::Ended {
                        status,
                        reason: format!("its X server exited ({x_status}); client stopped"),
                        ran_for: running_since.elapsed(),
                    };
                }
                _ = tokio::time::sleep(LIVENESS_POLL) => {
                    if self.ready().await {
                        misses = 0;
                    } else {
                        misses += 1;
                        if misses >= LIVENESS_MISSES {
                            let status = self.stop(&mut child).await;
                            return Outcome::Ended {
                                status,
                                reason: "hung: its display or _SKYPE_INSTANCE stopped answering".into(),
                                ran_for: running_since.elapsed(),
                            };
                        }
                    }
                }
            }
        }
    }

    /// Stops the child unless it is the one that ended, and says how its run ended.
    async fn conclude(
        &self,
        interrupt: Interrupt,
        child: &mut Child,
        exit_reason: &str,
        ran_for: Duration,
    ) -> Outcome {
        match interrupt {
            Interrupt::Cancelled => {
                self.stop(child).await;
                Outcome::Cancelled
            }
            Interrupt::Restart => {
                self.stop(child).await;
                Outcome::Restart
            }
            Interrupt::Exited(status) => Outcome::Ended {
                status,
                reason: exit_reason.into(),
                ran_for,
            },
        }
    }

    async fn stop(&self, child: &mut Child) -> Option<ExitStatus> {
        child::terminate(child, self.clients.stop_grace()).await
    }

    /// A client is ready once its `_SKYPE_INSTANCE` names a live window; the network once
    /// it accepts connections.
    async fn ready(&mut self) -> bool {
        match &self.job {
            Job::Interface(iface) => matches!(
                self.probe.read(&iface.x11_display).await,
                Instance::Present(_)
            ),
            Job::Network { .. } => tokio::net::TcpStream::connect(self.clients.network_listen)
                .await
                .is_ok(),
        }
    }
}
