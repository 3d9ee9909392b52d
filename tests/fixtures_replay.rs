//! Replays captures of a real FreeSWITCH 1.10.12 against the sidecar's ESL code paths.
mod support;

use skypopen::switch::outbound::{
    ChannelEvent, ChannelHandle, Control, OutboundAcceptor, OutboundOptions, SocketMode,
};
use std::time::Duration;
use support::fs_double::{eslcap, replay};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(20);

async fn acceptor(
    options: OutboundOptions,
) -> (
    std::net::SocketAddr,
    mpsc::Receiver<ChannelHandle>,
    CancellationToken,
) {
    let acceptor = OutboundAcceptor::bind("127.0.0.1:0".parse().unwrap(), options)
        .await
        .expect("bind");
    let addr = acceptor.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(4);
    let cancel = CancellationToken::new();
    tokio::spawn(acceptor.run(tx, cancel.clone()));
    (addr, rx, cancel)
}

async fn next_event(handle: &mut ChannelHandle) -> ChannelEvent {
    tokio::time::timeout(DEADLINE, handle.events.recv())
        .await
        .expect("no channel event before the deadline")
        .expect("event stream ended without Disconnected")
}

async fn events_until_disconnected(handle: &mut ChannelHandle) -> Vec<ChannelEvent> {
    let mut seen = Vec::new();
    loop {
        let event = next_event(handle).await;
        let last = matches!(event, ChannelEvent::Disconnected { .. });
        seen.push(event);
        if last {
            return seen;
        }
    }
}

/// s4a: the socket connection of an `api originate ... &socket(...)` A-leg, then
/// `sendmsg hangup NORMAL_CLEARING`.
#[tokio::test]
async fn s4a_inbound_call_socket_from_the_real_capture() {
    let options = OutboundOptions {
        linger: None,
        custom_events: vec![],
        ..OutboundOptions::default()
    };
    let (addr, mut rx, cancel) = acceptor(options).await;
    let records = eslcap::load("s4a_outbound_socket.eslcap");
    let fake_fs = tokio::spawn(replay::replay_socket(addr, records));
    let mut handle = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("no channel handed over")
        .expect("acceptor stopped");

    let data = handle.data().clone();
    assert_eq!(handle.uuid(), "1a13634e-1058-4255-ae16-e57b103c8d35");
    assert_eq!(data.destination_number(), Some("9196"));
    let caller = data.caller_id();
    assert_eq!(
        caller.name.as_deref(),
        Some("Bob B"),
        "flipped caller id (Q11)"
    );
    assert_eq!(caller.number.as_deref(), Some("bob"));
    assert_eq!(data.variable("skypopen_call_id"), Some("42"));
    assert_eq!(data.variable("skypopen_interface"), Some("interface1"));
    assert_eq!(
        data.variable("current_application_data"),
        Some("127.0.0.1:8084 async full")
    );
    assert_eq!(data.codec_rate(), Some(8000));
    assert_eq!(data.call_direction(), Some("outbound"));
    assert!(data.is_answered());
    assert_eq!(data.control(), Control::Full);
    assert_eq!(data.socket_mode(), SocketMode::Async);
    assert_eq!(
        data.header("Reply-Text"),
        Some("+OK\n"),
        "Reply-Text is URL-decoded (Q17)"
    );
    assert!(handle.control.status().borrow().answered);

    handle
        .control
        .hangup("NORMAL_CLEARING")
        .await
        .expect("hangup accepted");
    let events = events_until_disconnected(&mut handle).await;
    assert!(events
        .iter()
        .any(|e| matches!(e, ChannelEvent::Hangup { cause } if cause == "NORMAL_CLEARING")));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ChannelEvent::HangupComplete { .. })),
        "s4: HANGUP_COMPLETE arrives without linger (Q8)"
    );
    let hangup = handle.control.hungup().await;
    assert_eq!(hangup.cause.as_deref(), Some("NORMAL_CLEARING"));
    let reason = handle.control.closed().await;
    assert!(reason.contains("disconnect notice"), "{reason}");

    let log = fake_fs.await.unwrap().unwrap();
    assert!(log.finished, "the capture was played to its EOF: {log:?}");
    assert!(log.received[0].starts_with("connect\n\n"));
    cancel.cancel();
}

/// s2a: a dialplan `skype/echo123` B-leg: answer (execute with event-uuid), audio fork on the
/// socket, a DTMF, hangup USER_BUSY with bare linger, and the sidecar's `exit`.
#[tokio::test]
async fn s2a_outbound_call_socket_from_the_real_capture() {
    let (addr, mut rx, cancel) = acceptor(OutboundOptions::default()).await;
    let records = eslcap::load("s2a_outbound_fork_dtmf_userbusy.eslcap");
    let fake_fs = tokio::spawn(replay::replay_socket(addr, records));
    let mut handle = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("no channel handed over")
        .expect("acceptor stopped");
    let data = handle.data().clone();
    assert_eq!(data.destination_number(), Some("skype/echo123"));
    assert_eq!(data.variable("send_silence_when_idle"), Some("-1"));
    assert_eq!(data.codec_name(), Some("L16"));
    assert!(!data.is_answered());
    assert_eq!(data.call_direction(), Some("inbound"));

    let done = handle
        .control
        .execute_wait("answer", None, DEADLINE)
        .await
        .expect("answer completes");
    assert_eq!(done.application, "answer");

    let uuid = handle.uuid().to_string();
    let out = handle
        .control
        .api(&format!(
            "uuid_audio_fork {uuid} start ws://127.0.0.1:8085/x mono 16k bug1 {{\"call\":\"c1\"}} true true 16000"
        ))
        .await
        .expect("api on the socket");
    assert_eq!(out, "+OK Success\n");

    let mut saw_fork = false;
    let mut saw_dtmf = false;
    while !(saw_fork && saw_dtmf) {
        match next_event(&mut handle).await {
            ChannelEvent::Custom { subclass, .. } if subclass == "mod_audio_fork::connect" => {
                saw_fork = true
            }
            ChannelEvent::Dtmf { digit: '7', .. } => saw_dtmf = true,
            ChannelEvent::Disconnected { reason } => panic!("disconnected early: {reason}"),
            _ => {}
        }
    }
    assert!(handle.control.status().borrow().answered);

    handle
        .control
        .hangup("USER_BUSY")
        .await
        .expect("hangup accepted");
    let events = events_until_disconnected(&mut handle).await;
    assert!(events
        .iter()
        .any(|e| matches!(e, ChannelEvent::Hangup { cause } if cause == "USER_BUSY")));
    assert_eq!(
        handle.control.hungup().await.cause.as_deref(),
        Some("USER_BUSY")
    );

    let log = fake_fs.await.unwrap().unwrap();
    assert!(log.finished, "{log:?}");
    assert!(
        log.received.iter().any(|c| c.starts_with("exit")),
        "the sidecar left the lingering socket itself: {:?}",
        log.received
    );
    cancel.cancel();
}
