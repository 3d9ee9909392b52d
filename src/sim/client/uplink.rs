//! The client's connection to the emulated network: log in, keep reconnecting in the
//! background, correlate requests with replies, route call audio straight to the calls'
//! output queues (not through the client actor), and report everything else as events.

use crate::sim::proto::{Down, Frame, FrameCodec, Reply, Request, Up};
use bytes::Bytes;
use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How long a request may wait for the network.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const RECONNECT_DELAY: Duration = Duration::from_millis(300);

#[derive(Debug, Clone, PartialEq)]
pub enum UplinkEvent {
    Online {
        display_name: String,
        balance: i64,
        currency: String,
    },
    Offline {
        reason: String,
    },
    Message(Down),
}

#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("not connected to the network")]
    NotOnline,
    #[error("the network did not answer in time")]
    Timeout,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>;

/// Frames a call's output queue receives from the network, keyed by the call (leg) id.
pub type AudioRoutes = Arc<DashMap<u64, mpsc::Sender<Bytes>>>;

#[derive(Clone)]
pub struct Uplink {
    outgoing: mpsc::Sender<Frame>,
    pending: Pending,
    next_rid: Arc<AtomicU64>,
    online: Arc<AtomicBool>,
    offline_for: mpsc::Sender<Duration>,
}

impl Uplink {
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    pub async fn request(&self, request: Request) -> Result<Reply, UplinkError> {
        if !self.is_online() {
            return Err(UplinkError::NotOnline);
        }
        let rid = self.next_rid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        crate::sim::network::media::lock(&self.pending).insert(rid, tx);
        let frame =
            Frame::json(&Up::Request { rid, request }).map_err(|_| UplinkError::NotOnline)?;
        if self.outgoing.send(frame).await.is_err() {
            crate::sim::network::media::lock(&self.pending).remove(&rid);
            return Err(UplinkError::NotOnline);
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(UplinkError::NotOnline),
            Err(_) => {
                crate::sim::network::media::lock(&self.pending).remove(&rid);
                Err(UplinkError::Timeout)
            }
        }
    }

    /// One frame of what the controller sent for call `leg`; dropped when offline or when the
    /// queue is full (audio is real-time: late is as bad as lost).
    pub fn send_audio(&self, leg: u64, pcm: Bytes) {
        if self.is_online() {
            let _ = self.outgoing.try_send(Frame::Audio { call: leg, pcm });
        }
    }

    /// Simulates losing the network for `duration`.
    pub fn go_offline(&self, duration: Duration) {
        let _ = self.offline_for.try_send(duration);
    }
}

/// Starts the connection manager. Events arrive on `events`; audio frames go to `routes`.
pub fn spawn(
    network: SocketAddr,
    user: String,
    events: mpsc::Sender<UplinkEvent>,
    routes: AudioRoutes,
    shutdown: CancellationToken,
) -> Uplink {
    let (outgoing, outgoing_rx) = mpsc::channel(512);
    let (offline_tx, offline_rx) = mpsc::channel(4);
    let uplink = Uplink {
        outgoing,
        pending: Arc::new(Mutex::new(HashMap::new())),
        next_rid: Arc::new(AtomicU64::new(1)),
        online: Arc::new(AtomicBool::new(false)),
        offline_for: offline_tx,
    };
    let manager = Manager {
        network,
        user,
        events,
        routes,
        pending: Arc::clone(&uplink.pending),
        online: Arc::clone(&uplink.online),
        outgoing: outgoing_rx,
        offline: offline_rx,
        offline_announced: false,
    };
    tokio::spawn(manager.run(shutdown));
    uplink
}

struct Manager {
    network: SocketAddr,
    user: String,
    events: mpsc::Sender<UplinkEvent>,
    routes: AudioRoutes,
    pending: Pending,
    online: Arc<AtomicBool>,
    outgoing: mpsc::Receiver<Frame>,
    offline: mpsc::Receiver<Duration>,
    offline_announced: bool,
}

enum SessionEnd {
    Shutdown,
    Lost(String),
    Forced(Duration),
}

