//! The fair floor for `unicast`: a relay that moves the same frames between the same four
//! sockets per call as the sidecar does (the switch side's UDP datagrams in and out, the
//! client's input and output TCP ports), on a 20 ms clock per call, and does nothing else: no
//! jitter buffer, no silence, no counters, no logs.
//!
//! The client is a stand-in that echoes every frame it reads from its input port onto its
//! output port at once and traces both in `skype-sim client --audio-trace`'s format, so the
//! same analysis splits the round trip into FS → client, client and client → FS. It runs on a
//! thread of its own, so the relay thread's CPU is the relay's alone.

use crate::cpu::idle_cpu;
use crate::figures::{analyse, run_window, wait_first_echoes, Figures, Measured};
use crate::relay::this_thread_stat;
use crate::support::probe::{run_udp_probe, wall_us, ProbeRef};
use crate::Transport;
use skypopen::sim::client::audio::Direction;
use skypopen::sim::client::trace::AudioTrace;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

const FRAME_BYTES: usize = 640;
const SLOT: Duration = Duration::from_millis(20);

/// What a thread of this module is asked to do for one more call.
type Open<A, R> = (A, oneshot::Sender<R>);

/// Runs a current-thread runtime on its own thread, serving `open` requests with `serve_one`
/// until `stop`. Returns the request sender and the thread's `/proc` stat path.
fn worker<A, R, F, Fut>(stop: CancellationToken, serve_one: F) -> (mpsc::Sender<Open<A, R>>, String)
where
    A: Send + 'static,
    R: Send + 'static,
    F: Fn(A, oneshot::Sender<R>, CancellationToken) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Open<A, R>>(16);
    let (stat_tx, stat_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("floor runtime");
        let local = tokio::task::LocalSet::new();
        local.block_on(&runtime, async move {
            let _ = stat_tx.send(this_thread_stat());
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    open = rx.recv() => {
                        let Some((args, reply)) = open else { return };
                        tokio::task::spawn_local(serve_one(args, reply, stop.clone()));
                    }
                }
            }
        });
    });
    (tx, stat_rx.recv().expect("floor thread started"))
}

/// The stand-in client of one call: listens on an input and an output port, echoes.
async fn echo_client(
    trace_path: PathBuf,
    reply: oneshot::Sender<(SocketAddr, SocketAddr)>,
    stop: CancellationToken,
) {
    let input = TcpListener::bind("127.0.0.1:0").await.expect("input bind");
    let output = TcpListener::bind("127.0.0.1:0").await.expect("output bind");
    let addrs = (
        input.local_addr().expect("input addr"),
        output.local_addr().expect("output addr"),
    );
    let _ = reply.send(addrs);
    let trace = AudioTrace::create(&trace_path).expect("trace file");
    let (Ok((mut from_relay, _)), Ok((mut to_relay, _))) =
        (input.accept().await, output.accept().await)
    else {
        return;
    };
    let _ = to_relay.set_nodelay(true);
    let mut frame = [0u8; FRAME_BYTES];
    loop {
        let read = tokio::select! {
            _ = stop.cancelled() => break,
            r = from_relay.read_exact(&mut frame) => r,
        };
        if read.is_err() {
            break;
        }
        trace.record(1, Direction::Input, &frame);
        trace.record(1, Direction::Output, &frame);
        if to_relay.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = trace.flush();
}

/// The relay of one call: a UDP socket towards the probe, two TCP streams towards the client.
async fn relay_call(
    client: (SocketAddr, SocketAddr),
    reply: oneshot::Sender<SocketAddr>,
    stop: CancellationToken,
) {
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("relay udp");
    let _ = reply.send(udp.local_addr().expect("relay udp addr"));
    let (Ok(mut to_client_stream), Ok(mut from_client)) = (
        TcpStream::connect(client.0).await,
        TcpStream::connect(client.1).await,
    ) else {
        return;
    };
    let _ = to_client_stream.set_nodelay(true);
    let mut clock = tokio::time::interval(SLOT);
    let mut datagram = [0u8; 4096];
    let mut frame = [0u8; FRAME_BYTES];
    let mut filled = 0usize;
    let mut switch_peer: Option<SocketAddr> = None;
    // The pump's slot rule: a frame leaves on arrival unless its direction already sent one
    // in this slot; then it waits for the next tick.
    let mut to_client = Slot::default();
    let mut to_switch = Slot::default();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = clock.tick() => {
                if let Some(held) = to_client.tick() {
                    if to_client_stream.write_all(&held).await.is_err() {
                        return;
                    }
                }
                if let (Some(held), Some(peer)) = (to_switch.tick(), switch_peer) {
                    let _ = udp.send_to(&held, peer).await;
                }
            }
            got = udp.recv_from(&mut datagram) => {
                let Ok((n, from)) = got else { continue };
                switch_peer = Some(from);
                if to_client.arrive(&datagram[..n]) && to_client_stream.write_all(&datagram[..n]).await.is_err() {
                    return;
                }
            }
            got = from_client.read(&mut frame[filled..]) => {
                match got {
                    Ok(0) | Err(_) => return,
                    Ok(n) => filled += n,
                }
                if filled == FRAME_BYTES {
                    filled = 0;
                    if let (true, Some(peer)) = (to_switch.arrive(&frame), switch_peer) {
                        let _ = udp.send_to(&frame, peer).await;
                    }
                }
            }
        }
    }
}

