//! The session's task: owns the link's sending half, the handshake state and the table of
//! requests waiting for their replies.

use super::{
    describe, Control, Reply, SessionConfig, SessionError, SessionEvent, SessionFailure,
    SessionState,
};
use crate::shutdown::CancellationToken;
use crate::skype::api::{Command, Incoming, Notification, Presence, WindowState};
use crate::skype::link::LinkEvent;
use std::collections::{HashMap, VecDeque};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The highest protocol the handshake asks for; the client answers with what it supports.
const HANDSHAKE_PROTOCOL: u32 = 999;
/// The protocol the original module pinned after login; its notifications are what the rest of
/// the service parses.
const WORKING_PROTOCOL: u32 = 7;

enum Phase {
    Detached,
    Authorizing {
        /// When the next `NAME`/`PROTOCOL` goes out, once `ERROR 68` was seen.
        retry_at: Option<Instant>,
        /// Give up if the client says nothing at all until then.
        deadline: Instant,
        pending_logged: bool,
    },
    LoggingIn {
        deadline: Instant,
    },
    Ready {
        user: String,
        probe: Probe,
    },
    /// Ready before, but a keepalive `PING` went unanswered; any message brings it back.
    Unresponsive {
        user: String,
    },
    Failed,
}

/// The keepalive `PING` of a ready session.
enum Probe {
    Off,
    Idle { next: Instant },
    Waiting { tag: String, deadline: Instant },
}

pub(super) struct Actor {
    config: SessionConfig,
    link: mpsc::Sender<String>,
    state: watch::Sender<SessionState>,
    phase: Phase,
    pending: HashMap<String, oneshot::Sender<Result<Reply, SessionError>>>,
    next_tag: u64,
    /// `NAME`/`PROTOCOL` rounds sent since the client attached.
    hello_attempts: u32,
    backlog: VecDeque<SessionEvent>,
    consumer_gone: bool,
}

impl Actor {
    pub(super) fn new(
        config: SessionConfig,
        link: mpsc::Sender<String>,
        state: watch::Sender<SessionState>,
    ) -> Self {
        Actor {
            config,
            link,
            state,
            phase: Phase::Detached,
            pending: HashMap::new(),
            next_tag: 1,
            hello_attempts: 0,
            backlog: VecDeque::new(),
            consumer_gone: false,
        }
    }

