//! How an audio fork can fail, for the server and its sessions alike.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    #[error("cannot listen for audio forks on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("FreeSWITCH did not open the audio fork within {0:?}")]
    Timeout(Duration),
    #[error("the media server stopped")]
    ServerStopped,
    #[error("the audio fork connection is closed")]
    Closed,
}
