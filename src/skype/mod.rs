//! Everything that talks to a Skype client: the X11 transport, the API session, process
//! supervision and the per-call TCP audio ports.

pub mod api;
pub mod audio;
pub mod link;
pub mod process;
pub mod session;
pub mod wire;
pub mod x11;
