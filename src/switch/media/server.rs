//! The websocket server mod_audio_fork connects to: accepts the upgrade only for a path that
//! carries an expected token, answers with the `audio.drachtio.org` subprotocol when offered,
//! reads the metadata frame, and hands the connection to the call that expects it.

use super::command::{ForkToken, FORK_PATH_PREFIX};
use super::error::ForkError;
use super::session::{self, ForkSession};
use dashmap::DashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument, Span};

pub const SUBPROTOCOL: &str = "audio.drachtio.org";

/// The module sends the metadata about 1 ms after the upgrade.
const METADATA_WAIT: Duration = Duration::from_secs(2);
/// Connections being served at once (calls plus strays); more wait in the kernel backlog.
const MAX_CONNECTIONS: usize = 2048;
/// Text frames are small JSON; audio payloads are a few frames. Nothing needs more.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

struct Expectation {
    deliver: oneshot::Sender<ForkSession>,
    /// The span of the call that expects the fork, so the connection's lines carry its fields.
    span: Span,
}

struct Shared {
    pending: DashMap<String, Expectation>,
    public_url: String,
    /// A peer that has not finished its upgrade by then (silent, dripping) is dropped.
    handshake_timeout: Duration,
}

/// Handle to the running server; cheap to clone.
#[derive(Clone)]
pub struct MediaServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for MediaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaServer")
            .field("local_addr", &self.local_addr)
            .field("public_url", &self.shared.public_url)
            .field("pending", &self.shared.pending.len())
            .finish()
    }
}

impl MediaServer {
    /// Binds `listen` and serves until `cancel`. `public_url` is how FreeSWITCH reaches us
    /// (`[switch] media_url`); `None` derives `ws://<bound address>`. A connection that has
    /// not finished its upgrade within `handshake_timeout` is closed.
    pub async fn start(
        listen: SocketAddr,
        public_url: Option<&str>,
        handshake_timeout: Duration,
        cancel: CancellationToken,
    ) -> Result<MediaServer, ForkError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ForkError::Bind {
                addr: listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| ForkError::Bind {
            addr: listen,
            source,
        })?;
        let public_url = match public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("ws://{local_addr}"),
        };
        let shared = Arc::new(Shared {
            pending: DashMap::new(),
            public_url,
            handshake_timeout,
        });
        info!(%local_addr, url = %shared.public_url, "audio fork server listening");
        tokio::spawn(accept_loop(listener, Arc::clone(&shared), cancel));
        Ok(MediaServer { shared, local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Registers `token` and returns the URL to give `uuid_audio_fork` plus the pending
    /// connection. The token stays valid until the fork connects or the `PendingFork` is
    /// dropped.
    pub fn expect(&self, token: &ForkToken) -> (String, PendingFork) {
        let (deliver, arrival) = oneshot::channel();
        self.shared.pending.insert(
            token.as_str().to_string(),
            Expectation {
                deliver,
                span: Span::current(),
            },
        );
        let url = super::command::fork_url(&self.shared.public_url, token);
        (
            url,
            PendingFork {
                token: token.clone(),
                arrival,
                shared: Arc::clone(&self.shared),
            },
        )
    }

    /// Forks announced but not connected yet.
    pub fn pending(&self) -> usize {
        self.shared.pending.len()
    }
}

/// A fork FreeSWITCH has been told to open.
pub struct PendingFork {
    token: ForkToken,
    arrival: oneshot::Receiver<ForkSession>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PendingFork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingFork")
            .field("token", &self.token)
            .finish()
    }
}

impl PendingFork {
    /// Waits until FreeSWITCH has connected and sent its metadata.
    pub async fn wait(mut self, timeout: Duration) -> Result<ForkSession, ForkError> {
        match tokio::time::timeout(timeout, &mut self.arrival).await {
            Ok(Ok(session)) => Ok(session),
            Ok(Err(_)) => Err(ForkError::ServerStopped),
            Err(_) => Err(ForkError::Timeout(timeout)),
        }
    }
}

