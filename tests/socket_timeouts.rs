//! Peers that open a connection and then say nothing, or drip it a byte at a time: the real
//! binaries close each within a bounded time and keep serving everyone else.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::sidecar::Sidecar;
use support::sim::SimNetwork;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longer than every bound under test; reaching it means the peer was never closed.
const NEVER: Duration = Duration::from_secs(15);

/// Reads (and discards) until the other side closes; how long that took.
async fn closed_after(stream: &mut TcpStream, what: &str) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(NEVER, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("{what}: still open after {NEVER:?}"),
        }
    }
}

/// Connects and writes `bytes` one every 100 ms (far slower than any bound here) until the
/// other side closes; how long it stayed open.
async fn drip_until_closed(addr: SocketAddr, bytes: &[u8], what: &str) -> Duration {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut reader, mut writer) = stream.into_split();
    let bytes = bytes.to_vec();
    let dripper = tokio::spawn(async move {
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Then hold the connection open, silent.
        tokio::time::sleep(NEVER * 2).await;
        drop(writer);
    });
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let waited = loop {
        match tokio::time::timeout(NEVER, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("{what}: still open after {NEVER:?}"),
        }
    };
    dripper.abort();
    waited
}

fn assert_within(waited: Duration, bound: Duration, what: &str) {
    assert!(
        waited >= bound.mul_f64(0.8) && waited < bound + Duration::from_millis(1500),
        "{what}: closed after {waited:?}, the bound is {bound:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_socket_and_fork_connections_are_closed_at_the_handshake_timeout() {
    let sidecar = Sidecar::start_with_env(
        &[("interface1", "user1")],
        &[("SKYPOPEN__SWITCH__HANDSHAKE_TIMEOUT_SECS", "1")],
    );
    sidecar.wait_idle(1).await;
    let bound = Duration::from_secs(1);

    // FreeSWITCH's `socket` side: the sidecar sends `connect` and the peer never answers.
    let mut silent = TcpStream::connect(sidecar.outbound).await.unwrap();
    assert_within(
        closed_after(&mut silent, "silent socket").await,
        bound,
        "silent socket",
    );
    // ... or answers a byte at a time, a reply that would take about 7 s.
    let reply = b"Content-Type: command/reply\nReply-Text: +OK\nUnique-ID: 0\n\n";
    let waited = drip_until_closed(sidecar.outbound, reply, "dripping socket").await;
    assert_within(waited, bound, "dripping socket");

    // The audio fork's websocket server: nothing, then an upgrade request dripped.
    let mut silent = TcpStream::connect(sidecar.media).await.unwrap();
    assert_within(
        closed_after(&mut silent, "silent websocket").await,
        bound,
        "silent websocket",
    );
    let upgrade = b"GET /fork/x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\r\n";
    let waited = drip_until_closed(sidecar.media, upgrade, "dripping websocket").await;
    assert_within(waited, bound, "dripping websocket");

    // Everyone else was served meanwhile, and the operator can see why each went.
    let list = sidecar.api("sk list").await;
    assert!(list.contains("IDLE"), "{list}");
    let log = sidecar.log_text();
    assert_eq!(
        log.matches("socket handshake timed out").count(),
        2,
        "{log}"
    );
    assert_eq!(
        log.matches("audio fork upgrade timed out").count(),
        2,
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_connection_that_never_finishes_its_first_frame_is_closed() {
    let net = SimNetwork::start_with(&["--first-frame-timeout-ms", "1000"]);
    let bound = Duration::from_secs(1);

    let mut silent = TcpStream::connect(net.addr).await.unwrap();
    assert_within(
        closed_after(&mut silent, "silent peer").await,
        bound,
        "silent peer",
    );

    // A frame head announcing 16 MiB of JSON, then a few bytes, a byte at a time.
    let mut partial = vec![1u8];
    partial.extend_from_slice(&(16u32 << 20).to_be_bytes());
    partial.extend_from_slice(b"{\"ctl\":");
    let waited = drip_until_closed(net.addr, &partial, "partial frame").await;
    assert_within(waited, bound, "partial frame");

    // The network kept serving: a control command still answers.
    let who = net.actl(&["status"]).await;
    assert!(who.is_object(), "{who}");
}
