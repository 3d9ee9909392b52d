//! Per-call TCP audio ports. The Skype client connects to two ports we listen on:
//! `SET_INPUT PORT` (we write what the remote Skype party hears) and `SET_OUTPUT PORT` (we read
//! what the remote party says). Both carry headerless 16 kHz s16le mono.
//!
//! Unlike the original module, the listeners are bound before the caller sends the `ALTER`
//! commands (so the port numbers are known, no sleep-and-hope), and each port keeps accepting:
//! a client that reconnects (hold/resume) replaces the previous connection.

mod ports;

pub use ports::SkypePorts;

use crate::media::side::{FrameDuplex, MediaSide, Offer};
use ports::{PortLink, Side};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};

/// 8 frames' worth of samples, as the original module used; it helped clients on VMs.
const SOCKET_BUFFER_BYTES: u32 = 2560;
const LISTEN_BACKLOG: u32 = 4;
/// Frames queued towards a client that is not keeping up, and between a bridge and its user.
const CHANNEL_FRAMES: usize = 8;
/// A client that stops reading for this long is dropped; it may reconnect.
const WRITE_STALL: Duration = Duration::from_secs(1);
/// Pause after a failed accept (e.g. out of fds) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("no free TCP port on 127.0.0.1 in {first}-{last} for call audio")]
    NoFreePort { first: u16, last: u16 },
    #[error("cannot open audio listener on 127.0.0.1:{port}: {source}")]
    Socket {
        port: u16,
        #[source]
        source: io::Error,
    },
}

/// Hands out listening ports from the configured range, round-robin across calls, skipping
/// ports that are in use and wrapping at the end. One per process, shared by all interfaces.
#[derive(Debug)]
pub struct PortAllocator {
    first: u16,
    last: u16,
    /// Offset into the range where the next search starts; it moves past every port handed
    /// out, so a just-freed port is not reused at once.
    cursor: AtomicU32,
}

impl PortAllocator {
    pub fn new(range: RangeInclusive<u16>) -> PortAllocator {
        let (first, last) = (*range.start(), *range.end());
        let (first, last) = if first <= last {
            (first, last)
        } else {
            (last, first)
        };
        PortAllocator {
            first,
            last,
            cursor: AtomicU32::new(0),
        }
    }

    fn span(&self) -> u32 {
        u32::from(self.last - self.first) + 1
    }

    /// Binds the next free port. Must run inside a tokio runtime.
    fn bind_next(&self, setsockopt: bool) -> Result<(TcpListener, u16), AudioError> {
        let span = self.span();
        let start = self.cursor.load(Ordering::Relaxed) % span;
        for step in 0..span {
            let offset = (start + step) % span;
            // offset < span <= 65536 and first + offset <= last, so this never truncates.
            let port = self.first + offset as u16;
            match listen_on(port, setsockopt) {
                Ok(listener) => {
                    self.cursor.store((offset + 1) % span, Ordering::Relaxed);
                    return Ok((listener, port));
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(source) => return Err(AudioError::Socket { port, source }),
            }
        }
        Err(AudioError::NoFreePort {
            first: self.first,
            last: self.last,
        })
    }
}

fn listen_on(port: u16, setsockopt: bool) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    if setsockopt {
        // Set on the listener so accepted sockets inherit them from the first byte.
        socket.set_recv_buffer_size(SOCKET_BUFFER_BYTES)?;
        socket.set_send_buffer_size(SOCKET_BUFFER_BYTES)?;
        socket.set_nodelay(true)?;
    }
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    socket.listen(LISTEN_BACKLOG)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct AudioOptions {
    /// The original `setsockopt` parameter: small socket buffers and TCP_NODELAY.
    pub setsockopt: bool,
}

/// The two port numbers to put in `ALTER CALL <id> SET_INPUT PORT="<input>"` and
/// `SET_OUTPUT PORT="<output>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioPorts {
    pub input: u16,
    pub output: u16,
}

/// Connection state of the two ports, for logs, `sk` output and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AudioLinks {
    pub input_connected: bool,
    pub output_connected: bool,
    /// Connections accepted so far (reconnects included).
    pub input_accepts: u32,
    pub output_accepts: u32,
}

/// A call's audio ports, bound and accepting once the pump (or [`SkypeAudio::bridged`])
/// drives [`SkypeAudio::side`].
#[derive(Debug)]
pub struct SkypeAudio {
    pub ports: AudioPorts,
    /// Both ports as one side of the pump: `offer` writes what the remote Skype party must
    /// hear, `recv` yields what it says (and accepts the client's connections meanwhile).
    pub side: SkypePorts,
    pub links: watch::Receiver<AudioLinks>,
}

