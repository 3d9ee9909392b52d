//! The FreeSWITCH double: a fake switch that speaks inbound ESL, makes outbound `socket`
//! connections, and plays the audio fork / `unicast` side of calls.

pub mod eslcap;
pub mod fork_client;
pub mod replay;
pub mod unicast;
