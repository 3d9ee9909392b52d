//! Three interfaces: the RR hunt rotates fairly, a full house refuses with congestion, each
//! side can hang up at each stage, and a client killed mid-call ends only its own call.
mod support;

use support::stack::{Media, Stack, StackSpec, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rr_rotation_congestion_hangups_and_a_killed_client_over_audio_fork() {
    rr_rotation_congestion_hangups_and_a_killed_client(Media::AudioFork).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rr_rotation_congestion_hangups_and_a_killed_client_over_unicast() {
    rr_rotation_congestion_hangups_and_a_killed_client(Media::Unicast).await;
}

async fn rr_rotation_congestion_hangups_and_a_killed_client(media: Media) {
    let mut stack = Stack::start(StackSpec::users(&["user1", "user2", "user3"]).media(media)).await;

    // Nine sequential calls rotate over the three interfaces.
    let mut used = Vec::new();
    for _ in 0..9 {
        let call = stack.dial("busybot");
        let cause = stack.fs.wait_hangup(&call.socket_leg, WAIT).await;
        assert_eq!(cause, "USER_BUSY");
        let channel = stack.fs.channel(&call.socket_leg).unwrap();
        used.push(
            channel
                .variable("skypopen_interface")
                .unwrap_or("")
                .to_string(),
        );
        stack.wait_all_idle().await;
    }
    let names: Vec<String> = (1..=3).map(|i| format!("interface{i}")).collect();
    for (i, name) in used.iter().enumerate() {
        assert_eq!(
            name,
            &names[i % 3],
            "call {i} went to {name}; all: {used:?}"
        );
    }
    let rows = stack.interfaces().await;
    for row in &rows {
        assert_eq!((row.ob_failed, row.ob_total), (3, 3), "{rows:?}");
    }
    // The hunt pointer (the star) rests past the last slot it took, as in the original.
    let full = stack.api("sk list full").await;
    assert!(full.contains("\n* 4\n"), "{full}");

    // Three calls ringing silentbot fill every interface: the fourth gets congestion.
    let ringing: Vec<_> = (0..3).map(|_| stack.dial("silentbot")).collect();
    stack
        .wait_list("three interfaces RINGING", |rows| {
            rows.iter().all(|r| r.state == "RINGING")
        })
        .await;
    let extra = stack.dial("echo123");
    assert_eq!(
        stack.fs.wait_hangup(&extra.socket_leg, WAIT).await,
        "NORMAL_CIRCUIT_CONGESTION"
    );
    // FreeSWITCH hangs up while ringing: every Skype call ends and the interfaces are free.
    for call in &ringing {
        stack.fs.hangup(&call.caller_leg, "ORIGINATOR_CANCEL");
    }
    stack.wait_all_idle().await;
    stack.wait_no_calls().await;
    stack.wait_network_idle().await;

    // Nobody answers: the network reports MISSED (the sidecar's ring timer is longer).
    let missed = stack.dial("silentbot");
    assert_eq!(
        stack.fs.wait_hangup(&missed.socket_leg, WAIT).await,
        "NO_ANSWER"
    );
    stack.wait_all_idle().await;

    // The Skype side hangs up a call in progress.
    let call = stack.dial("echo123");
    stack.fs.wait_answered(&call.socket_leg, WAIT).await;
    stack.heard(&call.socket_leg, 0.5).await;
    let live = stack.net.actl(&["calls"]).await;
    let net_call = live["calls"][0]["call"].as_u64().expect("a live call");
    stack.net.actl(&["hangup", &net_call.to_string()]).await;
    assert_eq!(
        stack.fs.wait_hangup(&call.socket_leg, WAIT).await,
        "NORMAL_CLEARING"
    );
    stack.wait_all_idle().await;

    // A client killed mid-call: DESTINATION_OUT_OF_ORDER, the others keep working, and the
    // interface is IDLE again once its client is back.
    let call = stack.dial("echo123");
    stack.fs.wait_answered(&call.socket_leg, WAIT).await;
    stack.heard(&call.socket_leg, 0.5).await;
    let channel = stack.fs.channel(&call.socket_leg).unwrap();
    let iface = channel.variable("skypopen_interface").unwrap().to_string();
    let index = names.iter().position(|n| *n == iface).unwrap();
    stack.kill_client(index);
    assert_eq!(
        stack.fs.wait_hangup(&call.socket_leg, WAIT).await,
        "DESTINATION_OUT_OF_ORDER"
    );
    let other = stack.dial("busybot");
    assert_eq!(
        stack.fs.wait_hangup(&other.socket_leg, WAIT).await,
        "USER_BUSY"
    );
    stack.restart_client(index);
    stack.wait_all_idle().await;
    stack.wait_no_calls().await;
}
