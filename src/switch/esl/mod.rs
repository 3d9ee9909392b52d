//! The Event Socket wire format, server side: client command framing, events with their
//! plain / JSON / XML renderings, and FreeSWITCH's reply messages. Pure: no I/O, so it is
//! fuzzed and shared by the sidecar's listener and the FreeSWITCH double in the tests.
//! (The sidecar's own client connections to FreeSWITCH use `freeswitch-esl-tokio`.)

pub mod encode;
pub mod event;
pub mod frame;
pub mod headers;
pub mod names;
pub mod reply;
pub mod stamp;

pub use encode::{url_decode, url_encode, PercentMode};
pub use event::{Event, EventError, EventFormat};
pub use frame::{Command, CommandDecoder, FrameError, Limits, Message, MessageDecoder};
pub use headers::Headers;
pub use stamp::EventSource;
