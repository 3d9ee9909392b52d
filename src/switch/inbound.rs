//! The sidecar's persistent inbound Event Socket connection to FreeSWITCH: `api`, `bgapi`
//! (with the `BACKGROUND_JOB` result awaited) and a broadcast of the events it subscribed to
//! (events are fired on the exact-case writer, `event_link.rs`). It reconnects forever with a
//! capped backoff; while it is down every request fails at once with
//! [`InboundError::NotConnected`].

mod jobs;

use crate::config::{Secret, Settings};
use freeswitch_esl_tokio::{
    EslClient, EslConnectOptions, EslError, EslEvent, EslEventStream, EventFormat,
};
use jobs::JobBook;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, info_span, warn, Instrument};

#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    #[error("not connected to FreeSWITCH at {addr}")]
    NotConnected { addr: SocketAddr },
    #[error("connection to FreeSWITCH at {addr} was lost before the reply")]
    ConnectionLost { addr: SocketAddr },
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        after: Duration,
        waiting_for: &'static str,
    },
    #[error("FreeSWITCH refused `{command}`: {reply}")]
    Refused { command: String, reply: String },
    #[error("{what} must not contain a line break or NUL")]
    InvalidInput { what: &'static str },
    #[error(transparent)]
    Esl(EslError),
}

#[derive(Debug, Clone)]
pub struct InboundConfig {
    pub addr: SocketAddr,
    pub password: Secret,
    /// Event names subscribed on every (re)connection.
    pub events: Vec<String>,
    /// CUSTOM subclasses; always sent last on the `event` line (fixture s1d).
    pub custom_events: Vec<String>,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// While FreeSWITCH stays unreachable, a reminder is logged this often.
    pub down_notice_every: Duration,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    /// Capacity of the event broadcast; a receiver that falls further behind is told it lagged.
    pub event_capacity: usize,
}

impl InboundConfig {
    pub fn new(addr: SocketAddr, password: Secret) -> InboundConfig {
        InboundConfig {
            addr,
            password,
            events: [
                "BACKGROUND_JOB",
                "CHANNEL_HANGUP_COMPLETE",
                "MESSAGE",
                "SEND_MESSAGE",
                "PRESENCE_PROBE",
            ]
            .map(String::from)
            .to_vec(),
            custom_events: vec!["skypopen::command".to_string()],
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            down_notice_every: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(30),
            event_capacity: 1024,
        }
    }

    pub fn from_settings(settings: &Settings) -> InboundConfig {
        InboundConfig::new(settings.switch.esl, settings.switch_password.clone())
    }

    fn event_line(&self) -> String {
        let mut words: Vec<&str> = self.events.iter().map(String::as_str).collect();
        if !self.custom_events.is_empty() {
            words.push("CUSTOM");
            words.extend(self.custom_events.iter().map(String::as_str));
        }
        words.join(" ")
    }
}

/// The next event from a [`InboundHandle::subscribe`] receiver, `None` once `cancel` fires or
/// the connection is gone for good. Events lost because the consumer fell behind are logged
/// with `what` (what the consumer does with them) and skipped.
pub async fn next_event(
    events: &mut broadcast::Receiver<Arc<EslEvent>>,
    cancel: &CancellationToken,
    what: &str,
) -> Option<Arc<EslEvent>> {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return None,
            event = events.recv() => match event {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(lost)) => {
                    tracing::warn!(lost, what, "fell behind FreeSWITCH's events; some are lost");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        }
    }
}

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Up,
    Down { error: String },
    Stopped,
}

impl std::fmt::Display for LinkState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkState::Connecting => f.write_str("connecting"),
            LinkState::Up => f.write_str("connected"),
            LinkState::Down { error } => write!(f, "down: {error}"),
            LinkState::Stopped => f.write_str("stopped"),
        }
    }
}

/// Cheap to clone; every clone talks through the same connection.
#[derive(Clone)]
pub struct InboundHandle {
    shared: Arc<Shared>,
}

struct Shared {
    addr: SocketAddr,
    command_timeout: Duration,
    client: watch::Receiver<Option<EslClient>>,
    state: watch::Receiver<LinkState>,
    events: broadcast::Sender<Arc<EslEvent>>,
    jobs: Mutex<JobBook>,
}

/// Starts the connection task; it runs until `cancel`.
pub fn spawn_inbound(config: InboundConfig, cancel: CancellationToken) -> InboundHandle {
    let (client_tx, client_rx) = watch::channel(None);
    let (state_tx, state_rx) = watch::channel(LinkState::Connecting);
    let (events_tx, _) = broadcast::channel(config.event_capacity.max(16));
    let shared = Arc::new(Shared {
        addr: config.addr,
        command_timeout: config.command_timeout,
        client: client_rx,
        state: state_rx,
        events: events_tx,
        jobs: Mutex::new(JobBook::default()),
    });
    let span = info_span!("fs_inbound", addr = %config.addr);
    let link = Link {
        config,
        shared: shared.clone(),
        client: client_tx,
        state: state_tx,
    };
    tokio::spawn(link.run(cancel).instrument(span));
    InboundHandle { shared }
}

