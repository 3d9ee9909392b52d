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

/// PRESENCE_IN events the sidecar fired for `handle`, in order: their `status` headers.
fn presence_events(stack: &Stack, handle: &str) -> Vec<Vec<(String, String)>> {
    let from = format!("{handle}@127.0.0.1");
    stack
        .fs
        .fired("PRESENCE_IN")
        .into_iter()
        .filter(|e| e.header("from") == Some(from.as_str()))
        .map(|e| e.headers)
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn wait_presence(stack: &Stack, handle: &str, status: &str) -> Vec<(String, String)> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(last) = presence_events(stack, handle).pop() {
            if header(&last, "status") == Some(status) {
                return last;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no PRESENCE_IN {status} for {handle}: {:?}",
            presence_events(stack, handle)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_presence_reaches_freeswitch_as_presence_in() {
    let stack = Stack::start(StackSpec::users(&["user1"])).await;
    // Every contact once the list is read, at FreeSWITCH's own domain.
    let alice = wait_presence(&stack, "alice", "Available").await;
    for (name, value) in [
        ("proto", "skype"),
        ("login", "interface1"),
        ("rpid", "unknown"),
        ("event_type", "presence"),
        ("alt_event_type", "dialog"),
        ("skype_status", "ONLINE"),
    ] {
        assert_eq!(header(&alice, name), Some(value), "{name}: {alice:?}");
    }
    wait_presence(&stack, "dave", "Unregistered").await;

    stack
        .net
        .actl(&["presence", "--party", "alice", "--status", "DND"])
        .await;
    let dnd = wait_presence(&stack, "alice", "Do Not Disturb").await;
    assert_eq!(header(&dnd, "rpid"), Some("busy"));

    // In a call with our interface: on the phone, then back to what the contact says.
    let call = stack.dial("echo123");
    stack.fs.wait_answered(&call.socket_leg, WAIT).await;
    let busy = wait_presence(&stack, "echo123", "On The Phone").await;
    assert_eq!(header(&busy, "answer-state"), Some("confirmed"));
    stack.fs.hangup(&call.socket_leg, "NORMAL_CLEARING");
    wait_presence(&stack, "echo123", "Available").await;

    // A flood of changes is coalesced: far fewer events than changes, the last one right.
    let before = presence_events(&stack, "bob").len();
    let started = Instant::now();
    for status in ["AWAY", "NA", "DND", "ONLINE"].iter().cycle().take(200) {
        stack
            .net
            .actl(&["presence", "--party", "bob", "--status", status])
            .await;
    }
    stack
        .net
        .actl(&["presence", "--party", "bob", "--status", "AWAY"])
        .await;
    wait_presence(&stack, "bob", "Away").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let sent = presence_events(&stack, "bob").len() - before;
    // At most one event per contact per 250 ms round, whatever the machine's speed.
    let rounds = started.elapsed().as_millis() as usize / 250 + 2;
    assert!(
        sent <= rounds,
        "{sent} events for 201 changes in {rounds} rounds"
    );
    println!("201 status changes of one contact became {sent} PRESENCE_IN events");

    // A phone subscribing to skype+carol@...: mod_sofia's probe is answered with carol's state.
    let before = presence_events(&stack, "carol").len();
    let mut esl = support::fs_double::event_sender(stack.fs.esl_addr()).await;
    use tokio::io::AsyncWriteExt;
    esl.write_all(
        b"sendevent PRESENCE_PROBE\nproto: skype\nlogin: internal\nfrom: 1000@127.0.0.1\n\
          to: skype+carol@127.0.0.1\nevent_type: presence\n\n",
    )
    .await
    .expect("probe");
    let deadline = Instant::now() + WAIT;
    while presence_events(&stack, "carol").len() == before {
        assert!(Instant::now() < deadline, "the probe was not answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = presence_events(&stack, "carol").pop().unwrap();
    assert_eq!(header(&answer, "status"), Some("Available"), "{answer:?}");
}
