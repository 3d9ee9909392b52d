//! One audio fork connection after routing: binary frames from FreeSWITCH are re-cut into
//! 640-byte frames for the pump; frames from the pump go out as one binary message each, as
//! soon as the pump hands them over (the pump's clock is the pacing), unless the module's
//! playout queue is already as deep as we let it get ([`PlayoutBudget`]).

use super::error::ForkError;
use super::playout::PlayoutBudget;
use crate::media::side::FrameDuplex;
use crate::media::{Frame, FrameAssembler, FRAME_BYTES};
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

const CHANNEL_FRAMES: usize = 8;
const CONTROL_MESSAGES: usize = 8;
/// FreeSWITCH not reading for this long means its media thread is stuck; give up the fork.
const SEND_STALL: Duration = Duration::from_secs(2);
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A connected audio fork, as the call sees it.
#[derive(Debug)]
pub struct ForkSession {
    /// The first text frame (what `uuid_audio_fork ... start` was given as metadata).
    pub metadata: Option<String>,
    pub peer: SocketAddr,
    /// `tx`: frames to play into the call. `rx`: the FreeSWITCH side's voice; keep draining it
    /// (the pump does), as a full `rx` pushes back on the websocket and stalls `tx` too.
    /// Dropping it closes the websocket with 1000.
    pub frames: FrameDuplex,
    pub control: ForkControl,
}

#[derive(Debug)]
enum Control {
    Text(String),
}

/// Sends the module's text commands on a live fork.
#[derive(Debug, Clone)]
pub struct ForkControl {
    tx: mpsc::Sender<Control>,
}

