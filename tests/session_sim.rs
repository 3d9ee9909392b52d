//! The API session over the real X11 link against `skype-sim client`: the handshake in every
//! authorization mode, requests, call notifications both ways, and a client crash.
mod support;

use skypopen::skype::api::{
    CallAction, CallEvent, CallId, CallProperty, CallStatus, Command, Notification, ProfileProperty,
};
use skypopen::skype::session::{
    spawn, Session, SessionConfig, SessionError, SessionEvent, SessionFailure, SessionState,
};
use skypopen::skype::x11::spawn_controller_link;
use std::time::Duration;
use support::sim::{SimClient, SimNetwork};
use support::xvfb::Xvfb;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);

/// A network, an X server and one client on it, started off the runtime threads.
async fn start_world(
    user: &'static str,
    extra: &'static [&'static str],
) -> (SimNetwork, Xvfb, SimClient) {
    tokio::task::spawn_blocking(move || {
        let net = SimNetwork::start();
        let x = Xvfb::start();
        let client = SimClient::start(&x.display, user, &net, extra);
        (net, x, client)
    })
    .await
    .expect("sim world start")
}

fn start_session(display: &str, config: SessionConfig, cancel: &CancellationToken) -> Session {
    let link = spawn_controller_link(display, cancel.child_token());
    spawn(config, link, cancel.child_token())
}

async fn next_event(session: &mut Session) -> SessionEvent {
    timeout(DEADLINE, session.events.recv())
        .await
        .expect("no session event before the deadline")
        .expect("session event stream ended")
}

/// The first event `pick` accepts; a handshake failure on the way fails the test unless picked.
async fn wait_for<T>(session: &mut Session, pick: impl Fn(&SessionEvent) -> Option<T>) -> T {
    loop {
        let event = next_event(session).await;
        if let Some(found) = pick(&event) {
            return found;
        }
        if let SessionEvent::Error(failure) = &event {
            panic!("session failed: {failure}");
        }
    }
}

async fn wait_ready(session: &mut Session) -> String {
    wait_for(session, |e| match e {
        SessionEvent::Ready { user } => Some(user.clone()),
        _ => None,
    })
    .await
}

async fn wait_call_status(session: &mut Session, id: CallId, wanted: CallStatus) {
    wait_for(session, |e| match e {
        SessionEvent::Notification(incoming) => match &incoming.notification {
            Notification::Call {
                id: seen,
                event: CallEvent::Status(status),
            } if *seen == id && *status == wanted => Some(()),
            _ => None,
        },
        _ => None,
    })
    .await
}

