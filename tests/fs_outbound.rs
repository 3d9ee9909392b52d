//! The sidecar's `socket` acceptor against the FreeSWITCH double: handshake, applications,
//! hangup either way, DTMF, the inbound-call originate pattern, and release on drop/shutdown.
mod support;

use skypopen::config::Secret;
use skypopen::switch::inbound::{spawn_inbound, InboundConfig};
use skypopen::switch::outbound::{
    ChannelEvent, ChannelHandle, Control, OutboundAcceptor, OutboundError, OutboundOptions,
};
use std::net::SocketAddr;
use std::time::Duration;
use support::fs_double::FsDouble;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(20);

struct Sidecar {
    addr: SocketAddr,
    channels: mpsc::Receiver<ChannelHandle>,
    cancel: CancellationToken,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn sidecar() -> Sidecar {
    let acceptor =
        OutboundAcceptor::bind("127.0.0.1:0".parse().unwrap(), OutboundOptions::default())
            .await
            .unwrap();
    let addr = acceptor.local_addr().unwrap();
    let (tx, channels) = mpsc::channel(8);
    let cancel = CancellationToken::new();
    tokio::spawn(acceptor.run(tx, cancel.clone()));
    Sidecar {
        addr,
        channels,
        cancel,
    }
}

impl Sidecar {
    async fn next_channel(&mut self) -> ChannelHandle {
        tokio::time::timeout(DEADLINE, self.channels.recv())
            .await
            .expect("no socket connection before the deadline")
            .expect("acceptor stopped")
    }
}

async fn wait_event(
    handle: &mut ChannelHandle,
    what: &str,
    mut pred: impl FnMut(&ChannelEvent) -> bool,
) -> ChannelEvent {
    let give_up = tokio::time::Instant::now() + DEADLINE;
    loop {
        let event = tokio::time::timeout_at(give_up, handle.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} before the deadline"))
            .unwrap_or_else(|| panic!("event stream ended before {what}"));
        if pred(&event) {
            return event;
        }
    }
}

#[tokio::test]
async fn outbound_call_handshake_answer_fork_and_hangup_with_cause() {
    let double = FsDouble::start().await;
    let mut sidecar = sidecar().await;
    let call = double.dial_skype(sidecar.addr, "echo123", "1000", Some("Alice"));
    let mut handle = sidecar.next_channel().await;

    let data = handle.data().clone();
    assert_eq!(handle.uuid(), call.socket_leg);
    assert_eq!(data.destination_number(), Some("skype/echo123"));
    assert_eq!(data.caller_id().number.as_deref(), Some("1000"));
    assert_eq!(data.caller_id().name.as_deref(), Some("Alice"));
    assert_eq!(data.variable("send_silence_when_idle"), Some("-1"));
    assert_eq!(data.control(), Control::Full);
    assert!(!data.is_answered());

    handle
        .control
        .execute_wait("ring_ready", None, DEADLINE)
        .await
        .expect("ring_ready completes");
    let done = handle
        .control
        .execute_wait("answer", None, DEADLINE)
        .await
        .expect("answer completes");
    assert_eq!(done.application, "answer");
    double.wait_answered(&call.socket_leg, DEADLINE).await;
    double.wait_answered(&call.caller_leg, DEADLINE).await;
    assert!(handle.control.status().borrow().answered);

    let out = handle
        .control
        .api(&format!(
            "uuid_audio_fork {} start ws://127.0.0.1:9/fork/t mono 16k audio_fork {{\"call\":\"t\"}} true true 16000",
            call.socket_leg
        ))
        .await
        .expect("api on the socket");
    assert_eq!(out, "+OK Success\n");
    let fork = double.channel(&call.socket_leg).unwrap().forks;
    assert_eq!(fork.len(), 1, "{fork:?}");

    handle
        .control
        .hangup("USER_BUSY")
        .await
        .expect("hangup accepted");
    assert_eq!(
        double.wait_hangup(&call.socket_leg, DEADLINE).await,
        "USER_BUSY"
    );
    assert_eq!(
        double.wait_hangup(&call.caller_leg, DEADLINE).await,
        "USER_BUSY"
    );
    wait_event(
        &mut handle,
        "CHANNEL_HANGUP_COMPLETE",
        |e| matches!(e, ChannelEvent::HangupComplete { cause } if cause == "USER_BUSY"),
    )
    .await;
    // The socket lingers; the channel's pump leaves by itself once the hangup is complete.
    wait_event(&mut handle, "disconnect", |e| {
        matches!(e, ChannelEvent::Disconnected { .. })
    })
    .await;
    let recorded = double.recorded();
    assert!(
        recorded.commands.iter().any(|c| c == "exit"),
        "{:?}",
        recorded.commands
    );
    assert!(recorded.commands.iter().any(|c| c.starts_with("linger")));
}

#[tokio::test]
async fn far_side_hangup_and_dtmf_are_observed() {
    let double = FsDouble::start().await;
    let mut sidecar = sidecar().await;
    let call = double.dial_skype(sidecar.addr, "bob", "1000", None);
    let mut handle = sidecar.next_channel().await;
    handle.control.execute("answer", None).await.unwrap();
    double.wait_answered(&call.socket_leg, DEADLINE).await;

    double.recv_dtmf(&call.socket_leg, "7#");
    let digits: Vec<char> = {
        let mut digits = Vec::new();
        while digits.len() < 2 {
            if let ChannelEvent::Dtmf { digit, .. } = wait_event(&mut handle, "DTMF", |e| {
                matches!(e, ChannelEvent::Dtmf { .. })
            })
            .await
            {
                digits.push(digit);
            }
        }
        digits
    };
    assert_eq!(digits, vec!['7', '#']);

    double.hangup(&call.caller_leg, "NORMAL_CLEARING");
    let hangup = tokio::time::timeout(DEADLINE, handle.control.hungup())
        .await
        .expect("hangup seen");
    assert_eq!(hangup.cause.as_deref(), Some("NORMAL_CLEARING"));
    tokio::time::timeout(DEADLINE, handle.control.closed())
        .await
        .expect("socket closed");
    let err = handle.control.execute("answer", None).await.unwrap_err();
    assert!(matches!(err, OutboundError::Closed), "{err}");
}

#[tokio::test]
async fn inbound_call_originate_connects_back_before_the_job_result() {
    let double = FsDouble::start().await;
    let mut sidecar = sidecar().await;
    let cancel = CancellationToken::new();
    let inbound = spawn_inbound(
        InboundConfig::new(double.esl_addr(), Secret::new("ClueCon")),
        cancel.clone(),
    );
    inbound.wait_connected(DEADLINE).await.unwrap();

    let uuid = uuid::Uuid::new_v4().to_string();
    let command = format!(
        "originate {{origination_uuid={uuid},origination_caller_id_number=bob,origination_caller_id_name='Bob B',skypopen_interface=interface1,skypopen_call_id=42,send_silence_when_idle=-1}}loopback/5000/default &socket('{} async full')",
        sidecar.addr
    );
    let job = {
        let inbound = inbound.clone();
        tokio::spawn(async move { inbound.bgapi(&command, DEADLINE).await })
    };
    let handle = sidecar.next_channel().await;
    assert_eq!(handle.uuid(), uuid);
    let data = handle.data().clone();
    assert_eq!(data.caller_id().name.as_deref(), Some("Bob B"));
    assert_eq!(data.caller_id().number.as_deref(), Some("bob"));
    assert_eq!(
        data.header("Caller-Caller-ID-Name"),
        Some("Outbound Call"),
        "flipped (Q11)"
    );
    assert_eq!(data.variable("skypopen_call_id"), Some("42"));
    assert_eq!(data.variable("channel_cid_flipped"), Some("yes"));
    assert_eq!(data.call_direction(), Some("outbound"));
    assert!(data.is_answered());
    let result = job.await.unwrap().expect("BACKGROUND_JOB");
    assert_eq!(result, format!("+OK {uuid}\n"));

    handle.control.hangup("NORMAL_CLEARING").await.unwrap();
    assert_eq!(double.wait_hangup(&uuid, DEADLINE).await, "NORMAL_CLEARING");
    cancel.cancel();
}

#[tokio::test]
async fn single_channel_socket_refuses_api() {
    let double = FsDouble::start().await;
    let mut sidecar = sidecar().await;
    double.dial_route(sidecar.addr, "x", "1000", None, &[], false);
    let handle = sidecar.next_channel().await;
    assert_eq!(handle.data().control(), Control::SingleChannel);
    let err = handle.control.api("status").await.unwrap_err();
    assert!(matches!(err, OutboundError::Refused { .. }), "{err}");
}

#[tokio::test]
async fn dropping_the_handle_hangs_up_and_shutdown_uses_system_shutdown() {
    let double = FsDouble::start().await;
    let mut sidecar = sidecar().await;
    let first = double.dial_skype(sidecar.addr, "one", "1000", None);
    let handle = sidecar.next_channel().await;
    drop(handle);
    assert_eq!(
        double.wait_hangup(&first.socket_leg, DEADLINE).await,
        "NORMAL_CLEARING"
    );

    let second = double.dial_skype(sidecar.addr, "two", "1000", None);
    let _kept = sidecar.next_channel().await;
    sidecar.cancel.cancel();
    assert_eq!(
        double.wait_hangup(&second.socket_leg, DEADLINE).await,
        "SYSTEM_SHUTDOWN"
    );
}