impl InboundHandle {
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.shared.state.clone()
    }

    pub fn is_connected(&self) -> bool {
        *self.shared.state.borrow() == LinkState::Up
    }

    /// Waits up to `within` for the connection to be up.
    pub async fn wait_connected(&self, within: Duration) -> Result<(), InboundError> {
        let mut state = self.shared.state.clone();
        let up = tokio::time::timeout(within, state.wait_for(|s| *s == LinkState::Up))
            .await
            .is_ok_and(|r| r.is_ok());
        if up {
            Ok(())
        } else {
            Err(InboundError::NotConnected {
                addr: self.shared.addr,
            })
        }
    }

    /// Every event the connection subscribed to, from now on. Events that arrive while the
    /// connection is down are lost; watch [`state`](Self::state) to catch up after a
    /// reconnect.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EslEvent>> {
        self.shared.events.subscribe()
    }

    /// `api <command>`: the API output as FreeSWITCH wrote it (`+OK ...`, `-ERR ...`, data).
    pub async fn api(&self, command: &str) -> Result<String, InboundError> {
        check_line("api command", command)?;
        let client = self.current()?;
        debug!(command, "api");
        let reply = client.api(command).await.map_err(|e| self.lost(e))?;
        if !reply.is_success() {
            return Err(InboundError::Refused {
                command: first_word(command),
                reply: reply.reply_text().unwrap_or("").to_string(),
            });
        }
        Ok(reply.body().unwrap_or("").to_string())
    }

    /// `bgapi <command>` and wait up to `within` for its `BACKGROUND_JOB`; returns the job's
    /// output (what `api` would have returned).
    pub async fn bgapi(&self, command: &str, within: Duration) -> Result<String, InboundError> {
        check_line("bgapi command", command)?;
        let client = self.current()?;
        debug!(command, "bgapi");
        let reply = client.bgapi(command).await.map_err(|e| self.lost(e))?;
        let job = match (reply.is_success(), reply.job_uuid()) {
            (true, Some(job)) => job.to_string(),
            _ => {
                return Err(InboundError::Refused {
                    command: format!("bgapi {}", first_word(command)),
                    reply: reply.reply_text().unwrap_or("").to_string(),
                })
            }
        };
        let waiter = lock(&self.shared.jobs).register(&job);
        let rx = match waiter {
            Ok(body) => return Ok(body),
            Err(rx) => rx,
        };
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(_)) => Err(InboundError::ConnectionLost {
                addr: self.shared.addr,
            }),
            Err(_) => {
                lock(&self.shared.jobs).forget(&job);
                Err(InboundError::Timeout {
                    after: within,
                    waiting_for: "BACKGROUND_JOB",
                })
            }
        }
    }

    fn current(&self) -> Result<EslClient, InboundError> {
        match &*self.shared.client.borrow() {
            Some(client) if client.is_connected() => Ok(client.clone()),
            _ => Err(InboundError::NotConnected {
                addr: self.shared.addr,
            }),
        }
    }

    fn lost(&self, e: EslError) -> InboundError {
        match e {
            EslError::NotConnected | EslError::ConnectionClosed | EslError::Io(_) => {
                InboundError::ConnectionLost {
                    addr: self.shared.addr,
                }
            }
            EslError::Timeout { .. } => InboundError::Timeout {
                after: self.shared.command_timeout,
                waiting_for: "command reply",
            },
            other => InboundError::Esl(other),
        }
    }
}

fn first_word(command: &str) -> String {
    command.split_whitespace().next().unwrap_or("").to_string()
}

