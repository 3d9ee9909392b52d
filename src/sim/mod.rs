//! `skype-sim`: the emulated Skype world (spec 13). The network (`network`) is the cloud:
//! accounts, routing of calls, audio and chats, bots, and the control API `ctl` uses. The
//! client (`client`) is one Linux Skype client speaking the Desktop API to controllers over a
//! [`crate::skype::link::ClientLink`], so it runs over X11 or, in unit tests, over channels.

pub mod accounts;
pub mod client;
pub mod ctl;
pub mod network;
pub mod presence;
pub mod proto;
