//! One call that uses two interfaces: FreeSWITCH dials `skype/user2`, the hunt places it on
//! interface1 (user1), the Skype network rings interface2 (user2), which brings it back into
//! FreeSWITCH; audio crosses both interfaces in both directions.
mod support;

use support::stack::{assert_tone, Media, Stack, StackSpec, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface1_calls_interface2_through_freeswitch_and_back_over_audio_fork() {
    interface1_calls_interface2_through_freeswitch_and_back(Media::AudioFork).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interface1_calls_interface2_through_freeswitch_and_back_over_unicast() {
    interface1_calls_interface2_through_freeswitch_and_back(Media::Unicast).await;
}

async fn interface1_calls_interface2_through_freeswitch_and_back(media: Media) {
    let stack = Stack::start(StackSpec::users(&["user1", "user2"]).media(media)).await;
    stack.wait_all_idle().await;

    let call = stack.dial("user2");
    let inbound = stack.inbound_channel("interface2", &[]).await;
    stack.fs.wait_answered(&call.socket_leg, WAIT).await;
    let channel = stack.fs.channel(&inbound).unwrap();
    assert_eq!(
        channel.profile.orig_caller_id_number.as_deref(),
        Some("user1")
    );
    assert_eq!(channel.variable("skype_user"), Some("user2"));
    let rows = stack
        .wait_list("both interfaces UP", |rows| {
            rows.len() == 2 && rows.iter().all(|r| r.state == "UP")
        })
        .await;
    assert_eq!(rows[0].ob_total, 1, "interface1 placed it");
    assert_eq!(rows[1].ib_total, 1, "interface2 took it");
    assert_eq!(stack.live_calls().await, 2);

    // Each FreeSWITCH side says 440 Hz; each hears the other's through both interfaces.
    let at_interface2 = stack.heard(&inbound, 2.0).await;
    assert_tone(
        "caller's voice at interface2's leg",
        &at_interface2[8_000..],
        440.0,
    );
    let at_caller = stack.heard(&call.socket_leg, 2.0).await;
    assert_tone(
        "interface2's leg heard by the caller",
        &at_caller[8_000..],
        440.0,
    );

    stack.fs.hangup(&call.caller_leg, "NORMAL_CLEARING");
    stack.fs.wait_hangup(&inbound, WAIT).await;
    stack.wait_all_idle().await;
    stack.wait_no_calls().await;
}
