//! The X11 transport against real X servers: controller links and client endpoints talking
//! through Xvfb, including client restarts, stale properties and dying X servers.
mod support;

use skypopen::skype::link::{ClientLink, ClientOutgoing, ControllerLink, LinkEvent, SendFaults};
use skypopen::skype::wire::{self, ChunkKind};
use skypopen::skype::x11::{spawn_client_endpoint, spawn_controller_link, ClientEndpoint};
use std::time::Duration;
use support::xvfb::Xvfb;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ClientMessageEvent, ConnectionExt as _, EventMask};

const DEADLINE: Duration = Duration::from_secs(15);
/// Reconnecting to a restarted X server waits out a backoff of up to 2 s on top.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(30);

async fn start_xvfb() -> Xvfb {
    tokio::task::spawn_blocking(Xvfb::start)
        .await
        .expect("Xvfb start")
}

/// Display numbers that `Xvfb::start` (which counts up from 0) will not reach, so one stays
/// free to start a server on later, or to bring a killed one back on.
/// Each caller gets its own stretch, so tests of this binary running at once never pick the
/// same number.
fn high_display_numbers() -> impl Iterator<Item = u32> {
    static NEXT_STRETCH: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let stretch = NEXT_STRETCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 10;
    let base = 6000 + (std::process::id() % 300) * 10 + stretch * 3000;
    (base..base + 1000).filter(|n| {
        !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            && !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
    })
}

async fn start_xvfb_to_restart() -> Xvfb {
    tokio::task::spawn_blocking(|| {
        high_display_numbers()
            .find_map(Xvfb::start_on)
            .expect("a free display number in the high range")
    })
    .await
    .expect("Xvfb start")
}

async fn start_xvfb_on(number: u32) -> Xvfb {
    tokio::task::spawn_blocking(move || Xvfb::start_on(number))
        .await
        .expect("Xvfb start")
        .expect("display number still free")
}

async fn next_event(link: &mut ControllerLink, within: Duration) -> LinkEvent {
    timeout(within, link.events.recv())
        .await
        .expect("no link event before the deadline")
        .expect("link event channel closed")
}

async fn expect_attached(link: &mut ControllerLink, window: u32) {
    match next_event(link, DEADLINE).await {
        LinkEvent::Attached { window: w } => assert_eq!(w, window, "attached to the wrong window"),
        other => panic!("expected Attached to {window:#x}, got {other:?}"),
    }
}

async fn expect_detached(link: &mut ControllerLink, within: Duration) -> String {
    match next_event(link, within).await {
        LinkEvent::Detached { reason } => reason,
        other => panic!("expected Detached, got {other:?}"),
    }
}