impl Manager {
    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let end = tokio::select! {
                _ = shutdown.cancelled() => SessionEnd::Shutdown,
                end = self.session() => end,
            };
            self.online.store(false, Ordering::Relaxed);
            // Requests in flight fail now rather than at their timeout.
            crate::sim::network::media::lock(&self.pending).clear();
            let wait = match end {
                SessionEnd::Shutdown => return,
                SessionEnd::Lost(reason) => {
                    if !self.offline_announced {
                        let _ = self.events.send(UplinkEvent::Offline { reason }).await;
                        self.offline_announced = true;
                    }
                    RECONNECT_DELAY
                }
                SessionEnd::Forced(d) => {
                    let _ = self
                        .events
                        .send(UplinkEvent::Offline {
                            reason: "network loss injected".into(),
                        })
                        .await;
                    self.offline_announced = true;
                    d
                }
            };
            // Drain what was queued for the dead connection while waiting.
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep_until(deadline) => break,
                    f = self.outgoing.recv() => if f.is_none() { return },
                    _ = self.offline.recv() => {}
                }
            }
        }
    }

    async fn session(&mut self) -> SessionEnd {
        let stream = match TcpStream::connect(self.network).await {
            Ok(s) => s,
            Err(e) => return SessionEnd::Lost(format!("connect {}: {e}", self.network)),
        };
        let _ = stream.set_nodelay(true);
        let mut framed = Framed::new(stream, FrameCodec);
        let login = match Frame::json(&Up::Login {
            user: self.user.clone(),
        }) {
            Ok(f) => f,
            Err(e) => return SessionEnd::Lost(e.to_string()),
        };
        if let Err(e) = framed.send(login).await {
            return SessionEnd::Lost(e.to_string());
        }
        let welcome = tokio::time::timeout(Duration::from_secs(5), framed.next()).await;
        match welcome {
            Ok(Some(Ok(Frame::Json(bytes)))) => match serde_json::from_slice::<Down>(&bytes) {
                Ok(Down::Welcome {
                    display_name,
                    balance,
                    currency,
                    ..
                }) => {
                    info!(user = %self.user, network = %self.network, "logged in to the network");
                    self.online.store(true, Ordering::Relaxed);
                    self.offline_announced = false;
                    let _ = self
                        .events
                        .send(UplinkEvent::Online {
                            display_name,
                            balance,
                            currency,
                        })
                        .await;
                }
                Ok(Down::LoginRejected { reason }) => {
                    warn!(user = %self.user, %reason, "login rejected");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    return SessionEnd::Lost(reason);
                }
                other => return SessionEnd::Lost(format!("unexpected login answer {other:?}")),
            },
            _ => return SessionEnd::Lost("no login answer".into()),
        }
        let (mut sink, mut stream) = framed.split();
        loop {
            tokio::select! {
                out = self.outgoing.recv() => {
                    let Some(frame) = out else { return SessionEnd::Shutdown };
                    if let Err(e) = sink.send(frame).await {
                        return SessionEnd::Lost(e.to_string());
                    }
                }
                d = self.offline.recv() => {
                    return SessionEnd::Forced(d.unwrap_or(Duration::from_secs(1)));
                }
                incoming = stream.next() => match incoming {
                    None => return SessionEnd::Lost("network closed the connection".into()),
                    Some(Err(e)) => return SessionEnd::Lost(e.to_string()),
                    Some(Ok(Frame::Audio { call, pcm })) => {
                        if let Some(route) = self.routes.get(&call) {
                            let _ = route.try_send(pcm);
                        }
                    }
                    Some(Ok(Frame::Blob(_))) => {}
                    Some(Ok(Frame::Json(bytes))) => match serde_json::from_slice::<Down>(&bytes) {
                        Ok(Down::Reply { rid, reply }) => {
                            if let Some(tx) = crate::sim::network::media::lock(&self.pending).remove(&rid) {
                                let _ = tx.send(reply);
                            }
                        }
                        Ok(msg) => {
                            debug!(?msg, "from network");
                            if self.events.send(UplinkEvent::Message(msg)).await.is_err() {
                                return SessionEnd::Shutdown;
                            }
                        }
                        Err(e) => warn!(error = %e, "undecodable message from the network"),
                    },
                }
            }
        }
    }
}
