//! One FreeSWITCH channel under `socket ... async full` control: a cloneable
//! [`ChannelControl`] for commands, a bounded stream of [`ChannelEvent`]s, and a pump task that
//! reads the socket, correlates `CHANNEL_EXECUTE_COMPLETE`s and tracks hangup and disconnect.

use super::channel_data::ChannelData;
use super::events::{ChannelEvent, ChannelStatus, Hangup};
use super::{OutboundError, OutboundOptions};
use freeswitch_esl_tokio::{ConnectionStatus, EslClient, EslEvent, EslEventStream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

/// The result of an application run with [`ChannelControl::execute_wait`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteComplete {
    pub application: String,
    /// `Application-Response`, absent when FreeSWITCH reported `_none_`.
    pub response: Option<String>,
}

type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<ExecuteComplete>>>>;

/// What the acceptor hands to the rest of the sidecar for each `socket` connection.
pub struct ChannelHandle {
    pub control: ChannelControl,
    pub events: mpsc::Receiver<ChannelEvent>,
}

impl ChannelHandle {
    pub fn data(&self) -> &ChannelData {
        self.control.data()
    }

    pub fn uuid(&self) -> &str {
        self.control.uuid()
    }

    pub fn into_parts(self) -> (ChannelControl, mpsc::Receiver<ChannelEvent>) {
        (self.control, self.events)
    }
}

impl std::fmt::Debug for ChannelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelHandle")
            .field("uuid", &self.uuid())
            .finish()
    }
}

/// Commands to one channel. Cloneable; when the last clone is dropped the channel is hung
/// up (if it still is up) and the socket closed.
#[derive(Clone)]
pub struct ChannelControl {
    inner: Arc<Inner>,
}

struct Inner {
    client: EslClient,
    data: ChannelData,
    status: watch::Receiver<ChannelStatus>,
    waiters: Waiters,
    command_timeout: Duration,
    /// Set once FreeSWITCH was told to `resume`: releasing the channel then closes the
    /// socket without hanging up, and the dialplan goes on.
    handed_back: Arc<AtomicBool>,
    _release: DropGuard,
}

impl ChannelControl {
    pub fn data(&self) -> &ChannelData {
        &self.inner.data
    }

    pub fn uuid(&self) -> &str {
        self.inner.data.uuid()
    }

    /// A snapshot stream: answered, hung up (with cause when known), disconnected.
    pub fn status(&self) -> watch::Receiver<ChannelStatus> {
        self.inner.status.clone()
    }

    pub fn is_hung_up(&self) -> bool {
        self.inner.status.borrow().hangup.is_some()
    }

    /// Resolves once the channel is known to be down (hangup event, or the socket closed).
    pub async fn hungup(&self) -> Hangup {
        self.status_set(|s| &s.hangup)
            .await
            .unwrap_or(Hangup { cause: None })
    }

    /// Resolves once the socket is closed; returns why.
    pub async fn closed(&self) -> String {
        self.status_set(|s| &s.disconnected)
            .await
            .unwrap_or_else(|| "socket closed".to_string())
    }

    /// Waits until `field` of the status is set. `None` when the connection task is gone
    /// without ever setting it.
    async fn status_set<T: Clone>(
        &self,
        field: impl Fn(&ChannelStatus) -> &Option<T>,
    ) -> Option<T> {
        let mut rx = self.inner.status.clone();
        let waited = rx
            .wait_for(|s| field(s).is_some())
            .await
            .ok()
            .and_then(|s| field(&s).clone());
        waited.or_else(|| field(&rx.borrow()).clone())
    }

    /// Queue an application (`sendmsg` `execute`); returns once FreeSWITCH accepted it.
    pub async fn execute(&self, app: &str, arg: Option<&str>) -> Result<(), OutboundError> {
        let event_uuid = uuid::Uuid::new_v4().to_string();
        self.send_execute(app, arg, &event_uuid).await
    }

