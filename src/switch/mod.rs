//! Everything that talks to FreeSWITCH: the outbound `socket` acceptor, the inbound ESL
//! connection, the sidecar's own ESL-compatible listener, and the media transports.

pub mod esl;
pub mod inbound;
pub mod listener;
pub mod media;
pub mod outbound;
pub mod unicast;