async fn expect_message(link: &mut ControllerLink) -> String {
    match next_event(link, DEADLINE).await {
        LinkEvent::Message(text) => text,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn client_receives(client: &mut ClientLink) -> (u32, String) {
    let m = timeout(DEADLINE, client.incoming.recv())
        .await
        .expect("no message at the client before the deadline")
        .expect("client incoming channel closed");
    (m.peer, m.text)
}

async fn reply(client: &ClientLink, peer: u32, text: &str, drop_begin: bool) {
    client
        .outgoing
        .send(ClientOutgoing {
            peer,
            text: text.to_owned(),
            faults: SendFaults { drop_begin },
        })
        .await
        .expect("client endpoint stopped");
}

async fn start_client(display: &str) -> (ClientLink, ClientEndpoint) {
    spawn_client_endpoint(display, CancellationToken::new())
        .await
        .expect("client endpoint starts")
}

/// Starts a controller on a display whose client is already advertised.
async fn attached_controller(
    display: &str,
    window: u32,
    cancel: &CancellationToken,
) -> ControllerLink {
    let mut link = spawn_controller_link(display, cancel.child_token());
    expect_attached(&mut link, window).await;
    link
}

/// Sends `text` from the controller and returns the controller's window as the client saw it.
async fn ping(controller: &ControllerLink, client: &mut ClientLink, text: &str) -> u32 {
    controller
        .outgoing
        .send(text.to_owned())
        .await
        .expect("link stopped");
    let (peer, got) = client_receives(client).await;
    assert_eq!(got, text);
    peer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_every_length_round_trip_both_ways() {
    let x = start_xvfb().await;
    let cancel = CancellationToken::new();
    let (mut client, endpoint) = start_client(&x.display).await;
    let mut controller = attached_controller(&x.display, endpoint.window(), &cancel).await;

    let texts = [
        String::new(),
        "PING".to_owned(),
        "GET USERSTATUS 1234".to_owned(),  // 19 bytes: one event
        "GET USERSTATUS 12345".to_owned(), // 20 bytes: a second event with only the NUL
        "GET USERSTATUS 123456".to_owned(),
        "0123456789".repeat(4),
        format!("CHATMESSAGE 17 BODY {}", "long text ".repeat(300)),
        "CHATMESSAGE 18 BODY Grüße aus Köln, 日本語のテキスト 🙂 ünïcödé".to_owned(),
        format!("{}é spans the chunk boundary", "x".repeat(19)),
    ];
    for text in &texts {
        let peer = ping(&controller, &mut client, text).await;
        let answer = format!("#echo {text}");
        reply(&client, peer, &answer, false).await;
        assert_eq!(expect_message(&mut controller).await, answer);
    }
    cancel.cancel();
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_share_one_client_without_interleaving() {
    let x = start_xvfb().await;
    let cancel = CancellationToken::new();
    let (mut client, endpoint) = start_client(&x.display).await;
    let mut a = attached_controller(&x.display, endpoint.window(), &cancel).await;
    let mut b = attached_controller(&x.display, endpoint.window(), &cancel).await;

    const N: usize = 40;
    let padding = "-".repeat(90); // five chunks per message
    let send_all = |link_tx: tokio::sync::mpsc::Sender<String>, tag: &'static str| {
        let padding = padding.clone();
        tokio::spawn(async move {
            for n in 0..N {
                link_tx
                    .send(format!("#{tag}{n} {padding} {tag}{n}"))
                    .await
                    .expect("link stopped");
            }
        })
    };
    let sending_a = send_all(a.outgoing.clone(), "A");
    let sending_b = send_all(b.outgoing.clone(), "B");

    let mut seen: std::collections::HashMap<u32, Vec<String>> = Default::default();
    for _ in 0..2 * N {
        let (peer, text) = client_receives(&mut client).await;
        seen.entry(peer).or_default().push(text);
    }
    sending_a.await.expect("sender A");
    sending_b.await.expect("sender B");
    assert_eq!(seen.len(), 2, "two distinct controller windows");
    let mut peers = std::collections::HashMap::new();
    for (peer, texts) in &seen {
        let tag = &texts[0][1..2];
        let expected: Vec<String> = (0..N)
            .map(|n| format!("#{tag}{n} {padding} {tag}{n}"))
            .collect();
        assert_eq!(
            texts, &expected,
            "messages from {peer:#x} intact and in order"
        );
        peers.insert(tag.to_owned(), *peer);
    }

    // Replies alternate between the two controllers; each must get exactly its own.
    for n in 0..N {
        for tag in ["A", "B"] {
            reply(
                &client,
                peers[tag],
                &format!("#{tag}{n} REPLY {padding}"),
                false,
            )
            .await;
        }
    }
    for (tag, link) in [("A", &mut a), ("B", &mut b)] {
        for n in 0..N {
            assert_eq!(
                expect_message(link).await,
                format!("#{tag}{n} REPLY {padding}")
            );
        }
    }
    cancel.cancel();
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_begin_drops_only_that_message() {
    let x = start_xvfb().await;
    let cancel = CancellationToken::new();
    let (mut client, endpoint) = start_client(&x.display).await;
    let mut controller = attached_controller(&x.display, endpoint.window(), &cancel).await;
    let peer = ping(&controller, &mut client, "CALL echo123").await;

    reply(&client, peer, "ERROR 92 CALL: Unrecognised identity", true).await;
    reply(&client, peer, "CALL 7 STATUS UNPLACED", false).await;
    assert_eq!(
        expect_message(&mut controller).await,
        "CALL 7 STATUS UNPLACED"
    );
    cancel.cancel();
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_message_is_dropped_and_the_next_one_arrives() {
    let x = start_xvfb().await;
    let cancel = CancellationToken::new();
    let (mut client, endpoint) = start_client(&x.display).await;
    let mut controller = attached_controller(&x.display, endpoint.window(), &cancel).await;
    let peer = ping(&controller, &mut client, "GET CHAT x CHATMESSAGES").await;

    let oversize = format!(
        "CHAT x CHATMESSAGES {}",
        "1, ".repeat(wire::MAX_MESSAGE_LEN / 3)
    );
    assert!(oversize.len() > wire::MAX_MESSAGE_LEN);
    reply(&client, peer, &oversize, false).await;
    reply(&client, peer, "PONG", false).await;
    assert_eq!(expect_message(&mut controller).await, "PONG");
    cancel.cancel();
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_follows_the_client_leaving_and_coming_back() {
    let x = start_xvfb().await;
    let cancel = CancellationToken::new();
    // The controller starts first: no client yet.
    let mut controller = spawn_controller_link(&x.display, cancel.child_token());
    let reason = expect_detached(&mut controller, DEADLINE).await;
    assert!(reason.contains("_SKYPE_INSTANCE"), "{reason}");

    let (mut client, first) = start_client(&x.display).await;
    expect_attached(&mut controller, first.window()).await;
    ping(&controller, &mut client, "PING").await;

    first.withdraw().await.expect("withdraw");
    expect_detached(&mut controller, DEADLINE).await;
    first.advertise().await.expect("advertise");
    expect_attached(&mut controller, first.window()).await;

    // A clean exit deletes the property and destroys the window: one Detached.
    first.shutdown().await;
    expect_detached(&mut controller, DEADLINE).await;

    let (mut client, second) = start_client(&x.display).await;
    expect_attached(&mut controller, second.window()).await;
    let peer = ping(&controller, &mut client, "NAME skypopen").await;
    reply(&client, peer, "OK", false).await;
    assert_eq!(expect_message(&mut controller).await, "OK");

    // Dropping the handle is a clean exit too.
    drop(second);
    expect_detached(&mut controller, DEADLINE).await;
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_property_is_not_a_client() {
    let x = start_xvfb().await;
    let cancel = CancellationToken::new();
    let (_client, crashed) = start_client(&x.display).await;
    let crashed_window = crashed.window();
    let mut first = attached_controller(&x.display, crashed_window, &cancel).await;

    crashed.set_stale_on_exit(true);
    crashed.shutdown().await;
    let reason = expect_detached(&mut first, DEADLINE).await;
    assert!(reason.contains("destroyed"), "{reason}");

    // A controller starting now finds the property, but it names a dead window.
    let mut late = spawn_controller_link(&x.display, cancel.child_token());
    let reason = expect_detached(&mut late, DEADLINE).await;
    assert!(reason.contains("stale"), "{reason}");

    let (mut client, replacement) = start_client(&x.display).await;
    expect_attached(&mut first, replacement.window()).await;
    expect_attached(&mut late, replacement.window()).await;
    ping(&late, &mut client, "PING found").await;
    cancel.cancel();
    replacement.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_x_server_detaches_only_its_own_link() {
    let mut doomed = start_xvfb_to_restart().await;
    let healthy = start_xvfb().await;
    let cancel = CancellationToken::new();
    let (mut doomed_client, doomed_endpoint) = start_client(&doomed.display).await;
    let (mut healthy_client, healthy_endpoint) = start_client(&healthy.display).await;
    let mut doomed_link =
        attached_controller(&doomed.display, doomed_endpoint.window(), &cancel).await;
    let mut healthy_link =
        attached_controller(&healthy.display, healthy_endpoint.window(), &cancel).await;
    ping(&doomed_link, &mut doomed_client, "PING").await;

    let number = doomed.number;
    tokio::task::spawn_blocking(move || doomed.kill())
        .await
        .expect("kill Xvfb");
    let reason = expect_detached(&mut doomed_link, DEADLINE).await;
    assert!(reason.contains("unavailable"), "{reason}");
    // The emulator's side ends too: its incoming queue closes.
    let closed = timeout(DEADLINE, doomed_client.incoming.recv())
        .await
        .expect("client endpoint noticed the dead X server");
    assert_eq!(closed, None);

    let peer = ping(&healthy_link, &mut healthy_client, "PING still here").await;
    reply(&healthy_client, peer, "PONG", false).await;
    assert_eq!(expect_message(&mut healthy_link).await, "PONG");

    // The X server comes back on the same display: the link reconnects on its own.
    let revived = start_xvfb_on(number).await;
    let (mut client, endpoint) = start_client(&revived.display).await;
    match next_event(&mut doomed_link, RECONNECT_DEADLINE).await {
        LinkEvent::Attached { window } => assert_eq!(window, endpoint.window()),
        other => panic!("expected re-attach after the X server restart, got {other:?}"),
    }
    ping(&doomed_link, &mut client, "PING again").await;
    cancel.cancel();
    endpoint.shutdown().await;
    healthy_endpoint.shutdown().await;
    drop(doomed_endpoint);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_client_messages_are_ignored() {
    let x = start_xvfb().await;
    let cancel = CancellationToken::new();
    let (mut client, endpoint) = start_client(&x.display).await;
    let mut controller = attached_controller(&x.display, endpoint.window(), &cancel).await;
    let controller_window = ping(&controller, &mut client, "PING").await;
    let client_window = endpoint.window();

    // Another program on the display writes ClientMessages: a foreign atom, the BEGIN atom
    // in format 32, then one real message, to both sides.
    let display = x.display.clone();
    tokio::task::spawn_blocking(move || {
        let (conn, _) = x11rb::connect(Some(&display)).expect("connect");
        let atom = |name: &str| {
            conn.intern_atom(false, name.as_bytes())
                .expect("intern")
                .reply()
                .expect("atom")
                .atom
        };
        let (foreign, begin, message) = (
            atom("WM_PROTOCOLS"),
            atom("SKYPECONTROLAPI_MESSAGE_BEGIN"),
            atom("SKYPECONTROLAPI_MESSAGE"),
        );
        let own = conn.generate_id().expect("id");
        for to in [controller_window, client_window] {
            let noise = [
                ClientMessageEvent::new(8, own, foreign, *b"NOT SKYPE AT ALL\0\0\0\0"),
                ClientMessageEvent::new(32, own, begin, [7u32, 0, 0, 0, 0]),
            ];
            for event in noise {
                conn.send_event(false, to, EventMask::NO_EVENT, event)
                    .expect("send")
                    .check()
                    .expect("delivered");
            }
            for chunk in wire::chunks("#tag FROM SOMEONE ELSE, ok").expect("no NUL") {
                let atom = match chunk.kind {
                    ChunkKind::Begin => begin,
                    ChunkKind::Continuation => message,
                };
                let event = ClientMessageEvent::new(8, own, atom, chunk.data);
                conn.send_event(false, to, EventMask::NO_EVENT, event)
                    .expect("send")
                    .check()
                    .expect("delivered");
            }
        }
    })
    .await
    .expect("raw X client");

    assert_eq!(
        expect_message(&mut controller).await,
        "#tag FROM SOMEONE ELSE, ok"
    );
    let (peer, text) = client_receives(&mut client).await;
    assert_ne!(peer, controller_window);
    assert_eq!(text, "#tag FROM SOMEONE ELSE, ok");
    cancel.cancel();
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_waits_for_an_x_server_that_is_not_there_yet() {
    let number = high_display_numbers()
        .next()
        .expect("a free display number in the high range");
    let display = format!(":{number}");
    let cancel = CancellationToken::new();
    let mut controller = spawn_controller_link(&display, cancel.child_token());
    let reason = expect_detached(&mut controller, DEADLINE).await;
    assert!(reason.contains("unavailable"), "{reason}");
    // Sending to nobody is not an error.
    controller
        .outgoing
        .send("PING".to_owned())
        .await
        .expect("link keeps running");

    let x = start_xvfb_on(number).await;
    let (mut client, endpoint) = start_client(&x.display).await;
    match next_event(&mut controller, RECONNECT_DEADLINE).await {
        LinkEvent::Attached { window } => assert_eq!(window, endpoint.window()),
        other => panic!("expected Attached once the X server is up, got {other:?}"),
    }
    ping(&controller, &mut client, "PING now").await;
    cancel.cancel();
    endpoint.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_controller_costs_only_its_own_replies() {
    let x = start_xvfb().await;
    let cancel = CancellationToken::new();
    let (mut client, endpoint) = start_client(&x.display).await;
    let mut controller = attached_controller(&x.display, endpoint.window(), &cancel).await;
    let peer = ping(&controller, &mut client, "PING").await;

    // A window id that certainly does not exist any more: created and destroyed, by a
    // connection that stays open so the server cannot hand the id out again.
    let display = x.display.clone();
    let (raw, vanished) = tokio::task::spawn_blocking(move || {
        let (conn, screen) = x11rb::connect(Some(&display)).expect("connect");
        let root = conn.setup().roots[screen].root;
        let window = conn.generate_id().expect("id");
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            0,
            0,
            1,
            1,
            0,
            x11rb::protocol::xproto::WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &Default::default(),
        )
        .expect("create")
        .check()
        .expect("created");
        conn.destroy_window(window)
            .expect("destroy")
            .check()
            .expect("destroyed");
        (conn, window)
    })
    .await
    .expect("raw X client");

    reply(&client, vanished, "CALL 1 STATUS FINISHED", false).await;
    reply(&client, peer, "PONG", false).await;
    assert_eq!(expect_message(&mut controller).await, "PONG");
    let peer_again = ping(&controller, &mut client, "PING again").await;
    assert_eq!(peer_again, peer);
    drop(raw);
    cancel.cancel();
    endpoint.shutdown().await;
}
