//! The session against a scripted client over in-memory channels. Time is paused: timers fire
//! as soon as every task waits, so retries and timeouts are exercised without real delays.

use super::*;
use crate::skype::api::{CallEvent, CallId, CallProperty, CallStatus};
use crate::skype::link::LinkEvent;
use std::time::Duration;

/// Generous: with paused time, this only bounds how long a broken test hangs.
const DEADLINE: Duration = Duration::from_secs(600);

struct FakeClient {
    to_session: mpsc::Sender<LinkEvent>,
    from_session: mpsc::Receiver<String>,
}

impl FakeClient {
    async fn attach(&self) {
        self.event(LinkEvent::Attached { window: 0x40_0001 }).await;
    }

    async fn event(&self, event: LinkEvent) {
        self.to_session
            .send(event)
            .await
            .unwrap_or_else(|_| panic!("session stopped reading the link"));
    }

    async fn say(&self, text: &str) {
        self.event(LinkEvent::Message(text.to_owned())).await;
    }

    async fn next(&mut self) -> String {
        match tokio::time::timeout(DEADLINE, self.from_session.recv()).await {
            Ok(Some(text)) => text,
            Ok(None) => panic!("session closed the link"),
            Err(_) => panic!("no command from the session"),
        }
    }

    async fn expect(&mut self, wanted: &str) {
        let got = self.next().await;
        assert_eq!(got, wanted);
    }

    /// The session's first commands: its application name, then the protocol it offers.
    async fn expect_hello(&mut self) {
        self.expect("NAME skypopen").await;
        self.expect("PROTOCOL 999").await;
    }

    /// What the session sends once it knows the user: the protocol it settled on and the
    /// client settings it always makes.
    async fn expect_setup(&mut self) {
        self.expect("PROTOCOL 7").await;
        self.expect("SET AUTOAWAY OFF").await;
        self.expect("SET WINDOWSTATE HIDDEN").await;
        self.expect("SET USERSTATUS ONLINE").await;
    }

    /// The next command, which must be tagged: returns (tag, text).
    async fn next_tagged(&mut self) -> (String, String) {
        let got = self.next().await;
        let (tag, body) = got
            .strip_prefix('#')
            .and_then(|rest| rest.split_once(' '))
            .unwrap_or_else(|| panic!("untagged command {got:?}"));
        (tag.to_owned(), body.to_owned())
    }

    /// Nothing more was sent (after letting the session run).
    async fn expect_silence(&mut self) {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Ok(text) = self.from_session.try_recv() {
            panic!("unexpected command {text:?}");
        }
    }

    /// The client's side of a handshake with an already authorized client.
    async fn handshake(&mut self, events: &mut mpsc::Receiver<SessionEvent>, user: &str) {
        self.attach().await;
        self.expect_hello().await;
        self.say("OK").await;
        self.say("PROTOCOL 7").await;
        self.expect("GET CURRENTUSERHANDLE").await;
        self.say("CONNSTATUS ONLINE").await;
        self.say(&format!("CURRENTUSERHANDLE {user}")).await;
        self.say("USERSTATUS ONLINE").await;
        self.expect_setup().await;
        let ready = next_matching(events, |e| matches!(e, SessionEvent::Ready { .. })).await;
        assert_eq!(
            ready,
            SessionEvent::Ready {
                user: user.to_owned()
            }
        );
        assert_eq!(next_event(events).await, notification("USERSTATUS ONLINE"));
    }
}

fn start(config: SessionConfig) -> (Session, FakeClient, CancellationToken) {
    let (to_session, events) = mpsc::channel(64);
    let (outgoing, from_session) = mpsc::channel(64);
    let cancel = CancellationToken::new();
    let session = spawn(config, ControllerLink { outgoing, events }, cancel.clone());
    (
        session,
        FakeClient {
            to_session,
            from_session,
        },
        cancel,
    )
}

/// A started session whose client has completed the handshake as `user1`.
async fn ready() -> (Session, FakeClient, CancellationToken) {
    let (mut session, mut client, cancel) = start(config());
    client.handshake(&mut session.events, "user1").await;
    (session, client, cancel)
}

