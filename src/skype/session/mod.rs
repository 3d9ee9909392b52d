//! One Skype API session per interface: an actor over a [`ControllerLink`] that performs the
//! handshake (spec 3), tags requests and matches their replies, and turns everything else the
//! client says into a bounded stream of [`SessionEvent`]s.
//!
//! Replies. A request is sent as `#<n> <command>` with a per-session counter and resolved by the
//! reply carrying the same tag (a tagged `ERROR` included). When such a reply also reports a
//! change of state ([`Notification::carries_state`], e.g. the `#4 CALL 12 STATUS UNPLACED`
//! that answers `CALL echo123`), it is delivered to the requester first and then forwarded on
//! the event stream as well, with its tag, so that a state machine fed only by the stream sees
//! every status change exactly once and in wire order. Replies that merely carry a requested
//! value (`#5 CALL 12 PARTNER_HANDLE x`) go to the requester only.
//!
//! Backpressure. Events wait in a small backlog (as deep as the event queue) when the consumer
//! is slow. While the backlog is full the session stops reading the link, which in turn fills the
//! link's bounded queue: nothing is dropped and memory stays bounded, but replies queued behind
//! the unread events cannot be matched either, so requests time out meanwhile. The session
//! itself never blocks: requests, timers and cancellation are served throughout. A consumer that
//! awaits [`SessionHandle::request`] from the same task that drains the events therefore sees
//! timeouts, never a deadlock.

mod actor;
#[cfg(test)]
mod tests;

use crate::config::InterfaceConfig;
use crate::shutdown::CancellationToken;
use crate::skype::api::{self, ApiError, Command, Handle, Incoming, Notification, RawText};
use crate::skype::link::ControllerLink;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

/// The application name the sidecar announces with `NAME` (and that clients must authorize).
pub const APP_NAME: &str = "skypopen";

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Interface name, for logs.
    pub interface: String,
    /// The account the client must be logged in as (compared case-insensitively).
    pub skype_user: String,
    pub app_name: Handle,
    /// Keep the client's SILENT_MODE on (spec 3.5).
    pub silent_mode: bool,
    /// Pause between handshake attempts while the client answers `ERROR 68`.
    pub auth_retry_interval: Duration,
    /// Handshake attempts before giving up on authorization.
    pub auth_retry_limit: u32,
    /// How long the client may stay silent during the handshake, and how long it may take to
    /// report its logged-in user once authorized.
    pub login_timeout: Duration,
    /// How long a request (and the keepalive `PING`) waits for its reply.
    pub request_timeout: Duration,
    /// A ready session sends a tagged `PING` this often, so that a client that hangs while
    /// its window stays up is noticed ([`SessionFailure::Unresponsive`]). `None` turns it off.
    pub keepalive: Option<Duration>,
    /// Depth of the event stream (and of the backlog behind it).
    pub event_queue: usize,
}

impl SessionConfig {
    pub fn new(interface: &str, skype_user: &str) -> Self {
        SessionConfig {
            interface: interface.to_owned(),
            skype_user: skype_user.to_owned(),
            app_name: default_app_name(),
            silent_mode: false,
            auth_retry_interval: Duration::from_secs(1),
            // A person has to click "allow" in the client; give them five minutes.
            auth_retry_limit: 300,
            login_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(5),
            keepalive: Some(Duration::from_secs(30)),
            event_queue: 256,
        }
    }

    pub fn for_interface(interface: &InterfaceConfig) -> Self {
        SessionConfig {
            silent_mode: interface.silent_mode,
            ..SessionConfig::new(&interface.name, &interface.skype_user)
        }
    }
}

fn default_app_name() -> Handle {
    match Handle::new(APP_NAME) {
        Ok(name) => name,
        // APP_NAME is a constant that passes validation; the unit tests pin it.
        Err(_) => unreachable!("APP_NAME is a valid handle"),
    }
}

