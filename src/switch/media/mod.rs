//! Call audio between FreeSWITCH and the sidecar.
//!
//! `audio_fork`: FreeSWITCH's mod_audio_fork (jambonz build, bidirectional streaming) connects
//! to our websocket server, one connection per call, routed by an unguessable token in the URL
//! path. Its binary frames are the FreeSWITCH side's voice; we send Skype's voice back as
//! binary 640-byte frames, paced by the call's media pump.

mod command;
mod error;
mod playout;
mod server;
mod session;

pub use command::{
    audio_fork_start, audio_fork_stop, fork_url, CommandError, ForkToken, FORK_PATH_PREFIX,
};
pub use error::ForkError;
pub use server::{websocket_config, MediaServer, PendingFork, MAX_MESSAGE_BYTES, SUBPROTOCOL};
pub use session::{ForkControl, ForkSession};
