//! One X display connection, bridged to tokio.
//!
//! x11rb's connection is blocking, so it never runs on a runtime thread: a reader thread waits
//! for events and forwards the few kinds the transport cares about over a bounded channel, and
//! a worker thread runs requests (sends, property reads) handed to it as jobs. Both threads
//! stop when the connection's socket is shut down, which [`XConnection`] does when closed or
//! dropped; nothing outlives the connection.

use super::X11Error;
use crate::skype::wire::{self, ChunkKind, CHUNK_LEN};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, trace, Span};
use x11rb::connection::Connection;
use x11rb::errors::ReplyError;
use x11rb::protocol::xproto::{
    ClientMessageEvent, ConnectionExt as _, CreateWindowAux, EventMask, Property, Window,
    WindowClass,
};
use x11rb::protocol::{ErrorKind, Event};
use x11rb::rust_connection::RustConnection;
use x11rb::{COPY_DEPTH_FROM_PARENT, COPY_FROM_PARENT};

/// Longest a request may take. A healthy local server answers in microseconds; one that does
/// not answer for this long (stopped, or grabbed by another client) is treated as lost.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Reader-to-coordinator queue depth. When it is full the reader stops reading and the X
/// server buffers for us, which is the back-pressure we want.
const INPUT_QUEUE: usize = 256;

pub(super) const BEGIN_ATOM: &str = "SKYPECONTROLAPI_MESSAGE_BEGIN";
pub(super) const MESSAGE_ATOM: &str = "SKYPECONTROLAPI_MESSAGE";
pub(super) const INSTANCE_PROPERTY: &str = "_SKYPE_INSTANCE";

#[derive(Debug, Clone, Copy)]
pub(super) struct MessageAtoms {
    pub begin: u32,
    pub message: u32,
}

/// What the reader thread passes on.
#[derive(Debug)]
pub(super) enum XInput {
    Chunk {
        sender: Window,
        kind: ChunkKind,
        data: [u8; CHUNK_LEN],
    },
    RootProperty {
        atom: u32,
        deleted: bool,
    },
    Destroyed {
        window: Window,
    },
    /// The connection failed; the reader has stopped.
    Lost(String),
}

type Job = Box<dyn FnOnce(&RustConnection) + Send>;

pub(super) struct XConnection {
    conn: Arc<RustConnection>,
    pub root: Window,
    pub black_pixel: u32,
    pub atoms: MessageAtoms,
    jobs: mpsc::Sender<Job>,
}

impl XConnection {
    /// Connects to `display`, interns the message atoms and starts the reader and worker
    /// threads. The returned receiver yields what the reader sees.
    pub async fn open(
        display: &str,
        span: &Span,
    ) -> Result<(XConnection, mpsc::Receiver<XInput>), X11Error> {
        let name = display.to_owned();
        let (conn, root, black_pixel, atoms) =
            tokio::task::spawn_blocking(move || connect_blocking(&name))
                .await
                .map_err(|_| X11Error::WorkerGone)??;
        let conn = Arc::new(conn);

        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let reader_conn = Arc::clone(&conn);
        let reader_span = span.clone();
        std::thread::Builder::new()
            .name("x11-reader".into())
            .spawn(move || {
                let _entered = reader_span.enter();
                read_events(&reader_conn, atoms, root, &input_tx);
            })
            .map_err(X11Error::Thread)?;

        let (jobs_tx, mut jobs_rx) = mpsc::channel::<Job>(4);
        let worker_conn = Arc::clone(&conn);
        let worker_span = span.clone();
        let worker = std::thread::Builder::new()
            .name("x11-requests".into())
            .spawn(move || {
                let _entered = worker_span.enter();
                while let Some(job) = jobs_rx.blocking_recv() {
                    job(&worker_conn);
                }
            });
        let x = XConnection {
            conn,
            root,
            black_pixel,
            atoms,
            jobs: jobs_tx,
        };
        // If the worker could not start, dropping `x` shuts the socket and stops the reader.
        worker.map_err(X11Error::Thread)?;
        Ok((x, input_rx))
    }

    /// Runs `job` on the worker thread and waits for its result, at most [`REQUEST_TIMEOUT`].
    /// After a timeout the connection is unusable: drop it.
    pub async fn call<T, F>(&self, job: F) -> Result<T, X11Error>
    where
        F: FnOnce(&RustConnection) -> T + Send + 'static,
        T: Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let request = async {
            self.jobs
                .send(Box::new(move |conn: &RustConnection| {
                    let _ = reply_tx.send(job(conn));
                }))
                .await
                .map_err(|_| X11Error::WorkerGone)?;
            reply_rx.await.map_err(|_| X11Error::WorkerGone)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, request)
            .await
            .map_err(|_| X11Error::Timeout(REQUEST_TIMEOUT))?
    }

    /// Ends the connection: both threads see their next (or current) read fail and exit.
    pub fn shutdown(&self) {
        let fd = self.conn.stream().as_raw_fd();
        // SAFETY: `fd` belongs to the connection we hold an `Arc` to, so it is open. shutdown(2)
        // only changes the socket's state; it touches no memory of ours.
        unsafe {
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }
}

