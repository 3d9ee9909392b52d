//! Contacts and presence in the emulator, over X11 as a controller sees them (the Skype Desktop
//! API's USER object: Skype4Py documents its properties and values): `SEARCH FRIENDS`,
//! `GET USER <h> ONLINESTATUS|BUDDYSTATUS|FULLNAME`, the unsolicited `USER <h> ONLINESTATUS`
//! when `ctl presence` changes a contact, `ctl contact` adding and removing one, and `SET USER
//! <h> BUDDYSTATUS 1|2`.
mod support;

use support::sim::{logged_in, SimNetwork};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_and_their_presence_follow_the_desktop_api() {
    let net = SimNetwork::start();
    let (_x, _client, mut api) = logged_in(&net, "user1").await;

    api.send("SEARCH FRIENDS").await;
    api.expect("USERS alice, bob, carol, dave, echo123").await;
    for (question, answer) in [
        (
            "GET USER alice ONLINESTATUS",
            "USER alice ONLINESTATUS ONLINE",
        ),
        (
            "GET USER dave ONLINESTATUS",
            "USER dave ONLINESTATUS OFFLINE",
        ),
        (
            "GET USER echo123 ONLINESTATUS",
            "USER echo123 ONLINESTATUS ONLINE",
        ),
        (
            "GET USER user2 ONLINESTATUS",
            "USER user2 ONLINESTATUS OFFLINE",
        ),
        ("GET USER bob BUDDYSTATUS", "USER bob BUDDYSTATUS 3"),
        ("GET USER mallory BUDDYSTATUS", "USER mallory BUDDYSTATUS 0"),
        (
            "GET USER alice FULLNAME",
            "USER alice FULLNAME Alice Liddell",
        ),
    ] {
        api.send(question).await;
        api.expect(answer).await;
    }

    // A contact's change is told at once; INVISIBLE shows as OFFLINE.
    net.actl(&["presence", "--party", "alice", "--status", "AWAY"])
        .await;
    api.expect("USER alice ONLINESTATUS AWAY").await;
    net.actl(&["presence", "--party", "alice", "--status", "INVISIBLE"])
        .await;
    api.expect("USER alice ONLINESTATUS OFFLINE").await;

    // Someone not in the list changes unheard; added, the account hears the contact and its
    // status.
    net.actl(&["presence", "--party", "mallory", "--status", "DND"])
        .await;
    net.actl(&["contact", "--user", "user1", "--handle", "mallory"])
        .await;
    let first = api
        .wait("a mallory notification", |m| m.starts_with("USER mallory"))
        .await;
    assert_eq!(first, "USER mallory BUDDYSTATUS 3", "{:?}", api.seen);
    api.expect("USER mallory ONLINESTATUS DND").await;

    // Removing one through the API.
    api.send("SET USER bob BUDDYSTATUS 1").await;
    api.expect("USER bob BUDDYSTATUS 1").await;
    api.send("SEARCH FRIENDS").await;
    api.expect("USERS alice, carol, dave, echo123, mallory")
        .await;
    net.actl(&["presence", "--party", "bob", "--status", "NA"])
        .await;
    net.actl(&["presence", "--party", "carol", "--status", "SKYPEME"])
        .await;
    let next = api
        .wait("the next presence", |m| m.contains("ONLINESTATUS"))
        .await;
    assert_eq!(next, "USER carol ONLINESTATUS SKYPEME", "bob left the list");

    // Bad input is refused with a reason, and the client goes on.
    let refused = net
        .try_actl(&["presence", "--party", "alice", "--status", "BUSY"])
        .await
        .unwrap_err();
    assert!(refused.contains("unknown status"), "{refused}");
    let refused = net
        .try_actl(&["presence", "--party", "user2", "--status", "AWAY"])
        .await
        .unwrap_err();
    assert!(refused.contains("not a remote party"), "{refused}");
    api.send("SET USER bob BUDDYSTATUS 7").await;
    api.expect("ERROR 518 Invalid value").await;
    api.send("PING").await;
    api.expect("PONG").await;
}
