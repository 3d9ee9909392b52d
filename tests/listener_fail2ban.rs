//! The shipped fail2ban filter matches the sidecar's own line for a failed listener login, in
//! both log formats, and finds the right address; the regex is applied the way fail2ban does
//! (`<HOST>` expanded, Python's `re`).
mod support;

use std::time::{Duration, Instant};
use support::sidecar::Sidecar;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Applies every `failregex` of the filter to `log` with Python's `re`, as fail2ban does;
/// the hosts it found, one per matching line.
fn fail2ban_hosts(log: &str) -> Vec<String> {
    let filter = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/fail2ban/filter.d/skypopen.conf");
    let script = r#"
import configparser, re, sys
parser = configparser.ConfigParser(interpolation=None)
parser.read(sys.argv[1])
host = r"(?:::f{4,6}:)?(?P<host>[\w\-.^_]*\w|[0-9a-fA-F:]+)"
regexes = [re.compile(r.replace("<HOST>", host)) for r in parser["Definition"]["failregex"].strip().splitlines()]
for line in sys.stdin:
    for r in regexes:
        m = r.search(line)
        if m:
            print(m.group("host"))
            break
"#;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&filter)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(log.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("python3 output");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

async fn fail_login(sidecar: &Sidecar) {
    let mut stream = tokio::net::TcpStream::connect(sidecar.listener)
        .await
        .expect("listener");
    stream
        .write_all(b"auth not-the-password\n\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
}

async fn wait_for_line(sidecar: &Sidecar, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = sidecar.log_text();
        if log.contains(text) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {text:?} in:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fail2ban_filter_matches_failed_logins_in_both_log_formats() {
    for format in ["text", "json"] {
        let sidecar = Sidecar::start_with_env(&[], &[("SKYPOPEN__LOG__FORMAT", format)]);
        // The listener is up once it refuses us politely.
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(sidecar.listener)
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "listener never came up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        fail_login(&sidecar).await;
        fail_login(&sidecar).await;
        let log = wait_for_line(&sidecar, "listener authentication failure").await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut log = log;
        while log.matches("listener authentication failure").count() < 2
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
            log = sidecar.log_text();
        }
        let hosts = fail2ban_hosts(&log);
        assert_eq!(hosts, ["127.0.0.1", "127.0.0.1"], "{format}:\n{log}");
        // Each line names the sidecar (`cluster.host`), without disturbing the filter.
        let tag = match format {
            "text" => " host=sidecar-test",
            _ => "{\"host\":\"sidecar-test\",",
        };
        assert!(
            log.lines()
                .filter(|l| l.contains("listener authentication failure"))
                .all(|l| l.contains(tag)),
            "{format}:\n{log}"
        );
        // Nothing else in the log counts as a failure.
        let others: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("listener authentication failure"))
            .collect();
        assert!(fail2ban_hosts(&others.join("\n")).is_empty(), "{format}");
    }
}
