//! The audio fork websocket server over real sockets, against the double's mod_audio_fork
//! client.
mod support;

use skypopen::media::Frame;
use skypopen::switch::media::{ForkError, ForkSession, ForkToken, MediaServer};
use std::time::Duration;
use support::fs_double::fork_client::{upgrade, ForkClient, Options, Source};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);

async fn server() -> (MediaServer, CancellationToken) {
    server_with_handshake(DEADLINE).await
}

async fn server_with_handshake(handshake: Duration) -> (MediaServer, CancellationToken) {
    let cancel = CancellationToken::new();
    let server = MediaServer::start(
        "127.0.0.1:0".parse().unwrap(),
        None,
        handshake,
        cancel.clone(),
    )
    .await
    .expect("media server starts");
    (server, cancel)
}

/// Frame `n` carries the samples n*1000 + 0..320, so order and completeness are checkable.
fn numbered_samples(frames: usize) -> Vec<i16> {
    (0..frames)
        .flat_map(|n| (0..320).map(move |i| ((n * 500) % 30000 + i) as i16))
        .collect()
}

fn metadata(token: &ForkToken) -> String {
    format!("{{\"call\":\"{}\"}}", token.as_str())
}

/// Hands `samples` to the fork as the pump does, a frame at a time: every `pace`, or at once.
async fn play_into(session: &ForkSession, samples: &[i16], pace: Option<Duration>) {
    let mut clock = pace.map(|every| {
        let mut clock = tokio::time::interval(every);
        clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        clock
    });
    for chunk in samples.chunks(320) {
        if let Some(clock) = clock.as_mut() {
            clock.tick().await;
        }
        let frame = Frame::from_samples(chunk).unwrap();
        session
            .frames
            .tx
            .send(frame)
            .await
            .expect("fork accepts frames");
    }
}

