//! The floor: bare relays that send each frame straight back, probed the same way.

use crate::cpu::idle_cpu;
use crate::figures::{analyse, run_window, wait_first_echoes, Figures, Measured};
use crate::support::probe::{run_fork_probe, run_udp_probe, wall_us, ProbeRef};
use crate::Transport;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// Runs `serve` on a thread of its own (current-thread runtime), so the relay's CPU is that
/// thread's. Returns what `serve` reports once bound and the thread's `/proc` stat path.
pub fn relay_thread<F, Fut>(serve: F) -> (SocketAddr, String)
where
    F: FnOnce(std::sync::mpsc::Sender<(SocketAddr, String)>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("relay runtime");
        runtime.block_on(serve(tx));
    });
    rx.recv().expect("relay started")
}

pub fn this_thread_stat() -> String {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    format!("/proc/self/task/{tid}/stat")
}

/// A websocket server that sends every binary frame straight back: the least any relay
/// between the fork client and an echo can cost.
pub fn start_ws_relay(stop: CancellationToken) -> (SocketAddr, String) {
    relay_thread(move |ready| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("relay bind");
        let addr = listener.local_addr().expect("relay addr");
        let _ = ready.send((addr, this_thread_stat()));
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            // Frames go out one by one as they come: no coalescing delay in the floor.
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    match msg {
                        Message::Binary(b) => {
                            let echoed = ws.send(Message::Binary(b)).await;
                            if echoed.is_err() {
                                return;
                            }
                        }
                        Message::Close(_) => return,
                        _ => {}
                    }
                }
            });
        }
    })
}

/// A UDP socket that sends every datagram straight back to its sender.
pub fn start_udp_relay(stop: CancellationToken) -> (SocketAddr, String) {
    relay_thread(move |ready| async move {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("relay bind");
        let addr = socket.local_addr().expect("relay addr");
        let _ = ready.send((addr, this_thread_stat()));
        let mut buf = vec![0u8; 8192];
        loop {
            let got = tokio::select! {
                _ = stop.cancelled() => return,
                g = socket.recv_from(&mut buf) => g,
            };
            if let Ok((n, from)) = got {
                let _ = socket.send_to(&buf[..n], from).await;
            }
        }
    })
}

pub async fn relay_scenario(transport: Transport, calls: usize) -> Figures {
    let stop = CancellationToken::new();
    let (addr, stat) = if transport.is_unicast() {
        start_udp_relay(stop.clone())
    } else {
        start_ws_relay(stop.clone())
    };
    let idle = idle_cpu(&stat).await;
    let ended = CancellationToken::new();
    let mut measured = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..calls {
        let probe = ProbeRef::default();
        let answered_wall_us = wall_us();
        let task = if transport.is_unicast() {
            let socket = UdpSocket::bind("127.0.0.1:0").await.expect("probe bind");
            tokio::spawn(run_udp_probe(
                socket,
                addr,
                transport.rate(),
                Arc::clone(&probe),
                ended.clone(),
            ))
        } else {
            tokio::spawn(run_fork_probe(
                format!("ws://{addr}/"),
                "{}".into(),
                Arc::clone(&probe),
                ended.clone(),
            ))
        };
        tasks.push(task);
        measured.push(Measured {
            probe,
            answered_wall_us,
            trace: None,
        });
    }
    let name = format!("relay {} × {calls}", transport.label());
    wait_first_echoes(&name, &measured).await;
    let window = run_window(&stat, &[]).await;
    let figures = analyse("bare relay", transport, &measured, &window, idle, false);
    ended.cancel();
    for t in tasks {
        let _ = t.await;
    }
    stop.cancel();
    figures
}
