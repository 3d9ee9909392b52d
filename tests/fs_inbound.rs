//! The sidecar's connections to FreeSWITCH's Event Socket against the double: api, bgapi
//! correlation, events fired with their header names as written and a UTF-8 body, and
//! reconnecting after the switch drops the connection.
mod support;

use skypopen::config::Secret;
use skypopen::switch::inbound::{
    spawn_inbound, InboundConfig, InboundError, InboundHandle, LinkState,
};
use skypopen::switch::SwitchLink;
use std::time::Duration;
use support::fs_double::FsDouble;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(20);
const BODY: &str = "Grüße aus Köln – привет, 你好 👋 \"quotes\" & <angle> 100%\nsecond line";

fn config(double: &FsDouble) -> InboundConfig {
    let mut config = InboundConfig::new(double.esl_addr(), Secret::new("ClueCon"));
    config.backoff_initial = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(500);
    config
}

async fn connected(double: &FsDouble) -> (InboundHandle, CancellationToken) {
    let cancel = CancellationToken::new();
    let handle = spawn_inbound(config(double), cancel.clone());
    handle
        .wait_connected(DEADLINE)
        .await
        .expect("connects to the double");
    (handle, cancel)
}

#[tokio::test]
async fn api_and_concurrent_bgapi_results_reach_their_callers() {
    let double = FsDouble::start().await;
    let (handle, cancel) = connected(&double).await;
    let status = handle.api("status").await.unwrap();
    assert!(status.contains("is ready"), "{status}");
    assert_eq!(
        handle.api("foobar").await.unwrap(),
        "-ERR foobar Command not found!\n"
    );
    assert_eq!(
        handle
            .api("originate error/user_busy &park()")
            .await
            .unwrap(),
        "-ERR USER_BUSY\n"
    );

    let mut jobs = Vec::new();
    for i in 0..8 {
        let handle = handle.clone();
        let uuid = uuid::Uuid::new_v4().to_string();
        jobs.push(tokio::spawn(async move {
            let out = handle
                .bgapi(
                    &format!("originate {{origination_uuid={uuid}}}loopback/park{i} &park()"),
                    DEADLINE,
                )
                .await;
            (uuid, out)
        }));
    }
    for job in jobs {
        let (uuid, out) = job.await.unwrap();
        assert_eq!(
            out.unwrap(),
            format!("+OK {uuid}\n"),
            "each caller gets its own job result"
        );
        assert!(double.channel(&uuid).is_some_and(|c| c.is_answered()));
    }
    let busy = handle
        .bgapi("originate error/user_busy &park()", DEADLINE)
        .await
        .unwrap();
    assert_eq!(busy, "-ERR USER_BUSY\n");
    cancel.cancel();
}

#[tokio::test]
async fn events_are_fired_with_their_header_names_as_written_and_echoed() {
    let double = FsDouble::start().await;
    let (handle, cancel) = connected(&double).await;
    let mut events = handle.subscribe();
    let link = SwitchLink::new(handle.clone(), Secret::new("ClueCon"));
    let headers = [
        ("proto", "skype"),
        ("login", "interface1"),
        ("from", "bob"),
        ("hint", "Bob B"),
        ("to", "user1"),
        ("during-call", "false"),
    ];
    let event_uuid = link
        .fire("MESSAGE", &headers, BODY)
        .await
        .expect("sendevent accepted");
    assert_eq!(event_uuid.len(), 36, "{event_uuid}");

    let recorded = double.recorded();
    let fired = recorded
        .sent_events
        .last()
        .expect("the double got the event");
    assert_eq!(fired.body.as_deref(), Some(BODY));
    assert_eq!(fired.header("Event-UUID"), Some(event_uuid.as_str()));
    assert_eq!(fired.name(), "MESSAGE");
    let names: Vec<&str> = fired.headers.iter().map(|(k, _)| k.as_str()).collect();
    for (name, value) in headers {
        assert!(
            fired.headers.iter().any(|(k, v)| k == name && v == value),
            "{name} as written: {names:?}"
        );
    }

    let echoed = tokio::time::timeout(DEADLINE, async {
        loop {
            let e = events.recv().await.expect("event stream open");
            if e.header_str("Event-UUID") == Some(event_uuid.as_str()) {
                return e;
            }
        }
    })
    .await
    .expect("the MESSAGE comes back to the subscriber");
    assert_eq!(echoed.body(), Some(BODY));
    assert_eq!(echoed.header_str("from"), Some("bob"));

    link.fire(
        "CUSTOM",
        &[
            ("Event-Subclass", "skypopen::command_result"),
            ("command", "sk list"),
        ],
        "output",
    )
    .await
    .unwrap();
    let fired = double.recorded().sent_events.last().cloned().unwrap();
    assert_eq!(
        fired.headers[0],
        (
            "Event-Subclass".to_string(),
            "skypopen::command_result".to_string()
        )
    );
    // Exactly `command` (FreeSWITCH adds its own `Command: sendevent CUSTOM`).
    assert!(
        fired
            .headers
            .iter()
            .any(|(k, v)| k == "command" && v == "sk list"),
        "{:?}",
        fired.headers
    );

    // A line break in a header would smuggle a command in: refused before anything is sent.
    let before = double.recorded().commands.len();
    let refused = link
        .fire("MESSAGE", &[("from", "bob\nEvil: 1")], "x")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("line break"), "{refused}");
    assert_eq!(double.recorded().commands.len(), before);
    cancel.cancel();
}