fn check_line(what: &'static str, value: &str) -> Result<(), InboundError> {
    if value.contains(['\n', '\r', '\0']) {
        return Err(InboundError::InvalidInput { what });
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The connection task's state.
struct Link {
    config: InboundConfig,
    shared: Arc<Shared>,
    client: watch::Sender<Option<EslClient>>,
    state: watch::Sender<LinkState>,
}

/// An outage being reported: logged when it starts, then every `down_notice_every`.
struct Outage {
    since: Instant,
    last_notice: Instant,
}

impl Link {
    async fn run(self, cancel: CancellationToken) {
        let addr = self.config.addr;
        let mut backoff = self.config.backoff_initial;
        let mut outage: Option<Outage> = None;
        loop {
            let attempt = tokio::select! {
                _ = cancel.cancelled() => break,
                attempt = self.connect() => attempt,
            };
            match attempt {
                Ok((client, events)) => {
                    match outage.take() {
                        Some(o) => {
                            info!(%addr, down_for = ?o.since.elapsed(), "connected to FreeSWITCH again")
                        }
                        None => info!(%addr, "connected to FreeSWITCH"),
                    }
                    backoff = self.config.backoff_initial;
                    self.client.send_replace(Some(client.clone()));
                    self.state.send_replace(LinkState::Up);
                    let ended = self.pump(events, &cancel).await;
                    self.client.send_replace(None);
                    lock(&self.shared.jobs).abandon_all();
                    let Some(reason) = ended else {
                        let _ = tokio::time::timeout(Duration::from_secs(1), client.exit()).await;
                        let _ = client.disconnect().await;
                        break;
                    };
                    warn!(%addr, %reason, "lost the connection to FreeSWITCH; reconnecting");
                    self.state.send_replace(LinkState::Down { error: reason });
                    let now = Instant::now();
                    outage = Some(Outage {
                        since: now,
                        last_notice: now,
                    });
                }
                Err(e) => {
                    let error = e.to_string();
                    match &mut outage {
                        None => {
                            if matches!(e, EslError::AuthenticationFailed { .. }) {
                                error!(%addr, %error, "FreeSWITCH refused the ESL password; will keep retrying");
                            } else {
                                warn!(%addr, %error, "cannot connect to FreeSWITCH; will keep retrying");
                            }
                            let now = Instant::now();
                            outage = Some(Outage {
                                since: now,
                                last_notice: now,
                            });
                        }
                        Some(o) if o.last_notice.elapsed() >= self.config.down_notice_every => {
                            warn!(%addr, %error, down_for = ?o.since.elapsed(), "FreeSWITCH is still unreachable");
                            o.last_notice = Instant::now();
                        }
                        Some(_) => {}
                    }
                    self.state.send_if_modified(|s| {
                        let next = LinkState::Down { error };
                        if *s == next {
                            false
                        } else {
                            *s = next;
                            true
                        }
                    });
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.config.backoff_max);
        }
        self.client.send_replace(None);
        lock(&self.shared.jobs).abandon_all();
        self.state.send_replace(LinkState::Stopped);
        info!(%addr, "inbound connection to FreeSWITCH stopped");
    }

    async fn connect(&self) -> Result<(EslClient, EslEventStream), EslError> {
        let addr = self.config.addr;
        let options = EslConnectOptions::new()
            .with_connect_timeout(self.config.connect_timeout)
            .with_event_queue_size(self.config.event_capacity.max(64));
        let (client, events) = EslClient::connect_with_options(
            &addr.ip().to_string(),
            addr.port(),
            self.config.password.expose(),
            options,
        )
        .await?;
        client.set_command_timeout(self.config.command_timeout);
        let line = self.config.event_line();
        if !line.is_empty() {
            client
                .subscribe_events_raw(EventFormat::Plain, &line)
                .await?;
        }
        Ok((client, events))
    }

    /// Routes events until the connection ends (`Some(reason)`) or `cancel` (`None`).
    async fn pump(&self, mut events: EslEventStream, cancel: &CancellationToken) -> Option<String> {
        loop {
            let item = tokio::select! {
                _ = cancel.cancelled() => return None,
                item = events.recv() => item,
            };
            match item {
                Some(Ok(event)) => {
                    if event.header_str("Event-Name") == Some("BACKGROUND_JOB") {
                        if let Some(job) = event.header_str("Job-UUID") {
                            let body = event.body().unwrap_or("").to_string();
                            lock(&self.shared.jobs).complete(job, body);
                        }
                    }
                    // No receivers is fine: nobody is interested yet.
                    let _ = self.shared.events.send(Arc::new(event));
                }
                Some(Err(e)) => warn!(error = %e, "bad message from FreeSWITCH"),
                None => {
                    return Some(match events.status() {
                        freeswitch_esl_tokio::ConnectionStatus::Disconnected(r) => r.to_string(),
                        _ => "event stream ended".to_string(),
                    })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_subclasses_go_last() {
        let mut config = InboundConfig::new("127.0.0.1:8021".parse().unwrap(), Secret::new("x"));
        config.events.push("CHANNEL_ANSWER".into());
        assert_eq!(
            config.event_line(),
            "BACKGROUND_JOB CHANNEL_HANGUP_COMPLETE MESSAGE SEND_MESSAGE PRESENCE_PROBE CHANNEL_ANSWER CUSTOM skypopen::command"
        );
    }

    #[tokio::test]
    async fn requests_fail_fast_while_down() {
        // Nothing listens on this port (bound, then closed).
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let cancel = CancellationToken::new();
        let handle = spawn_inbound(
            InboundConfig::new(addr, Secret::new("ClueCon")),
            cancel.clone(),
        );
        let err = handle.api("status").await.unwrap_err();
        assert!(matches!(err, InboundError::NotConnected { .. }), "{err}");
        assert!(handle
            .wait_connected(Duration::from_millis(200))
            .await
            .is_err());
        cancel.cancel();
    }
}
