//! The `skypopen::` CUSTOM events, fired into FreeSWITCH (the double records them): what became
//! of a sent chat (SENT, READ, FAILED, with the id the command returned), contact requests as
//! each interface's `contact_requests` says (accept, ask + `sk auth`, deny) and cut when they
//! flood, SkypeOut balance changes and interface state changes.
mod support;

use std::time::{Duration, Instant};
use support::skype_side::IfaceSpec;
use support::stack::{Stack, StackSpec};
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(20);

type Headers = Vec<(String, String)>;

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The notices of `subclass` fired so far, in order, with their bodies.
fn notices(stack: &Stack, subclass: &str) -> Vec<(Headers, String)> {
    stack
        .fs
        .fired(subclass)
        .into_iter()
        .map(|e| (e.headers, e.body.unwrap_or_default()))
        .collect()
}

async fn wait_notice(
    stack: &Stack,
    subclass: &str,
    what: &str,
    pred: impl Fn(&Headers) -> bool,
) -> (Headers, String) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(found) = notices(stack, subclass).into_iter().find(|(h, _)| pred(h)) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {subclass} notice {what}: {:?}",
            notices(stack, subclass)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn chat_status(id: &str, status: &str) -> impl Fn(&Headers) -> bool {
    let (id, status) = (id.to_string(), status.to_string());
    move |h: &Headers| {
        header(h, "skypopen_chat_id") == Some(id.as_str())
            && header(h, "chat_status") == Some(status.as_str())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_chats_report_sent_read_and_failed_with_their_id() {
    let mut spec = StackSpec::users(&["user1"]);
    spec.extra = "[chat]\nsent_timeout_secs = 2\n".into();
    let stack = Stack::start(spec).await;
    stack.wait_all_idle().await;

    // skypopen_chat returns the id; SENT, then READ once alice reads it.
    let reply = stack
        .api("skypopen_chat interface1 alice hello there")
        .await;
    let id = reply
        .lines()
        .find_map(|l| l.strip_prefix("+OK "))
        .unwrap_or_else(|| panic!("no id in {reply:?}"))
        .to_string();
    let (sent, _) = wait_notice(
        &stack,
        "skypopen::chat_status",
        "SENT",
        chat_status(&id, "SENT"),
    )
    .await;
    for (name, value) in [
        ("skypopen_interface", "interface1"),
        ("skypopen_skype_user", "user1"),
        ("to", "alice"),
    ] {
        assert_eq!(header(&sent, name), Some(value), "{name}: {sent:?}");
    }
    assert!(header(&sent, "skype_message_id").is_some_and(|v| v.parse::<u64>().is_ok()));
    assert!(header(&sent, "skype_chatname").is_some_and(|v| v.starts_with("#user1/$alice;")));
    let read = stack.net.actl(&["read", "--party", "alice"]).await;
    assert_eq!(read["read"], 1, "{read}");
    wait_notice(
        &stack,
        "skypopen::chat_status",
        "READ",
        chat_status(&id, "READ"),
    )
    .await;

    // `chat SKYPE|...` on the listener: FreeSWITCH's "Sent", then the id.
    let reply = stack.api("chat SKYPE|user1|bob|via chat").await;
    let id2 = reply
        .strip_prefix("Sent ")
        .unwrap_or_else(|| panic!("{reply:?}"))
        .trim()
        .to_string();
    assert_ne!(id2, id);
    wait_notice(
        &stack,
        "skypopen::chat_status",
        "SENT via chat",
        chat_status(&id2, "SENT"),
    )
    .await;

    // dave is offline: the message stays SENDING, FAILED after the 2 s timeout; a SENT that
    // comes when dave is back is still told.
    let reply = stack
        .api("skypopen_chat interface1 dave are you there")
        .await;
    let id3 = reply
        .lines()
        .find_map(|l| l.strip_prefix("+OK "))
        .unwrap_or_else(|| panic!("{reply:?}"))
        .to_string();
    let asked = Instant::now();
    let (failed, _) = wait_notice(
        &stack,
        "skypopen::chat_status",
        "FAILED",
        chat_status(&id3, "FAILED"),
    )
    .await;
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "failed too early"
    );
    assert!(
        header(&failed, "reason").is_some_and(|r| r.contains("not sent within")),
        "{failed:?}"
    );
    assert!(
        !notices(&stack, "skypopen::chat_status")
            .iter()
            .any(|(h, _)| chat_status(&id3, "SENT")(h)),
        "SENT before dave came online"
    );
    stack
        .net
        .actl(&["presence", "--party", "dave", "--status", "ONLINE"])
        .await;
    let (late, _) = wait_notice(
        &stack,
        "skypopen::chat_status",
        "SENT once dave is back",
        chat_status(&id3, "SENT"),
    )
    .await;
    assert!(
        header(&late, "reason").is_some_and(|r| r.contains("after it was reported FAILED")),
        "{late:?}"
    );

    // SEND_MESSAGE with the requester's own id; a sender no interface serves fails at once.
    let fire = |from: &str, id: &str| {
        format!(
            "sendevent SEND_MESSAGE\nproto: skype\nfrom: {from}\nto: carol\nskypopen_chat_id: {id}\nContent-Length: 2\n\nhi"
        )
    };
    let mut esl = support::fs_double::event_sender(stack.fs.esl_addr()).await;
    esl.write_all(fire("user1", "mine-42").as_bytes())
        .await
        .expect("write");
    let (mine, _) = wait_notice(
        &stack,
        "skypopen::chat_status",
        "for mine-42",
        chat_status("mine-42", "SENT"),
    )
    .await;
    assert!(
        header(&mine, "skypopen_request_event").is_some_and(|v| v.contains(':')),
        "{mine:?}"
    );
    esl.write_all(fire("user77", "lost-1").as_bytes())
        .await
        .expect("write");
    let (lost, _) = wait_notice(
        &stack,
        "skypopen::chat_status",
        "for lost-1",
        chat_status("lost-1", "FAILED"),
    )
    .await;
    assert!(header(&lost, "reason").is_some(), "{lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_requests_are_accepted_asked_or_denied_and_a_flood_is_cut() {
    let mut spec = StackSpec::users(&["user1", "user2", "user3"]);
    spec.interfaces[1] = IfaceSpec::new("interface2", "user2").toml("contact_requests = \"ask\"");
    spec.interfaces[2] = IfaceSpec::new("interface3", "user3").toml("contact_requests = \"deny\"");
    let stack = Stack::start(spec).await;
    stack.wait_all_idle().await;
    let request = |to: &'static str, text: &'static str| {
        let net = &stack.net;
        async move {
            net.actl(&[
                "auth-request",
                "--from",
                "mallory",
                "--to",
                to,
                "--text",
                text,
            ])
            .await
        }
    };

    // Accepted (the default): mallory becomes a contact.
    request("user1", "hi, add me").await;
    let (accepted, body) = wait_notice(&stack, "skypopen::contact_request", "on interface1", |h| {
        header(h, "skypopen_interface") == Some("interface1")
    })
    .await;
    assert_eq!(header(&accepted, "handling"), Some("accepted"));
    assert_eq!(header(&accepted, "from"), Some("mallory"));
    assert_eq!(header(&accepted, "text"), Some("hi, add me"));
    assert_eq!(body, "hi, add me");
    stack.wait_contact("interface1", "mallory\t").await;

    // Asked: waits for `sk auth`; the hostile text stays inert in the header, whole in the body.
    let hostile = "line one\r\nEvent-Name: SHUTDOWN\r\n%s,%d";
    request("user2", hostile).await;
    let (asked, body) = wait_notice(&stack, "skypopen::contact_request", "on interface2", |h| {
        header(h, "skypopen_interface") == Some("interface2")
    })
    .await;
    assert_eq!(header(&asked, "handling"), Some("asked"));
    assert_eq!(
        header(&asked, "text"),
        Some("line oneEvent-Name: SHUTDOWN%s,%d")
    );
    assert_eq!(body, hostile);
    let waiting = stack.api("sk auth interface2").await;
    assert!(
        waiting.contains("mallory\t") && waiting.contains("Total waiting: 1"),
        "{waiting}"
    );
    assert!(!stack
        .api("sk contacts interface2")
        .await
        .contains("\nmallory\t"));
    let answer = stack.api("sk auth interface2 accept mallory").await;
    assert!(answer.contains("+OK accepted mallory"), "{answer}");
    wait_notice(
        &stack,
        "skypopen::contact_request",
        "accepted by sk auth",
        |h| {
            header(h, "skypopen_interface") == Some("interface2")
                && header(h, "handling") == Some("accepted")
        },
    )
    .await;
    assert!(stack
        .api("sk auth interface2")
        .await
        .contains("Total waiting: 0"));
    stack.wait_contact("interface2", "mallory\t").await;
    assert!(stack
        .api("sk auth interface2 maybe mallory")
        .await
        .contains("-ERR Usage"));
    assert!(stack
        .api("sk auth nosuch")
        .await
        .contains("-ERR no interface"));

    // Denied, and a flood of 60 is cut to the burst of 20 (one more may refill meanwhile).
    for _ in 0..60 {
        request("user3", "let me in").await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let denied: Vec<_> = notices(&stack, "skypopen::contact_request")
        .into_iter()
        .filter(|(h, _)| header(h, "skypopen_interface") == Some("interface3"))
        .collect();
    assert!(denied
        .iter()
        .all(|(h, _)| header(h, "handling") == Some("denied")));
    assert!(
        (20..=24).contains(&denied.len()),
        "{} notices for 60 requests",
        denied.len()
    );
    assert!(!stack
        .api("sk contacts interface3")
        .await
        .contains("\nmallory\t"));
    // The flood did not stop the interface: a chat still goes out at once.
    let reply = stack.api("skypopen_chat interface3 alice still here").await;
    assert!(reply.contains("+OK "), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_and_interface_state_changes_are_told() {
    let mut stack = Stack::start(StackSpec::users(&["user1"])).await;
    stack.wait_all_idle().await;
    wait_notice(&stack, "skypopen::interface_state", "IDLE at start", |h| {
        header(h, "state") == Some("IDLE") && header(h, "previous_state") == Some("DOWN")
    })
    .await;

    stack.net.actl(&["balance", "user1", "--set", "777"]).await;
    let (first, _) = wait_notice(&stack, "skypopen::balance", "777", |h| {
        header(h, "balance") == Some("777")
    })
    .await;
    assert_eq!(header(&first, "skypopen_interface"), Some("interface1"));
    assert_eq!(header(&first, "previous_balance"), None);
    stack.net.actl(&["balance", "user1", "--set=-5"]).await;
    let (second, _) = wait_notice(&stack, "skypopen::balance", "-5", |h| {
        header(h, "balance") == Some("-5")
    })
    .await;
    assert_eq!(header(&second, "previous_balance"), Some("777"));

    // A call: away from IDLE with the channel's uuid, then back.
    let call = stack.dial("echo123");
    stack.fs.wait_answered(&call.socket_leg, WAIT).await;
    let (busy, _) = wait_notice(&stack, "skypopen::interface_state", "in a call", |h| {
        header(h, "state") == Some("UP")
    })
    .await;
    assert_eq!(header(&busy, "skypopen_interface_id"), Some("1"));
    assert!(header(&busy, "Unique-ID").is_some(), "{busy:?}");
    stack.fs.hangup(&call.socket_leg, "NORMAL_CLEARING");
    wait_notice(&stack, "skypopen::interface_state", "back to IDLE", |h| {
        header(h, "state") == Some("IDLE") && header(h, "previous_state") != Some("DOWN")
    })
    .await;

    // The client dies: DOWN.
    stack.kill_client(0);
    wait_notice(&stack, "skypopen::interface_state", "DOWN", |h| {
        header(h, "state") == Some("DOWN") && header(h, "previous_state") == Some("IDLE")
    })
    .await;
}
