//! The sidecar's own ESL-compatible listener, for `fs_cli`-style tools and ESL libraries
//! (greenswitch, modesl): `auth`, `api` / `bgapi` over a pluggable [`CommandTable`],
//! `event` subscriptions to the [`EventBus`], `filter`, live logs (`log <level>`), with
//! FreeSWITCH's reply texts and framing.
//!
//! Wiring: build a [`CommandTable`] (e.g. [`CommandTable::with_builtins`]), an
//! [`EventBus`], and call [`serve`] (or [`Listener::bind`] then [`Listener::run`]) with
//! the service's cancellation token.

mod admission;
pub mod bus;
pub mod commands;
pub mod guard;
mod session;
pub mod subscription;
mod writer;

pub use bus::{EventBus, Published};
pub use commands::{ApiFuture, ApiHandler, ApiRequest, CommandTable, SessionContext, StatusSource};
pub use guard::LockoutPolicy;

use crate::config::{Secret, Settings};
use crate::switch::esl::{reply, Limits};
use crate::telemetry::LogBus;
use admission::Admission;
use guard::AuthGuard;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, info_span, warn, Instrument};

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub listen: SocketAddr,
    pub password: Secret,
    /// Networks allowed to connect; empty means loopback only (FreeSWITCH's default ACL).
    pub allow: Vec<IpNet>,
    pub limits: Limits,
    /// A connection must authenticate within this time.
    pub auth_timeout: Duration,
    /// Networks whose addresses are never banned (their failures only pause); empty means
    /// loopback.
    pub admin: Vec<IpNet>,
    /// Connections waiting to log in, per address and in all; a newcomer evicts the oldest.
    pub waiting_per_address: usize,
    pub waiting_total: usize,
    /// Messages (replies, events, log lines) queued per connection before events are lost
    /// and the connection is closed with FreeSWITCH's "lost events" notice.
    pub queue_capacity: usize,
    /// A single write the client does not drain within this time closes the connection.
    pub write_timeout: Duration,
    pub lockout: LockoutPolicy,
    pub max_connections: usize,
    /// `bgapi` jobs one connection may have running at once.
    pub max_background_jobs: usize,
    /// How long a stop waits for connections to say goodbye.
    pub shutdown_grace: Duration,
}

impl ListenerConfig {
    pub fn new(listen: SocketAddr, password: Secret) -> Self {
        ListenerConfig {
            listen,
            password,
            allow: Vec::new(),
            limits: Limits::default(),
            auth_timeout: Duration::from_secs(5),
            admin: Vec::new(),
            waiting_per_address: 32,
            // 64 of the 256 slots stay for connections that logged in.
            waiting_total: 192,
            queue_capacity: 10_000,
            write_timeout: Duration::from_secs(30),
            lockout: LockoutPolicy::default(),
            max_connections: 256,
            max_background_jobs: 64,
            shutdown_grace: Duration::from_secs(5),
        }
    }

    /// `[listener]` of the configuration: `listen`, the resolved password, `allow`.
    pub fn from_settings(settings: &Settings) -> Self {
        let mut config = Self::new(settings.listener.listen, settings.listener_password.clone());
        config.allow = settings.listener_allow.clone();
        config.admin = settings.listener_admin.clone();
        config.auth_timeout = settings.listener.auth_timeout();
        config
    }

    fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.allow.is_empty() {
            return ip.is_loopback();
        }
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Counters for operators and tests.
#[derive(Debug, Default)]
pub struct ListenerStats {
    accepted: AtomicU64,
    open: AtomicU64,
    refused: AtomicU64,
    auth_failures: AtomicU64,
    lost_event_kills: AtomicU64,
}

impl ListenerStats {
    /// Connections accepted into a session since start.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Sessions open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections turned away (allow list, lockout, connection limit).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn auth_failures(&self) -> u64 {
        self.auth_failures.load(Ordering::Relaxed)
    }

    /// Connections closed because they did not read their events fast enough.
    pub fn lost_event_kills(&self) -> u64 {
        self.lost_event_kills.load(Ordering::Relaxed)
    }
}

struct OpenSession {
    shared: Arc<Shared>,
    evicted: CancellationToken,
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.shared.stats.open.fetch_sub(1, Ordering::Relaxed);
        if self.evicted.is_cancelled() {
            self.shared.admission.gone();
        }
    }
}

pub(crate) struct Shared {
    config: ListenerConfig,
    table: Arc<CommandTable>,
    events: EventBus,
    logs: LogBus,
    guard: AuthGuard,
    admission: Admission,
    stats: Arc<ListenerStats>,
    /// Running `bgapi` jobs; a stop cancels and waits for them.
    jobs: TaskTracker,
}

