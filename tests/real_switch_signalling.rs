//! Signalling through a real FreeSWITCH: every hangup cause of `src/gateway/causes.rs` as the
//! switch's own CHANNEL_HANGUP event reports it, DTMF both ways, SkypeOut with and without
//! credit. Without a switch each test says so in one line.
mod support;

use std::time::{Duration, Instant};
use support::real_stack::{RealStack, StackSpec};

/// FreeSWITCH dials `dest` into the shipped dialplan; the cause its CHANNEL_HANGUP gives.
async fn cause_of(stack: &RealStack, dest: &str) -> String {
    let call = stack.dial(dest, 440, &[]).await;
    let cause = stack.hangup_cause(&call.leg).await;
    stack.wait_all_idle().await;
    cause
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_outcome_reaches_the_real_switch_as_its_cause() {
    // user8 has no SkypeOut credit; user7 has no client logged in. Our ring timer (1.5 s)
    // ends silentbot's ringing before the network would report MISSED (3 s).
    let mut spec = StackSpec::users(&["user8"]);
    spec.extra = "[calls]\nring_timeout_secs = 1.5\n".into();
    let Some(stack) = RealStack::start(
        "each_outcome_reaches_the_real_switch_as_its_cause",
        spec,
        |_| {},
    )
    .await
    else {
        return;
    };
    let table = [
        ("skype/busybot", "USER_BUSY"),
        ("skype/refusebot", "CALL_REJECTED"),
        ("skype/silentbot", "NO_ANSWER"),
        ("skype/failbot", "NORMAL_TEMPORARY_FAILURE"),
        ("skype/no_such_person", "UNALLOCATED_NUMBER"),
        ("skype/user7", "SUBSCRIBER_ABSENT"),
        ("skype/+15551234567", "OUTGOING_CALL_BARRED"),
        // Quoted, the originate keeps the space in the extension.
        ("'skype/two words'", "INVALID_NUMBER_FORMAT"),
        ("skype/a,b", "INVALID_NUMBER_FORMAT"),
    ];
    for (dest, expected) in table {
        assert_eq!(cause_of(&stack, dest).await, expected, "calling {dest}");
    }
    let rows = stack.interfaces().await;
    // Refused destinations never reach an interface; the other seven count as failed.
    assert_eq!((rows[0].ob_failed, rows[0].ob_total), (7, 7), "{rows:?}");
    stack.wait_network_idle().await;

    // No idle interface: the only one is ringing silentbot. Then the caller gives up while
    // it rings: ORIGINATOR_CANCEL, and Skype's call ends too.
    let ringing = stack.dial("skype/silentbot", 440, &[]).await;
    stack.socket_leg("interface1", "RINGING").await;
    assert_eq!(
        cause_of_busy(&stack).await,
        "NORMAL_CIRCUIT_CONGESTION",
        "a second call while the only interface rings"
    );
    stack.kill(&ringing.leg, "ORIGINATOR_CANCEL").await;
    assert_eq!(stack.hangup_cause(&ringing.leg).await, "ORIGINATOR_CANCEL");
    stack.wait_idle("interface1").await;
    stack.wait_network_idle().await;
    stack.wait_no_calls().await;
}

async fn cause_of_busy(stack: &RealStack) -> String {
    let call = stack.dial("skype/echo123", 440, &[]).await;
    stack.hangup_cause(&call.leg).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_mid_call_and_before_ringing_reach_the_real_switch_as_their_causes() {
    let spec = StackSpec::users(&["user1", "user2"]);
    let Some(mut stack) = RealStack::start(
        "faults_mid_call_and_before_ringing_reach_the_real_switch_as_their_causes",
        spec,
        |_| {},
    )
    .await
    else {
        return;
    };
    // The Skype network lost mid-call.
    let call = stack.dial("skypopen/interface1/echo123", 440, &[]).await;
    stack.socket_leg("interface1", "UP").await;
    stack.net.actl(&["fault", "user1", "offline", "3000"]).await;
    assert_eq!(stack.hangup_cause(&call.leg).await, "NETWORK_OUT_OF_ORDER");
    // The client killed mid-call.
    let call = stack.dial("skypopen/interface2/echo123", 440, &[]).await;
    stack.socket_leg("interface2", "UP").await;
    stack.kill_client(1);
    assert_eq!(
        stack.hangup_cause(&call.leg).await,
        "DESTINATION_OUT_OF_ORDER"
    );
    stack.restart_client(1);
    stack.wait_all_idle().await;
    stack.wait_network_idle().await;
    stack.wait_no_calls().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setup_timer_reaches_the_real_switch_as_recovery_on_timer_expire() {
    // The network routes for 3 s here, so a 1 s setup timer fires before it rings.
    let mut spec = StackSpec::users(&["user1"]);
    spec.extra = "[calls]\nsetup_timeout_secs = 1\n".into();
    spec.network_args = [
        "--ring-timeout-ms",
        "10000",
        "--routing-ms",
        "3000",
        "--ringing-ms",
        "30",
    ]
    .map(String::from)
    .to_vec();
    let Some(stack) = RealStack::start(
        "a_setup_timer_reaches_the_real_switch_as_recovery_on_timer_expire",
        spec,
        |_| {},
    )
    .await
    else {
        return;
    };
    let call = stack.dial("skype/echo123", 440, &[]).await;
    assert_eq!(
        stack.hangup_cause(&call.leg).await,
        "RECOVERY_ON_TIMER_EXPIRE"
    );
    stack.wait_idle("interface1").await;
    stack.wait_network_idle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_crosses_the_real_switch_both_ways_and_skypeout_with_credit_connects() {
    let Some(stack) = RealStack::start(
        "dtmf_crosses_the_real_switch_both_ways_and_skypeout_with_credit_connects",
        StackSpec::users(&["user1"]),
        |_| {},
    )
    .await
    else {
        return;
    };
    let net_call = stack
        .net
        .remote_call(&["--from", "alice", "--to", "user1", "--tone", "1000"])
        .await;
    let answered = stack.answered_leg(&[]).await;
    let b_leg = answered.get("Unique-ID").unwrap().to_string();
    stack.heard_audio("alice").await;
    // FreeSWITCH → Skype: the dialplan's leg sends digits towards the sidecar's channel.
    stack.fs.api(&format!("uuid_send_dtmf {b_leg} 12#")).await;
    stack.heard_signalled("alice", "12#").await;
    // Skype → FreeSWITCH: alice keys 4 and 5; the dialplan's leg receives them.
    stack.net.actl(&["dtmf", &net_call, "45"]).await;
    let mut got = String::new();
    for digit in ["4", "5"] {
        let e = stack
            .fs
            .events
            .wait(
                &format!("DTMF {digit} on {b_leg}"),
                support::real_stack::WAIT,
                |e| {
                    e.name() == "DTMF"
                        && e.get("Unique-ID") == Some(b_leg.as_str())
                        && e.get("DTMF-Digit") == Some(digit)
                },
            )
            .await;
        got.push_str(e.get("DTMF-Digit").unwrap_or(""));
    }
    assert_eq!(got, "45");
    stack.net.actl(&["hangup", &net_call]).await;
    assert_eq!(stack.hangup_cause(&b_leg).await, "NORMAL_CLEARING");
    stack.wait_idle("interface1").await;
    stack.wait_network_idle().await;

    // SkypeOut with credit (user1): the number answers and the call is up.
    let call = stack.dial("skype/+15551234567", 440, &[]).await;
    stack.socket_leg("interface1", "UP").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.kill(&call.leg, "NORMAL_CLEARING").await;
    assert_eq!(stack.hangup_cause(&call.leg).await, "NORMAL_CLEARING");
    let row = stack.wait_idle("interface1").await;
    assert_eq!((row.ob_failed, row.ob_total), (0, 1));
    stack.wait_no_calls().await;
}

/// SIGTERM with a call up on the real switch: the call goes on for the drain, then its channel
/// ends with SYSTEM_SHUTDOWN, the Skype side hangs up too, and the sidecar exits in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_live_call_with_system_shutdown() {
    const DRAIN: Duration = Duration::from_millis(500);
    let mut spec = StackSpec::users(&["user1"]);
    spec.extra = format!("[calls]\ndrain_secs = {}\n", DRAIN.as_secs_f64());
    let Some(mut stack) = RealStack::start(
        "sigterm_ends_a_live_call_with_system_shutdown",
        spec,
        |_| {},
    )
    .await
    else {
        return;
    };
    stack.dial("skype/echo123", 440, &[]).await;
    let leg = stack.socket_leg("interface1", "UP").await;
    let signalled = Instant::now();
    stack.sigterm_sidecar();
    assert_eq!(stack.hangup_cause(&leg).await, "SYSTEM_SHUTDOWN");
    assert!(
        signalled.elapsed() >= DRAIN,
        "ended before the drain ran out"
    );
    let status = stack
        .wait_sidecar_exit(DRAIN + Duration::from_secs(10))
        .await
        .expect("the sidecar exits");
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() < DRAIN + Duration::from_secs(5),
        "took {:?}",
        signalled.elapsed()
    );
    stack.wait_network_idle().await;
}
