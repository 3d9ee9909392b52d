//! Per-call TCP audio ports. The Skype client connects to two ports we listen on:
//! `SET_INPUT PORT` (we write what the remote Skype party hears) and `SET_OUTPUT PORT` (we read
//! what the remote party says). Both carry headerless 16 kHz s16le mono.
//!
//! Unlike the original module, the listeners are bound before the caller sends the `ALTER`
//! commands (so the port numbers are known, no sleep-and-hope), and each port keeps accepting:
//! a client that reconnects (hold/resume) replaces the previous connection.

use crate::media::side::FrameDuplex;
use crate::media::{Frame, FrameAssembler, FRAME_BYTES};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// 8 frames' worth of samples, as the original module used; it helped clients on VMs.
const SOCKET_BUFFER_BYTES: u32 = 2560;
const LISTEN_BACKLOG: u32 = 4;
/// Frames queued between the pump and a port's task.
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

/// A call's audio ports, bound and accepting.
#[derive(Debug)]
pub struct SkypeAudio {
    pub ports: AudioPorts,
    /// `tx`: frames the remote Skype party must hear. `rx`: frames the remote party says.
    pub frames: FrameDuplex,
    pub guard: AudioGuard,
}

/// Owns the port tasks. Dropping it stops them; [`AudioGuard::close`] also waits until both
/// ports are closed.
#[derive(Debug)]
pub struct AudioGuard {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    links: watch::Receiver<AudioLinks>,
}

impl AudioGuard {
    pub fn links(&self) -> watch::Receiver<AudioLinks> {
        self.links.clone()
    }

    pub async fn close(mut self) {
        self.stop.cancel();
        for task in self.tasks.drain(..) {
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

impl SkypeAudio {
    /// Binds both ports and starts accepting. Send the `ALTER` commands only after this
    /// returns. The tasks run in the caller's tracing span (so they log the call), stop with
    /// `parent`, with the guard, or when [`SkypeAudio::frames`] is dropped.
    pub fn bind(
        allocator: &PortAllocator,
        options: AudioOptions,
        parent: &CancellationToken,
    ) -> Result<SkypeAudio, AudioError> {
        let (input_listener, input) = allocator.bind_next(options.setsockopt)?;
        let (output_listener, output) = allocator.bind_next(options.setsockopt)?;
        let stop = parent.child_token();
        let (links_tx, links) = watch::channel(AudioLinks::default());
        let (to_skype_tx, to_skype_rx) = mpsc::channel(CHANNEL_FRAMES);
        let (from_skype_tx, from_skype_rx) = mpsc::channel(CHANNEL_FRAMES);
        let span = tracing::Span::current();
        let input_task = tokio::spawn(
            InputPort {
                link: PortLink {
                    listener: input_listener,
                    port: input,
                    links: links_tx.clone(),
                    nodelay: options.setsockopt,
                    side: Side::Input,
                },
                frames: to_skype_rx,
            }
            .run(stop.clone())
            .instrument(span.clone()),
        );
        let output_task = tokio::spawn(
            OutputPort {
                link: PortLink {
                    listener: output_listener,
                    port: output,
                    links: links_tx,
                    nodelay: options.setsockopt,
                    side: Side::Output,
                },
                frames: from_skype_tx,
            }
            .run(stop.clone())
            .instrument(span),
        );
        debug!(input, output, "audio ports listening");
        Ok(SkypeAudio {
            ports: AudioPorts { input, output },
            frames: FrameDuplex {
                tx: to_skype_tx,
                rx: from_skype_rx,
            },
            guard: AudioGuard {
                stop,
                tasks: vec![input_task, output_task],
                links,
            },
        })
    }
}

/// Which of the two ports a task serves: it words the logs and picks the [`AudioLinks`] fields.
#[derive(Debug, Clone, Copy)]
enum Side {
    Input,
    Output,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Input => "input",
            Side::Output => "output",
        }
    }

    /// This side's `connected` flag and accept count.
    fn fields(self, links: &mut AudioLinks) -> (&mut bool, &mut u32) {
        match self {
            Side::Input => (&mut links.input_connected, &mut links.input_accepts),
            Side::Output => (&mut links.output_connected, &mut links.output_accepts),
        }
    }
}

/// The part both port tasks share: the listener, and how a connection comes, goes and is
/// reported.
struct PortLink {
    listener: TcpListener,
    port: u16,
    links: watch::Sender<AudioLinks>,
    nodelay: bool,
    side: Side,
}

impl PortLink {
    /// A client connection replaces the current one (the client reconnects on hold/resume);
    /// a failed accept (e.g. out of fds) backs off so the loop does not spin. True when
    /// `conn` holds a new connection.
    async fn take(
        &self,
        accepted: io::Result<(TcpStream, SocketAddr)>,
        conn: &mut Option<TcpStream>,
    ) -> bool {
        let (port, side) = (self.port, self.side.name());
        match accepted {
            Ok((stream, peer)) => {
                // Linux copies buffer sizes to accepted sockets but not every kernel copies
                // TCP_NODELAY.
                if self.nodelay {
                    if let Err(e) = stream.set_nodelay(true) {
                        debug!(error = %e, "cannot set TCP_NODELAY on audio connection");
                    }
                }
                let replaced = conn.replace(stream).is_some();
                info!(port, %peer, replaced, "skype audio {side} connected");
                self.links.send_modify(|l| {
                    let (connected, accepts) = self.side.fields(l);
                    *connected = true;
                    *accepts += 1;
                });
                true
            }
            Err(e) => {
                warn!(port, error = %e, "accept on audio {side} port failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                false
            }
        }
    }

    /// The client closed its connection; the port keeps accepting.
    fn closed_by_client(&self, conn: &mut Option<TcpStream>) {
        *conn = None;
        info!(
            port = self.port,
            "skype audio {} disconnected",
            self.side.name()
        );
        self.disconnected();
    }

    fn disconnected(&self) {
        self.links.send_modify(|l| *self.side.fields(l).0 = false);
    }
}

/// The `SET_INPUT` port: frames from the pump are written to the client.
struct InputPort {
    link: PortLink,
    frames: mpsc::Receiver<Frame>,
}

impl InputPort {
    async fn run(mut self, stop: CancellationToken) {
        let port = self.link.port;
        let mut conn: Option<TcpStream> = None;
        let mut scratch = [0u8; 256];
        let mut dropped_unconnected: u64 = 0;
        let cancelled = stop.cancelled();
        tokio::pin!(cancelled);
        loop {
            tokio::select! {
                biased;
                _ = &mut cancelled => break,
                res = self.link.listener.accept() => {
                    self.link.take(res, &mut conn).await;
                }
                // The client never sends on this port; readability means it closed (or sent
                // something we ignore).
                res = readable(conn.as_ref()) => {
                    let gone = match res {
                        Err(_) => true,
                        Ok(()) => match conn.as_ref().map(|s| s.try_read(&mut scratch)) {
                            Some(Ok(0)) | None => true,
                            Some(Ok(_)) => false,
                            Some(Err(e)) => e.kind() != io::ErrorKind::WouldBlock,
                        },
                    };
                    if gone {
                        self.link.closed_by_client(&mut conn);
                    }
                }
                frame = self.frames.recv() => {
                    let Some(frame) = frame else { break };
                    let Some(stream) = conn.as_mut() else {
                        dropped_unconnected += 1;
                        continue;
                    };
                    // A partial write would shift every later sample by a byte, so a stalled
                    // client is dropped rather than written to again mid-frame.
                    match tokio::time::timeout(WRITE_STALL, stream.write_all(frame.as_bytes())).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            info!(port, error = %e, "skype audio input write failed, waiting for reconnect");
                            conn = None;
                            self.link.disconnected();
                        }
                        Err(_) => {
                            warn!(port, "skype audio input stalled, dropping connection");
                            conn = None;
                            self.link.disconnected();
                        }
                    }
                }
            }
        }
        self.link.disconnected();
        debug!(port, dropped_unconnected, "skype audio input port closed");
    }
}

