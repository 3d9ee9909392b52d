//! The socket under each X connection, on tokio's own reactor.
//!
//! x11rb-async's default stream waits through async-io, which runs a reactor thread of its own
//! and re-arms epoll (an `epoll_ctl` call) on every wait: each X event then costs a wake-up on
//! that thread and a hop back to the runtime. In the chat benchmark that thread took a tenth
//! of the machine. Here the socket is registered once with tokio (edge-triggered), and a
//! wait is answered on the runtime's own threads.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use tokio::io::unix::AsyncFd;
use x11rb::errors::{ConnectError, DisplayParsingError};
use x11rb::reexports::x11rb_protocol::{parse_display, xauth};
use x11rb::rust_connection::{DefaultStream, PollMode, Stream as X11rbStream};
use x11rb::utils::RawFdContainer;
use x11rb_async::rust_connection::StreamBase;

/// A connected X11 socket registered with the tokio reactor.
#[derive(Debug)]
pub struct TokioStream {
    inner: AsyncFd<DefaultStream>,
}

/// Where and how to log in: the stream, the screen the display name asks for, and the
/// authorization (name, data) from the Xauthority file, empty when there is none.
pub struct Connected {
    pub stream: TokioStream,
    pub screen: usize,
    pub auth_name: Vec<u8>,
    pub auth_data: Vec<u8>,
}

impl TokioStream {
    /// Connects to `display` (`:101`, `unix:101`, `host:0`), trying each address the name
    /// stands for. The connect and the Xauthority read are blocking, so they run on the
    /// blocking pool.
    pub async fn connect(display: &str) -> Result<Connected, ConnectError> {
        // A few at a time: 250 links starting together would otherwise grow the blocking pool
        // by a thread each (kept alive for 10 s), on a machine that has two cores.
        static CONNECTING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
        let _turn = CONNECTING.acquire().await;
        let display = display.to_owned();
        let found = tokio::task::spawn_blocking(move || {
            let parsed = parse_display::parse_display(Some(&display))?;
            let mut last_error = None;
            for address in parsed.connect_instruction() {
                match DefaultStream::connect(&address) {
                    Ok((stream, (family, peer))) => {
                        let (auth_name, auth_data) = xauth::get_auth(family, &peer, parsed.display)
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                        return Ok((stream, parsed.screen, auth_name, auth_data));
                    }
                    Err(e) => last_error = Some(e),
                }
            }
            Err(match last_error {
                Some(e) => ConnectError::IoError(e),
                None => ConnectError::DisplayParsingError(DisplayParsingError::Unknown),
            })
        })
        .await
        .map_err(|e| ConnectError::IoError(io::Error::other(e)))??;
        let (stream, screen, auth_name, auth_data) = found;
        // SAFETY: the stream owns its socket; the descriptor stays open and the same for as
        // long as the AsyncFd holds the stream, and is closed only when both are dropped.
        let inner = unsafe { AsyncFd::register(stream) }
            .map_err(|e| ConnectError::IoError(io::Error::other(e.to_string())))?;
        Ok(Connected {
            stream: TokioStream { inner },
            screen: usize::from(screen),
            auth_name,
            auth_data,
        })
    }
}

type Wait<'a> = Pin<Box<dyn Future<Output = io::Result<()>> + Send + 'a>>;

impl<'a> StreamBase<'a> for TokioStream {
    type Readable = Wait<'a>;
    type Writable = Wait<'a>;

    // Tokio's readiness is edge-triggered and may be stale (an edge whose bytes were read
    // since), so a wait ends only when the socket really is ready now; readiness is cleared
    // only after the socket says it is not, as a WouldBlock would. The guard clears only the
    // readiness it saw, never a newer event.
    fn readable(&'a self) -> Self::Readable {
        Box::pin(async move {
            loop {
                let mut guard = self.inner.readable().await?;
                if ready_now(self.inner.get_ref().as_raw_fd(), libc::POLLIN)? {
                    return Ok(());
                }
                guard.clear_ready();
            }
        })
    }

    fn writable(&'a self) -> Self::Writable {
        Box::pin(async move {
            loop {
                let mut guard = self.inner.writable().await?;
                if ready_now(self.inner.get_ref().as_raw_fd(), libc::POLLOUT)? {
                    return Ok(());
                }
                guard.clear_ready();
            }
        })
    }
}

/// Whether `fd` is ready for `events` (or has hung up or failed, which a read or write will
/// then report) at this instant: `poll(2)` with no timeout.
fn ready_now(fd: std::os::fd::RawFd, events: libc::c_short) -> io::Result<bool> {
    let mut pollfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    loop {
        // SAFETY: `pollfd` is one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pollfd, 1, 0) };
        if n >= 0 {
            return Ok(n > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl X11rbStream for TokioStream {
    /// x11rb's blocking interface; the async connection never calls it, but the trait asks.
    fn poll(&self, mode: PollMode) -> io::Result<()> {
        let events = match mode {
            PollMode::Readable => libc::POLLIN,
            PollMode::Writable => libc::POLLOUT,
            PollMode::ReadAndWritable => libc::POLLIN | libc::POLLOUT,
        };
        let mut fd = libc::pollfd {
            fd: self.inner.get_ref().as_raw_fd(),
            events,
            revents: 0,
        };
        loop {
            // SAFETY: `fd` is one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut fd, 1, -1) };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn read(&self, buf: &mut [u8], fd_storage: &mut Vec<RawFdContainer>) -> io::Result<usize> {
        self.inner.get_ref().read(buf, fd_storage)
    }

    fn write(&self, buf: &[u8], fds: &mut Vec<RawFdContainer>) -> io::Result<usize> {
        self.inner.get_ref().write(buf, fds)
    }

    fn write_vectored(
        &self,
        bufs: &[io::IoSlice<'_>],
        fds: &mut Vec<RawFdContainer>,
    ) -> io::Result<usize> {
        self.inner.get_ref().write_vectored(bufs, fds)
    }
}
