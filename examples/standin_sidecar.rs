//! Not an example for users: a minimal sidecar (client supervision only) for
//! `tests/process_supervision.rs`, printing `RUNNING <pid>` for every client that becomes ready.

use skypopen::config::Settings;
use skypopen::skype::process::{ClientState, Supervisor};
use std::path::Path;
use tokio_util::sync::CancellationToken;

fn main() {
    let Some(config) = std::env::args_os().nth(1) else {
        eprintln!("usage: standin_sidecar <skypopen.toml>");
        std::process::exit(2);
    };
    let settings = Settings::load(Path::new(&config)).expect("config");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let handle = Supervisor::start(&settings, CancellationToken::new());
        let mut events = handle.subscribe();
        while let Ok(event) = events.recv().await {
            if let ClientState::Running { pid } = event.state {
                println!("RUNNING {pid}");
            }
        }
    });
}
