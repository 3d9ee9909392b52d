//! Several interfaces logged in as one account: one Skype call makes one FreeSWITCH call; a
//! ring that finds every interface of the account busy is transferred to another account's
//! idle interface; hold and resume keep the call and its audio; an originate that fails hangs
//! the Skype call up.
mod support;

use support::stack::{assert_tone, Media, Stack, StackSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_account_twice_transfer_when_busy_hold_and_originate_failure_over_audio_fork() {
    same_account_twice_transfer_when_busy_hold_and_originate_failure(Media::AudioFork).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_account_twice_transfer_when_busy_hold_and_originate_failure_over_unicast() {
    same_account_twice_transfer_when_busy_hold_and_originate_failure(Media::Unicast).await;
}

async fn same_account_twice_transfer_when_busy_hold_and_originate_failure(media: Media) {
    let stack = Stack::start(StackSpec::users(&["user5", "user5", "user6"]).media(media)).await;

    // alice → user5 rings both user5 interfaces; exactly one FreeSWITCH call results.
    let first = stack
        .net
        .actl(&["call", "--from", "alice", "--to", "user5", "--tone", "1000"])
        .await;
    assert_eq!(first["legs"].as_array().unwrap().len(), 2, "{first}");
    let first_call = first["call"].as_u64().unwrap().to_string();
    let (uuid1, iface1) = stack.any_inbound_channel(&[]).await;
    assert!(iface1 == "interface1" || iface1 == "interface2", "{iface1}");
    stack.heard(&uuid1, 1.0).await;
    let rows = stack
        .wait_list("the sibling IDLE again", |rows| {
            rows.iter().filter(|r| r.state == "IDLE").count() == 2
        })
        .await;
    assert_eq!(rows.iter().map(|r| r.ib_total).sum::<u32>(), 1, "{rows:?}");
    assert_eq!(stack.originated().len(), 1, "one Skype call, one originate");

    // Hold and resume keep the call; the caller's voice flows again afterwards.
    stack.net.actl(&["hold", &first_call]).await;
    stack
        .wait_list("the call on hold", |rows| {
            rows.iter().any(|r| r.callflow == "RMTEHOLD")
        })
        .await;
    stack.net.actl(&["resume", &first_call]).await;
    stack
        .wait_list("the call resumed", |rows| {
            rows.iter().any(|r| r.callflow == "INPROGRS")
        })
        .await;
    let before = stack.heard_so_far(&uuid1).len();
    let after = stack.heard(&uuid1, before as f64 / 16_000.0 + 1.5).await;
    assert_tone("alice after resume", &after[after.len() - 16_000..], 1000.0);
    assert!(stack.fs.channel(&uuid1).unwrap().is_up());

    // bob → user5 takes the other user5 interface.
    let second = stack
        .net
        .actl(&["call", "--from", "bob", "--to", "user5"])
        .await;
    let (uuid2, iface2) = stack
        .any_inbound_channel(std::slice::from_ref(&uuid1))
        .await;
    assert_ne!(iface1, iface2);
    assert!(iface2 == "interface1" || iface2 == "interface2", "{iface2}");

    // carol → user5 finds both busy: transferred to user6 on interface3.
    stack
        .net
        .actl(&["call", "--from", "carol", "--to", "user5"])
        .await;
    let uuid3 = stack
        .inbound_channel("interface3", &[uuid1.clone(), uuid2.clone()])
        .await;
    let channel = stack.fs.channel(&uuid3).unwrap();
    assert_eq!(channel.variable("skype_user"), Some("user6"));
    assert_eq!(channel.variable("initial_skype_user"), Some("user5"));
    assert_eq!(
        channel.profile.orig_caller_id_number.as_deref(),
        Some("carol")
    );
    assert_eq!(
        stack.originated().len(),
        3,
        "three Skype calls, three originates"
    );
    stack.heard(&uuid2, 0.5).await;
    stack.heard(&uuid3, 0.5).await;

    for uuid in [&uuid1, &uuid2, &uuid3] {
        stack.fs.hangup(uuid, "NORMAL_CLEARING");
    }
    stack.wait_all_idle().await;
    stack.wait_no_calls().await;
    stack.wait_network_idle().await;
    let _ = second;

    // The dialplan cannot take the call: the Skype caller is hung up, the failure counted.
    stack.fs.fail_destination("5000", "USER_BUSY");
    stack
        .net
        .actl(&["call", "--from", "dave", "--to", "user6"])
        .await;
    let row = stack
        .wait_list("interface3 failed inbound call", |rows| {
            rows[2].ib_failed == 1 && rows[2].state == "IDLE"
        })
        .await;
    assert_eq!(row[2].ib_total, 2, "{row:?}");
    stack.wait_network_idle().await;
    stack.wait_no_calls().await;
}
