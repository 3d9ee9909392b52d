//! skypopen: a FreeSWITCH sidecar that drives Linux Skype clients over the Skype Desktop API
//! (X11), and `skype-sim`, an emulator of those clients and of a small Skype network.

pub mod app;
pub mod config;
pub mod gateway;
pub mod media;
pub mod metrics;
pub mod shutdown;
pub mod sim;
pub mod skype;
pub mod switch;
pub mod telemetry;