    /// Run an application and wait for its `CHANNEL_EXECUTE_COMPLETE` (matched by the
    /// `event-uuid` we send, which FreeSWITCH echoes as `Application-UUID`).
    pub async fn execute_wait(
        &self,
        app: &str,
        arg: Option<&str>,
        timeout: Duration,
    ) -> Result<ExecuteComplete, OutboundError> {
        let event_uuid = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        lock(&self.inner.waiters).insert(event_uuid.clone(), tx);
        let forget = || {
            lock(&self.inner.waiters).remove(&event_uuid);
        };
        if let Err(e) = self.send_execute(app, arg, &event_uuid).await {
            forget();
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(_)) => Err(OutboundError::Closed),
            Err(_) => {
                forget();
                Err(OutboundError::Timeout {
                    after: timeout,
                    waiting_for: "CHANNEL_EXECUTE_COMPLETE",
                })
            }
        }
    }

    async fn send_execute(
        &self,
        app: &str,
        arg: Option<&str>,
        event_uuid: &str,
    ) -> Result<(), OutboundError> {
        let mut headers = vec![("call-command", "execute"), ("execute-app-name", app)];
        if let Some(arg) = arg {
            headers.push(("execute-app-arg", arg));
        }
        headers.push(("event-uuid", event_uuid));
        debug!(app, arg, event_uuid, "execute");
        self.sendmsg(&headers, None).await
    }

    /// Send any `sendmsg` call-command to this channel (e.g. `unicast` with its headers).
    pub async fn sendmsg(
        &self,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<(), OutboundError> {
        let mut msg = EslEvent::new();
        for (name, value) in headers {
            check_line("sendmsg header", name)?;
            check_line("sendmsg header value", value)?;
            msg.set_header(*name, *value);
        }
        if let Some(body) = body {
            msg.set_body(body);
        }
        let reply = self
            .inner
            .client
            .sendmsg(None, msg)
            .await
            .map_err(|e| self.command_error(e))?;
        if reply.is_success() {
            Ok(())
        } else {
            Err(OutboundError::Refused {
                command: "sendmsg".into(),
                reply: reply.reply_text().unwrap_or("").to_string(),
            })
        }
    }

    /// Hang the channel up with a cause name (`USER_BUSY`) or Q.850 number.
    pub async fn hangup(&self, cause: &str) -> Result<(), OutboundError> {
        info!(cause, "hanging up channel");
        self.sendmsg(&[("call-command", "hangup"), ("hangup-cause", cause)], None)
            .await
    }

    /// `api` on this socket (needs `Control: full`). Returns the API output as FreeSWITCH
    /// wrote it (`+OK ...`, `-ERR ...` or data); only a refusal of the command itself is an
    /// error.
    pub async fn api(&self, command: &str) -> Result<String, OutboundError> {
        check_line("api command", command)?;
        debug!(command, "api");
        let reply = self
            .inner
            .client
            .api(command)
            .await
            .map_err(|e| self.command_error(e))?;
        if !reply.is_success() {
            return Err(OutboundError::Refused {
                command: "api".into(),
                reply: reply.reply_text().unwrap_or("").to_string(),
            });
        }
        Ok(reply.body().unwrap_or("").to_string())
    }

    /// Gives the channel back to its dialplan instead of hanging it up: `resume` makes
    /// FreeSWITCH go on with the action after `socket` once the socket closes, and dropping
    /// the last clone now closes the socket with the channel left up.
    pub async fn resume_dialplan(&self) -> Result<(), OutboundError> {
        self.inner
            .client
            .resume()
            .await
            .map_err(|e| self.command_error(e))?;
        self.inner.handed_back.store(true, Ordering::Release);
        Ok(())
    }

    /// Read a channel variable with `getvar`; `None` when unset.
    pub async fn getvar(&self, name: &str) -> Result<Option<String>, OutboundError> {
        check_line("variable name", name)?;
        self.inner
            .client
            .getvar_opt(name)
            .await
            .map_err(|e| self.command_error(e))
    }

    fn command_error(&self, e: freeswitch_esl_tokio::EslError) -> OutboundError {
        use freeswitch_esl_tokio::EslError;
        match e {
            EslError::NotConnected | EslError::ConnectionClosed => OutboundError::Closed,
            EslError::Timeout { .. } => OutboundError::Timeout {
                after: self.inner.command_timeout,
                waiting_for: "command reply",
            },
            other => OutboundError::Esl(other),
        }
    }
}

