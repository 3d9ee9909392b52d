//! The shipped examples on a real FreeSWITCH (mod_lua in the build): directory dialing reads
//! interface1's ONLINE contacts from the sidecar through FreeSWITCH's event system, and the
//! caller's key 4 reaches the fourth (echo123, which answers); caller id by chat sends the
//! caller's number to the contact before its call. Without a switch each test says so in one
//! line; tests/examples_double.rs runs the same files on the double.
mod support;

use support::example;

use std::time::{Duration, Instant};
use support::real_stack::{RealStack, StackSpec, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_dialing_calls_the_contact_the_caller_keys() {
    const TEST: &str = "directory_dialing_calls_the_contact_the_caller_keys";
    let Some(stack) = RealStack::start(TEST, StackSpec::users(&["user1"]), |s| {
        s.files.push((
            "dialplan/default/10_skype_directory.xml".into(),
            example("directory-dialing/10_skype_directory.xml"),
        ));
        // The instance's scripts folder sits beside its configuration folder.
        s.files.push((
            "../scripts/skype_directory.lua".into(),
            example("directory-dialing/skype_directory.lua"),
        ));
    })
    .await
    else {
        return;
    };
    stack.wait_all_idle().await;
    stack.wait_contact("interface1", "echo123\tONLINE").await;
    // ONLINE, in name order: alice, bob, carol, echo123 (dave is offline).
    let call = stack.dial("7000", 440, &[]).await;
    // The menu is playing once the script has logged its choices.
    let deadline = Instant::now() + WAIT;
    loop {
        let log = stack.fs.log();
        if log.contains("skype_directory: 4 = echo123") {
            assert!(
                log.contains("skype_directory: 1 = alice"),
                "menu out of order"
            );
            assert!(!log.contains("= dave"), "dave is offline");
            break;
        }
        assert!(Instant::now() < deadline, "no menu; log:\n{}", log);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = stack
        .fs
        .api(&format!("uuid_recv_dtmf {} 4", call.leg))
        .await;
    assert!(reply.starts_with("+OK"), "{reply}");
    let leg = stack.socket_leg("interface1", "UP").await;
    assert_eq!(
        leg, call.leg,
        "the caller's channel is the one handed to the sidecar"
    );
    let calls = stack.net.actl(&["calls"]).await;
    assert!(calls.to_string().contains("echo123"), "{calls}");
    assert!(stack.fs.log().contains("caller chose 4: echo123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_id_by_chat_tells_the_contact_who_calls_before_it_rings() {
    const TEST: &str = "caller_id_by_chat_tells_the_contact_who_calls_before_it_rings";
    let Some(stack) = RealStack::start(TEST, StackSpec::users(&["user1"]), |s| {
        s.files.push((
            "dialplan/default/10_skype_caller_id_chat.xml".into(),
            example("caller-id-chat/10_skype_caller_id_chat.xml"),
        ));
        // A loopback destination cannot hold a slash: this one hands over to skypecid/echo123.
        s.files.push((
            "dialplan/default/11_cid_test.xml".into(),
            "<include>\n  <extension name=\"cid_test\">\n    \
             <condition field=\"destination_number\" expression=\"^cid_test$\">\n      \
             <action application=\"transfer\" data=\"skypecid/echo123 XML default\"/>\n    \
             </condition>\n  </extension>\n</include>\n"
                .into(),
        ));
    })
    .await
    else {
        return;
    };
    stack.wait_all_idle().await;
    // A caller as a phone would be: the leg that reaches the dialplan carries its caller id.
    stack
        .fs
        .bgapi(
            "originate {origination_caller_id_number=1000,origination_caller_id_name='Jane Doe'}\
             loopback/cid_test/default &park()",
        )
        .await;
    let chat = stack
        .wait_inbox("echo123", "Call from 1000 (Jane Doe)")
        .await;
    assert_eq!(chat["from_handle"], "user1", "{chat}");
    let leg = stack.socket_leg("interface1", "UP").await;
    assert!(!leg.is_empty());
}