#[tokio::test]
async fn frames_flow_both_ways_in_order_and_complete() {
    let (server, _cancel) = server().await;
    let token = ForkToken::generate();
    let (url, pending) = server.expect(&token);
    let voice = numbered_samples(50);
    let client = ForkClient::connect(&url, &metadata(&token), Source::Samples(voice.clone())).await;
    assert!(
        client
            .response
            .to_ascii_lowercase()
            .contains("\r\nsec-websocket-protocol: audio.drachtio.org\r\n"),
        "{}",
        client.response
    );
    let mut session = pending.wait(DEADLINE).await.expect("fork arrives");
    assert_eq!(session.metadata.as_deref(), Some(metadata(&token).as_str()));

    // FreeSWITCH -> sidecar: every frame, in order.
    let mut got = Vec::new();
    while got.len() < voice.len() {
        let frame = tokio::time::timeout(DEADLINE, session.frames.rx.recv())
            .await
            .expect("frame within deadline")
            .expect("fork still open");
        got.extend(frame.samples());
    }
    assert_eq!(got, voice);

    // Sidecar -> FreeSWITCH: 640-byte binary frames in order, when they come at the rate the
    // module plays them (as the pump sends them): every one but, at most, the one held back
    // once the module's first 80 ms prebuffer is full (src/switch/media/playout.rs).
    let back = numbered_samples(40);
    play_into(&session, &back, Some(Duration::from_millis(20))).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let heard = client.wait_samples(back.len(), Duration::ZERO).await;
    let frames: Vec<&[i16]> = heard.chunks(320).collect();
    let sent: Vec<&[i16]> = back.chunks(320).collect();
    assert!(
        frames.len() >= sent.len() - 1,
        "{} of {} frames",
        frames.len(),
        sent.len()
    );
    let kept: Vec<&[i16]> = match (0..sent.len()).find(|&i| frames.get(i) != Some(&sent[i])) {
        Some(gap) => sent[..gap]
            .iter()
            .chain(&sent[gap + 1..])
            .copied()
            .collect(),
        None => sent.clone(),
    };
    assert_eq!(frames, kept, "in order, at most one frame missing");
    assert!(client.binary_sizes().iter().all(|&n| n == 640));

    // A burst far ahead of the module's playout is cut short instead of becoming delay: of
    // 40 frames of voice at once only the few the modelled queue has room for (its voice
    // limit, after the pause above emptied it) go, in order.
    let burst = numbered_samples(80)[40 * 320..].to_vec();
    play_into(&session, &burst, None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = heard.len();
    let heard = client.wait_samples(before, DEADLINE).await;
    let extra = &heard[before..];
    assert!(
        !extra.is_empty() && extra.len() <= 5 * 320,
        "{} samples of the burst went",
        extra.len()
    );
    assert_eq!(extra, &burst[..extra.len()], "the burst's head, in order");

    // Hangup: Close 1000 from FreeSWITCH ends the session's frame stream.
    client.close().await;
    let end = tokio::time::timeout(DEADLINE, async {
        while session.frames.rx.recv().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "session saw the close");
}

#[tokio::test]
async fn double_size_payloads_are_recut_into_frames() {
    let (server, _cancel) = server().await;
    let token = ForkToken::generate();
    let (url, pending) = server.expect(&token);
    let voice = numbered_samples(20);
    let options = Options {
        frames_per_message: 2,
        ..Options::default()
    };
    let client = ForkClient::connect_with(
        &url,
        &metadata(&token),
        Source::Samples(voice.clone()),
        options,
    )
    .await;
    let mut session = pending.wait(DEADLINE).await.expect("fork arrives");
    let mut got = Vec::new();
    while got.len() < voice.len() {
        let frame = tokio::time::timeout(DEADLINE, session.frames.rx.recv())
            .await
            .expect("frame within deadline")
            .expect("fork open");
        got.extend(frame.samples());
    }
    assert_eq!(got, voice);
    client.close().await;
}

#[tokio::test]
async fn unknown_or_malformed_paths_get_404_before_upgrade() {
    let (server, _cancel) = server().await;
    let base = format!("ws://{}", server.local_addr());
    let known = ForkToken::generate();
    let (_url, _pending) = server.expect(&known);
    for path in [
        format!("/fork/{}", ForkToken::generate().as_str()),
        "/fork/".to_string(),
        format!("/{}", known.as_str()),
        "/".to_string(),
    ] {
        let up = upgrade(&format!("{base}{path}"), true).await.unwrap();
        assert_eq!(up.status(), 404, "{path}: {}", up.response);
        assert!(up.stream.is_none());
    }
    // Refusals do not consume the real expectation.
    assert_eq!(server.pending(), 1);
}

#[tokio::test]
async fn subprotocol_is_selected_only_when_offered() {
    let (server, _cancel) = server().await;
    let token = ForkToken::generate();
    let (url, pending) = server.expect(&token);
    let options = Options {
        offer_subprotocol: false,
        ..Options::default()
    };
    let client = ForkClient::connect_with(&url, "{\"e\":1}", Source::Nothing, options).await;
    assert!(
        !client
            .response
            .to_ascii_lowercase()
            .contains("sec-websocket-protocol"),
        "{}",
        client.response
    );
    let session = pending.wait(DEADLINE).await.expect("fork arrives");
    assert_eq!(session.metadata.as_deref(), Some("{\"e\":1}"));
    client.close().await;
}

#[tokio::test]
async fn pending_fork_times_out_and_its_token_dies_with_it() {
    let (server, _cancel) = server().await;
    let token = ForkToken::generate();
    let (url, pending) = server.expect(&token);
    match pending.wait(Duration::from_millis(100)).await {
        Err(ForkError::Timeout(_)) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(server.pending(), 0);
    let up = upgrade(&url, true).await.unwrap();
    assert_eq!(up.status(), 404);
}

#[tokio::test]
async fn dropping_the_session_closes_with_1000_and_kill_audio_is_sent() {
    let (server, _cancel) = server().await;
    let token = ForkToken::generate();
    let (url, pending) = server.expect(&token);
    let client = ForkClient::connect(
        &url,
        &metadata(&token),
        Source::Tone {
            hz: 440.0,
            amplitude: 8000.0,
        },
    )
    .await;
    let session = pending.wait(DEADLINE).await.expect("fork arrives");
    session.control.kill_audio().expect("control channel open");
    let until = tokio::time::Instant::now() + DEADLINE;
    while client.texts().is_empty() && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(client.texts(), vec![r#"{"type":"killAudio"}"#.to_string()]);
    drop(session);
    assert!(client.wait_ended(DEADLINE).await, "server closed the fork");
    assert_eq!(client.server_close_code(), Some(1000));
}

#[tokio::test]
async fn server_shutdown_fails_pending_forks() {
    let (server, cancel) = server().await;
    let token = ForkToken::generate();
    let (_url, pending) = server.expect(&token);
    cancel.cancel();
    match pending.wait(DEADLINE).await {
        Err(ForkError::ServerStopped) => {}
        other => panic!("expected ServerStopped, got {other:?}"),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    let path = support::eslcap::fixtures_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

#[tokio::test]
async fn the_captured_upgrade_request_is_accepted_as_freeswitch_saw_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _cancel) = server().await;
    let token = ForkToken::generate();
    let (_url, pending) = server.expect(&token);
    // mod_audio_fork's exact bytes (Host without port), only the path swapped for our route.
    let request = String::from_utf8(fixture("s2a_ws_upgrade_request.http")).unwrap();
    let request = request.replacen(
        "GET /x HTTP/1.1",
        &format!("GET /fork/{} HTTP/1.1", token.as_str()),
        1,
    );
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(DEADLINE, tcp.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "server closed during the upgrade: {:?}", head);
        head.push(byte[0]);
    }
    let ours = String::from_utf8(head).unwrap().to_ascii_lowercase();
    let captured = String::from_utf8(fixture("s2a_ws_upgrade_response_sent.http"))
        .unwrap()
        .to_ascii_lowercase();
    assert!(ours.starts_with("http/1.1 101 "), "{ours}");
    // Same key in, so the same accept value and subprotocol as the response FreeSWITCH took.
    for line in captured.lines().skip(1).filter(|l| !l.is_empty()) {
        assert!(ours.contains(line), "missing {line:?} in {ours}");
    }
    // The module's first frame, the metadata, routes the fork to its call.
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        tcp,
        tokio_tungstenite::tungstenite::protocol::Role::Client,
        None,
    )
    .await;
    use futures_util::SinkExt;
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        "{\"call\":\"c1\"}".into(),
    ))
    .await
    .unwrap();
    let session = pending.wait(DEADLINE).await.expect("fork arrives");
    assert_eq!(session.metadata.as_deref(), Some("{\"call\":\"c1\"}"));
}

/// Reads until the server closes the connection; how long that took.
async fn time_until_closed(stream: &mut tokio::net::TcpStream) -> Duration {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("the server kept the connection open for {DEADLINE:?}"),
        }
    }
}

