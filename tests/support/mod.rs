//! Shared by the integration tests: X servers, the emulator's binaries, the FreeSWITCH double.
#![allow(dead_code)]

pub mod eslcap;
pub mod fs_double;
pub mod probe;
pub mod sidecar;
pub mod sim;
pub mod stack;
pub mod xvfb;