/// Where the session stands. Observable through [`SessionHandle::state`] and
/// [`SessionHandle::watch_state`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionState {
    /// No client window: waiting for the link to attach.
    Detached,
    /// `NAME`/`PROTOCOL` sent; waiting for `OK` (retrying on `ERROR 68`).
    Authorizing,
    /// Authorized; waiting for `CURRENTUSERHANDLE`.
    LoggingIn,
    Ready {
        user: String,
    },
    /// The handshake could not complete, or the client stopped answering; the session waits
    /// for the next attach (or for the client to report the right user, or to answer again).
    Failed(SessionFailure),
    /// The link closed or the session was cancelled.
    Stopped,
}

/// Why a handshake did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionFailure {
    #[error("the client is logged in as {found:?}, not the configured skype_user {expected:?}")]
    UserMismatch { expected: String, found: String },
    #[error("the client did not authorize this application after {attempts} attempts (ERROR 68); allow it in the client or pre-authorize the profile")]
    NotAuthorized { attempts: u32 },
    #[error("the client did not complete the handshake within {waited:?}")]
    LoginTimeout { waited: Duration },
    #[error("the client did not answer a keepalive PING within {waited:?}")]
    Unresponsive { waited: Duration },
}

/// What the session reports to its consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Handshake complete: the client is logged in as `user` and accepts requests.
    Ready { user: String },
    /// The client went away (or re-attached); every pending request has failed.
    Lost { reason: String },
    /// An untagged message, or a state-bearing reply to a tagged request (module docs).
    Notification(Incoming),
    /// The handshake failed or the client stopped answering; the interface cannot be used
    /// until a later [`SessionEvent::Ready`].
    Error(SessionFailure),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the Skype API session is not ready ({state})")]
    NotReady { state: String },
    #[error("the Skype client went away: {reason}")]
    ClientGone { reason: String },
    #[error("no reply to {command:?} within {after:?}")]
    Timeout { command: String, after: Duration },
    #[error("the client answered ERROR {code} {text}")]
    Rejected { code: u32, text: String },
    #[error("too many commands queued for the client")]
    Congested,
    #[error("a request tagged #{0} is already waiting for its reply")]
    TagInUse(String),
    #[error("the Skype API session has stopped")]
    Stopped,
    #[error(transparent)]
    Invalid(#[from] ApiError),
}

/// A reply to a tagged request: its text without the tag, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub notification: Notification,
}

enum Control {
    Request {
        /// Tag chosen by an operator's raw command; `None` takes the next counter value.
        tag: Option<String>,
        text: String,
        reply: oneshot::Sender<Result<Reply, SessionError>>,
    },
    Send {
        text: String,
    },
}

/// Depth of the queue from handles to the session actor.
const CONTROL_QUEUE: usize = 256;

/// A cheap, cloneable way to talk to one interface's API session.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    control: mpsc::Sender<Control>,
    state: watch::Receiver<SessionState>,
    interface: Arc<str>,
    request_timeout: Duration,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Control::Request { tag, text, .. } => f
                .debug_struct("Request")
                .field("tag", tag)
                .field("text", text)
                .finish(),
            Control::Send { text } => f.debug_struct("Send").field("text", text).finish(),
        }
    }
}

impl SessionHandle {
    pub fn interface(&self) -> &str {
        &self.interface
    }

    pub fn state(&self) -> SessionState {
        self.state.borrow().clone()
    }

    pub fn watch_state(&self) -> watch::Receiver<SessionState> {
        self.state.clone()
    }

    /// Waits until the session is ready and returns the logged-in user. Fails only when the
    /// session stops; wrap it in a timeout to bound the wait.
    pub async fn ready(&self) -> Result<String, SessionError> {
        let mut state = self.state.clone();
        let seen = state
            .wait_for(|s| matches!(s, SessionState::Ready { .. } | SessionState::Stopped))
            .await
            .map_err(|_| SessionError::Stopped)?;
        match &*seen {
            SessionState::Ready { user } => Ok(user.clone()),
            _ => Err(SessionError::Stopped),
        }
    }

