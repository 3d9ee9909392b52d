//! The API session over the real X11 link: a scripted client endpoint on Xvfb answers the
//! handshake the way a Skype client does, then requests, long multi-chunk messages and a client
//! restart go through the whole transport.
mod support;

use skypopen::skype::api::{
    CallEvent, CallId, CallProperty, ChatMessageEvent, ChatMessageId, ChatMessageProperty,
    ChatMessageStatus, Command, Notification,
};
use skypopen::skype::link::{ClientLink, ClientOutgoing, SendFaults};
use skypopen::skype::session::{
    spawn, Session, SessionConfig, SessionError, SessionEvent, SessionState,
};
use skypopen::skype::x11::{spawn_client_endpoint, spawn_controller_link, ClientEndpoint};
use std::time::Duration;
use support::xvfb::Xvfb;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);
const DISPLAY_NAME: &str = "Zoë van der Berg — Ünïcödé Display Name With Many Words 😀";

async fn start_xvfb() -> Xvfb {
    tokio::task::spawn_blocking(Xvfb::start)
        .await
        .expect("Xvfb start")
}

/// Answers like a pre-authorized Skype client logged in as `user`, and reports every command
/// it receives (with its tag) on `seen`.
async fn scripted_client(mut link: ClientLink, user: &'static str, seen: mpsc::Sender<String>) {
    while let Some(message) = link.incoming.recv().await {
        let _ = seen.send(message.text.clone()).await;
        let (tag, body) = match message.text.strip_prefix('#') {
            Some(tagged) => match tagged.split_once(' ') {
                Some((tag, body)) => (format!("#{tag} "), body.to_owned()),
                None => continue,
            },
            None => (String::new(), message.text.clone()),
        };
        let mut replies = Vec::new();
        let mut unsolicited = Vec::new();
        match body.as_str() {
            "NAME skypopen" => {
                replies.push("OK".to_owned());
                unsolicited = vec![
                    "CONNSTATUS ONLINE".to_owned(),
                    format!("CURRENTUSERHANDLE {user}"),
                    "USERSTATUS ONLINE".to_owned(),
                ];
            }
            "PROTOCOL 999" => replies.push("PROTOCOL 8".to_owned()),
            "GET CURRENTUSERHANDLE" => replies.push(format!("CURRENTUSERHANDLE {user}")),
            "PING" => replies.push("PONG".to_owned()),
            "GET CALL 5 PARTNER_DISPNAME" => {
                replies.push(format!("CALL 5 PARTNER_DISPNAME {DISPLAY_NAME}"))
            }
            other => {
                if let Some(setting) = other.strip_prefix("SET ") {
                    replies.push(setting.to_owned());
                } else if let Some(rest) = other.strip_prefix("CHATMESSAGE ") {
                    // Tell the test how long the body that arrived was.
                    let body_len = rest.split_once(' ').map_or(0, |(_, b)| b.chars().count());
                    replies.push(format!("CHATMESSAGE {body_len} STATUS SENDING"));
                } else if let Some(rest) = other.strip_prefix("PROTOCOL ") {
                    replies.push(format!("PROTOCOL {rest}"));
                } else {
                    replies.push("ERROR 2 Unknown command".to_owned());
                }
            }
        }
        for reply in replies {
            let text = format!("{tag}{reply}");
            if send(&link, message.peer, text).await.is_err() {
                return;
            }
        }
        if !unsolicited.is_empty() {
            // A real client reports these a little after the handshake (spec 3.1).
            tokio::time::sleep(Duration::from_millis(150)).await;
            for text in unsolicited {
                if send(&link, message.peer, text).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn send(link: &ClientLink, peer: u32, text: String) -> Result<(), ()> {
    link.outgoing
        .send(ClientOutgoing {
            peer,
            text,
            faults: SendFaults::default(),
        })
        .await
        .map_err(|_| ())
}

async fn start_client(
    display: &str,
    cancel: &CancellationToken,
    user: &'static str,
) -> (ClientEndpoint, mpsc::Receiver<String>) {
    let (link, endpoint) = spawn_client_endpoint(display, cancel.child_token())
        .await
        .expect("client endpoint on Xvfb");
    let (seen_tx, seen) = mpsc::channel(256);
    tokio::spawn(scripted_client(link, user, seen_tx));
    (endpoint, seen)
}

async fn next_event(session: &mut Session) -> SessionEvent {
    timeout(DEADLINE, session.events.recv())
        .await
        .expect("no session event before the deadline")
        .expect("session event stream ended")
}

async fn wait_for_event(
    session: &mut Session,
    wanted: impl Fn(&SessionEvent) -> bool,
) -> SessionEvent {
    loop {
        let event = next_event(session).await;
        if let SessionEvent::Error(failure) = &event {
            panic!("session failed: {failure}");
        }
        if wanted(&event) {
            return event;
        }
    }
}

async fn commands_until(seen: &mut mpsc::Receiver<String>, last: &str) -> Vec<String> {
    let mut commands = Vec::new();
    loop {
        let command = timeout(DEADLINE, seen.recv())
            .await
            .expect("no command at the client before the deadline")
            .expect("client stopped");
        let done = command == last;
        commands.push(command);
        if done {
            return commands;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_over_x11_handshakes_and_correlates_requests() {
    let x = start_xvfb().await;
    let cancel = CancellationToken::new();
    let (endpoint, mut seen) = start_client(&x.display, &cancel, "user1").await;
    let link = spawn_controller_link(&x.display, cancel.child_token());
    let mut session = spawn(
        SessionConfig::new("interface1", "USER1"),
        link,
        cancel.child_token(),
    );

    let ready = wait_for_event(&mut session, |e| matches!(e, SessionEvent::Ready { .. })).await;
    assert_eq!(
        ready,
        SessionEvent::Ready {
            user: "user1".into()
        }
    );
    let handshake = commands_until(&mut seen, "SET USERSTATUS ONLINE").await;
    assert_eq!(
        handshake,
        [
            "NAME skypopen",
            "PROTOCOL 999",
            "GET CURRENTUSERHANDLE",
            "PROTOCOL 7",
            "SET AUTOAWAY OFF",
            "SET WINDOWSTATE HIDDEN",
            "SET USERSTATUS ONLINE",
        ]
    );

    // A reply far longer than one ClientMessage, UTF-8 and all words intact.
    let name = session
        .handle
        .request(Command::GetCall {
            id: CallId(5),
            property: CallProperty::PartnerDispname,
        })
        .await;
    assert_eq!(
        name,
        Ok(Notification::Call {
            id: CallId(5),
            event: CallEvent::PartnerDispname(DISPLAY_NAME.into())
        })
    );

    // Many requests at once: each gets its own reply.
    let mut pings = Vec::new();
    for _ in 0..20 {
        let handle = session.handle.clone();
        pings.push(tokio::spawn(
            async move { handle.request(Command::Ping).await },
        ));
    }
    for ping in pings {
        assert_eq!(ping.await.expect("ping task"), Ok(Notification::Pong));
    }

    // A long chat body goes out whole.
    let body = "ciao 😀 ".repeat(400);
    let sent = session
        .handle
        .request(Command::chat_message("#user1/$user2;1a2b", &body).expect("valid chat message"))
        .await;
    assert_eq!(
        sent,
        Ok(Notification::ChatMessage {
            id: ChatMessageId(body.chars().count() as u64),
            event: ChatMessageEvent::Status(ChatMessageStatus::Sending)
        })
    );

    assert_eq!(
        session
            .handle
            .request(Command::GetChatMessage {
                id: ChatMessageId(1),
                property: ChatMessageProperty::Body
            })
            .await,
        Err(SessionError::Rejected {
            code: 2,
            text: "Unknown command".into()
        })
    );
    assert_eq!(
        session.handle.raw("FROBNICATE").await,
        Ok("ERROR 2 Unknown command".into())
    );

    cancel.cancel();
    endpoint.shutdown().await;
    let _ = timeout(DEADLINE, session.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_over_x11_survives_a_client_restart() {
    let x = start_xvfb().await;
    let cancel = CancellationToken::new();
    let (endpoint, _seen) = start_client(&x.display, &cancel, "user1").await;
    let link = spawn_controller_link(&x.display, cancel.child_token());
    let mut session = spawn(
        SessionConfig::new("interface1", "user1"),
        link,
        cancel.child_token(),
    );
    wait_for_event(&mut session, |e| matches!(e, SessionEvent::Ready { .. })).await;

    endpoint.shutdown().await;
    wait_for_event(&mut session, |e| matches!(e, SessionEvent::Lost { .. })).await;
    assert!(matches!(
        session.handle.request(Command::Ping).await,
        Err(SessionError::NotReady { .. })
    ));

    let (endpoint, mut seen) = start_client(&x.display, &cancel, "user1").await;
    let ready = wait_for_event(&mut session, |e| matches!(e, SessionEvent::Ready { .. })).await;
    assert_eq!(
        ready,
        SessionEvent::Ready {
            user: "user1".into()
        }
    );
    assert_eq!(
        commands_until(&mut seen, "NAME skypopen").await,
        ["NAME skypopen"]
    );
    assert_eq!(
        session.handle.request(Command::Ping).await,
        Ok(Notification::Pong)
    );
    assert!(matches!(session.handle.state(), SessionState::Ready { .. }));

    cancel.cancel();
    endpoint.shutdown().await;
    let _ = timeout(DEADLINE, session.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_over_x11_reports_the_wrong_account() {
    let x = start_xvfb().await;
    let cancel = CancellationToken::new();
    let (endpoint, _seen) = start_client(&x.display, &cancel, "someone_else").await;
    let link = spawn_controller_link(&x.display, cancel.child_token());
    let mut session = spawn(
        SessionConfig::new("interface1", "user1"),
        link,
        cancel.child_token(),
    );
    let failure = loop {
        match next_event(&mut session).await {
            SessionEvent::Error(failure) => break failure,
            SessionEvent::Ready { user } => panic!("ready as {user}"),
            _ => {}
        }
    };
    assert_eq!(
        failure.to_string(),
        "the client is logged in as \"someone_else\", not the configured skype_user \"user1\""
    );
    assert!(matches!(session.handle.state(), SessionState::Failed(_)));

    cancel.cancel();
    endpoint.shutdown().await;
    let _ = timeout(DEADLINE, session.task).await;
}