async fn stop(cancel: CancellationToken, session: Session) {
    cancel.cancel();
    let _ = timeout(DEADLINE, session.task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_drives_a_sim_client() {
    let (net, x, _client) = start_world("user1", &[]).await;
    let cancel = CancellationToken::new();
    let mut session = start_session(
        &x.display,
        SessionConfig::new("interface1", "User1"),
        &cancel,
    );
    assert_eq!(wait_ready(&mut session).await, "user1");

    let balance = session
        .handle
        .request(Command::GetProfile(ProfileProperty::PstnBalance))
        .await
        .expect("balance reply");
    assert_eq!(balance.pstn_balance(), Some(1000));
    let currency = session
        .handle
        .request(Command::GetProfile(ProfileProperty::PstnBalanceCurrency))
        .await
        .expect("currency reply");
    assert_eq!(currency.pstn_balance_currency(), Some("EUR"));

    // Outbound: the reply to CALL names the call, the rest arrives as notifications.
    let placed = session
        .handle
        .request(Command::call("echo123").expect("valid destination"))
        .await
        .expect("call placed");
    let id = match placed {
        Notification::Call {
            id,
            event: CallEvent::Status(CallStatus::Unplaced),
        } => id,
        other => panic!("unexpected reply to CALL: {other:?}"),
    };
    wait_call_status(&mut session, id, CallStatus::InProgress).await;
    session
        .handle
        .request(Command::AlterCall {
            id,
            action: CallAction::Hangup,
        })
        .await
        .expect("hangup accepted");
    wait_call_status(&mut session, id, CallStatus::Finished).await;

    // An unknown callee is a tagged ERROR, i.e. a rejected request.
    assert!(matches!(
        session
            .handle
            .request(Command::call("nobody_here").expect("valid destination"))
            .await,
        Err(SessionError::Rejected { code: 92, .. })
    ));

    // Inbound: a remote party rings us; we ask who it is.
    net.actl(&["call", "--from", "alice", "--to", "user1"])
        .await;
    let ringing = wait_for(&mut session, |e| match e {
        SessionEvent::Notification(incoming) => match &incoming.notification {
            Notification::Call {
                id,
                event: CallEvent::Status(CallStatus::Ringing),
            } => Some(*id),
            _ => None,
        },
        _ => None,
    })
    .await;
    let partner = session
        .handle
        .request(Command::GetCall {
            id: ringing,
            property: CallProperty::PartnerHandle,
        })
        .await;
    assert_eq!(
        partner,
        Ok(Notification::Call {
            id: ringing,
            event: CallEvent::PartnerHandle("alice".into())
        })
    );
    let name = session
        .handle
        .request(Command::GetCall {
            id: ringing,
            property: CallProperty::PartnerDispname,
        })
        .await;
    assert_eq!(
        name,
        Ok(Notification::Call {
            id: ringing,
            event: CallEvent::PartnerDispname("Alice Liddell".into())
        })
    );
    session
        .handle
        .request(Command::AlterCall {
            id: ringing,
            action: CallAction::EndHangup,
        })
        .await
        .expect("refusal accepted");
    wait_for(&mut session, |e| match e {
        SessionEvent::Notification(incoming) => match &incoming.notification {
            Notification::Call {
                id,
                event: CallEvent::Status(status),
            } if *id == ringing && status.is_terminal() => Some(()),
            _ => None,
        },
        _ => None,
    })
    .await;

    stop(cancel, session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_refusal_is_retried_with_name() {
    let (_net, x, _client) = start_world("user2", &["--auth", "refuse-first"]).await;
    let cancel = CancellationToken::new();
    let mut session = start_session(
        &x.display,
        SessionConfig::new("interface2", "user2"),
        &cancel,
    );
    assert_eq!(wait_ready(&mut session).await, "user2");
    stop(cancel, session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_authorization_is_waited_for() {
    let (_net, x, _client) =
        start_world("user3", &["--auth", "pending", "--auth-pending-ms", "2500"]).await;
    let cancel = CancellationToken::new();
    let mut session = start_session(
        &x.display,
        SessionConfig::new("interface3", "user3"),
        &cancel,
    );
    assert_eq!(wait_ready(&mut session).await, "user3");
    stop(cancel, session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_authorization_is_an_error_state() {
    let (_net, x, _client) = start_world("user4", &["--auth", "denied"]).await;
    let cancel = CancellationToken::new();
    let config = SessionConfig {
        auth_retry_limit: 3,
        ..SessionConfig::new("interface4", "user4")
    };
    let mut session = start_session(&x.display, config, &cancel);
    let failure = wait_for(&mut session, |e| match e {
        SessionEvent::Error(failure) => Some(failure.clone()),
        SessionEvent::Ready { user } => panic!("ready as {user} although denied"),
        _ => None,
    })
    .await;
    assert_eq!(failure, SessionFailure::NotAuthorized { attempts: 3 });
    assert!(matches!(session.handle.state(), SessionState::Failed(_)));
    stop(cancel, session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_client_is_lost_and_its_successor_taken_up() {
    let (net, x, mut client) = start_world("user5", &[]).await;
    let cancel = CancellationToken::new();
    let mut session = start_session(
        &x.display,
        SessionConfig::new("interface5", "user5"),
        &cancel,
    );
    wait_ready(&mut session).await;

    net.actl(&["fault", "user5", "die"]).await;
    wait_for(&mut session, |e| match e {
        SessionEvent::Lost { .. } => Some(()),
        _ => None,
    })
    .await;
    assert!(matches!(
        session.handle.request(Command::Ping).await,
        Err(SessionError::NotReady { .. } | SessionError::ClientGone { .. })
    ));
    let display = x.display.clone();
    let (_net, successor) = tokio::task::spawn_blocking(move || {
        client.wait_exit(Duration::from_secs(10));
        let successor = SimClient::start(&display, "user5", &net, &[]);
        (net, successor)
    })
    .await
    .expect("client restart");
    assert_eq!(wait_ready(&mut session).await, "user5");
    assert_eq!(
        session.handle.request(Command::Ping).await,
        Ok(Notification::Pong)
    );

    stop(cancel, session).await;
    drop(successor);
}
