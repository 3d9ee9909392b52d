//! Interoperability: the Node `modesl` ESL client (pinned in scripts/lib/deps.sh, installed
//! into node_modules/) logs in to the listener, runs `api status` and a `bgapi` it
//! correlates by its own Job-UUID.

mod listener_support;

use listener_support::{Server, DEADLINE, PASSWORD};
use std::path::Path;
use std::process::Stdio;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modesl_logs_in_runs_api_and_bgapi() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let installed = std::process::Command::new("node")
        .args(["-e", "require('modesl')"])
        .current_dir(root)
        .status()
        .map(|status| status.success())
        .unwrap_or(false);
    assert!(
        installed,
        "node with modesl is needed: scripts/test.sh installs it (scripts/lib/deps.sh)"
    );
    let server = Server::start(|_| {}).await;
    let child = tokio::process::Command::new("node")
        .arg(root.join("tests/listener_support/modesl_listener.js"))
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string())
        .arg(PASSWORD)
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let output = tokio::time::timeout(DEADLINE * 2, child.wait_with_output())
        .await
        .expect("the modesl script finishes")
        .expect("its output is readable");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "modesl script failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    eprintln!("{stdout}");
    assert!(stdout.contains("modesl: all checks passed"), "{stdout}");
    server.stop().await;
}