/// freeswitch-esl-tokio 2.8 re-cases header names without an underscore when it builds a
/// `sendevent` (`proto` goes out as `Proto`, `during-call` as `During-Call`). FreeSWITCH looks
/// headers up case-insensitively, so it still routes the event, but subscribers that match
/// names exactly (greenswitch) see other names than the original module sent; that is why
/// events leave on the sidecar's own writer (`switch/event_link.rs`). This test pins the
/// library's behaviour so that a fixed version shows up.
#[tokio::test]
async fn esl_library_recases_sendevent_header_names() {
    use freeswitch_esl_tokio::{EslClient, EslEvent};
    let double = FsDouble::start().await;
    let addr = double.esl_addr();
    let (client, _events) = EslClient::connect(&addr.ip().to_string(), addr.port(), "ClueCon")
        .await
        .expect("connects to the double");
    let mut event = EslEvent::new();
    event.set_header("Event-Name", "MESSAGE");
    event.set_header("proto", "skype");
    event.set_header("to_user", "interface1");
    let reply = client.sendevent(event).await.expect("sendevent");
    assert!(reply.is_success());
    let fired = double.recorded().sent_events.last().cloned().unwrap();
    let names: Vec<&str> = fired.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert!(names.contains(&"Proto"), "{names:?}");
    assert!(
        names.contains(&"to_user"),
        "names with an underscore are kept: {names:?}"
    );
}

