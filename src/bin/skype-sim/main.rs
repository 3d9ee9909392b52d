//! `skype-sim`: the emulated Skype world. `network` is the cloud, `client` one Linux client on
//! one X display, `ctl` drives the world from tests and shells.

fn main() -> std::process::ExitCode {
    eprintln!("skype-sim: not built yet");
    std::process::ExitCode::FAILURE
}
