//! A stop that drains: SIGTERM with a call up and a chat that FreeSWITCH has not taken yet.
//! No new call is taken, the live call goes on for `[calls] drain_secs` and then ends with
//! SYSTEM_SHUTDOWN on both sides, the process exits within the drain plus the teardown
//! grace, and the waiting chat is kept (unseen in the client) for the next run to deliver.
mod support;

use std::time::{Duration, Instant};
use support::stack::{Stack, StackSpec, WAIT};

const DRAIN: Duration = Duration::from_secs(1);
/// The sidecar's own bound on each stop step (calls' teardown, then its other tasks).
const TEARDOWN_GRACE: Duration = Duration::from_secs(5);
const CHAT: &str = "waiting through a stop — ✓";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_live_calls_keeps_waiting_chats_and_exits_in_time() {
    let mut spec = StackSpec::users(&["user1", "user2"]);
    spec.extra = format!("[calls]\ndrain_secs = {}\n", DRAIN.as_secs_f64());
    let mut stack = Stack::start(spec).await;
    let call = stack.dial("echo123");
    stack.fs.wait_answered(&call.socket_leg, WAIT).await;
    stack.heard(&call.socket_leg, 0.3).await;

    // FreeSWITCH drops every MESSAGE it is handed: the chat waits in the sidecar.
    stack.fs.drop_sendevents(Some("MESSAGE"));
    stack
        .net
        .actl(&["chat", "--from", "dave", "--to", "user2", "--text", CHAT])
        .await;
    stack
        .fs
        .wait_for("the chat to be tried", WAIT, |st| {
            (st.recorded.dropped_events > 0).then_some(())
        })
        .await;

    let signalled = Instant::now();
    stack.sigterm_sidecar();
    // Draining: a new call is refused at once, the live one stays up.
    let refused = stack.dial("echo123");
    let cause = stack.fs.wait_hangup(&refused.socket_leg, WAIT).await;
    assert_eq!(cause, "NORMAL_CIRCUIT_CONGESTION");
    assert!(
        stack.fs.channel(&call.socket_leg).unwrap().is_up(),
        "the live call goes on during the drain"
    );

    let cause = stack.fs.wait_hangup(&call.socket_leg, WAIT).await;
    let hung_up_after = signalled.elapsed();
    assert_eq!(cause, "SYSTEM_SHUTDOWN");
    assert!(
        hung_up_after >= DRAIN,
        "ended after {hung_up_after:?}, before the drain ran out"
    );
    let status = stack
        .wait_sidecar_exit(DRAIN + 2 * TEARDOWN_GRACE)
        .await
        .expect("the sidecar exits within the drain and its grace");
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status}");
    assert!(
        took < DRAIN + TEARDOWN_GRACE,
        "took {took:?} to stop with nothing stuck"
    );
    eprintln!(
        "stop: the call ended {hung_up_after:?} after SIGTERM, the process exited after {took:?}"
    );
    // The Skype side of the call ended too.
    stack.wait_network_idle().await;
    let log = stack.log();
    assert!(
        log.contains("ending the live calls (SYSTEM_SHUTDOWN)"),
        "{log}"
    );
    assert!(log.contains("stays unseen in the client"), "{log}");
    assert!(stack
        .fs
        .recorded()
        .sent_events
        .iter()
        .all(|e| e.body.as_deref() != Some(CHAT)));

    // The chat was kept: the next run delivers it, once.
    stack.fs.drop_sendevents(None);
    stack.restart_sidecar().await;
    let delivered = || {
        stack
            .fs
            .recorded()
            .sent_events
            .iter()
            .filter(|e| e.body.as_deref() == Some(CHAT))
            .count()
    };
    stack
        .fs
        .wait_for("the kept chat", WAIT, |st| {
            st.recorded
                .sent_events
                .iter()
                .any(|e| e.body.as_deref() == Some(CHAT))
                .then_some(())
        })
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(delivered(), 1);
}
