//! Every way an outbound call can fail reaches FreeSWITCH as its own hangup cause, and the
//! interface is IDLE again afterwards.
mod support;

use support::stack::{Stack, StackSpec, WAIT};

/// Dials `dest`, waits for the channel to be hung up; its cause.
async fn cause_of(stack: &Stack, dest: &str) -> String {
    let call = stack.dial(dest);
    let cause = stack.fs.wait_hangup(&call.socket_leg, WAIT).await;
    stack.wait_idle("interface1").await;
    cause
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_skype_outcome_has_its_cause() {
    // user8 has no SkypeOut credit. Our ring timer (1.5 s) ends silentbot's ringing before
    // the network would report MISSED (3 s).
    let mut spec = StackSpec::users(&["user8"]);
    spec.extra = "[calls]\nring_timeout_secs = 1.5\n".into();
    let stack = Stack::start(spec).await;
    let table = [
        ("busybot", "USER_BUSY"),
        ("refusebot", "CALL_REJECTED"),
        ("silentbot", "NO_ANSWER"),
        ("no_such_person", "UNALLOCATED_NUMBER"),
        ("+15551234567", "OUTGOING_CALL_BARRED"),
        ("two words", "INVALID_NUMBER_FORMAT"),
        ("a,b", "INVALID_NUMBER_FORMAT"),
    ];
    let mut failures = 0;
    for (dest, expected) in table {
        let cause = cause_of(&stack, dest).await;
        assert_eq!(cause, expected, "calling {dest}");
        failures += 1;
    }
    assert!(
        stack
            .log()
            .contains("did not answer within calls.ring_timeout_secs"),
        "silentbot's NO_ANSWER came from our ring timer"
    );
    let rows = stack.interfaces().await;
    // Refused destinations never reach an interface; the rest count as failed outbound calls.
    assert_eq!(rows[0].ob_failed, rows[0].ob_total, "{rows:?}");
    assert_eq!(rows[0].ob_total, (failures - 2) as u32, "{rows:?}");
    stack.wait_network_idle().await;
    stack.wait_no_calls().await;

    // No idle interface: the only one is ringing silentbot.
    let ringing = stack.dial("silentbot");
    stack
        .wait_list("interface1 RINGING", |rows| rows[0].state == "RINGING")
        .await;
    let second = stack.dial("echo123");
    let cause = stack.fs.wait_hangup(&second.socket_leg, WAIT).await;
    assert_eq!(cause, "NORMAL_CIRCUIT_CONGESTION");
    // The caller gives up while it rings: Skype's call ends too.
    stack.fs.hangup(&ringing.caller_leg, "ORIGINATOR_CANCEL");
    stack.wait_idle("interface1").await;
    stack.wait_network_idle().await;
    stack.wait_no_calls().await;
}