fn check_line(what: &'static str, value: &str) -> Result<(), OutboundError> {
    if value.contains(['\n', '\r', '\0']) {
        return Err(OutboundError::InvalidInput { what });
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Wire up the pump for a channel whose handshake is done.
pub(super) fn start(
    client: EslClient,
    stream: EslEventStream,
    data: ChannelData,
    options: &OutboundOptions,
    shutdown: CancellationToken,
    span: tracing::Span,
    tasks: &TaskTracker,
) -> ChannelHandle {
    let initial = ChannelStatus {
        answered: data.is_answered(),
        ..ChannelStatus::default()
    };
    let (status_tx, status_rx) = watch::channel(initial);
    let (events_tx, events_rx) = mpsc::channel(options.event_capacity.max(1));
    let waiters: Waiters = Arc::default();
    let released = CancellationToken::new();
    let handed_back = Arc::new(AtomicBool::new(false));
    let pump = Pump {
        client: client.clone(),
        handed_back: handed_back.clone(),
        status: status_tx,
        waiters: waiters.clone(),
        out: events_tx,
        grace: options.hangup_complete_grace,
        dropped: 0,
    };
    tasks.spawn(
        pump.run(stream, shutdown, released.clone())
            .instrument(span),
    );
    ChannelHandle {
        control: ChannelControl {
            inner: Arc::new(Inner {
                client,
                data,
                status: status_rx,
                waiters,
                command_timeout: options.command_timeout,
                handed_back,
                _release: released.drop_guard(),
            }),
        },
        events: events_rx,
    }
}

struct Pump {
    client: EslClient,
    handed_back: Arc<AtomicBool>,
    status: watch::Sender<ChannelStatus>,
    waiters: Waiters,
    out: mpsc::Sender<ChannelEvent>,
    grace: Duration,
    dropped: u64,
}

/// How long a closing socket may take to say goodbye before we drop it.
const CLOSE_WAIT: Duration = Duration::from_secs(3);

impl Pump {
    async fn run(
        mut self,
        mut stream: EslEventStream,
        shutdown: CancellationToken,
        released: CancellationToken,
    ) {
        // After the hangup we only wait for the rest of the hangup events, then leave:
        // with `linger` FreeSWITCH would otherwise keep the socket open (forever for bare
        // `linger`).
        let mut leave_at: Option<Instant> = None;
        let mut closing = false;
        let reason = loop {
            let leave = async {
                match leave_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                item = stream.recv() => match item {
                    Some(Ok(event)) => {
                        let event = ChannelEvent::from_esl(event);
                        match &event {
                            ChannelEvent::Hangup { .. } if leave_at.is_none() => {
                                leave_at = Some(Instant::now() + self.grace);
                            }
                            ChannelEvent::HangupComplete { .. } => {
                                leave_at = Some(Instant::now());
                            }
                            _ => {}
                        }
                        self.deliver(event);
                    }
                    Some(Err(e)) => warn!(error = %e, "bad message on the socket"),
                    None => break disconnect_reason(&self.client.status()),
                },
                _ = leave, if !closing => {
                    closing = true;
                    leave_at = Some(Instant::now() + CLOSE_WAIT);
                    self.leave().await;
                }
                _ = tokio::time::sleep_until(leave_at.unwrap_or_else(Instant::now)), if closing => {
                    let _ = self.client.disconnect().await;
                    break "closed by the sidecar".to_string();
                }
                _ = shutdown.cancelled(), if !closing => {
                    closing = true;
                    leave_at = Some(Instant::now() + CLOSE_WAIT);
                    self.hangup_if_up("SYSTEM_SHUTDOWN").await;
                    self.leave().await;
                }
                _ = released.cancelled(), if !closing => {
                    closing = true;
                    leave_at = Some(Instant::now() + CLOSE_WAIT);
                    if self.handed_back.load(Ordering::Acquire) {
                        info!("channel handed back to the dialplan");
                    } else {
                        self.hangup_if_up("NORMAL_CLEARING").await;
                    }
                    self.leave().await;
                }
            }
        };
        info!(reason = %reason, "channel socket closed");
        lock(&self.waiters).clear();
        let last = ChannelEvent::Disconnected { reason };
        self.status.send_modify(|s| {
            s.observe(&last);
        });
        // The consumer may be slow; the final notice is worth a short wait, not a hang.
        let _ = tokio::time::timeout(CLOSE_WAIT, self.out.send(last)).await;
    }

    fn deliver(&mut self, event: ChannelEvent) {
        if let ChannelEvent::ExecuteComplete {
            application,
            application_uuid: Some(id),
            response,
        } = &event
        {
            if let Some(waiter) = lock(&self.waiters).remove(id) {
                let _ = waiter.send(ExecuteComplete {
                    application: application.clone(),
                    response: response.clone(),
                });
            }
        }
        match &event {
            ChannelEvent::Hangup { cause } => info!(cause = %cause, "channel hung up"),
            ChannelEvent::Answered => info!("channel answered"),
            ChannelEvent::Dtmf { digit, .. } => debug!(%digit, "dtmf"),
            _ => {}
        }
        self.status.send_if_modified(|s| s.observe(&event));
        match self.out.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped += 1;
                warn!(
                    dropped = self.dropped,
                    "channel event consumer is behind; event dropped"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    async fn hangup_if_up(&self, cause: &str) {
        if self.status.borrow().hangup.is_some() {
            return;
        }
        let mut msg = EslEvent::new();
        msg.set_header("call-command", "hangup");
        msg.set_header("hangup-cause", cause);
        match self.client.sendmsg(None, msg).await {
            Ok(_) => info!(cause, "hung up channel on release"),
            Err(e) => debug!(error = %e, "hangup on release failed"),
        }
    }

    async fn leave(&self) {
        if let Err(e) = self.client.exit().await {
            debug!(error = %e, "exit on the socket failed");
        }
    }
}

fn disconnect_reason(status: &ConnectionStatus) -> String {
    match status {
        ConnectionStatus::Disconnected(reason) => reason.to_string(),
        ConnectionStatus::Connected => "event stream ended".to_string(),
        other => format!("{other:?}"),
    }
}
