//! Interoperability: the Python `greenswitch` ESL client (pinned in scripts/lib/deps.sh)
//! logs in to the listener, runs `api status`, and receives the BACKGROUND_JOB of a `bgapi`.

mod listener_support;

use listener_support::{Server, DEADLINE, PASSWORD};
use std::path::Path;
use std::process::Stdio;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greenswitch_logs_in_runs_api_and_gets_background_job() {
    let importable = std::process::Command::new("python3")
        .args(["-c", "import greenswitch"])
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    assert!(
        importable,
        "python3 with greenswitch is needed: scripts/test.sh installs it (scripts/lib/deps.sh)"
    );
    let server = Server::start(|_| {}).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/greenswitch_listener.py");
    let child = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string())
        .arg(PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let output = tokio::time::timeout(DEADLINE * 2, child.wait_with_output())
        .await
        .expect("the greenswitch script finishes")
        .expect("its output is readable");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "greenswitch script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    eprintln!("{stdout}");
    assert!(
        stdout.contains("greenswitch: all checks passed"),
        "{stdout}"
    );
    assert!(server.stats.accepted() >= 1);
    server.stop().await;
}