/// The `SET_OUTPUT` port: bytes from the client are cut into frames for the pump.
struct OutputPort {
    link: PortLink,
    frames: mpsc::Sender<Frame>,
}

impl OutputPort {
    async fn run(self, stop: CancellationToken) {
        let port = self.link.port;
        let mut conn: Option<TcpStream> = None;
        let mut assembler = FrameAssembler::new();
        let mut buf = [0u8; 2 * FRAME_BYTES];
        let cancelled = stop.cancelled();
        tokio::pin!(cancelled);
        'serve: loop {
            tokio::select! {
                biased;
                _ = &mut cancelled => break,
                res = self.link.listener.accept() => {
                    if self.link.take(res, &mut conn).await {
                        // A new connection is a new byte stream: a partial frame left from the
                        // old one would misalign it.
                        assembler.reset();
                    }
                }
                res = read_some(conn.as_mut(), &mut buf) => match res {
                    Ok(0) | Err(_) => {
                        assembler.reset();
                        self.link.closed_by_client(&mut conn);
                    }
                    Ok(n) => {
                        // At most two whole frames fit in one read plus a carried partial.
                        let mut ready = [Frame::SILENCE; 3];
                        let mut count = 0;
                        assembler.push(&buf[..n], |frame| {
                            ready[count] = frame;
                            count += 1;
                        });
                        // Waiting here pushes back on the client over TCP; the pump takes frames
                        // as they come and applies the drop policy in its jitter buffer.
                        for frame in &ready[..count] {
                            tokio::select! {
                                _ = &mut cancelled => break 'serve,
                                sent = self.frames.send(*frame) => if sent.is_err() { break 'serve },
                            }
                        }
                    }
                },
            }
        }
        self.link.disconnected();
        debug!(port, "skype audio output port closed");
    }
}

async fn readable(conn: Option<&TcpStream>) -> io::Result<()> {
    match conn {
        Some(stream) => stream.readable().await,
        None => std::future::pending().await,
    }
}

async fn read_some(conn: Option<&mut TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    match conn {
        Some(stream) => stream.read(buf).await,
        None => std::future::pending().await,
    }
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
