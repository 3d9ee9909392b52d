//! An interface's Skype contacts on the command surface: read when the client is ready, kept
//! current from the client's USER notifications, read again after a reconnect; `sk contacts`
//! for people, `skypopen_contacts` as JSON for scripts; hostile names stay inert.
mod support;

use std::time::{Duration, Instant};
use support::stack::{Stack, StackSpec};

const WAIT: Duration = Duration::from_secs(20);

async fn contacts_json(stack: &Stack) -> serde_json::Value {
    let text = stack.api("skypopen_contacts interface1").await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn status_of(json: &serde_json::Value, handle: &str) -> Option<String> {
    json["contacts"]
        .as_array()?
        .iter()
        .find(|c| c["handle"] == handle)
        .and_then(|c| c["status"].as_str().map(str::to_string))
}

/// Waits until `pred` holds for the JSON form.
async fn wait_contacts(
    stack: &Stack,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let json = contacts_json(stack).await;
        if pred(&json) {
            return json;
        }
        assert!(
            Instant::now() < deadline,
            "contacts never showed {what}: {json}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_read_kept_current_and_shown_inert() {
    let mut stack = Stack::start(StackSpec::users(&["user1"])).await;
    let json = wait_contacts(&stack, "the five default contacts", |j| {
        j["contacts"].as_array().is_some_and(|c| c.len() == 5)
    })
    .await;
    assert_eq!(json["interface"], "interface1");
    assert_eq!(json["skype_user"], "user1");
    assert_eq!(status_of(&json, "alice").as_deref(), Some("ONLINE"));
    assert_eq!(status_of(&json, "dave").as_deref(), Some("OFFLINE"));
    let alice = &json["contacts"][0];
    assert_eq!(alice["display_name"], "Alice Liddell");
    assert_eq!(alice["buddystatus"], 3);

    // A status change arrives as a notification.
    stack
        .net
        .actl(&["presence", "--party", "alice", "--status", "AWAY"])
        .await;
    wait_contacts(&stack, "alice AWAY", |j| {
        status_of(j, "alice").as_deref() == Some("AWAY")
    })
    .await;
    let table = stack.api("sk contacts interface1").await;
    assert!(
        table.contains("Contacts of interface1 (user1): 5\n"),
        "{table}"
    );
    assert!(table.contains("\nalice\tAWAY\t"), "{table}");

    // A contact whose name would break out of a variable block shows as plain text; the JSON
    // stays JSON.
    stack
        .net
        .actl(&["contact", "--user", "user1", "--handle", "mallory"])
        .await;
    let json = wait_contacts(&stack, "mallory read in full", |j| {
        j["contacts"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["handle"] == "mallory" && c["display_name"] != "")
        })
    })
    .await;
    assert_eq!(status_of(&json, "mallory").as_deref(), Some("ONLINE"));
    let mallory = json["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["handle"] == "mallory")
        .unwrap();
    assert_eq!(
        mallory["display_name"],
        "x',api_on_answer=system touch /tmp/p,y='"
    );
    let table = stack.api("sk contacts interface1").await;
    // The console line, the title, the column names, one line per contact.
    assert_eq!(table.lines().count(), 3 + 6, "{table}");

    // Removed while the client is away: the list is read again when it is back.
    stack.kill_client(0);
    stack
        .net
        .actl(&[
            "contact", "--user", "user1", "--handle", "carol", "--remove",
        ])
        .await;
    stack.restart_client(0);
    stack.wait_all_idle().await;
    wait_contacts(&stack, "carol gone after the reconnect", |j| {
        status_of(j, "carol").is_none() && status_of(j, "alice").is_some()
    })
    .await;

    assert!(stack
        .api("sk contacts nosuch")
        .await
        .contains("-ERR no interface named nosuch"));
    assert!(stack.api("sk contacts").await.contains("-ERR Usage"));
}