    /// Sends `cmd` tagged and returns the client's reply. An `ERROR` reply becomes
    /// [`SessionError::Rejected`].
    pub async fn request(&self, cmd: Command) -> Result<Notification, SessionError> {
        let reply = self.exchange(None, cmd.to_string()).await?;
        match reply.notification {
            Notification::Error { code, text } => Err(SessionError::Rejected { code, text }),
            other => Ok(other),
        }
    }

    /// Sends operator-typed text and returns the client's reply text (an `ERROR ...` reply is
    /// returned as text too: it is the answer the operator asked for). Text that already starts
    /// with `#tag ` is matched by that tag; otherwise the session tags it.
    pub async fn raw(&self, text: &str) -> Result<String, SessionError> {
        let text = RawText::new(text)?;
        let (tag, body) = api::split_tag(text.as_str());
        let reply = self.exchange(tag, body.to_owned()).await?;
        Ok(reply.text)
    }

    /// Sends `cmd` untagged, without waiting for anything: its reply, if any, arrives as a
    /// notification.
    pub fn send(&self, cmd: Command) -> Result<(), SessionError> {
        self.ensure_ready()?;
        self.control
            .try_send(Control::Send {
                text: cmd.to_string(),
            })
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => SessionError::Congested,
                mpsc::error::TrySendError::Closed(_) => SessionError::Stopped,
            })
    }

    fn ensure_ready(&self) -> Result<(), SessionError> {
        match &*self.state.borrow() {
            SessionState::Ready { .. } => Ok(()),
            SessionState::Stopped => Err(SessionError::Stopped),
            other => Err(SessionError::NotReady {
                state: describe(other),
            }),
        }
    }

    async fn exchange(&self, tag: Option<String>, text: String) -> Result<Reply, SessionError> {
        self.ensure_ready()?;
        let (reply_tx, reply_rx) = oneshot::channel();
        let command = text.clone();
        let exchange = async {
            self.control
                .send(Control::Request {
                    tag,
                    text,
                    reply: reply_tx,
                })
                .await
                .map_err(|_| SessionError::Stopped)?;
            reply_rx.await.map_err(|_| SessionError::Stopped)?
        };
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(SessionError::Timeout {
                command,
                after: self.request_timeout,
            }),
        }
    }
}

pub(crate) fn describe(state: &SessionState) -> String {
    match state {
        SessionState::Detached => "no client attached".into(),
        SessionState::Authorizing => "waiting for the client to authorize the application".into(),
        SessionState::LoggingIn => "waiting for the client's logged-in user".into(),
        SessionState::Ready { user } => format!("ready as {user}"),
        SessionState::Failed(failure) => format!("unusable: {failure}"),
        SessionState::Stopped => "stopped".into(),
    }
}

/// A running session: the handle to talk to it, its event stream, and its task.
#[derive(Debug)]
pub struct Session {
    pub handle: SessionHandle,
    pub events: mpsc::Receiver<SessionEvent>,
    pub task: JoinHandle<()>,
}

/// Starts the session actor on the current tokio runtime. It runs until `cancel` fires or the
/// link closes; dropping the handles does not stop it.
pub fn spawn(config: SessionConfig, link: ControllerLink, cancel: CancellationToken) -> Session {
    let queue = config.event_queue.max(1);
    let (events_tx, events) = mpsc::channel(queue);
    let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let (state_tx, state_rx) = watch::channel(SessionState::Detached);
    let handle = SessionHandle {
        control: control_tx,
        state: state_rx,
        interface: Arc::from(config.interface.as_str()),
        request_timeout: config.request_timeout,
    };
    let span = tracing::info_span!("skype_api", interface = %config.interface);
    let actor = actor::Actor::new(config, link.outgoing, state_tx);
    let task = tokio::spawn(
        actor
            .run(link.events, control_rx, events_tx, cancel)
            .instrument(span),
    );
    Session {
        handle,
        events,
        task,
    }
}
