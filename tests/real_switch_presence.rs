//! A Skype contact's presence reaching a SIP phone through a real FreeSWITCH: SIPp (Debian's
//! `sip-tester`) subscribes as directory user 1000 to `skype+alice@127.0.0.1` on the internal
//! sofia profile; mod_sofia probes the `skype` protocol, the sidecar answers with alice's
//! state, and every change of alice's status becomes a NOTIFY whose PIDF follows it. Without a
//! switch, or without SIPp, the test says so in one line.
mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::real_stack::{RealStack, StackSpec, WAIT};

const PHONE_PASSWORD: &str = "phone-1000-secret";

/// SIPp, or a line saying why the test does not run.
fn sipp(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("sipp"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let line =
            format!("real FreeSWITCH suite: {test} not run (no sipp; Debian's sip-tester)\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
    found
}

struct Subscriber {
    child: Child,
    log: PathBuf,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Subscriber {
    fn start(sipp: &Path, dir: &Path, switch_port: u16, service: &str) -> Subscriber {
        let scenario =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/presence_subscriber.xml");
        let log = dir.join("sipp_messages.log");
        let child = Command::new(sipp)
            .arg(format!("127.0.0.1:{switch_port}"))
            .arg("-sf")
            .arg(&scenario)
            .args(["-s", service, "-m", "1", "-i", "127.0.0.1"])
            .args(["-p", &support::sim::free_port().to_string()])
            .args([
                "-au",
                "1000",
                "-ap",
                PHONE_PASSWORD,
                "-nostdin",
                "-trace_msg",
            ])
            // The digest covers the request URI; SIPp's default leaves the user part out.
            .arg("-auth_uri")
            .arg(format!("{service}@127.0.0.1:{switch_port}"))
            .arg("-message_file")
            .arg(&log)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp starts");
        Subscriber { child, log }
    }

    /// The bodies of the NOTIFYs received so far, in order.
    fn notifies(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.split("message received")
            .skip(1)
            .filter_map(|chunk| {
                // "[n] bytes :", a blank line, the message, then the next entry's dashes.
                let message = chunk.split_once("\n\n").map(|(_, m)| m)?;
                let message = message.split("\n-----").next().unwrap_or(message);
                if !message.trim_start().starts_with("NOTIFY ") {
                    return None;
                }
                let body = message.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
                Some(body.to_string())
            })
            .collect()
    }

    /// Waits for a NOTIFY after the first `after` ones whose body satisfies `pred`; returns
    /// its index.
    fn wait(&self, what: &str, after: usize, pred: impl Fn(&str) -> bool) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let all = self.notifies();
            if let Some(i) = all.iter().skip(after).position(|b| pred(b)) {
                return after + i;
            }
            if Instant::now() >= deadline {
                let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: String = raw
                    .chars()
                    .rev()
                    .take(12000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                panic!("no NOTIFY {what} after #{after}; got {all:#?}\nSIPp's messages, last part:\n{tail}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn open(body: &str) -> bool {
    body.contains("<basic>open</basic>")
}

fn closed(body: &str) -> bool {
    body.contains("<basic>closed</basic>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sip_phone_subscribed_to_a_skype_contact_follows_its_presence() {
    const TEST: &str = "a_sip_phone_subscribed_to_a_skype_contact_follows_its_presence";
    let Some(sipp) = sipp(TEST) else { return };
    let Some(stack) = RealStack::start(TEST, StackSpec::users(&["user1"]), |s| {
        s.sofia = true;
        // The directory's users share `default_password`; the phone logs in as 1000.
        s.vars
            .push(("default_password".into(), PHONE_PASSWORD.into()));
    })
    .await
    else {
        return;
    };
    stack.wait_all_idle().await;
    stack.wait_contact("interface1", "alice\tONLINE").await;
    // sofia's profiles start after the switch says it is ready.
    let deadline = Instant::now() + WAIT;
    while !stack.fs.api("sofia status").await.contains("RUNNING") {
        assert!(Instant::now() < deadline, "sofia not running");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let phone = Subscriber::start(&sipp, dir.path(), stack.fs.internal_sip, "skype+alice");
    let subscribed_at = Instant::now();
    // The probe's answer: alice is online now, shown without waiting for a change.
    let first = tokio::task::block_in_place(|| phone.wait("showing alice online", 0, open));
    println!(
        "alice shown online {} ms after the SUBSCRIBE",
        subscribed_at.elapsed().as_millis()
    );
    let body = &phone.notifies()[first];
    assert!(body.contains("skype+alice@127.0.0.1"), "{body}");

    // Offline on Skype: closed; away: open again, with the activity.
    stack
        .net
        .actl(&["presence", "--party", "alice", "--status", "OFFLINE"])
        .await;
    let gone = tokio::task::block_in_place(|| phone.wait("closed", first + 1, closed));
    stack
        .net
        .actl(&["presence", "--party", "alice", "--status", "AWAY"])
        .await;
    let away = tokio::task::block_in_place(|| {
        phone.wait("open and away", gone + 1, |b| {
            open(b) && b.to_ascii_lowercase().contains("away")
        })
    });
    assert!(away > gone && gone > first);
}