#[tokio::test]
async fn chat_reply_and_delivery_failure_event() {
    let double = FsDouble::start().await;
    let (handle, cancel) = connected(&double).await;
    let mut events = handle.subscribe();
    let out = handle.api("chat SKYPE|user1|bob|hello").await.unwrap();
    assert_eq!(out, "Error! Message Not Sent");
    let failure = tokio::time::timeout(DEADLINE, async {
        loop {
            let e = events.recv().await.unwrap();
            if e.header_str("Delivery-Failure").is_some() {
                return e;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(failure.header_str("Delivery-Failure"), Some("true"));
    assert_eq!(failure.body(), Some("hello"));
    cancel.cancel();
}

async fn api_eventually(handle: &InboundHandle, command: &str) -> String {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match handle.api(command).await {
                Ok(out) => return out,
                Err(InboundError::NotConnected { .. } | InboundError::ConnectionLost { .. }) => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(other) => panic!("unexpected error {other}"),
            }
        }
    })
    .await
    .expect("the connection comes back")
}

#[tokio::test]
async fn reconnects_after_a_drop_mid_command() {
    let double = FsDouble::start().await;
    let (handle, cancel) = connected(&double).await;
    double.drop_on_next_api("status");
    let err = handle.api("status").await.unwrap_err();
    assert!(
        matches!(
            err,
            InboundError::ConnectionLost { .. } | InboundError::NotConnected { .. }
        ),
        "{err}"
    );
    // Requests fail with a clear error until it is back, then succeed.
    assert!(api_eventually(&handle, "status").await.contains("is ready"));

    // The subscription is renewed on the new connection.
    let mut events = handle.subscribe();
    let link = SwitchLink::new(handle.clone(), Secret::new("ClueCon"));
    let id = link
        .fire(
            "CUSTOM",
            &[
                ("Event-Subclass", "skypopen::command"),
                ("command", "sk list"),
            ],
            "",
        )
        .await
        .unwrap();
    let seen = tokio::time::timeout(DEADLINE, async {
        loop {
            let e = events.recv().await.unwrap();
            if e.header_str("Event-UUID") == Some(id.as_str()) {
                return true;
            }
        }
    })
    .await
    .unwrap();
    assert!(seen);

    // And once more, with every connection dropped at once.
    double.drop_inbound_connections();
    assert!(api_eventually(&handle, "status").await.contains("is ready"));
    cancel.cancel();
}

#[tokio::test]
async fn starts_while_freeswitch_is_down_and_connects_when_it_comes_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cancel = CancellationToken::new();
    let mut config = InboundConfig::new(port, Secret::new("ClueCon"));
    config.backoff_initial = Duration::from_millis(50);
    config.backoff_max = Duration::from_millis(200);
    let handle = spawn_inbound(config, cancel.clone());
    let err = handle.api("status").await.unwrap_err();
    assert!(matches!(err, InboundError::NotConnected { .. }), "{err}");
    let listener = tokio::net::TcpListener::bind(port).await.unwrap();
    let double = FsDouble::start_on(listener, "ClueCon");
    handle
        .wait_connected(DEADLINE)
        .await
        .expect("connects once the switch is up");
    assert!(handle.api("status").await.is_ok());
    drop(double);
    cancel.cancel();
}

#[tokio::test]
async fn wrong_password_keeps_retrying_without_panicking() {
    let double = FsDouble::start_with_password("secret").await;
    let cancel = CancellationToken::new();
    let handle = spawn_inbound(config(&double), cancel.clone());
    let mut state = handle.state();
    tokio::time::timeout(
        DEADLINE,
        state.wait_for(|s| matches!(s, LinkState::Down { .. })),
    )
    .await
    .expect("reports the failure")
    .unwrap();
    assert!(handle.api("status").await.is_err());
    let attempts = double
        .wait_for("a second auth attempt", DEADLINE, |st| {
            let n = st
                .recorded
                .commands
                .iter()
                .filter(|c| c.starts_with("auth "))
                .count();
            (n >= 2).then_some(n)
        })
        .await;
    assert!(attempts >= 2);
    cancel.cancel();
}

/// The link subscribes its request streams when it is made: a chat FreeSWITCH asks for before
/// the chat sender has started (the sidecar loads its chat state first) still reaches it. The
/// chaos soak lost a chat fired in that window after a sidecar restart.
#[tokio::test]
async fn requests_arriving_before_their_consumer_starts_are_kept() {
    let double = FsDouble::start().await;
    let (handle, cancel) = connected(&double).await;
    let link = SwitchLink::new(handle.clone(), Secret::new("ClueCon"));
    // The same MESSAGE FreeSWITCH's `chat SKYPE|...` fires, before anyone asks for requests.
    let mut seen = handle.subscribe();
    double.api("chat SKYPE|user1|bob|sent early");
    tokio::time::timeout(DEADLINE, async {
        while seen
            .recv()
            .await
            .ok()
            .and_then(|e| e.body().map(str::to_string))
            .as_deref()
            != Some("sent early")
        {}
    })
    .await
    .expect("the event reached the connection");

    let mut requests = link.chat_requests();
    let request = tokio::time::timeout(DEADLINE, requests.next(&cancel, "test"))
        .await
        .expect("a request waiting")
        .expect("the stream is open");
    match request {
        skypopen::switch::requests::SwitchRequest::Chat(chat) => {
            assert_eq!(
                (chat.to.as_str(), chat.body.as_str()),
                ("bob", "sent early")
            );
        }
        other => panic!("not a chat: {other:?}"),
    }
    // A second consumer of the same kind starts from now, as before.
    let mut late = link.chat_requests();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), late.next(&cancel, "test"))
            .await
            .is_err(),
        "a late consumer sees no earlier request"
    );
    cancel.cancel();
}
