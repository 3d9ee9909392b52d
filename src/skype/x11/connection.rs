//! One X display connection on the async runtime (x11rb's async companion): a task drives the
//! connection's packet reader, another forwards the few kinds of event the transport cares
//! about over a bounded channel, and requests are plain `async` calls bounded by a timeout.
//! No thread per link: 250 displays cost 500 small tasks. Both tasks end with the
//! connection, which [`XConnection`] does when shut down or dropped.

use super::stream::TokioStream;
use super::X11Error;
use crate::skype::wire::{self, ChunkKind, CHUNK_LEN};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{debug, trace, Instrument, Span};
use x11rb::errors::ReplyError;
use x11rb::{COPY_DEPTH_FROM_PARENT, COPY_FROM_PARENT};
use x11rb_async::connection::Connection as _;
use x11rb_async::protocol::xproto::{
    ClientMessageEvent, ConnectionExt as _, CreateWindowAux, EventMask, Property, Window,
    WindowClass,
};
use x11rb_async::protocol::{ErrorKind, Event};

pub(super) type RustConnection = x11rb_async::rust_connection::RustConnection<TokioStream>;

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

/// What the reader task passes on.
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

pub(super) struct XConnection {
    conn: Arc<RustConnection>,
    pub root: Window,
    pub black_pixel: u32,
    pub atoms: MessageAtoms,
    driver: AbortHandle,
    reader: AbortHandle,
}

impl XConnection {
    /// Connects to `display`, interns the message atoms and starts the driver and reader
    /// tasks. The returned receiver yields what the reader sees.
    pub async fn open(
        display: &str,
        span: &Span,
    ) -> Result<(XConnection, mpsc::Receiver<XInput>), X11Error> {
        let connect = async {
            let connected = TokioStream::connect(display).await?;
            let (conn, drive) = RustConnection::connect_to_stream_with_auth_info(
                connected.stream,
                connected.screen,
                connected.auth_name,
                connected.auth_data,
            )
            .await?;
            Ok((conn, connected.screen, drive))
        };
        let (conn, screen_num, drive) = tokio::time::timeout(REQUEST_TIMEOUT, connect)
            .await
            .map_err(|_| X11Error::Timeout(REQUEST_TIMEOUT))?
            .map_err(|source| X11Error::Connect {
                display: display.to_owned(),
                source,
            })?;
        let driver = tokio::spawn(
            async move {
                // Only ever ends in an error: the server went away, or the socket was shut.
                let Err(e) = drive.await;
                debug!(error = %e, "X connection reader ended");
            }
            .instrument(span.clone()),
        )
        .abort_handle();
        let conn = Arc::new(conn);
        let setup = async {
            let screen = conn
                .setup()
                .roots
                .get(screen_num)
                .ok_or(X11Error::NoScreen { screen: screen_num })?;
            let (root, black_pixel) = (screen.root, screen.black_pixel);
            let begin = conn.intern_atom(false, BEGIN_ATOM.as_bytes()).await?;
            let message = conn.intern_atom(false, MESSAGE_ATOM.as_bytes()).await?;
            let atoms = MessageAtoms {
                begin: begin.reply().await?.atom,
                message: message.reply().await?.atom,
            };
            Ok::<_, X11Error>((root, black_pixel, atoms))
        };
        let (root, black_pixel, atoms) = match timed(setup).await {
            Ok(Ok(setup)) => setup,
            Ok(Err(e)) | Err(e) => {
                driver.abort();
                return Err(e);
            }
        };
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let reader = tokio::spawn(
            read_events(Arc::clone(&conn), atoms, root, input_tx).instrument(span.clone()),
        )
        .abort_handle();
        Ok((
            XConnection {
                conn,
                root,
                black_pixel,
                atoms,
                driver,
                reader,
            },
            input_rx,
        ))
    }

    pub fn conn(&self) -> &RustConnection {
        &self.conn
    }

    /// Runs `request`, at most [`REQUEST_TIMEOUT`]. After a timeout the connection is
    /// unusable: drop it.
    pub async fn timed<T>(&self, request: impl Future<Output = T>) -> Result<T, X11Error> {
        timed(request).await
    }

    /// Ends the connection: the driver and the reader stop, and the socket closes once the
    /// last request in flight lets go of it.
    pub fn shutdown(&self) {
        self.reader.abort();
        self.driver.abort();
    }
}

async fn timed<T>(request: impl Future<Output = T>) -> Result<T, X11Error> {
    tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .map_err(|_| X11Error::Timeout(REQUEST_TIMEOUT))
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

async fn read_events(
    conn: Arc<RustConnection>,
    atoms: MessageAtoms,
    root: Window,
    input: mpsc::Sender<XInput>,
) {
    loop {
        let event = match conn.wait_for_event().await {
            Ok(event) => event,
            Err(e) => {
                let _ = input.send(XInput::Lost(e.to_string())).await;
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
        if input.send(forwarded).await.is_err() {
            return;
        }
    }
}

/// The 1x1 window each side of the API talks through. Never mapped and selecting nothing:
/// ClientMessages sent to it still reach its creator.
pub(super) async fn create_message_window(
    conn: &RustConnection,
    root: Window,
    black_pixel: u32,
) -> Result<Window, X11Error> {
    let window = conn.generate_id().await?;
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
    )
    .await?
    .check()
    .await?;
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
pub(super) async fn send_message(
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
        cookies.push(
            conn.send_event(false, to, EventMask::NO_EVENT, event)
                .await?,
        );
    }
    let mut result = Ok(());
    for cookie in cookies {
        if result.is_ok() {
            result = cookie.check().await.map_err(|e| match e {
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
