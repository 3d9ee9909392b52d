//! Controller role: one task per interface that keeps a link to whatever Skype client the
//! display advertises, across client restarts and X server restarts, until cancelled.

use super::connection::RustConnection;
use super::connection::{
    create_message_window, send_message, SendError, XConnection, XInput, INSTANCE_PROPERTY,
};
use super::{log_outcome, X11Error};
use crate::skype::link::{ControllerLink, LinkEvent, LINK_QUEUE};
use crate::skype::wire::PeerReassembly;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument, Span};
use x11rb::errors::ReplyError;
use x11rb::NONE;
use x11rb_async::protocol::xproto::{
    AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, EventMask, Window,
};
use x11rb_async::protocol::ErrorKind;

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A connection that lasted this long resets the backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(5);

/// Events waiting for the session. While this many are queued the link stops reading X
/// events (the X server buffers them), but keeps sending, so a session that is itself
/// waiting to send can never deadlock against us.
const OUTBOX_SOFT_CAP: usize = 64;

/// Starts the controller side of the link to the Skype client on `display` and returns at
/// once; the link reports [`LinkEvent::Attached`] when it finds the client.
///
/// It retries the display forever (100 ms doubling to 2 s) until `cancel` fires or both
/// halves of the returned link are dropped. Messages sent while no client is attached are
/// dropped (logged at debug level). Must be called within a tokio runtime.
pub fn spawn_controller_link(display: &str, cancel: CancellationToken) -> ControllerLink {
    let (outgoing_tx, outgoing_rx) = mpsc::channel(LINK_QUEUE);
    let (events_tx, events_rx) = mpsc::channel(LINK_QUEUE);
    // The tracing macros import a `display` function that would shadow the parameter.
    let display_name = display;
    let span = info_span!("x11_link", display = display_name);
    let link = Controller {
        display: display.to_owned(),
        cancel,
        outgoing: outgoing_rx,
        outgoing_open: true,
        events: events_tx,
        events_open: true,
        outbox: VecDeque::new(),
        reported: Reported::Nothing,
        span: span.clone(),
    };
    tokio::spawn(link.run().instrument(span));
    ControllerLink {
        outgoing: outgoing_tx,
        events: events_rx,
    }
}

/// Reconnection delays: 100 ms doubling up to 2 s, from the start again after a success.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: BACKOFF_START,
        }
    }
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(BACKOFF_MAX);
        delay
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START;
    }
}

/// What the session has been told last, kept across X connections so that it hears one
/// `Detached` per loss, not one per reconnection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reported {
    Nothing,
    Attached(Window),
    Detached,
}

/// Why serving a connection ended.
enum Exit {
    /// Cancelled, or nobody holds the link any more.
    Stop,
    /// The X connection failed; reconnect after a pause.
    Lost(String),
}

type Flow = Result<(), Exit>;

struct Controller {
    display: String,
    cancel: CancellationToken,
    outgoing: mpsc::Receiver<String>,
    outgoing_open: bool,
    events: mpsc::Sender<LinkEvent>,
    events_open: bool,
    outbox: VecDeque<LinkEvent>,
    reported: Reported,
    span: Span,
}

/// The state of one X connection.
struct Attachment {
    x: XConnection,
    own_window: Window,
    /// `None` until some client has created the `_SKYPE_INSTANCE` atom.
    instance_atom: Option<u32>,
    reassembly: PeerReassembly,
}

enum Lookup {
    Present(Window),
    Absent,
    /// The property names a window that no longer exists (a client crashed).
    Stale(Window),
}

impl Controller {
    async fn run(mut self) {
        let mut backoff = Backoff::default();
        let mut warned_unreachable = false;
        loop {
            let opened = tokio::select! {
                _ = self.cancel.cancelled() => return,
                opened = XConnection::open(&self.display, &self.span) => opened,
            };
            let reason = match opened {
                Ok((x, input)) => {
                    warned_unreachable = false;
                    let connected_at = Instant::now();
                    let exit = self.serve(x, input).await;
                    // Only a connection that held up earns a quick retry; a server that
                    // accepts and then fails at once is retried as slowly as an absent one.
                    if connected_at.elapsed() >= STABLE_CONNECTION {
                        backoff.reset();
                    }
                    match exit {
                        Exit::Stop => return,
                        Exit::Lost(reason) => {
                            warn!(%reason, "X connection lost; reconnecting");
                            reason
                        }
                    }
                }
                Err(e) => {
                    if warned_unreachable {
                        debug!(error = %e, "X display still unavailable");
                    } else {
                        warn!(error = %e, "X display unavailable; retrying");
                        warned_unreachable = true;
                    }
                    e.to_string()
                }
            };
            self.detach(format!("X display {} unavailable: {reason}", self.display));
            if !self.pause(backoff.next_delay()).await {
                return;
            }
        }
    }