/// Sends `command` through the session from a task of its own; the reply when it comes.
fn request(
    session: &Session,
    command: Command,
) -> tokio::task::JoinHandle<Result<Notification, SessionError>> {
    let handle = session.handle.clone();
    tokio::spawn(async move { handle.request(command).await })
}

/// Without keepalive, so that tests waiting on the paused clock see only what they script.
fn config() -> SessionConfig {
    SessionConfig {
        keepalive: None,
        ..SessionConfig::new("interface1", "user1")
    }
}

async fn next_event(events: &mut mpsc::Receiver<SessionEvent>) -> SessionEvent {
    match tokio::time::timeout(DEADLINE, events.recv()).await {
        Ok(Some(event)) => event,
        Ok(None) => panic!("event stream ended"),
        Err(_) => panic!("no event"),
    }
}

async fn next_matching(
    events: &mut mpsc::Receiver<SessionEvent>,
    wanted: impl Fn(&SessionEvent) -> bool,
) -> SessionEvent {
    loop {
        let event = next_event(events).await;
        if wanted(&event) {
            return event;
        }
    }
}

fn notification(text: &str) -> SessionEvent {
    SessionEvent::Notification(Incoming::parse(text))
}

async fn wait_state(handle: &SessionHandle, wanted: impl Fn(&SessionState) -> bool) {
    let mut state = handle.watch_state();
    let waited = tokio::time::timeout(DEADLINE, state.wait_for(|s| wanted(s))).await;
    assert!(matches!(waited, Ok(Ok(_))), "state is {:?}", handle.state());
}

#[test]
fn app_name_is_valid() {
    assert_eq!(default_app_name().as_str(), APP_NAME);
}

#[tokio::test(start_paused = true)]
async fn plain_handshake() {
    let (mut session, mut client, _cancel) = start(config());
    assert_eq!(session.handle.state(), SessionState::Detached);
    client.attach().await;
    client.expect_hello().await;
    client.say("OK").await;
    client.say("PROTOCOL 7").await;
    client.expect("GET CURRENTUSERHANDLE").await;
    wait_state(&session.handle, |s| *s == SessionState::LoggingIn).await;
    client.say("CONNSTATUS ONLINE").await;
    // The comparison ignores case; the event reports what the client said.
    client.say("CURRENTUSERHANDLE User1").await;
    client.say("USERSTATUS ONLINE").await;
    for wanted in [
        "PROTOCOL 7",
        "SET AUTOAWAY OFF",
        "SET WINDOWSTATE HIDDEN",
        "SET USERSTATUS ONLINE",
    ] {
        client.expect(wanted).await;
    }
    client.expect_silence().await;

    let mut seen = Vec::new();
    for _ in 0..6 {
        seen.push(next_event(&mut session.events).await);
    }
    assert_eq!(
        seen,
        vec![
            notification("OK"),
            notification("PROTOCOL 7"),
            notification("CONNSTATUS ONLINE"),
            notification("CURRENTUSERHANDLE User1"),
            SessionEvent::Ready {
                user: "User1".into()
            },
            notification("USERSTATUS ONLINE"),
        ]
    );
    assert_eq!(
        session.handle.state(),
        SessionState::Ready {
            user: "User1".into()
        }
    );
    assert_eq!(session.handle.ready().await, Ok("User1".into()));
}

