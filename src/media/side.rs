//! The two ends the pump connects. A transport plugs in by implementing [`MediaSide`]; the ones
//! that run their own socket task hand over a [`FrameDuplex`] (a pair of bounded channels),
//! which implements it already.

use super::frame::Frame;
use std::future::Future;
use tokio::sync::mpsc;

/// What happened to a frame offered to a side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Accepted,
    /// The peer is not keeping up; the frame was dropped.
    Full,
    /// The side is gone; the pump stops.
    Closed,
}

/// One end of a call's media path, as the pump sees it.
pub trait MediaSide: Send {
    /// The next frame the peer produced, `None` once the side is closed. Must be cancel-safe:
    /// the pump polls it inside `select!`.
    fn recv(&mut self) -> impl Future<Output = Option<Frame>> + Send;

    /// Hands a frame towards the peer without waiting. The pump calls this once per tick, so
    /// the transport must not add pacing of its own.
    fn offer(&mut self, frame: Frame) -> Offer;
}

/// A bidirectional frame channel: `tx` carries frames towards the peer, `rx` brings the
/// peer's frames. Dropping it tells the transport task behind it to close.
#[derive(Debug)]
pub struct FrameDuplex {
    pub tx: mpsc::Sender<Frame>,
    pub rx: mpsc::Receiver<Frame>,
}

impl FrameDuplex {
    /// Two connected ends: what one sends, the other receives.
    pub fn pair(capacity: usize) -> (FrameDuplex, FrameDuplex) {
        let (a_tx, b_rx) = mpsc::channel(capacity);
        let (b_tx, a_rx) = mpsc::channel(capacity);
        (
            FrameDuplex { tx: a_tx, rx: a_rx },
            FrameDuplex { tx: b_tx, rx: b_rx },
        )
    }
}

impl MediaSide for FrameDuplex {
    fn recv(&mut self) -> impl Future<Output = Option<Frame>> + Send {
        self.rx.recv()
    }

    fn offer(&mut self, frame: Frame) -> Offer {
        match self.tx.try_send(frame) {
            Ok(()) => Offer::Accepted,
            Err(mpsc::error::TrySendError::Full(_)) => Offer::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }
}
