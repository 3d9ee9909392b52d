//! An independent controller (Python, python-xlib, sharing no code with this crate) completes
//! an echo123 call against `skype-sim client`: proof that the emulator speaks the documented
//! wire format rather than a private dialect shared with our own controller.
mod support;

use std::process::Command;
use support::sim::{SimClient, SimNetwork};
use support::xvfb::Xvfb;

#[test]
fn python_xlib_controller_completes_an_echo_call() {
    let has_xlib = Command::new("python3")
        .args(["-c", "import Xlib"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        has_xlib,
        "python3 with python-xlib is required (scripts/test.sh installs python-xlib==0.33)"
    );
    let net = SimNetwork::start();
    let x = Xvfb::start();
    let _client = SimClient::start(&x.display, "user2", &net, &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/echo_call.py");
    let out = Command::new("python3")
        .args([script, "--display", &x.display, "--user", "user2"])
        .args(["--tone", "1200"])
        .output()
        .expect("cannot run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "echo_call.py failed: {stdout}\n{stderr}"
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(result["ok"], true, "{result}");
    let f = result["echo_hz"].as_f64().unwrap();
    assert!((f - 1200.0).abs() < 24.0, "{result}");
    // The network agrees on what echo123 heard.
    let heard = net.ctl(&["heard", "echo123"]);
    let h = heard["frequency_hz"].as_f64().unwrap();
    assert!((h - 1200.0).abs() < 12.0, "{heard}");
}
