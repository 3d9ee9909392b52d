//! Client role, for the emulator: advertise an API window through `_SKYPE_INSTANCE` and talk
//! to every controller that writes to it, each identified by its own window.

use super::connection::RustConnection;
use super::connection::{
    create_message_window, send_message, SendError, XConnection, XInput, INSTANCE_PROPERTY,
};
use super::{log_outcome, X11Error};
use crate::skype::link::{ClientLink, ClientOutgoing, PeerMessage, LINK_QUEUE};
use crate::skype::wire::PeerReassembly;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, field, info, info_span, warn, Instrument};
use x11rb_async::protocol::xproto::{AtomEnum, ConnectionExt as _, PropMode, Window};

/// Messages waiting for the emulator; past this the endpoint stops reading X events but keeps
/// sending replies.
const OUTBOX_SOFT_CAP: usize = 64;

/// Handle on a running client endpoint. Dropping it (or cancelling the token it was started
/// with) ends the endpoint: the property is deleted, unless [`set_stale_on_exit`] asked to
/// leave it behind the way a crashed client does.
///
/// [`set_stale_on_exit`]: ClientEndpoint::set_stale_on_exit
#[derive(Debug)]
pub struct ClientEndpoint {
    window: Window,
    instance_atom: u32,
    x: Arc<XConnection>,
    stale_on_exit: Arc<AtomicBool>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

/// Connects to `display`, creates the client's API window, advertises it in `_SKYPE_INSTANCE`
/// and starts serving controllers. Must be called within a tokio runtime.
pub async fn spawn_client_endpoint(
    display: &str,
    cancel: CancellationToken,
) -> Result<(ClientLink, ClientEndpoint), X11Error> {
    let display_name = display;
    let span = info_span!(
        "skype_client_x11",
        display = display_name,
        window = field::Empty
    );
    let (x, input) = XConnection::open(display, &span).await?;
    let (root, black) = (x.root, x.black_pixel);
    let (window, instance_atom) = x.timed(setup_client(x.conn(), root, black)).await??;
    span.record("window", field::display(format_args!("{window:#x}")));
    span.in_scope(|| info!("Skype client window advertised"));

    let x = Arc::new(x);
    let (incoming_tx, incoming_rx) = mpsc::channel(LINK_QUEUE);
    let (outgoing_tx, outgoing_rx) = mpsc::channel(LINK_QUEUE);
    let stale_on_exit = Arc::new(AtomicBool::new(false));
    let stop = cancel.child_token();
    let endpoint = Endpoint {
        x: Arc::clone(&x),
        window,
        instance_atom,
        input,
        incoming: incoming_tx,
        incoming_open: true,
        outbox: VecDeque::new(),
        outgoing: outgoing_rx,
        reassembly: PeerReassembly::new(),
        stale_on_exit: Arc::clone(&stale_on_exit),
        stop: stop.clone(),
    };
    let task = tokio::spawn(endpoint.run().instrument(span));
    Ok((
        ClientLink {
            incoming: incoming_rx,
            outgoing: outgoing_tx,
        },
        ClientEndpoint {
            window,
            instance_atom,
            x,
            stale_on_exit,
            stop,
            task: Some(task),
        },
    ))
}

impl ClientEndpoint {
    /// The advertised API window: the `window` field of everything this client sends.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// When set, ending the endpoint leaves `_SKYPE_INSTANCE` naming a window that no longer
    /// exists, as a crashed client does.
    pub fn set_stale_on_exit(&self, stale: bool) {
        self.stale_on_exit.store(stale, Ordering::Relaxed);
    }

    /// Deletes `_SKYPE_INSTANCE` (if it still names this window), as a client does when it
    /// exits cleanly. The window stays and keeps answering controllers that already know it.
    pub async fn withdraw(&self) -> Result<(), X11Error> {
        let (root, atom, window) = (self.x.root, self.instance_atom, self.window);
        self.x
            .timed(withdraw(self.x.conn(), root, atom, window))
            .await?
    }

    /// Sets `_SKYPE_INSTANCE` to this window again (after [`withdraw`](Self::withdraw)).
    pub async fn advertise(&self) -> Result<(), X11Error> {
        let (root, atom, window) = (self.x.root, self.instance_atom, self.window);
        self.x
            .timed(advertise(self.x.conn(), root, atom, window))
            .await?
    }