    /// Waits out a reconnection delay while still delivering queued events and discarding
    /// sends, so nobody above blocks on us. False when the link is to stop.
    async fn pause(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            if !self.events_open && !self.outgoing_open {
                return false;
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return false,
                _ = &mut sleep => return true,
                permit = self.events.clone().reserve_owned(), if self.events_open && !self.outbox.is_empty() => {
                    self.deliver(permit);
                }
                _ = self.events.closed(), if self.events_open && self.outbox.is_empty() => {
                    self.events_open = false;
                }
                text = self.outgoing.recv(), if self.outgoing_open => match text {
                    Some(text) => debug!(%text, "no Skype client attached; message dropped"),
                    None => self.outgoing_open = false,
                },
            }
        }
    }

    async fn serve(&mut self, x: XConnection, mut input: mpsc::Receiver<XInput>) -> Exit {
        let (root, black) = (x.root, x.black_pixel);
        let setup = async { x.timed(setup_controller(x.conn(), root, black)).await? };
        let (own_window, instance_atom) = match guarded(&self.cancel, setup).await {
            Ok(setup) => setup,
            Err(exit) => return exit,
        };
        debug!(
            window = format_args!("{own_window:#x}"),
            "controller window created"
        );
        let mut at = Attachment {
            x,
            own_window,
            instance_atom,
            reassembly: PeerReassembly::new(),
        };
        if let Err(exit) = self.refresh(&mut at).await {
            return exit;
        }
        loop {
            if !self.events_open && !self.outgoing_open {
                return Exit::Stop;
            }
            let flow = tokio::select! {
                _ = self.cancel.cancelled() => Err(Exit::Stop),
                permit = self.events.clone().reserve_owned(), if self.events_open && !self.outbox.is_empty() => {
                    self.deliver(permit);
                    Ok(())
                }
                _ = self.events.closed(), if self.events_open && self.outbox.is_empty() => {
                    self.events_open = false;
                    Ok(())
                }
                text = self.outgoing.recv(), if self.outgoing_open => match text {
                    Some(text) => self.send(&mut at, text).await,
                    None => {
                        self.outgoing_open = false;
                        Ok(())
                    }
                },
                got = input.recv(), if self.outbox.len() < OUTBOX_SOFT_CAP => match got {
                    Some(got) => self.handle_input(&mut at, got).await,
                    None => Err(Exit::Lost("X event reader stopped".into())),
                },
            };
            if let Err(exit) = flow {
                return exit;
            }
        }
    }

    fn deliver(
        &mut self,
        permit: Result<mpsc::OwnedPermit<LinkEvent>, mpsc::error::SendError<()>>,
    ) {
        match permit {
            Ok(permit) => {
                if let Some(event) = self.outbox.pop_front() {
                    permit.send(event);
                }
            }
            Err(_) => {
                self.events_open = false;
                self.outbox.clear();
            }
        }
    }

    fn push(&mut self, event: LinkEvent) {
        if self.events_open {
            self.outbox.push_back(event);
        }
    }

    async fn handle_input(&mut self, at: &mut Attachment, got: XInput) -> Flow {
        match got {
            XInput::Chunk { sender, kind, data } => {
                let outcome = at.reassembly.push(sender, kind, &data);
                log_outcome(sender, &outcome);
                if let Some(message) = outcome.message {
                    debug!(text = %message.text, "<- skype");
                    self.push(LinkEvent::Message(message.text));
                }
                Ok(())
            }
            XInput::RootProperty { atom, deleted } => {
                if at.instance_atom.is_none() {
                    // The atom did not exist when we looked; a client may just have created it.
                    let intern = async { at.x.timed(intern_instance_atom(at.x.conn())).await? };
                    at.instance_atom = guarded(&self.cancel, intern).await?;
                }
                if at.instance_atom == Some(atom) {
                    debug!(deleted, "_SKYPE_INSTANCE changed");
                    self.refresh(at).await?;
                }
                Ok(())
            }
            XInput::Destroyed { window } => {
                at.reassembly.forget(window);
                if self.reported == Reported::Attached(window) {
                    self.detach(format!("Skype client window {window:#x} was destroyed"));
                    // A crashed client leaves the property behind; look so a stale one is noted
                    // and a replacement that was already advertised is picked up.
                    self.refresh(at).await?;
                }
                Ok(())
            }
            XInput::Lost(reason) => Err(Exit::Lost(reason)),
        }
    }

    async fn send(&mut self, at: &mut Attachment, text: String) -> Flow {
        let Reported::Attached(client) = self.reported else {
            debug!(%text, "no Skype client attached; message dropped");
            return Ok(());
        };
        let (atoms, from) = (at.x.atoms, at.own_window);
        let send =
            at.x.timed(send_message(at.x.conn(), atoms, client, from, &text, false));
        let sent = guarded(&self.cancel, send).await?;
        match sent {
            Ok(()) => {
                debug!(%text, "-> skype");
                Ok(())
            }
            Err(SendError::WindowGone(window)) => {
                at.reassembly.forget(window);
                self.detach(format!(
                    "Skype client window {window:#x} is gone (BadWindow on send)"
                ));
                self.refresh(at).await
            }
            Err(SendError::Connection(e)) => Err(Exit::Lost(e.to_string())),
            Err(e @ (SendError::Wire(_) | SendError::Rejected(_))) => {
                warn!(error = %e, "message not sent");
                Ok(())
            }
        }
    }

    /// Reads `_SKYPE_INSTANCE` again and reports what changed.
    async fn refresh(&mut self, at: &mut Attachment) -> Flow {
        let Some(atom) = at.instance_atom else {
            self.detach("no Skype client on the display (_SKYPE_INSTANCE never set)".into());
            return Ok(());
        };
        let (root, own_window) = (at.x.root, at.own_window);
        let lookup = async {
            at.x.timed(find_client(at.x.conn(), root, atom, own_window))
                .await?
        };
        let lookup = guarded(&self.cancel, lookup).await?;
        match lookup {
            Lookup::Present(window) => self.attach(window),
            Lookup::Absent => {
                self.detach("no Skype client on the display (_SKYPE_INSTANCE not set)".into())
            }
            Lookup::Stale(window) => self.detach(format!(
                "stale _SKYPE_INSTANCE: window {window:#x} does not exist"
            )),
        }
        Ok(())
    }

    fn attach(&mut self, window: Window) {
        match self.reported {
            Reported::Attached(current) if current == window => return,
            Reported::Attached(current) => {
                self.detach(format!(
                    "Skype client window {current:#x} replaced by {window:#x}"
                ));
            }
            Reported::Nothing | Reported::Detached => {}
        }
        info!(
            window = format_args!("{window:#x}"),
            "Skype client attached"
        );
        self.reported = Reported::Attached(window);
        self.push(LinkEvent::Attached { window });
    }

    fn detach(&mut self, reason: String) {
        if self.reported == Reported::Detached {
            debug!(%reason, "still no Skype client");
            return;
        }
        info!(%reason, "Skype client detached");
        self.reported = Reported::Detached;
        self.push(LinkEvent::Detached { reason });
    }
}

