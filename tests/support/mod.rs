//! Shared by the integration tests: X servers, the emulator's binaries, the FreeSWITCH double.
#![allow(dead_code)]

pub mod bench_args;
pub mod child_log;
pub mod eslcap;
pub mod fs_double;
pub mod probe;
pub mod real_fs;
pub mod real_stack;
pub mod rng;
pub mod sidecar;
pub mod sim;
pub mod skype_side;
pub mod stack;
pub mod xvfb;

/// A file shipped under `examples/`, as a test reads it.
pub fn example(path: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples")
            .join(path),
    )
    .unwrap_or_else(|e| panic!("examples/{path}: {e}"))
}