    /// Ends the endpoint and waits until its property is dealt with and its connection closed.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ClientEndpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

struct Endpoint {
    x: Arc<XConnection>,
    window: Window,
    instance_atom: u32,
    input: mpsc::Receiver<XInput>,
    incoming: mpsc::Sender<PeerMessage>,
    incoming_open: bool,
    outbox: VecDeque<PeerMessage>,
    outgoing: mpsc::Receiver<ClientOutgoing>,
    reassembly: PeerReassembly,
    stale_on_exit: Arc<AtomicBool>,
    stop: CancellationToken,
}

impl Endpoint {
    async fn run(mut self) {
        let mut outgoing_open = true;
        let connection_alive = loop {
            tokio::select! {
                _ = self.stop.cancelled() => break true,
                permit = self.incoming.clone().reserve_owned(), if self.incoming_open && !self.outbox.is_empty() => {
                    match permit {
                        Ok(permit) => {
                            if let Some(message) = self.outbox.pop_front() {
                                permit.send(message);
                            }
                        }
                        Err(_) => self.close_incoming(),
                    }
                }
                _ = self.incoming.closed(), if self.incoming_open && self.outbox.is_empty() => {
                    self.close_incoming();
                }
                reply = self.outgoing.recv(), if outgoing_open => match reply {
                    Some(reply) => {
                        if !self.send(reply).await {
                            break false;
                        }
                    }
                    None => outgoing_open = false,
                },
                got = self.input.recv(), if self.outbox.len() < OUTBOX_SOFT_CAP => match got {
                    Some(XInput::Chunk { sender, kind, data }) => {
                        let outcome = self.reassembly.push(sender, kind, &data);
                        log_outcome(sender, &outcome);
                        if let Some(message) = outcome.message {
                            debug!(peer = format_args!("{sender:#x}"), text = %message.text, "<- controller");
                            if self.incoming_open {
                                self.outbox.push_back(PeerMessage { peer: sender, text: message.text });
                            }
                        }
                    }
                    Some(XInput::Destroyed { window }) => self.reassembly.forget(window),
                    Some(XInput::RootProperty { .. }) => {}
                    Some(XInput::Lost(reason)) => {
                        warn!(%reason, "X connection lost; Skype client endpoint stops");
                        break false;
                    }
                    None => break false,
                },
            }
        };
        if connection_alive && !self.stale_on_exit.load(Ordering::Relaxed) {
            let (root, atom, window) = (self.x.root, self.instance_atom, self.window);
            match self
                .x
                .timed(withdraw(self.x.conn(), root, atom, window))
                .await
            {
                Ok(Ok(())) => info!("Skype client window withdrawn"),
                Ok(Err(e)) | Err(e) => warn!(error = %e, "cannot delete _SKYPE_INSTANCE"),
            }
        } else if connection_alive {
            info!("Skype client endpoint ends leaving a stale _SKYPE_INSTANCE");
        }
        self.x.shutdown();
    }

    fn close_incoming(&mut self) {
        self.incoming_open = false;
        self.outbox.clear();
    }

    /// Returns false when the X connection is gone.
    async fn send(&mut self, reply: ClientOutgoing) -> bool {
        let ClientOutgoing { peer, text, faults } = reply;
        let (atoms, from) = (self.x.atoms, self.window);
        let sent = self
            .x
            .timed(send_message(
                self.x.conn(),
                atoms,
                peer,
                from,
                &text,
                faults.drop_begin,
            ))
            .await;
        match sent {
            Ok(Ok(())) => {
                debug!(peer = format_args!("{peer:#x}"), %text, drop_begin = faults.drop_begin, "-> controller");
                true
            }
            Ok(Err(SendError::WindowGone(window))) => {
                // A controller that went away only costs its own replies.
                warn!(
                    peer = format_args!("{window:#x}"),
                    "controller window gone; reply dropped"
                );
                self.reassembly.forget(window);
                true
            }
            Ok(Err(SendError::Connection(e))) => {
                warn!(error = %e, "X connection lost while sending");
                false
            }
            Ok(Err(e)) => {
                warn!(peer = format_args!("{peer:#x}"), error = %e, "reply not sent");
                true
            }
            Err(e) => {
                warn!(error = %e, "X connection unusable");
                false
            }
        }
    }
}

async fn setup_client(
    conn: &RustConnection,
    root: Window,
    black_pixel: u32,
) -> Result<(Window, u32), X11Error> {
    let window = create_message_window(conn, root, black_pixel).await?;
    let atom = conn
        .intern_atom(false, INSTANCE_PROPERTY.as_bytes())
        .await?
        .reply()
        .await?
        .atom;
    advertise(conn, root, atom, window).await?;
    Ok((window, atom))
}

async fn advertise(
    conn: &RustConnection,
    root: Window,
    atom: u32,
    window: Window,
) -> Result<(), X11Error> {
    // One 32-bit item in the connection's (native) byte order, as x11rb's wrapper writes it.
    let data = window.to_ne_bytes();
    conn.change_property(
        PropMode::REPLACE,
        root,
        atom,
        AtomEnum::WINDOW,
        32,
        1,
        &data,
    )
    .await?
    .check()
    .await?;
    Ok(())
}

async fn withdraw(
    conn: &RustConnection,
    root: Window,
    atom: u32,
    window: Window,
) -> Result<(), X11Error> {
    let current = conn
        .get_property(false, root, atom, AtomEnum::WINDOW, 0, 1)
        .await?
        .reply()
        .await?;
    let ours = current.format == 32
        && current
            .value32()
            .and_then(|mut values| values.next())
            .is_some_and(|w| w == window);
    if ours {
        conn.delete_property(root, atom).await?.check().await?;
    }
    Ok(())
}
