//! A connection of its own to FreeSWITCH's event socket that fires events (chat MESSAGEs,
//! command results) with their header names exactly as written.
//!
//! Why a second connection beside the inbound one: freeswitch-esl-tokio 2.8 title-cases every
//! header name without an underscore when it builds a `sendevent` (`proto` reaches FreeSWITCH
//! and every subscriber as `Proto`; pinned by `tests/fs_inbound.rs`), while scripts match the
//! lower-case names the original module and Sofia use. The crate has no raw-command path
//! (`EslCommand` is closed, and its client owns a concrete `TcpStream`), so the fix cannot be
//! wrapped around that connection. One writer serves every role that fires events.

use crate::config::Secret;
use crate::switch::esl::frame::{encode_command, Limits, MessageDecoder};
use futures_util::StreamExt as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// FreeSWITCH is not reachable or the connection broke: try again later.
    #[error("FreeSWITCH at {addr}: {reason}")]
    Unavailable { addr: SocketAddr, reason: String },
    /// FreeSWITCH answered and said no.
    #[error("FreeSWITCH refused: {0}")]
    Refused(String),
}

struct Connection {
    reader: FramedRead<OwnedReadHalf, MessageDecoder>,
    writer: OwnedWriteHalf,
}

pub struct EventLink {
    addr: SocketAddr,
    password: Secret,
    conn: Option<Connection>,
}

impl EventLink {
    pub fn new(addr: SocketAddr, password: Secret) -> EventLink {
        EventLink {
            addr,
            password,
            conn: None,
        }
    }

    fn unavailable(&self, reason: impl ToString) -> LinkError {
        LinkError::Unavailable {
            addr: self.addr,
            reason: reason.to_string(),
        }
    }

    async fn connect(&self) -> Result<Connection, LinkError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .map_err(|_| self.unavailable("connect timed out"))?
            .map_err(|e| self.unavailable(e))?;
        let _ = stream.set_nodelay(true);
        let (read, writer) = stream.into_split();
        let mut conn = Connection {
            reader: FramedRead::new(read, MessageDecoder::new(Limits::default())),
            writer,
        };
        let greeting = self.next_message(&mut conn).await?;
        if greeting.content_type() != Some("auth/request") {
            return Err(self.unavailable("no auth/request greeting"));
        }
        let auth = format!("auth {}\n\n", self.password.expose());
        conn.writer
            .write_all(auth.as_bytes())
            .await
            .map_err(|e| self.unavailable(e))?;
        let reply = self.reply_text(&mut conn).await?;
        if !reply.starts_with("+OK") {
            // A wrong password will not get better by retrying soon, but the operator may fix
            // it; the caller keeps trying at its slow pace.
            return Err(self.unavailable(format!("authentication failed: {reply}")));
        }
        Ok(conn)
    }

    async fn next_message(
        &self,
        conn: &mut Connection,
    ) -> Result<crate::switch::esl::Message, LinkError> {
        match tokio::time::timeout(REPLY_TIMEOUT, conn.reader.next()).await {
            Err(_) => Err(self.unavailable("no answer in time")),
            Ok(None) => Err(self.unavailable("connection closed")),
            Ok(Some(Err(e))) => Err(self.unavailable(e)),
            Ok(Some(Ok(message))) => Ok(message),
        }
    }

    /// The next `command/reply`'s `Reply-Text` (anything else on the connection is skipped).
    async fn reply_text(&self, conn: &mut Connection) -> Result<String, LinkError> {
        loop {
            let message = self.next_message(conn).await?;
            if message.content_type() == Some("command/reply") {
                return Ok(message.headers.get("Reply-Text").unwrap_or("").to_string());
            }
        }
    }

    /// `sendevent <name>` with these headers, verbatim, and the body; returns the
    /// `Event-UUID` FreeSWITCH gave the event. Cancel-safe: a connection interrupted mid-way
    /// is dropped, not reused.
    pub async fn sendevent(
        &mut self,
        name: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<String, LinkError> {
        let fields = std::iter::once(name).chain(headers.iter().flat_map(|(n, v)| [*n, *v]));
        if let Some(bad) = fields.into_iter().find(|f| f.contains(['\r', '\n', '\0'])) {
            // A line break would end the header block early and smuggle in a command.
            return Err(LinkError::Refused(format!(
                "not sent: a header carries a line break or NUL ({:?})",
                bad.chars().take(40).collect::<String>()
            )));
        }
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        let frame = encode_command(
            &format!("sendevent {name}"),
            headers,
            (!body.is_empty()).then_some(body.as_bytes()),
        );
        conn.writer
            .write_all(&frame)
            .await
            .map_err(|e| self.unavailable(e))?;
        let reply = self.reply_text(&mut conn).await?;
        self.conn = Some(conn);
        match reply.strip_prefix("+OK") {
            Some(uuid) => Ok(uuid.trim().to_string()),
            None => Err(LinkError::Refused(reply)),
        }
    }
}

/// The one exact-case event connection, shared by everything that fires events; sends are
/// serialized on it.
#[derive(Clone)]
pub struct EventWriter {
    link: Arc<tokio::sync::Mutex<EventLink>>,
}

impl EventWriter {
    pub fn new(addr: SocketAddr, password: Secret) -> EventWriter {
        EventWriter {
            link: Arc::new(tokio::sync::Mutex::new(EventLink::new(addr, password))),
        }
    }

    /// See [`EventLink::sendevent`]; cancel-safe the same way.
    pub async fn sendevent(
        &self,
        name: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<String, LinkError> {
        self.link.lock().await.sendevent(name, headers, body).await
    }
}