#[tokio::test]
async fn a_peer_that_never_finishes_its_upgrade_is_closed_at_the_handshake_timeout() {
    use tokio::io::AsyncWriteExt;
    let handshake = Duration::from_millis(500);
    let (server, _cancel) = server_with_handshake(handshake).await;
    let token = ForkToken::generate();
    let (url, _pending) = server.expect(&token);

    // Silent: connects and sends nothing.
    let mut silent = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let waited = time_until_closed(&mut silent).await;
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(2),
        "silent peer closed after {waited:?}"
    );

    // Dripping: a real upgrade request for the expected token, one byte every 50 ms, which
    // would take about 10 s to finish.
    let path = url.split_once("//").unwrap().1.split_once('/').unwrap().1;
    let request = format!(
        "GET /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let drip = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let (mut reader, mut writer) = drip.into_split();
    let dripper = tokio::spawn(async move {
        for byte in request.as_bytes() {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(
        DEADLINE,
        tokio::io::AsyncReadExt::read(&mut reader, &mut buf),
    )
    .await
    .expect("the dripping peer was never closed");
    let waited = started.elapsed();
    assert!(matches!(read, Ok(0) | Err(_)), "got an answer: {read:?}");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(2),
        "dripping peer closed after {waited:?}"
    );
    dripper.abort();
    // Neither took the call's expectation with it: the real fork can still arrive.
    assert_eq!(server.pending(), 1);
}

#[tokio::test]
async fn a_frame_beyond_the_cap_ends_the_fork_before_it_is_buffered() {
    use tokio::io::AsyncWriteExt;
    let (server, _cancel) = server().await;
    let token = ForkToken::generate();
    let (url, pending) = server.expect(&token);
    let up = upgrade(&url, true).await.unwrap();
    assert_eq!(up.status(), 101, "{}", up.response);
    let (mut stream, _) = up.stream.unwrap();
    // A masked text frame with the metadata, as the module sends it first.
    let metadata = metadata(&token);
    let mut text = vec![0x81, 0x80 | metadata.len() as u8, 0, 0, 0, 0];
    text.extend_from_slice(metadata.as_bytes());
    stream.write_all(&text).await.unwrap();
    let mut session = pending.wait(DEADLINE).await.expect("fork arrives");
    // Then only the head of a 2 MiB binary frame (twice the server's cap, under tungstenite's
    // own default): the server must refuse it from the head, not wait for and buffer it.
    let mut head = vec![0x82, 0x80 | 127];
    head.extend_from_slice(&(2u64 << 20).to_be_bytes());
    head.extend_from_slice(&[0, 0, 0, 0]);
    stream.write_all(&head).await.unwrap();
    let waited = time_until_closed(&mut stream).await;
    assert!(waited < Duration::from_secs(2), "closed after {waited:?}");
    let ended = tokio::time::timeout(DEADLINE, session.frames.rx.recv())
        .await
        .expect("the session ends");
    assert!(ended.is_none(), "a frame was delivered: {ended:?}");
}