/// One direction's slot: whether it sent in the current slot, and the frame held for the next.
#[derive(Default)]
struct Slot {
    sent: bool,
    held: Option<Vec<u8>>,
}

impl Slot {
    /// True when the frame may leave now; otherwise it is held (replacing an older one).
    fn arrive(&mut self, frame: &[u8]) -> bool {
        if self.sent {
            self.held = Some(frame.to_vec());
            false
        } else {
            self.sent = true;
            true
        }
    }

    /// A new slot: the held frame, if any, leaves now.
    fn tick(&mut self) -> Option<Vec<u8>> {
        self.held.take().inspect(|_| self.sent = true).or_else(|| {
            self.sent = false;
            None
        })
    }
}

pub async fn four_socket_scenario(calls: usize) -> Figures {
    let transport = Transport::Unicast16k;
    let stop = CancellationToken::new();
    let (clients, _) = worker(stop.clone(), echo_client);
    let (relays, stat) = worker(stop.clone(), relay_call);
    let idle = idle_cpu(&stat).await;
    let traces = tempfile::tempdir().expect("trace dir");
    let ended = CancellationToken::new();
    let mut measured = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..calls {
        let trace = traces.path().join(format!("floor{i}.trace"));
        let (tx, rx) = oneshot::channel();
        clients
            .send((trace.clone(), tx))
            .await
            .expect("client thread");
        let client_addrs = rx.await.expect("client ports");
        let (tx, rx) = oneshot::channel();
        relays.send((client_addrs, tx)).await.expect("relay thread");
        let relay_addr = rx.await.expect("relay port");
        let probe = ProbeRef::default();
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("probe bind");
        tasks.push(tokio::spawn(run_udp_probe(
            socket,
            relay_addr,
            transport.rate(),
            Arc::clone(&probe),
            ended.clone(),
        )));
        measured.push(Measured {
            probe,
            answered_wall_us: wall_us(),
            trace: Some(trace),
        });
    }
    let name = format!("four-socket relay × {calls}");
    wait_first_echoes(&name, &measured).await;
    let window = run_window(&stat, &[]).await;
    let figures = analyse(
        "four-socket relay",
        transport,
        &measured,
        &window,
        idle,
        false,
    );
    ended.cancel();
    for t in tasks {
        let _ = t.await;
    }
    stop.cancel();
    figures
}
