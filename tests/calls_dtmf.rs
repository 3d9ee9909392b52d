//! DTMF both ways: channel DTMF → `SET CALL <id> DTMF`, Skype's signalled digits →
//! `uuid_send_dtmf`, and in-band digits in Skype's audio detected when
//! `skype_get_inband_dtmf` is on (per interface here; a channel variable overrides it).
mod support;

use support::stack::{IfaceSpec, Stack, StackSpec, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_signalled_both_ways_and_in_band_from_skype() {
    let mut spec = StackSpec::users(&["user1"]);
    spec.interfaces
        .push(IfaceSpec::new("interface2", "user2").toml("skype_get_inband_dtmf = true"));
    let stack = Stack::start(spec).await;

    // Signalled, on an inbound call.
    let net_call = stack
        .net
        .remote_call(&["--from", "alice", "--to", "user1", "--tone", "1000"])
        .await;
    let uuid = stack.inbound_channel("interface1", &[]).await;
    stack.heard(&uuid, 0.5).await;
    // FreeSWITCH → Skype: DTMF events on the controlled channel.
    stack.fs.recv_dtmf(&uuid, "12#");
    stack.heard_signalled("alice", "12#").await;
    // Skype → FreeSWITCH: alice keys 4 and 5.
    stack.net.actl(&["dtmf", &net_call, "45"]).await;
    let sent = stack.wait_sent_dtmf(&uuid, "45").await;
    // The client's echo of our own digits does not loop back into the call.
    assert_eq!(sent, "45", "digits sent into the call");
    // Alice's in-band tones are not looked for on this interface.
    stack.net.actl(&["dtmf", &net_call, "7", "--inband"]).await;
    stack.net.actl(&["hangup", &net_call]).await;
    stack.fs.wait_hangup(&uuid, WAIT).await;
    assert_eq!(
        stack.sent_dtmf(&uuid),
        "45",
        "in-band detection was off on interface1"
    );

    // In-band, on interface2: bob keys 3, 9 and * as tones.
    let net_call = stack
        .net
        .remote_call(&["--from", "bob", "--to", "user2"])
        .await;
    let uuid = stack.inbound_channel("interface2", &[]).await;
    stack.heard(&uuid, 0.5).await;
    stack
        .net
        .actl(&["dtmf", &net_call, "39*", "--inband"])
        .await;
    let sent = stack.wait_sent_dtmf(&uuid, "39*").await;
    assert_eq!(sent, "39*");
    stack.fs.hangup(&uuid, "NORMAL_CLEARING");
    stack.wait_all_idle().await;
    stack.wait_no_calls().await;
}