/// Waits for an X request unless cancelled first; a failed request means the connection is
/// no good any more.
async fn guarded<T>(
    cancel: &CancellationToken,
    request: impl std::future::Future<Output = Result<T, X11Error>>,
) -> Result<T, Exit> {
    tokio::select! {
        _ = cancel.cancelled() => Err(Exit::Stop),
        result = request => result.map_err(|e| Exit::Lost(e.to_string())),
    }
}

async fn setup_controller(
    conn: &RustConnection,
    root: Window,
    black_pixel: u32,
) -> Result<(Window, Option<u32>), X11Error> {
    // Selecting on the root first means no change of the property can slip between this
    // and the first read.
    conn.change_window_attributes(
        root,
        &ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE),
    )
    .await?
    .check()
    .await?;
    let window = create_message_window(conn, root, black_pixel).await?;
    Ok((window, intern_instance_atom(conn).await?))
}

/// Only-if-exists, as the original: if no client ever created the atom, there is no client.
async fn intern_instance_atom(conn: &RustConnection) -> Result<Option<u32>, X11Error> {
    let atom = conn
        .intern_atom(true, INSTANCE_PROPERTY.as_bytes())
        .await?
        .reply()
        .await?
        .atom;
    Ok((atom != NONE).then_some(atom))
}

async fn find_client(
    conn: &RustConnection,
    root: Window,
    instance: u32,
    own_window: Window,
) -> Result<Lookup, X11Error> {
    let reply = conn
        .get_property(false, root, instance, AtomEnum::WINDOW, 0, 1)
        .await?
        .reply()
        .await?;
    if reply.format != 32 || reply.value_len != 1 || reply.type_ != u32::from(AtomEnum::WINDOW) {
        return Ok(Lookup::Absent);
    }
    let Some(window) = reply.value32().and_then(|mut values| values.next()) else {
        return Ok(Lookup::Absent);
    };
    // The server recycles the ids of clients that went away, so a crashed client's id can
    // come back as a window of ours (our connection may have taken its id range).
    if window == own_window {
        return Ok(Lookup::Stale(window));
    }
    // Watching the window for its destruction doubles as the existence check: a stale id
    // fails with BadWindow, and a client that dies after this point sends us DestroyNotify.
    let watch = conn
        .change_window_attributes(
            window,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
        )
        .await?;
    match watch.check().await {
        Ok(()) => Ok(Lookup::Present(window)),
        Err(ReplyError::X11Error(e)) if e.error_kind == ErrorKind::Window => {
            Ok(Lookup::Stale(window))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..7)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 2000, 2000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
    }
}
