//! `skype-sim ctl`: one request to the network, one JSON answer.

use crate::sim::proto::{CtlCommand, Down, Frame, FrameCodec, ProtoError, Up};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("cannot reach the skype-sim network at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("protocol error: {0}")]
    Proto(#[from] ProtoError),
    #[error("the network closed the connection without answering")]
    NoAnswer,
    #[error("the network did not answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Refused(String),
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one command; returns the JSON result and, when asked for, the recording's PCM.
pub async fn request(
    addr: SocketAddr,
    command: CtlCommand,
) -> Result<(serde_json::Value, Option<Bytes>), CtlError> {
    let wants_blob = matches!(command, CtlCommand::Heard { with_pcm: true, .. });
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| CtlError::Connect { addr, source })?;
        let mut framed = Framed::new(stream, FrameCodec);
        framed.send(Frame::json(&Up::Ctl { command })?).await?;
        let reply = match framed.next().await {
            Some(Ok(Frame::Json(bytes))) => {
                serde_json::from_slice::<Down>(&bytes).map_err(ProtoError::from)?
            }
            Some(Err(e)) => return Err(e.into()),
            _ => return Err(CtlError::NoAnswer),
        };
        let Down::CtlReply { ok, result, error } = reply else {
            return Err(CtlError::NoAnswer);
        };
        if !ok {
            return Err(CtlError::Refused(error));
        }
        let blob = if wants_blob {
            match framed.next().await {
                Some(Ok(Frame::Blob(b))) => Some(b),
                _ => return Err(CtlError::NoAnswer),
            }
        } else {
            None
        };
        Ok((result, blob))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| CtlError::Timeout(TIMEOUT))?
}

/// Writes s16le PCM as a 16 kHz mono WAV file.
pub fn write_wav(path: &std::path::Path, pcm: &[u8]) -> Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: crate::media::dsp::SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)?;
    for pair in pcm.chunks_exact(2) {
        w.write_sample(i16::from_le_bytes([pair[0], pair[1]]))?;
    }
    w.finalize()
}