#[tokio::test(start_paused = true)]
async fn authorization_pending_then_granted() {
    let (mut session, mut client, _cancel) = start(config());
    client.attach().await;
    client.expect_hello().await;
    for _ in 0..2 {
        client.say("ERROR 68").await;
        client.say("ERROR 68").await;
        wait_state(&session.handle, |s| *s == SessionState::Authorizing).await;
        // One retry per attempt, although both commands were refused.
        client.expect_hello().await;
    }
    client.say("OK").await;
    client.expect("GET CURRENTUSERHANDLE").await;
    client.say("CURRENTUSERHANDLE user1").await;
    client.expect_setup().await;
    // Authorized: no further retries, however long we wait.
    tokio::time::sleep(Duration::from_secs(30)).await;
    client.expect_silence().await;
    let ready = next_matching(&mut session.events, |e| {
        matches!(e, SessionEvent::Ready { .. } | SessionEvent::Error(_))
    })
    .await;
    assert_eq!(
        ready,
        SessionEvent::Ready {
            user: "user1".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_protocol_reply_is_no_authorization() {
    let (session, mut client, _cancel) = start(config());
    client.attach().await;
    client.expect_hello().await;
    client.say("ERROR 68").await;
    client.say("PROTOCOL 7").await;
    client.expect_hello().await;
    assert_eq!(session.handle.state(), SessionState::Authorizing);
}

#[tokio::test(start_paused = true)]
async fn authorization_withdrawn_during_login_is_asked_again() {
    let (mut session, mut client, _cancel) = start(config());
    client.attach().await;
    client.expect_hello().await;
    client.say("OK").await;
    client.expect("GET CURRENTUSERHANDLE").await;
    client.say("ERROR 68").await;
    client.expect_hello().await;
    assert_eq!(session.handle.state(), SessionState::Authorizing);
    client.say("OK").await;
    client.expect("GET CURRENTUSERHANDLE").await;
    client.say("CURRENTUSERHANDLE user1").await;
    next_matching(&mut session.events, |e| {
        matches!(e, SessionEvent::Ready { .. })
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn authorization_denied_gives_up_after_the_limit() {
    let (mut session, mut client, _cancel) = start(SessionConfig {
        auth_retry_limit: 3,
        ..config()
    });
    client.attach().await;
    for _ in 0..3 {
        client.expect_hello().await;
        client.say("ERROR 68").await;
        client.say("ERROR 68").await;
    }
    let failed = next_matching(&mut session.events, |e| matches!(e, SessionEvent::Error(_))).await;
    assert_eq!(
        failed,
        SessionEvent::Error(SessionFailure::NotAuthorized { attempts: 3 })
    );
    assert!(matches!(session.handle.state(), SessionState::Failed(_)));
    tokio::time::sleep(Duration::from_secs(30)).await;
    client.expect_silence().await;
}

#[tokio::test(start_paused = true)]
async fn user_mismatch_is_an_error_state() {
    let (mut session, mut client, _cancel) = start(config());
    client.attach().await;
    client.expect_hello().await;
    client.say("OK").await;
    client.expect("GET CURRENTUSERHANDLE").await;
    client.say("CURRENTUSERHANDLE user2").await;
    let failed = next_matching(&mut session.events, |e| matches!(e, SessionEvent::Error(_))).await;
    let mismatch = SessionFailure::UserMismatch {
        expected: "user1".into(),
        found: "user2".into(),
    };
    assert_eq!(failed, SessionEvent::Error(mismatch.clone()));
    assert_eq!(session.handle.state(), SessionState::Failed(mismatch));
    // No settings for a client logged in as someone else, and no requests either.
    client.expect_silence().await;
    assert!(matches!(
        session.handle.request(Command::Ping).await,
        Err(SessionError::NotReady { .. })
    ));
    assert!(matches!(
        session.handle.send(Command::Ping),
        Err(SessionError::NotReady { .. })
    ));
    // The right account logging in later makes the interface usable after all.
    client.say("CURRENTUSERHANDLE USER1").await;
    client.expect("PROTOCOL 7").await;
    let ready = next_matching(&mut session.events, |e| {
        matches!(e, SessionEvent::Ready { .. })
    })
    .await;
    assert_eq!(
        ready,
        SessionEvent::Ready {
            user: "USER1".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn login_timeout_is_an_error_state() {
    let (mut session, mut client, _cancel) = start(config());
    client.attach().await;
    client.expect_hello().await;
    client.say("OK").await;
    client.expect("GET CURRENTUSERHANDLE").await;
    let failed = next_matching(&mut session.events, |e| matches!(e, SessionEvent::Error(_))).await;
    assert_eq!(
        failed,
        SessionEvent::Error(SessionFailure::LoginTimeout {
            waited: Duration::from_secs(60)
        })
    );
}

#[tokio::test(start_paused = true)]
async fn silent_client_times_out() {
    let (mut session, mut client, _cancel) = start(config());
    client.attach().await;
    client.expect_hello().await;
    let failed = next_matching(&mut session.events, |e| matches!(e, SessionEvent::Error(_))).await;
    assert!(matches!(
        failed,
        SessionEvent::Error(SessionFailure::LoginTimeout { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn replies_are_matched_by_tag() {
    let (mut session, mut client, _cancel) = ready().await;

    let partner = request(
        &session,
        Command::GetCall {
            id: CallId(5),
            property: CallProperty::PartnerHandle,
        },
    );
    let (tag_handle, text) = client.next_tagged().await;
    assert_eq!(text, "GET CALL 5 PARTNER_HANDLE");
    let name = request(
        &session,
        Command::GetCall {
            id: CallId(5),
            property: CallProperty::PartnerDispname,
        },
    );
    let (tag_name, text) = client.next_tagged().await;
    assert_eq!(text, "GET CALL 5 PARTNER_DISPNAME");
    assert_ne!(tag_handle, tag_name);

    // Out of order, with notifications in between.
    client.say("CALL 5 DURATION 1").await;
    client
        .say(&format!(
            "#{tag_name} CALL 5 PARTNER_DISPNAME Echo Sound  Test"
        ))
        .await;
    client.say("CALL 5 STATUS INPROGRESS").await;
    client
        .say(&format!("#{tag_handle} CALL 5 PARTNER_HANDLE echo123"))
        .await;

    let name = name.await.expect("request task");
    assert_eq!(
        name,
        Ok(Notification::Call {
            id: CallId(5),
            event: CallEvent::PartnerDispname("Echo Sound  Test".into())
        })
    );
    let partner = partner.await.expect("request task");
    assert_eq!(
        partner,
        Ok(Notification::Call {
            id: CallId(5),
            event: CallEvent::PartnerHandle("echo123".into())
        })
    );

    // The replies that carried only requested values are not on the stream.
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(next_event(&mut session.events).await);
    }
    assert_eq!(
        seen,
        vec![
            notification("CALL 5 DURATION 1"),
            notification("CALL 5 STATUS INPROGRESS")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn state_bearing_replies_are_also_forwarded() {
    let (mut session, mut client, _cancel) = ready().await;
    let call = request(&session, Command::call("echo123").unwrap());
    let (tag, text) = client.next_tagged().await;
    assert_eq!(text, "CALL echo123");
    client.say(&format!("#{tag} CALL 12 STATUS UNPLACED")).await;
    client.say("CALL 12 STATUS ROUTING").await;
    let placed = Notification::Call {
        id: CallId(12),
        event: CallEvent::Status(CallStatus::Unplaced),
    };
    assert_eq!(call.await.expect("request task"), Ok(placed.clone()));
    assert_eq!(
        next_event(&mut session.events).await,
        SessionEvent::Notification(Incoming {
            tag: Some(tag),
            notification: placed
        })
    );
    assert_eq!(
        next_event(&mut session.events).await,
        notification("CALL 12 STATUS ROUTING")
    );
}

#[tokio::test(start_paused = true)]
async fn tagged_errors_reject_the_request() {
    let (session, mut client, _cancel) = ready().await;
    let call = request(&session, Command::call("nobody").unwrap());
    let (tag, _) = client.next_tagged().await;
    client
        .say(&format!("#{tag} ERROR 92 CALL: Unrecognised identity"))
        .await;
    assert_eq!(
        call.await.expect("request task"),
        Err(SessionError::Rejected {
            code: 92,
            text: "CALL: Unrecognised identity".into()
        })
    );
}

#[tokio::test(start_paused = true)]
async fn requests_time_out_and_late_replies_do_no_harm() {
    let (mut session, mut client, _cancel) = ready().await;
    let late = session.handle.request(Command::Ping);
    let (late, sent) = tokio::join!(late, client.next_tagged());
    assert_eq!(
        late,
        Err(SessionError::Timeout {
            command: "PING".into(),
            after: Duration::from_secs(5)
        })
    );
    let (late_tag, _) = sent;
    client.say(&format!("#{late_tag} PONG")).await;

    let ping = request(&session, Command::Ping);
    let (tag, text) = client.next_tagged().await;
    assert_eq!(text, "PING");
    assert_ne!(tag, late_tag);
    client.say(&format!("#{tag} PONG")).await;
    assert_eq!(ping.await.expect("request task"), Ok(Notification::Pong));
    // The late reply was not a notification.
    client.say("CONNSTATUS ONLINE").await;
    assert_eq!(
        next_event(&mut session.events).await,
        notification("CONNSTATUS ONLINE")
    );
}

#[tokio::test(start_paused = true)]
async fn detach_fails_pending_requests_and_reattach_redoes_the_handshake() {
    let (mut session, mut client, _cancel) = ready().await;
    let pending = request(&session, Command::Ping);
    client.next_tagged().await;
    client
        .event(LinkEvent::Detached {
            reason: "BadWindow".into(),
        })
        .await;
    assert_eq!(
        pending.await.expect("request task"),
        Err(SessionError::ClientGone {
            reason: "BadWindow".into()
        })
    );
    assert_eq!(
        next_event(&mut session.events).await,
        SessionEvent::Lost {
            reason: "BadWindow".into()
        }
    );
    wait_state(&session.handle, |s| *s == SessionState::Detached).await;
    assert!(matches!(
        session.handle.request(Command::Ping).await,
        Err(SessionError::NotReady { .. })
    ));
    client.handshake(&mut session.events, "user1").await;
    assert_eq!(
        session.handle.state(),
        SessionState::Ready {
            user: "user1".into()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn attach_without_detach_restarts_the_handshake() {
    let (mut session, mut client, _cancel) = ready().await;
    client.attach().await;
    client.expect("NAME skypopen").await;
    assert!(matches!(
        next_event(&mut session.events).await,
        SessionEvent::Lost { .. }
    ));
    assert_eq!(session.handle.state(), SessionState::Authorizing);
}

#[tokio::test(start_paused = true)]
async fn silent_mode_is_kept_on() {
    let (mut session, mut client, _cancel) = start(SessionConfig {
        silent_mode: true,
        ..config()
    });
    client.attach().await;
    client.expect_hello().await;
    client.say("OK").await;
    client.expect("GET CURRENTUSERHANDLE").await;
    client.say("CURRENTUSERHANDLE user1").await;
    client.expect_setup().await;
    client.expect("SET SILENT_MODE ON").await;
    client.say("SILENT_MODE ON").await;
    client.expect_silence().await;
    client.say("SILENT_MODE OFF").await;
    client.expect("SET SILENT_MODE ON").await;
    client.say("silent_mode off").await;
    client.expect("SET SILENT_MODE ON").await;
    next_matching(&mut session.events, |e| {
        *e == notification("silent_mode off")
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn silent_mode_off_is_left_alone_when_not_configured() {
    let (_session, mut client, _cancel) = ready().await;
    client.say("SILENT_MODE OFF").await;
    client.expect_silence().await;
}

#[tokio::test(start_paused = true)]
async fn garbage_is_reported_and_harmless() {
    let (mut session, mut client, _cancel) = ready().await;
    let long = "X".repeat(100_000);
    let garbage = [
        "",
        " ",
        "#",
        "#lonely",
        "CALL",
        "CALL nope STATUS RINGING",
        "ERROR",
        "\u{1f600} \u{fffd}",
        long.as_str(),
    ];
    for text in garbage {
        client.say(text).await;
    }
    // Tagged garbage answers no request and carries no state: it is not a notification.
    for text in garbage.iter().filter(|text| !text.starts_with('#')) {
        assert_eq!(next_event(&mut session.events).await, notification(text));
    }
    let ping = request(&session, Command::Ping);
    let (tag, _) = client.next_tagged().await;
    client.say(&format!("#{tag} PONG")).await;
    assert_eq!(ping.await.expect("request task"), Ok(Notification::Pong));
}

#[tokio::test(start_paused = true)]
async fn raw_commands_return_the_reply_text() {
    let (session, mut client, _cancel) = ready().await;

    let handle = session.handle.clone();
    let raw = tokio::spawn(async move { handle.raw("GET USER echo123 FULLNAME").await });
    let (tag, text) = client.next_tagged().await;
    assert_eq!(text, "GET USER echo123 FULLNAME");
    client
        .say(&format!(
            "#{tag} USER echo123 FULLNAME Echo / Sound Test Service"
        ))
        .await;
    assert_eq!(
        raw.await.expect("raw task"),
        Ok("USER echo123 FULLNAME Echo / Sound Test Service".into())
    );

    // An operator's own tag is kept and matched.
    let handle = session.handle.clone();
    let raw = tokio::spawn(async move { handle.raw("#ciapalino PING").await });
    client.expect("#ciapalino PING").await;
    client.say("#ciapalino PONG").await;
    assert_eq!(raw.await.expect("raw task"), Ok("PONG".into()));

    // An error is the answer the operator asked for.
    let handle = session.handle.clone();
    let raw = tokio::spawn(async move { handle.raw("DIE").await });
    let (tag, _) = client.next_tagged().await;
    client.say(&format!("#{tag} ERROR 2 Unknown command")).await;
    assert_eq!(
        raw.await.expect("raw task"),
        Ok("ERROR 2 Unknown command".into())
    );

    assert!(matches!(
        session.handle.raw("bad\0text").await,
        Err(SessionError::Invalid(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn send_is_untagged() {
    let (session, mut client, _cancel) = ready().await;
    session
        .handle
        .send(Command::SetMessageSeen(5))
        .expect("send while ready");
    client.expect("SET MESSAGE 5 SEEN").await;
}

#[tokio::test(start_paused = true)]
async fn slow_consumer_loses_nothing() {
    let (mut session, mut client, _cancel) = start(SessionConfig {
        event_queue: 4,
        ..config()
    });
    client.handshake(&mut session.events, "user1").await;
    // Far more than the event queue, the backlog and the link queue of this test hold: the
    // client's sends block until the consumer reads.
    let burst = 500;
    let writer = tokio::spawn(async move {
        for n in 0..burst {
            client.say(&format!("CALL 1 DURATION {n}")).await;
        }
        client
    });
    for n in 0..burst {
        assert_eq!(
            next_event(&mut session.events).await,
            notification(&format!("CALL 1 DURATION {n}"))
        );
    }
    writer.await.expect("writer task");
}

#[tokio::test(start_paused = true)]
async fn link_closing_stops_the_session() {
    let (mut session, client, _cancel) = ready().await;
    drop(client);
    assert!(matches!(
        next_event(&mut session.events).await,
        SessionEvent::Lost { .. }
    ));
    wait_state(&session.handle, |s| *s == SessionState::Stopped).await;
    assert_eq!(
        session.handle.request(Command::Ping).await,
        Err(SessionError::Stopped)
    );
    assert_eq!(session.handle.ready().await, Err(SessionError::Stopped));
}

#[tokio::test(start_paused = true)]
async fn cancellation_stops_the_session() {
    let (mut session, _client, cancel) = ready().await;
    cancel.cancel();
    tokio::time::timeout(DEADLINE, &mut session.task)
        .await
        .expect("session task ends")
        .expect("session task did not panic");
    assert_eq!(session.handle.state(), SessionState::Stopped);
}

#[tokio::test(start_paused = true)]
async fn keepalive_notices_a_hung_client_and_its_return() {
    let (mut session, mut client, _cancel) = start(SessionConfig {
        keepalive: Some(Duration::from_secs(30)),
        ..config()
    });
    client.handshake(&mut session.events, "user1").await;

    let (tag, text) = client.next_tagged().await;
    assert_eq!(text, "PING");
    client.say(&format!("#{tag} PONG")).await;
    let (tag, text) = client.next_tagged().await;
    assert_eq!(text, "PING");
    // This one goes unanswered.
    let unresponsive = SessionFailure::Unresponsive {
        waited: Duration::from_secs(5),
    };
    assert_eq!(
        next_event(&mut session.events).await,
        SessionEvent::Error(unresponsive.clone())
    );
    assert_eq!(session.handle.state(), SessionState::Failed(unresponsive));
    assert!(matches!(
        session.handle.request(Command::Ping).await,
        Err(SessionError::NotReady { .. })
    ));

    // Any word from the client brings it back; the late PONG is no notification.
    client.say(&format!("#{tag} PONG")).await;
    assert_eq!(
        next_event(&mut session.events).await,
        SessionEvent::Ready {
            user: "user1".into()
        }
    );
    let (_, text) = client.next_tagged().await;
    assert_eq!(text, "PING");
    client.say("CONNSTATUS ONLINE").await;
    assert_eq!(
        next_event(&mut session.events).await,
        notification("CONNSTATUS ONLINE")
    );
}
