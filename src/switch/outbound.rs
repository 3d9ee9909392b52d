//! Acceptor for FreeSWITCH's outbound `socket` connections (`socket <addr> async full` in the
//! dialplan, or `&socket(...)` in an originate). Each connection is handshaken (`connect`,
//! `myevents`, `linger`, the CUSTOM events the media path needs) and handed on as a
//! [`ChannelHandle`] through a bounded channel.

mod channel;
mod channel_data;
mod commands;
mod events;

pub use channel::{ChannelControl, ChannelHandle, ExecuteComplete};
pub use channel_data::{CallerId, ChannelData, ChannelDataError, Control, SocketMode};
pub use commands::OverflowReason;
pub use events::{ChannelEvent, ChannelStatus, Hangup};

use freeswitch_esl_tokio::{EslClient, EslConnectOptions, EslError, EventFormat};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, warn, Instrument};

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("cannot listen for socket connections on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("FreeSWITCH refused `{command}`: {reply}")]
    Refused { command: String, reply: String },
    #[error("bad CHANNEL_DATA: {0}")]
    ChannelData(#[from] ChannelDataError),
    #[error("timed out after {after:?} waiting for {waiting_for}")]
    Timeout {
        after: Duration,
        waiting_for: &'static str,
    },
    #[error("the channel's socket is closed")]
    Closed,
    #[error("{what} must not contain a line break or NUL")]
    InvalidInput { what: &'static str },
    #[error(transparent)]
    Esl(#[from] EslError),
}

#[derive(Debug, Clone)]
pub struct OutboundOptions {
    /// `linger` seconds after hangup so the hangup events still arrive; `None` sends no
    /// `linger`. The pump leaves by itself once the hangup is complete.
    pub linger: Option<Duration>,
    /// CUSTOM subclasses subscribed on `full` sockets (the audio fork's events).
    pub custom_events: Vec<String>,
    pub handshake_timeout: Duration,
    pub command_timeout: Duration,
    /// Bound of each channel's event stream.
    pub event_capacity: usize,
    /// After `CHANNEL_HANGUP`, how long to wait for `CHANNEL_HANGUP_COMPLETE` before leaving.
    pub hangup_complete_grace: Duration,
}

impl Default for OutboundOptions {
    fn default() -> Self {
        OutboundOptions {
            linger: Some(Duration::from_secs(10)),
            custom_events: [
                "mod_audio_fork::connect",
                "mod_audio_fork::connect_failed",
                "mod_audio_fork::disconnect",
                "mod_audio_fork::error",
            ]
            .map(String::from)
            .to_vec(),
            handshake_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(10),
            event_capacity: 256,
            hangup_complete_grace: Duration::from_secs(3),
        }
    }
}

/// Binds `addr` and hands every handshaken channel to `tx` until `cancel`.
pub async fn serve_outbound(
    addr: SocketAddr,
    tx: mpsc::Sender<ChannelHandle>,
    cancel: CancellationToken,
) -> Result<(), OutboundError> {
    OutboundAcceptor::bind(addr, OutboundOptions::default())
        .await?
        .run(tx, cancel)
        .await;
    Ok(())
}

pub struct OutboundAcceptor {
    listener: TcpListener,
    options: OutboundOptions,
}

impl OutboundAcceptor {
    pub async fn bind(
        addr: SocketAddr,
        options: OutboundOptions,
    ) -> Result<OutboundAcceptor, OutboundError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| OutboundError::Bind { addr, source })?;
        Ok(OutboundAcceptor { listener, options })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts until `cancel`; then every channel still attached is hung up
    /// (`SYSTEM_SHUTDOWN`) and its socket closed before this returns.
    pub async fn run(self, tx: mpsc::Sender<ChannelHandle>, cancel: CancellationToken) {
        let local = self
            .listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        info!(listen = %local, "accepting FreeSWITCH socket connections");
        let tasks = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let span = info_span!("fs_socket", %peer, channel = tracing::field::Empty);
                    tasks.spawn(
                        attach_and_hand_over(
                            stream,
                            self.options.clone(),
                            tx.clone(),
                            cancel.child_token(),
                            tasks.clone(),
                        )
                        .instrument(span),
                    );
                }
                Err(e) => {
                    // Out of descriptors and the like: keep serving, but do not spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        // Channels still attached hang up and close their sockets on the same cancellation;
        // wait for them (each is bounded by its command timeout and a short close wait).
        tasks.close();
        let bound = self.options.command_timeout * 2 + Duration::from_secs(5);
        if tokio::time::timeout(bound, tasks.wait()).await.is_err() {
            warn!("some FreeSWITCH channels did not close before shutdown");
        }
        info!(listen = %local, "stopped accepting FreeSWITCH socket connections");
    }
}

async fn attach_and_hand_over(
    stream: TcpStream,
    options: OutboundOptions,
    tx: mpsc::Sender<ChannelHandle>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    let handshake = attach(stream, &options, shutdown.clone(), &tasks);
    let handle = tokio::select! {
        _ = shutdown.cancelled() => return,
        result = tokio::time::timeout(options.handshake_timeout, handshake) => match result {
            Ok(Ok(handle)) => handle,
            Ok(Err(e)) => {
                warn!(error = %e, "socket handshake failed");
                return;
            }
            Err(_) => {
                warn!(after = ?options.handshake_timeout, "socket handshake timed out");
                return;
            }
        },
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        sent = tx.send(handle) => {
            if sent.is_err() {
                // Nobody takes calls any more; dropping the handle hangs the channel up.
                warn!("no consumer for FreeSWITCH channels; releasing it");
            }
        }
    }
}

/// `connect`, parse CHANNEL_DATA, `myevents`, and on a `full` socket `linger` and the CUSTOM
/// subscription; then start the channel's pump on `tasks`.
async fn attach(
    stream: TcpStream,
    options: &OutboundOptions,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> Result<ChannelHandle, OutboundError> {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let (client, events) = EslClient::accept_outbound_stream_with_options(
        stream,
        EslConnectOptions::new().with_event_queue_size(options.event_capacity.max(64)),
    );
    client.set_command_timeout(options.command_timeout);
    let data = ChannelData::from_reply(client.connect_session().await?)?;
    let span = tracing::Span::current();
    span.record("channel", data.uuid());
    client.myevents(EventFormat::Plain).await?;
    if data.control() == Control::Full {
        if let Some(linger) = options.linger {
            client.linger(Some(linger)).await?;
        }
        if !options.custom_events.is_empty() {
            let list = format!("CUSTOM {}", options.custom_events.join(" "));
            client
                .subscribe_events_raw(EventFormat::Plain, &list)
                .await?;
        }
    } else {
        warn!("socket is not `full`: no linger, no api, no CUSTOM events on it (use `socket <addr> async full`)");
    }
    let caller = data.caller_id();
    info!(
        destination = data.destination_number().unwrap_or(""),
        caller_number = caller.number.as_deref().unwrap_or(""),
        caller_name = caller.name.as_deref().unwrap_or(""),
        direction = data.call_direction().unwrap_or(""),
        answered = data.is_answered(),
        codec_rate = data.codec_rate().unwrap_or(0),
        "channel attached"
    );
    Ok(channel::start(
        client, events, data, options, shutdown, span, tasks,
    ))
}
