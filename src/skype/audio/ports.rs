//! The two ports of a call as one side of the pump, served inside the pump's task: a frame the
//! pump offers is written to the client at once without blocking, and bytes the client says
//! are cut into frames where the pump waits. The listeners keep accepting meanwhile, so a
//! client that reconnects (hold/resume) replaces its previous connection.
//!
//! Before, each port had a task of its own behind a channel: every frame woke two tasks
//! instead of one (measured in the 100-call benchmark against a relay that does nothing else).

use super::{AudioLinks, ACCEPT_BACKOFF, CHANNEL_FRAMES, WRITE_STALL};
use crate::media::side::{MediaSide, Offer};
use crate::media::{Frame, FrameAssembler, FRAME_BYTES};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Which of the two ports: it words the logs and picks the [`AudioLinks`] fields.
#[derive(Debug, Clone, Copy)]
pub(super) enum Side {
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

/// One port: its listener, and how a connection comes, goes and is reported.
#[derive(Debug)]
pub(super) struct PortLink {
    pub listener: TcpListener,
    pub port: u16,
    pub links: watch::Sender<AudioLinks>,
    pub nodelay: bool,
    pub side: Side,
}

impl PortLink {
    /// A failed accept (e.g. out of fds) backs off so the loop does not spin. True when
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

/// Both ports of a call, as the pump's Skype side.
#[derive(Debug)]
pub struct SkypePorts {
    input: PortLink,
    output: PortLink,
    /// The `SET_INPUT` connection: what the remote party hears is written here.
    to_client: Option<TcpStream>,
    /// The `SET_OUTPUT` connection: what the remote party says is read here.
    from_client: Option<TcpStream>,
    assembler: FrameAssembler,
    /// Frames read and not yet handed to the pump (at most three from one read).
    said: VecDeque<Frame>,
    /// Bytes the client has not taken yet; never more than [`CHANNEL_FRAMES`] frames. A
    /// partial write would shift every later sample by a byte, so what is left of a frame is
    /// written before anything else.
    unsent: Vec<u8>,
    /// Since when the client has taken nothing of `unsent`.
    stalled_since: Option<Instant>,
    read_buf: Box<[u8; 2 * FRAME_BYTES]>,
    dropped_unconnected: u64,
    dropped_behind: u64,
}

impl SkypePorts {
    pub(super) fn new(input: PortLink, output: PortLink) -> SkypePorts {
        SkypePorts {
            input,
            output,
            to_client: None,
            from_client: None,
            assembler: FrameAssembler::new(),
            said: VecDeque::with_capacity(4),
            unsent: Vec::with_capacity(CHANNEL_FRAMES * FRAME_BYTES),
            stalled_since: None,
            read_buf: Box::new([0u8; 2 * FRAME_BYTES]),
            dropped_unconnected: 0,
            dropped_behind: 0,
        }
    }

    fn drop_input(&mut self, why: &str) {
        warn!(
            port = self.input.port,
            "skype audio input {why}, dropping connection"
        );
        self.to_client = None;
        self.unsent.clear();
        self.stalled_since = None;
        self.input.disconnected();
    }

    /// Writes what the client can take of `unsent` now.
    fn flush_unsent(&mut self) {
        let Some(stream) = self.to_client.as_ref() else {
            return;
        };
        while !self.unsent.is_empty() {
            match stream.try_write(&self.unsent) {
                Ok(n) => {
                    self.unsent.drain(..n);
                    self.stalled_since = Some(Instant::now());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    info!(port = self.input.port, error = %e, "skype audio input write failed, waiting for reconnect");
                    self.to_client = None;
                    self.unsent.clear();
                    self.input.disconnected();
                    break;
                }
            }
        }
        self.stalled_since = None;
    }

