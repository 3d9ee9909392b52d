//! Calls end to end with audio both ways: FreeSWITCH (the double) → `skype/echo123`, and a
//! Skype party → an interface's account → the configured FreeSWITCH destination.
mod support;

use support::stack::{assert_heard, assert_tone, Media, Stack, StackSpec, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_to_echo123_and_inbound_from_alice_carry_audio_both_ways_over_audio_fork() {
    outbound_to_echo123_and_inbound_from_alice_carry_audio_both_ways(Media::AudioFork).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_to_echo123_and_inbound_from_alice_carry_audio_both_ways_over_unicast() {
    outbound_to_echo123_and_inbound_from_alice_carry_audio_both_ways(Media::Unicast).await;
}

async fn outbound_to_echo123_and_inbound_from_alice_carry_audio_both_ways(media: Media) {
    let stack = Stack::start(StackSpec::users(&["user1"]).media(media)).await;

    // FreeSWITCH caller → skype/echo123: echo123 hears the caller's 440 Hz and returns it.
    let call = stack.dial("echo123");
    stack.fs.wait_answered(&call.socket_leg, WAIT).await;
    let rows = stack
        .wait_list("interface1 UP", |rows| rows[0].state == "UP")
        .await;
    assert_eq!(rows[0].uuid, call.socket_leg);
    assert_eq!(stack.live_calls().await, 1);
    let back = stack.heard(&call.socket_leg, 3.0).await;
    // Leave out the first second: the echo starts after its delay.
    assert_tone("echo returned to the caller", &back[16_000..], 440.0);
    let heard = stack.net.actl(&["heard", "echo123"]).await;
    assert_heard(&heard, 440.0);
    let channel = stack.fs.channel(&call.socket_leg).unwrap();
    assert_eq!(channel.variable("skype_user"), Some("user1"));
    stack.fs.hangup(&call.caller_leg, "NORMAL_CLEARING");
    stack.wait_idle("interface1").await;
    stack.wait_no_calls().await;
    stack.wait_network_idle().await;

    // alice → user1 with a 1000 Hz voice: lands on 5000 with alice's caller id; FreeSWITCH
    // hears 1000 Hz and alice hears the destination's 440 Hz.
    let net_call = stack
        .net
        .remote_call(&["--from", "alice", "--to", "user1", "--tone", "1000"])
        .await;
    let uuid = stack.inbound_channel("interface1", &[]).await;
    let channel = stack.fs.channel(&uuid).unwrap();
    assert_eq!(
        channel.profile.orig_caller_id_number.as_deref(),
        Some("alice")
    );
    assert_eq!(
        channel.profile.orig_caller_id_name.as_deref(),
        Some("Alice Liddell")
    );
    assert_eq!(channel.profile.destination, "5000");
    assert_eq!(channel.variable("skype_user"), Some("user1"));
    assert_eq!(channel.variable("skypopen_interface"), Some("interface1"));
    let heard_by_fs = stack.heard(&uuid, 2.0).await;
    assert_tone("alice's voice in FreeSWITCH", &heard_by_fs[8_000..], 1000.0);
    stack
        .wait_list("interface1 UP inbound", |rows| {
            rows[0].state == "UP" && rows[0].ib_total == 1
        })
        .await;
    assert_heard(&stack.heard_audio("alice").await, 440.0);
    stack.net.actl(&["hangup", &net_call]).await;
    let cause = stack.fs.wait_hangup(&uuid, WAIT).await;
    assert_eq!(cause, "NORMAL_CLEARING");
    let row = stack.wait_idle("interface1").await;
    assert_eq!((row.ib_failed, row.ib_total), (0, 1));
    assert_eq!((row.ob_failed, row.ob_total), (0, 1));
    stack.wait_no_calls().await;
}
