//! Interoperability: the Node `modesl` ESL client (pinned in scripts/lib/deps.sh, installed
//! into node_modules/) logs in to the listener, runs `api status` and a `bgapi` it
//! correlates by its own Job-UUID.

mod listener_support;

use listener_support::{run_client_script, runs, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modesl_logs_in_runs_api_and_bgapi() {
    assert!(
        runs("node", &["-e", "require('modesl')"]),
        "node with modesl is needed: scripts/test.sh installs it (scripts/lib/deps.sh)"
    );
    let server = Server::start(|_| {}).await;
    let stdout =
        run_client_script(&server, "node", "tests/listener_support/modesl_listener.js").await;
    assert!(stdout.contains("modesl: all checks passed"), "{stdout}");
    server.stop().await;
}