impl Drop for PendingFork {
    fn drop(&mut self) {
        self.shared.pending.remove(self.token.as_str());
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            res = listener.accept() => match res {
                Ok(conn) => conn,
                Err(e) => {
                    warn!(error = %e, "accept on audio fork server failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = Arc::clone(&shared);
        let cancel = cancel.child_token();
        tokio::spawn(async move {
            let _permit = permit;
            handle(stream, peer, shared, cancel).await;
        });
    }
    // Wake every waiting call: nothing will connect any more.
    shared.pending.clear();
    info!("audio fork server stopped");
}

/// The limits every fork connection is read with: a peer cannot make a message, or a frame
/// of one, cost more than [`MAX_MESSAGE_BYTES`].
pub fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

fn offers_subprotocol(req: &Request) -> bool {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

fn refusal(status: StatusCode, text: &str) -> ErrorResponse {
    let mut resp = ErrorResponse::new(Some(format!("{text}\n")));
    *resp.status_mut() = status;
    resp
}

async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "cannot set TCP_NODELAY on audio fork");
    }
    let mut routed: Option<String> = None;
    // The callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let token = req
            .uri()
            .path()
            .strip_prefix(FORK_PATH_PREFIX)
            .filter(|t| shared.pending.contains_key(*t));
        let Some(token) = token else {
            return Err(refusal(StatusCode::NOT_FOUND, "no such audio fork"));
        };
        if offers_subprotocol(req) {
            resp.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(SUBPROTOCOL),
            );
        }
        routed = Some(token.to_string());
        Ok(resp)
    };
    let handshake =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(websocket_config()));
    let ws = tokio::select! {
        _ = cancel.cancelled() => return,
        res = tokio::time::timeout(shared.handshake_timeout, handshake) => match res {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => {
                // Unknown tokens end here too: the client got its 404.
                info!(%peer, error = %e, "audio fork upgrade refused or failed");
                return;
            }
            Err(_) => {
                info!(%peer, "audio fork upgrade timed out");
                return;
            }
        },
    };
    let Some(token) = routed else { return };
    let short = ForkToken::shortened(&token);
    let conn_span = info_span!("fork", token = %short, %peer);
    serve_routed(ws, token, peer, shared, cancel)
        .instrument(conn_span)
        .await;
}

async fn serve_routed(
    mut ws: WebSocketStream<TcpStream>,
    token: String,
    peer: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    // First frame: the metadata text. A binary frame first (never seen from mod_audio_fork,
    // usual for other modules) is audio and is kept.
    let mut metadata = None;
    let mut first_audio = None;
    match tokio::time::timeout(METADATA_WAIT, first_data_message(&mut ws)).await {
        Ok(Some(Message::Text(text))) => metadata = Some(text.as_str().to_string()),
        Ok(Some(Message::Binary(bytes))) => first_audio = Some(bytes),
        Ok(Some(_)) | Ok(None) => {
            info!("audio fork closed before sending anything");
            return;
        }
        Err(_) => debug!("audio fork sent no metadata"),
    }
    let Some((_, expectation)) = shared.pending.remove(&token) else {
        info!("audio fork token no longer expected, closing");
        let _ = ws
            .close(Some(CloseFrame {
                code: CloseCode::Policy,
                reason: "unknown fork".into(),
            }))
            .await;
        return;
    };
    let span = expectation.span;
    let (session, channels) = session::open(metadata, peer);
    info!(parent: &span, %peer, metadata = session.metadata.as_deref().unwrap_or(""), "audio fork connected");
    if expectation.deliver.send(session).is_err() {
        info!(parent: &span, "call stopped waiting for its audio fork, closing");
        let _ = ws
            .close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            }))
            .await;
        return;
    }
    session::serve(ws, first_audio, channels, cancel)
        .instrument(span)
        .await;
}

/// The first text or binary message; control frames are handled by tungstenite meanwhile.
async fn first_data_message(ws: &mut WebSocketStream<TcpStream>) -> Option<Message> {
    use futures_util::StreamExt;
    loop {
        match ws.next().await? {
            Ok(m @ (Message::Text(_) | Message::Binary(_) | Message::Close(_))) => return Some(m),
            Ok(_) => continue,
            Err(e) => {
                debug!(error = %e, "audio fork failed before metadata");
                return None;
            }
        }
    }
}