impl ForkControl {
    /// `{"type":"killAudio"}`: in streaming mode FreeSWITCH flushes what it queued for playout
    /// (barge-in) and stops any file playing on the channel.
    pub fn kill_audio(&self) -> Result<(), ForkError> {
        self.send_text(r#"{"type":"killAudio"}"#.to_string())
    }

    /// Any other JSON command of the module (`mark`, `clearMarks`, ...).
    pub fn send_text(&self, json: String) -> Result<(), ForkError> {
        self.tx
            .try_send(Control::Text(json))
            .map_err(|_| ForkError::Closed)
    }
}

pub(super) struct Channels {
    from_switch: mpsc::Sender<Frame>,
    to_switch: mpsc::Receiver<Frame>,
    control: mpsc::Receiver<Control>,
}

pub(super) fn open(metadata: Option<String>, peer: SocketAddr) -> (ForkSession, Channels) {
    let (from_switch_tx, from_switch_rx) = mpsc::channel(CHANNEL_FRAMES);
    let (to_switch_tx, to_switch_rx) = mpsc::channel(CHANNEL_FRAMES);
    let (control_tx, control_rx) = mpsc::channel(CONTROL_MESSAGES);
    (
        ForkSession {
            metadata,
            peer,
            frames: FrameDuplex {
                tx: to_switch_tx,
                rx: from_switch_rx,
            },
            control: ForkControl { tx: control_tx },
        },
        Channels {
            from_switch: from_switch_tx,
            to_switch: to_switch_rx,
            control: control_rx,
        },
    )
}

#[derive(Debug, Default)]
struct Counters {
    frames_in: u64,
    frames_out: u64,
}

enum Delivery {
    Ok,
    ConsumerGone,
}

/// Cuts `bytes` into frames for the pump. Waiting for room pushes back on FreeSWITCH over TCP;
/// the pump takes frames as they come and applies the drop policy in its jitter buffer.
async fn deliver(
    assembler: &mut FrameAssembler,
    bytes: &[u8],
    to: &mpsc::Sender<Frame>,
    counters: &mut Counters,
) -> Delivery {
    // A frame-sized piece completes at most one frame.
    for piece in bytes.chunks(FRAME_BYTES) {
        let mut ready = None;
        assembler.push(piece, |frame| ready = Some(frame));
        if let Some(frame) = ready {
            if to.send(frame).await.is_err() {
                return Delivery::ConsumerGone;
            }
            counters.frames_in += 1;
        }
    }
    Delivery::Ok
}

async fn send(ws: &mut WebSocketStream<TcpStream>, msg: Message) -> Result<(), String> {
    match tokio::time::timeout(SEND_STALL, ws.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("FreeSWITCH stopped reading".to_string()),
    }
}

pub(super) async fn serve(
    mut ws: WebSocketStream<TcpStream>,
    first_audio: Option<Bytes>,
    mut channels: Channels,
    cancel: CancellationToken,
) {
    let mut assembler = FrameAssembler::new();
    let mut counters = Counters::default();
    // One buffer for every outgoing payload: once tungstenite has written a frame and dropped
    // its `Bytes`, `reserve` reclaims the same allocation.
    let mut out = BytesMut::with_capacity(FRAME_BYTES * 4);
    let mut our_close: Option<CloseCode> = None;
    let mut control_open = true;
    let mut budget = PlayoutBudget::new();
    if let Some(bytes) = first_audio {
        if let Delivery::ConsumerGone =
            deliver(&mut assembler, &bytes, &channels.from_switch, &mut counters).await
        {
            our_close = Some(CloseCode::Normal);
        }
    }
    let cancelled = cancel.cancelled();
    tokio::pin!(cancelled);
    let reason = loop {
        if our_close.is_some() {
            break "call finished";
        }
        tokio::select! {
            biased;
            _ = &mut cancelled => {
                our_close = Some(CloseCode::Away);
                break "server stopping";
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    // A zero-length payload is graceful-shutdown's end-of-audio marker.
                    if let Delivery::ConsumerGone =
                        deliver(&mut assembler, &bytes, &channels.from_switch, &mut counters).await
                    {
                        our_close = Some(CloseCode::Normal);
                    }
                }
                Some(Ok(Message::Text(text))) => debug!(text = %text.as_str(), "audio fork text"),
                Some(Ok(Message::Close(frame))) => {
                    debug!(?frame, "FreeSWITCH closed the audio fork");
                    // Let tungstenite finish the close handshake (it queued our reply).
                    let _ = tokio::time::timeout(CLOSE_WAIT, async { while ws.next().await.is_some() {} }).await;
                    break "closed by FreeSWITCH";
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    info!(error = %e, "audio fork connection failed");
                    break "connection failed";
                }
                None => break "connection lost",
            },
            frame = channels.to_switch.recv() => match frame {
                Some(frame) if !budget.admit(Instant::now(), frame.is_silent()) => {}
                Some(frame) => {
                    out.reserve(FRAME_BYTES);
                    out.extend_from_slice(frame.as_bytes());
                    if let Err(e) = send(&mut ws, Message::Binary(out.split().freeze())).await {
                        info!(error = %e, "audio fork send failed");
                        break "send failed";
                    }
                    counters.frames_out += 1;
                }
                None => {
                    our_close = Some(CloseCode::Normal);
                }
            },
            // Once every ForkControl is dropped `recv` is ready with `None` at once; the
            // branch must go quiet then, or the loop spins (a core per call).
            cmd = channels.control.recv(), if control_open => match cmd {
                Some(Control::Text(text)) => {
                    debug!(%text, "audio fork command");
                    if let Err(e) = send(&mut ws, Message::Text(text.into())).await {
                        info!(error = %e, "audio fork send failed");
                        break "send failed";
                    }
                }
                None => control_open = false,
            },
        }
    };
    if let Some(code) = our_close {
        let close = ws.close(Some(CloseFrame {
            code,
            reason: "".into(),
        }));
        let _ = tokio::time::timeout(CLOSE_WAIT, close).await;
    }
    info!(
        reason,
        frames_in = counters.frames_in,
        frames_out = counters.frames_out,
        held_back = budget.dropped(),
        "audio fork closed"
    );
}