    fn assemble(&mut self, n: usize) {
        let said = &mut self.said;
        self.assembler
            .push(&self.read_buf[..n], |frame| said.push_back(frame));
    }
}

impl MediaSide for SkypePorts {
    // Cancel-safe: every branch's future is (accept, readiness, read, sleep), and state
    // changes only in the handlers, which do not await except an accept's back-off.
    async fn recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.said.pop_front() {
                return Some(frame);
            }
            let stall_deadline = self.stalled_since.map(|since| since + WRITE_STALL);
            tokio::select! {
                accepted = self.input.listener.accept() => {
                    if self.input.take(accepted, &mut self.to_client).await {
                        // A new byte stream: what was left for the old one would misalign it.
                        self.unsent.clear();
                        self.stalled_since = None;
                    }
                }
                accepted = self.output.listener.accept() => {
                    if self.output.take(accepted, &mut self.from_client).await {
                        self.assembler.reset();
                    }
                }
                // The client never sends on the input port; readability means it closed (or
                // sent something we ignore).
                res = readable(self.to_client.as_ref()) => {
                    let mut scratch = [0u8; 256];
                    let gone = match res {
                        Err(_) => true,
                        Ok(()) => match self.to_client.as_ref().map(|s| s.try_read(&mut scratch)) {
                            Some(Ok(0)) | None => true,
                            Some(Ok(_)) => false,
                            Some(Err(e)) => e.kind() != io::ErrorKind::WouldBlock,
                        },
                    };
                    if gone {
                        self.unsent.clear();
                        self.stalled_since = None;
                        self.input.closed_by_client(&mut self.to_client);
                    }
                }
                res = writable(self.to_client.as_ref()), if !self.unsent.is_empty() => {
                    match res {
                        Ok(()) => self.flush_unsent(),
                        Err(_) => self.drop_input("failed"),
                    }
                }
                _ = sleep_until(stall_deadline), if stall_deadline.is_some() => {
                    self.drop_input("stalled");
                }
                res = read_some(self.from_client.as_mut(), &mut self.read_buf[..]) => match res {
                    Ok(0) | Err(_) => {
                        self.assembler.reset();
                        self.output.closed_by_client(&mut self.from_client);
                    }
                    Ok(n) => self.assemble(n),
                },
            }
        }
    }

    fn offer(&mut self, frame: Frame) -> Offer {
        let Some(stream) = self.to_client.as_ref() else {
            self.dropped_unconnected += 1;
            return Offer::Accepted;
        };
        if !self.unsent.is_empty() {
            // The client is behind: queue up to the bound, then tell the pump.
            if self.unsent.len() + FRAME_BYTES > CHANNEL_FRAMES * FRAME_BYTES {
                self.dropped_behind += 1;
                return Offer::Full;
            }
            self.unsent.extend_from_slice(frame.as_bytes());
            return Offer::Accepted;
        }
        match stream.try_write(frame.as_bytes()) {
            Ok(n) if n == FRAME_BYTES => {}
            Ok(n) => {
                self.unsent.extend_from_slice(&frame.as_bytes()[n..]);
                self.stalled_since = Some(Instant::now());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.unsent.extend_from_slice(frame.as_bytes());
                self.stalled_since = Some(Instant::now());
            }
            Err(e) => {
                info!(port = self.input.port, error = %e, "skype audio input write failed, waiting for reconnect");
                self.to_client = None;
                self.input.disconnected();
            }
        }
        Offer::Accepted
    }
}

impl Drop for SkypePorts {
    fn drop(&mut self) {
        self.input.disconnected();
        self.output.disconnected();
        debug!(
            input = self.input.port,
            output = self.output.port,
            dropped_unconnected = self.dropped_unconnected,
            dropped_behind = self.dropped_behind,
            "skype audio ports closed"
        );
    }
}

async fn readable(conn: Option<&TcpStream>) -> io::Result<()> {
    match conn {
        Some(stream) => stream.readable().await,
        None => std::future::pending().await,
    }
}

async fn writable(conn: Option<&TcpStream>) -> io::Result<()> {
    match conn {
        Some(stream) => stream.writable().await,
        None => std::future::pending().await,
    }
}

async fn read_some(conn: Option<&mut TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    match conn {
        Some(stream) => stream.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