    pub(super) async fn run(
        mut self,
        mut link_events: mpsc::Receiver<LinkEvent>,
        mut control: mpsc::Receiver<Control>,
        events: mpsc::Sender<SessionEvent>,
        cancel: CancellationToken,
    ) {
        let backlog_limit = self.config.event_queue.max(1);
        let mut control_open = true;
        loop {
            let wakeup = self.next_wakeup();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    self.stop("the service is stopping");
                    break;
                }
                permit = events.reserve(), if !self.backlog.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.backlog.pop_front() {
                            permit.send(event);
                        }
                    }
                    Err(_) => {
                        debug!("event consumer gone; dropping notifications from now on");
                        self.consumer_gone = true;
                        self.backlog.clear();
                    }
                },
                request = control.recv(), if control_open => match request {
                    Some(request) => self.on_control(request),
                    None => control_open = false,
                },
                event = link_events.recv(), if self.backlog.len() < backlog_limit => match event {
                    Some(event) => self.on_link(event),
                    None => {
                        self.stop("the X11 link closed");
                        break;
                    }
                },
                _ = sleep_until(wakeup), if wakeup.is_some() => self.on_timer(),
            }
        }
        // Best effort: hand over what is left (the final Lost in particular) without waiting.
        while let Some(event) = self.backlog.pop_front() {
            if events.try_send(event).is_err() {
                break;
            }
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Authorizing {
                retry_at, deadline, ..
            } => Some(retry_at.map_or(*deadline, |retry| retry.min(*deadline))),
            Phase::LoggingIn { deadline } => Some(*deadline),
            Phase::Ready { probe, .. } => match probe {
                Probe::Off => None,
                Probe::Idle { next } => Some(*next),
                Probe::Waiting { deadline, .. } => Some(*deadline),
            },
            _ => None,
        }
    }

    fn set_state(&self, state: SessionState) {
        self.state.send_replace(state);
    }

    fn emit(&mut self, event: SessionEvent) {
        if !self.consumer_gone {
            self.backlog.push_back(event);
        }
    }

    /// Writes one message to the client, without ever waiting on the link.
    fn write(&mut self, text: String) -> Result<(), SessionError> {
        debug!(message = %text, "api >>");
        self.link.try_send(text).map_err(|err| match err {
            mpsc::error::TrySendError::Full(text) => {
                warn!(message = %text, "link queue full; command not sent");
                SessionError::Congested
            }
            mpsc::error::TrySendError::Closed(_) => SessionError::ClientGone {
                reason: "the X11 link closed".into(),
            },
        })
    }

    /// Handshake and settings commands: their replies are not awaited, so a failed write is
    /// only logged (the handshake timer catches a client that never answers).
    fn write_command(&mut self, command: Command) {
        if let Err(err) = self.write(command.to_string()) {
            warn!(error = %err, "cannot send handshake command");
        }
    }

    fn on_control(&mut self, control: Control) {
        match control {
            Control::Send { text } => {
                if self.ready_user().is_none() {
                    debug!(message = %text, "not ready; command dropped");
                    return;
                }
                // The caller has already returned; a failure can only be logged.
                let _ = self.write(text);
            }
            Control::Request { tag, text, reply } => {
                if reply.is_closed() {
                    return;
                }
                match self.start_request(tag, &text) {
                    Ok(tag) => {
                        self.pending.retain(|_, waiting| !waiting.is_closed());
                        self.pending.insert(tag, reply);
                    }
                    Err(err) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
        }
    }

    fn start_request(&mut self, tag: Option<String>, text: &str) -> Result<String, SessionError> {
        if self.ready_user().is_none() {
            return Err(SessionError::NotReady {
                state: describe(&self.state.borrow()),
            });
        }
        let tag = match tag {
            Some(tag) => tag,
            None => self.allocate_tag(),
        };
        if self
            .pending
            .get(&tag)
            .is_some_and(|waiting| !waiting.is_closed())
        {
            return Err(SessionError::TagInUse(tag));
        }
        self.write(format!("#{tag} {text}"))?;
        Ok(tag)
    }

    fn allocate_tag(&mut self) -> String {
        loop {
            let tag = self.next_tag.to_string();
            self.next_tag = self.next_tag.wrapping_add(1);
            if !self.pending.contains_key(&tag) {
                return tag;
            }
        }
    }

    fn ready_user(&self) -> Option<&str> {
        match &self.phase {
            Phase::Ready { user, .. } => Some(user),
            _ => None,
        }
    }

    fn on_link(&mut self, event: LinkEvent) {
        match event {
            LinkEvent::Attached { window } => {
                if !matches!(self.phase, Phase::Detached) {
                    self.lose("the client re-attached with a new window");
                }
                info!(window, "client attached; starting the API handshake");
                self.start_handshake();
            }
            LinkEvent::Detached { reason } => {
                if !matches!(self.phase, Phase::Detached) {
                    info!(%reason, "client detached");
                    self.lose(&reason);
                    self.phase = Phase::Detached;
                    self.set_state(SessionState::Detached);
                }
            }
            LinkEvent::Message(text) => self.on_message(text),
        }
    }

    fn start_handshake(&mut self) {
        self.hello_attempts = 0;
        self.enter_authorizing();
        self.send_hello();
    }

    fn enter_authorizing(&mut self) {
        self.phase = Phase::Authorizing {
            retry_at: None,
            deadline: Instant::now() + self.config.login_timeout,
            pending_logged: false,
        };
        self.set_state(SessionState::Authorizing);
    }

    /// `NAME` and `PROTOCOL` back to back, without waiting for `OK` (spec 3.1).
    fn send_hello(&mut self) {
        self.hello_attempts = self.hello_attempts.saturating_add(1);
        self.write_command(Command::Name(self.config.app_name.clone()));
        self.write_command(Command::Protocol(HANDSHAKE_PROTOCOL));
    }

    /// Fails everything waiting on this client and tells the consumer it is gone.
    fn lose(&mut self, reason: &str) {
        for (_, waiting) in self.pending.drain() {
            let _ = waiting.send(Err(SessionError::ClientGone {
                reason: reason.to_owned(),
            }));
        }
        self.emit(SessionEvent::Lost {
            reason: reason.to_owned(),
        });
    }

    fn stop(&mut self, reason: &str) {
        for (_, waiting) in self.pending.drain() {
            let _ = waiting.send(Err(SessionError::Stopped));
        }
        if !matches!(self.phase, Phase::Detached) {
            self.emit(SessionEvent::Lost {
                reason: reason.to_owned(),
            });
        }
        self.phase = Phase::Detached;
        self.set_state(SessionState::Stopped);
        info!(%reason, "API session stopped");
    }

    fn on_message(&mut self, text: String) {
        debug!(message = %text, "api <<");
        if matches!(self.phase, Phase::Detached) {
            // Without an attached client there is nobody this could come from.
            debug!("message while detached; ignored");
            return;
        }
        let incoming = Incoming::parse(&text);
        self.revive_if_unresponsive();
        if self.is_probe_reply(&incoming) {
            return;
        }
        // The message goes out before anything it causes (Ready after CURRENTUSERHANDLE).
        let notification = incoming.notification.clone();
        self.route(text, incoming);
        self.drive_handshake(&notification);
    }

    /// Resolves the request a tagged reply answers; forwards notifications.
    fn route(&mut self, text: String, incoming: Incoming) {
        match &incoming.tag {
            None => self.emit(SessionEvent::Notification(incoming)),
            Some(tag) => {
                let notification = incoming.notification.clone();
                match self.pending.remove(tag) {
                    Some(waiting) => {
                        let body = text.split_once(' ').map_or("", |(_, body)| body);
                        let reply = Reply {
                            text: body.to_owned(),
                            notification,
                        };
                        if waiting.send(Ok(reply)).is_err() {
                            debug!(%tag, "reply arrived after its request gave up");
                        }
                    }
                    None => debug!(%tag, "reply to no waiting request"),
                }
                if incoming.notification.carries_state() {
                    self.emit(SessionEvent::Notification(incoming));
                }
            }
        }
    }

    /// Handshake progress and the settings the session keeps by itself.
    fn drive_handshake(&mut self, notification: &Notification) {
        match notification {
            Notification::Error { .. } if notification.is_not_authorized() => {
                self.on_not_authorized()
            }
            // The reply to NAME. Not PROTOCOL: some clients answer it before authorizing.
            Notification::Ok => {
                if matches!(self.phase, Phase::Authorizing { .. }) {
                    self.start_login();
                }
            }
            Notification::CurrentUserHandle(user) => {
                if matches!(self.phase, Phase::Authorizing { .. }) {
                    // Only an authorized client reports its user.
                    self.start_login();
                }
                self.check_user(user);
            }
            Notification::SilentMode(false) if self.config.silent_mode => {
                if matches!(self.phase, Phase::Ready { .. }) {
                    self.write_command(Command::SetSilentMode(true));
                }
            }
            _ => {}
        }
    }

    fn on_not_authorized(&mut self) {
        let limit = self.config.auth_retry_limit;
        let retry_interval = self.config.auth_retry_interval;
        let login_timeout = self.config.login_timeout;
        let attempts = self.hello_attempts;
        if matches!(self.phase, Phase::LoggingIn { .. }) {
            // Authorization withdrawn (or never really given): back to asking for it.
            self.enter_authorizing();
        }
        let Phase::Authorizing {
            retry_at,
            deadline,
            pending_logged,
        } = &mut self.phase
        else {
            return;
        };
        // NAME and PROTOCOL each draw an ERROR 68: one retry per attempt.
        if retry_at.is_some() {
            return;
        }
        if attempts >= limit {
            let failure = SessionFailure::NotAuthorized { attempts };
            self.fail(failure);
            return;
        }
        if !*pending_logged {
            *pending_logged = true;
            info!(
                retry_every = ?retry_interval,
                "the client has not authorized this application yet (ERROR 68); waiting for the user"
            );
        }
        let now = Instant::now();
        *retry_at = Some(now + retry_interval);
        *deadline = now + retry_interval + login_timeout;
    }

    fn start_login(&mut self) {
        info!("client authorized the application; asking for the logged-in user");
        self.phase = Phase::LoggingIn {
            deadline: Instant::now() + self.config.login_timeout,
        };
        self.set_state(SessionState::LoggingIn);
        // A client that was already running does not repeat its unsolicited CURRENTUSERHANDLE.
        self.write_command(Command::GetCurrentUserHandle);
    }

    fn check_user(&mut self, user: &str) {
        let matches = user.eq_ignore_ascii_case(&self.config.skype_user);
        match &self.phase {
            Phase::Detached | Phase::Authorizing { .. } => {}
            Phase::Ready { .. } | Phase::Unresponsive { .. } if matches => {}
            Phase::LoggingIn { .. } | Phase::Failed if matches => self.become_ready(user),
            Phase::LoggingIn { .. }
            | Phase::Ready { .. }
            | Phase::Unresponsive { .. }
            | Phase::Failed => {
                if let Phase::Ready { .. } | Phase::Unresponsive { .. } = self.phase {
                    self.lose("the client's logged-in user changed");
                }
                let failure = SessionFailure::UserMismatch {
                    expected: self.config.skype_user.clone(),
                    found: user.to_owned(),
                };
                if self
                    .state
                    .borrow()
                    .ne(&SessionState::Failed(failure.clone()))
                {
                    self.fail(failure);
                }
            }
        }
    }

    fn become_ready(&mut self, user: &str) {
        info!(user, "client logged in; API session ready");
        self.write_command(Command::Protocol(WORKING_PROTOCOL));
        self.write_command(Command::SetAutoAway(false));
        self.write_command(Command::SetWindowState(WindowState::Hidden));
        self.write_command(Command::SetUserStatus(Presence::Online));
        if self.config.silent_mode {
            self.write_command(Command::SetSilentMode(true));
        }
        self.enter_ready(user);
    }

    fn enter_ready(&mut self, user: &str) {
        self.phase = Phase::Ready {
            user: user.to_owned(),
            probe: self.idle_probe(),
        };
        self.set_state(SessionState::Ready {
            user: user.to_owned(),
        });
        self.emit(SessionEvent::Ready {
            user: user.to_owned(),
        });
    }

    fn idle_probe(&self) -> Probe {
        match self.config.keepalive {
            Some(interval) => Probe::Idle {
                next: Instant::now() + interval,
            },
            None => Probe::Off,
        }
    }

    /// The reply to the keepalive `PING` is the session's own business.
    fn is_probe_reply(&mut self, incoming: &Incoming) -> bool {
        let Phase::Ready { probe, .. } = &self.phase else {
            return false;
        };
        let Probe::Waiting { tag, .. } = probe else {
            return false;
        };
        if incoming.tag.as_ref() != Some(tag) {
            return false;
        }
        let idle = self.idle_probe();
        if let Phase::Ready { probe, .. } = &mut self.phase {
            *probe = idle;
        }
        true
    }

    fn revive_if_unresponsive(&mut self) {
        if let Phase::Unresponsive { user } = &self.phase {
            let user = user.clone();
            info!("client answers again; API session ready");
            self.enter_ready(&user);
        }
    }

    fn send_probe(&mut self) {
        let tag = self.allocate_tag();
        // A failed write is caught by the probe's deadline like a lost reply.
        let _ = self.write(format!("#{tag} {}", Command::Ping));
        let deadline = Instant::now() + self.config.request_timeout;
        if let Phase::Ready { probe, .. } = &mut self.phase {
            *probe = Probe::Waiting { tag, deadline };
        }
    }

    fn mark_unresponsive(&mut self) {
        let Phase::Ready { user, .. } = &self.phase else {
            return;
        };
        let user = user.clone();
        let failure = SessionFailure::Unresponsive {
            waited: self.config.request_timeout,
        };
        warn!(error = %failure, "client unresponsive");
        self.phase = Phase::Unresponsive { user };
        self.set_state(SessionState::Failed(failure.clone()));
        self.emit(SessionEvent::Error(failure));
    }

    fn fail(&mut self, failure: SessionFailure) {
        warn!(error = %failure, "API handshake failed");
        self.phase = Phase::Failed;
        self.set_state(SessionState::Failed(failure.clone()));
        self.emit(SessionEvent::Error(failure));
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        match &mut self.phase {
            Phase::Authorizing {
                retry_at: Some(retry),
                ..
            } if *retry <= now => {
                self.phase_clear_retry();
                debug!(attempt = self.hello_attempts + 1, "retrying the handshake");
                self.send_hello();
            }
            Phase::Authorizing { deadline, .. } | Phase::LoggingIn { deadline }
                if *deadline <= now =>
            {
                let failure = SessionFailure::LoginTimeout {
                    waited: self.config.login_timeout,
                };
                self.fail(failure);
            }
            Phase::Ready {
                probe: Probe::Idle { next },
                ..
            } if *next <= now => self.send_probe(),
            Phase::Ready {
                probe: Probe::Waiting { deadline, .. },
                ..
            } if *deadline <= now => self.mark_unresponsive(),
            _ => {}
        }
    }

    fn phase_clear_retry(&mut self) {
        if let Phase::Authorizing { retry_at, .. } = &mut self.phase {
            *retry_at = None;
        }
    }
}

async fn sleep_until(wakeup: Option<Instant>) {
    match wakeup {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