pub struct Listener {
    socket: TcpListener,
    shared: Arc<Shared>,
}

impl Listener {
    pub async fn bind(
        config: ListenerConfig,
        table: Arc<CommandTable>,
        events: EventBus,
        logs: LogBus,
    ) -> Result<Listener, ListenerError> {
        let socket =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ListenerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Ok(Listener {
            socket,
            shared: Arc::new(Shared {
                guard: AuthGuard::new(config.lockout, config.admin.clone()),
                admission: Admission::new(config.waiting_per_address, config.waiting_total),
                config,
                table,
                events,
                logs,
                stats: Arc::default(),
                jobs: TaskTracker::new(),
            }),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    pub fn stats(&self) -> Arc<ListenerStats> {
        self.shared.stats.clone()
    }

    /// Accepts connections until `cancel`; then tells every connection goodbye
    /// ("The system is being shut down.") and waits for them and for running `bgapi` jobs.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), ListenerError> {
        let Listener { socket, shared } = self;
        let sessions = TaskTracker::new();
        let mut next_id = 0u64;
        info!(listen = ?socket.local_addr().ok(), "ESL listener ready");
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = socket.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let ip = peer.ip().to_canonical();
            let refusal = if !shared.config.allows(ip) {
                Some("address not in the allow list")
            } else if let Some(ban) = shared.guard.ban_of(ip) {
                Some(ban)
            } else if shared
                .stats
                .open()
                .saturating_sub(shared.admission.closing())
                >= shared.config.max_connections as u64
            {
                Some("too many connections")
            } else {
                None
            };
            if let Some(reason) = refusal {
                shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                warn!(peer = %peer, reason, "connection refused");
                sessions.spawn(reject(stream, reason, shared.config.write_timeout));
                continue;
            }
            next_id += 1;
            shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
            shared.stats.open.fetch_add(1, Ordering::Relaxed);
            let span = info_span!("esl", conn = next_id, peer = %peer);
            let shared = shared.clone();
            let cancel = cancel.child_token();
            let id = next_id;
            let evicted = shared.admission.enter(id, ip);
            sessions.spawn(
                async move {
                    // Counted down even if the session task unwinds.
                    let _open = OpenSession {
                        shared: shared.clone(),
                        evicted: evicted.clone(),
                    };
                    session::run(stream, peer, id, shared.clone(), cancel, evicted).await;
                    shared.admission.leave(id);
                }
                .instrument(span),
            );
        }
        drop(socket);
        sessions.close();
        shared.jobs.close();
        let grace = shared.config.shutdown_grace;
        if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
            warn!("listener connections still open after the grace period");
        }
        if tokio::time::timeout(grace, shared.jobs.wait())
            .await
            .is_err()
        {
            warn!("background jobs still running after the grace period");
        }
        info!("ESL listener stopped");
        Ok(())
    }
}

/// Binds and runs the listener until `cancel`.
pub async fn serve(
    config: ListenerConfig,
    table: Arc<CommandTable>,
    events: EventBus,
    logs: LogBus,
    cancel: CancellationToken,
) -> Result<(), ListenerError> {
    Listener::bind(config, table, events, logs)
        .await?
        .run(cancel)
        .await
}

/// `text/rude-rejection`, then a disconnect notice saying why, then close.
async fn reject(mut stream: TcpStream, reason: &str, write_timeout: Duration) {
    let bytes = [
        reply::rude_rejection(),
        reply::disconnect_notice(&format!("Refused: {reason}.\n")),
    ]
    .concat();
    let _ = tokio::time::timeout(write_timeout, async {
        let _ = stream.write_all(&bytes).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_defaults_to_loopback() {
        let mut config = ListenerConfig::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Secret::new("ClueCon"),
        );
        assert!(config.allows(IpAddr::from([127, 0, 0, 1])));
        assert!(config.allows("::1".parse().unwrap_or(IpAddr::from([0; 16]))));
        assert!(config.allows("::ffff:127.0.0.1".parse().unwrap_or(IpAddr::from([0; 16]))));
        assert!(!config.allows(IpAddr::from([192, 0, 2, 1])));
        config.allow = vec!["192.0.2.0/24".parse().unwrap_or_else(|_| IpNet::default())];
        assert!(config.allows(IpAddr::from([192, 0, 2, 1])));
        assert!(!config.allows(IpAddr::from([127, 0, 0, 1])));
    }
}