impl SkypeAudio {
    /// Binds both ports. Send the `ALTER` commands only after this returns. The ports close
    /// when the side is dropped.
    pub fn bind(
        allocator: &PortAllocator,
        options: AudioOptions,
    ) -> Result<SkypeAudio, AudioError> {
        let (input_listener, input) = allocator.bind_next(options.setsockopt)?;
        let (output_listener, output) = allocator.bind_next(options.setsockopt)?;
        let (links_tx, links) = watch::channel(AudioLinks::default());
        debug!(input, output, "audio ports listening");
        let link = |listener, port, side| PortLink {
            listener,
            port,
            links: links_tx.clone(),
            nodelay: options.setsockopt,
            side,
        };
        Ok(SkypeAudio {
            ports: AudioPorts { input, output },
            side: SkypePorts::new(
                link(input_listener, input, Side::Input),
                link(output_listener, output, Side::Output),
            ),
            links,
        })
    }

    /// The ports served by a task of their own behind a channel pair, for a user that is not
    /// a pump (tests, tools). The task runs in the caller's span and stops with `parent`, with
    /// the guard, or when the duplex is dropped.
    pub fn bridged(self, parent: &CancellationToken) -> BridgedAudio {
        let stop = parent.child_token();
        let (frames, task) = bridge(self.side, CHANNEL_FRAMES, stop.clone());
        BridgedAudio {
            ports: self.ports,
            frames,
            guard: AudioGuard {
                stop,
                task: Some(task),
                links: self.links,
            },
        }
    }
}

/// [`SkypeAudio`] behind a channel pair.
#[derive(Debug)]
pub struct BridgedAudio {
    pub ports: AudioPorts,
    /// `tx`: frames the remote Skype party must hear. `rx`: frames the remote party says.
    pub frames: FrameDuplex,
    pub guard: AudioGuard,
}

/// Owns the bridge task. Dropping it stops the task; [`AudioGuard::close`] also waits until
/// both ports are closed.
#[derive(Debug)]
pub struct AudioGuard {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
    links: watch::Receiver<AudioLinks>,
}

impl AudioGuard {
    pub fn links(&self) -> watch::Receiver<AudioLinks> {
        self.links.clone()
    }

    pub async fn close(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                warn!(error = %e, "audio port task failed");
            }
        }
    }
}

impl Drop for AudioGuard {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves `side` from a task: what it yields goes to the returned duplex's `rx`, what is sent
/// on its `tx` is offered to it (waiting while it is full). Ends when `stop` fires, when the
/// side closes or when the duplex is dropped.
fn bridge<S: MediaSide + 'static>(
    mut side: S,
    capacity: usize,
    stop: CancellationToken,
) -> (FrameDuplex, JoinHandle<()>) {
    let (ours, theirs) = FrameDuplex::pair(capacity);
    let FrameDuplex {
        tx: to_user,
        rx: mut from_user,
    } = ours;
    let task = tokio::spawn(
        async move {
            loop {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    frame = from_user.recv() => {
                        let Some(frame) = frame else { break };
                        if side.offer(frame) == Offer::Closed {
                            break;
                        }
                    }
                    frame = side.recv() => {
                        let Some(frame) = frame else { break };
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            sent = to_user.send(frame) => if sent.is_err() { break },
                        }
                    }
                }
            }
        }
        .in_current_span(),
    );
    (theirs, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of `n` consecutive ports that are free right now.
    fn free_run(n: u16) -> u16 {
        let mut base = 45_000 + (std::process::id() % 500) as u16 * 8;
        loop {
            if (base..base + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
                return base;
            }
            base += n;
        }
    }

    #[tokio::test]
    async fn allocator_skips_ports_in_use_and_wraps() {
        let base = free_run(3);
        let alloc = PortAllocator::new(base..=base + 2);
        let (l1, p1) = alloc.bind_next(false).unwrap();
        assert_eq!(p1, base);
        // Someone else takes base+1: it is skipped.
        let squatter = listen_on(base + 1, false).unwrap();
        let (l2, p2) = alloc.bind_next(false).unwrap();
        assert_eq!(p2, base + 2);
        // Range exhausted while all are held.
        assert!(matches!(
            alloc.bind_next(false),
            Err(AudioError::NoFreePort { .. })
        ));
        drop(l1);
        // Wraps to the start once a port is free again.
        let (_l3, p3) = alloc.bind_next(false).unwrap();
        assert_eq!(p3, base);
        drop((l2, squatter));
    }

    #[tokio::test]
    async fn setsockopt_applies_buffer_sizes() {
        let base = free_run(1);
        let alloc = PortAllocator::new(base..=base);
        let (listener, _) = alloc.bind_next(true).unwrap();
        let sock = socket2_view(&listener);
        // Linux doubles the requested value; anything near the request shows it was applied.
        assert!(
            sock.0 <= 4 * SOCKET_BUFFER_BYTES as usize,
            "rcvbuf {}",
            sock.0
        );
        assert!(
            sock.1 <= 4 * SOCKET_BUFFER_BYTES as usize,
            "sndbuf {}",
            sock.1
        );
    }

    fn socket2_view(listener: &TcpListener) -> (usize, usize) {
        use std::os::fd::AsRawFd;
        let fd = listener.as_raw_fd();
        let get = |opt| {
            let mut val: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: fd is a live socket owned by `listener`; val/len are valid for writes.
            let rc = unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&mut val as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            val as usize
        };
        (get(libc::SO_RCVBUF), get(libc::SO_SNDBUF))
    }
}
