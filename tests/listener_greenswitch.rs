//! Interoperability: the Python `greenswitch` ESL client (pinned in scripts/lib/deps.sh)
//! logs in to the listener, runs `api status`, and receives the BACKGROUND_JOB of a `bgapi`.

mod listener_support;

use listener_support::{run_client_script, runs, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greenswitch_logs_in_runs_api_and_gets_background_job() {
    assert!(
        runs("python3", &["-c", "import greenswitch"]),
        "python3 with greenswitch is needed: scripts/test.sh installs it (scripts/lib/deps.sh)"
    );
    let server = Server::start(|_| {}).await;
    let stdout = run_client_script(&server, "python3", "tests/py/greenswitch_listener.py").await;
    assert!(
        stdout.contains("greenswitch: all checks passed"),
        "{stdout}"
    );
    assert!(server.stats.accepted() >= 1);
    server.stop().await;
}