impl std::fmt::Debug for XConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XConnection")
            .field("root", &self.root)
            .field("atoms", &self.atoms)
            .finish_non_exhaustive()
    }
}

impl Drop for XConnection {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn connect_blocking(
    display: &str,
) -> Result<(RustConnection, Window, u32, MessageAtoms), X11Error> {
    let (conn, screen_num) = x11rb::connect(Some(display)).map_err(|source| X11Error::Connect {
        display: display.to_owned(),
        source,
    })?;
    let screen = conn
        .setup()
        .roots
        .get(screen_num)
        .ok_or(X11Error::NoScreen { screen: screen_num })?;
    let (root, black_pixel) = (screen.root, screen.black_pixel);
    let begin = conn.intern_atom(false, BEGIN_ATOM.as_bytes())?;
    let message = conn.intern_atom(false, MESSAGE_ATOM.as_bytes())?;
    let atoms = MessageAtoms {
        begin: begin.reply()?.atom,
        message: message.reply()?.atom,
    };
    Ok((conn, root, black_pixel, atoms))
}

fn read_events(
    conn: &RustConnection,
    atoms: MessageAtoms,
    root: Window,
    input: &mpsc::Sender<XInput>,
) {
    loop {
        let event = match conn.wait_for_event() {
            Ok(event) => event,
            Err(e) => {
                let _ = input.blocking_send(XInput::Lost(e.to_string()));
                return;
            }
        };
        let forwarded = match event {
            Event::ClientMessage(ev) => {
                // Other software may use ClientMessages too; only the two Skype atoms in
                // format 8 are ours.
                let kind = if ev.type_ == atoms.begin {
                    ChunkKind::Begin
                } else if ev.type_ == atoms.message {
                    ChunkKind::Continuation
                } else {
                    trace!(atom = ev.type_, "ignoring foreign ClientMessage");
                    continue;
                };
                if ev.format != 8 {
                    debug!(
                        format = ev.format,
                        "ignoring Skype ClientMessage not in format 8"
                    );
                    continue;
                }
                XInput::Chunk {
                    sender: ev.window,
                    kind,
                    data: ev.data.as_data8(),
                }
            }
            Event::PropertyNotify(ev) if ev.window == root => XInput::RootProperty {
                atom: ev.atom,
                deleted: ev.state == Property::DELETE,
            },
            Event::DestroyNotify(ev) => XInput::Destroyed { window: ev.window },
            Event::Error(e) => {
                debug!(error = ?e.error_kind, bad_value = e.bad_value, "X error on an unchecked request");
                continue;
            }
            _ => continue,
        };
        if input.blocking_send(forwarded).is_err() {
            return;
        }
    }
}

/// The 1x1 window each side of the API talks through. Never mapped and selecting nothing:
/// ClientMessages sent to it still reach its creator.
pub(super) fn create_message_window(
    conn: &RustConnection,
    root: Window,
    black_pixel: u32,
) -> Result<Window, X11Error> {
    let window = conn.generate_id()?;
    conn.create_window(
        COPY_DEPTH_FROM_PARENT,
        window,
        root,
        0,
        0,
        1,
        1,
        0,
        WindowClass::INPUT_OUTPUT,
        COPY_FROM_PARENT,
        &CreateWindowAux::new().background_pixel(black_pixel),
    )?
    .check()?;
    Ok(window)
}

/// Why a message could not be sent.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    #[error("window {0:#x} does not exist (BadWindow)")]
    WindowGone(Window),
    #[error("X server rejected the send: {0:?}")]
    Rejected(ErrorKind),
    #[error("X connection failed: {0}")]
    Connection(#[from] x11rb::errors::ConnectionError),
}

/// Sends one message as its chunks, destination `to`, `window` field `from`, then checks every
/// chunk with one round trip, so a vanished destination is known before the next message.
/// `skip_begin` leaves out the first chunk (a fault the emulator can inject).
pub(super) fn send_message(
    conn: &RustConnection,
    atoms: MessageAtoms,
    to: Window,
    from: Window,
    text: &str,
    skip_begin: bool,
) -> Result<(), SendError> {
    let chunks = wire::chunks(text)?;
    let mut cookies = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        let atom = match chunk.kind {
            ChunkKind::Begin if skip_begin => continue,
            ChunkKind::Begin => atoms.begin,
            ChunkKind::Continuation => atoms.message,
        };
        let event = ClientMessageEvent::new(8, from, atom, chunk.data);
        cookies.push(conn.send_event(false, to, EventMask::NO_EVENT, event)?);
    }
    let mut result = Ok(());
    for cookie in cookies {
        if result.is_ok() {
            result = cookie.check().map_err(|e| match e {
                ReplyError::X11Error(e) if e.error_kind == ErrorKind::Window => {
                    SendError::WindowGone(to)
                }
                ReplyError::X11Error(e) => SendError::Rejected(e.error_kind),
                ReplyError::ConnectionError(e) => SendError::Connection(e),
            });
        } else {
            // One failure is enough to know; the rest would only repeat it as stray events.
            cookie.ignore_error();
        }
    }
    result
}
