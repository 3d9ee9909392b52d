//! 100 sequential calls on one interface leave nothing behind: the sidecar's file descriptors
//! (sockets, audio ports) and threads are back where they started and `sk calls` shows none.
//!
//! Takes about a minute: `cargo test --test calls_soak -- --ignored`.
mod support;

use support::stack::{Media, Stack, StackSpec, WAIT};

fn count(dir: String) -> usize {
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "about a minute; run on demand"]
async fn hundred_sequential_calls_leave_no_fd_thread_or_call_behind_over_audio_fork() {
    hundred_sequential_calls_leave_no_fd_thread_or_call_behind(Media::AudioFork).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "about a minute; run on demand"]
async fn hundred_sequential_calls_leave_no_fd_thread_or_call_behind_over_unicast() {
    hundred_sequential_calls_leave_no_fd_thread_or_call_behind(Media::Unicast).await;
}

async fn hundred_sequential_calls_leave_no_fd_thread_or_call_behind(media: Media) {
    let stack = Stack::start(StackSpec::users(&["user1"]).media(media)).await;
    let pid = stack.sidecar_pid();
    // One call first, so that lazily created things (pools, the media server's first
    // connection) exist before the baseline.
    let warm = stack.dial("echo123");
    stack.fs.wait_answered(&warm.socket_leg, WAIT).await;
    stack.heard(&warm.socket_leg, 0.2).await;
    stack.fs.hangup(&warm.caller_leg, "NORMAL_CLEARING");
    stack.wait_idle("interface1").await;
    stack.wait_no_calls().await;
    let fds_before = count(format!("/proc/{pid}/fd"));
    let threads_before = count(format!("/proc/{pid}/task"));

    for i in 0..100 {
        let call = stack.dial("echo123");
        stack.fs.wait_answered(&call.socket_leg, WAIT).await;
        stack.heard(&call.socket_leg, 0.1).await;
        if i % 2 == 0 {
            stack.fs.hangup(&call.caller_leg, "NORMAL_CLEARING");
        } else {
            let live = stack.net.actl(&["calls"]).await;
            let id = live["calls"][0]["call"].as_u64().expect("a live call");
            stack.net.actl(&["hangup", &id.to_string()]).await;
            stack.fs.wait_hangup(&call.socket_leg, WAIT).await;
        }
        stack.wait_idle("interface1").await;
    }
    stack.wait_no_calls().await;
    let row = &stack.interfaces().await[0];
    assert_eq!((row.ob_failed, row.ob_total), (0, 101), "{row:?}");
    // Sockets close asynchronously after the last hangup: allow them a moment.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let fds = count(format!("/proc/{pid}/fd"));
        let threads = count(format!("/proc/{pid}/task"));
        if fds <= fds_before && threads <= threads_before {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fds {fds_before} -> {fds}, threads {threads_before} -> {threads}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
