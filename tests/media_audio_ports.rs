//! Per-call Skype audio ports over real sockets, with a fake Skype client on the other end.
mod support;

use skypopen::media::Frame;
use skypopen::skype::audio::{AudioLinks, AudioOptions, BridgedAudio, PortAllocator, SkypeAudio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);

fn frame(n: usize) -> Frame {
    let samples: Vec<i16> = (0..320).map(|i| ((n * 500) % 30000 + i) as i16).collect();
    Frame::from_samples(&samples).unwrap()
}

async fn wait_links(links: &mut watch::Receiver<AudioLinks>, ok: impl Fn(&AudioLinks) -> bool) {
    tokio::time::timeout(DEADLINE, links.wait_for(|l| ok(l)))
        .await
        .expect("link state reached within deadline")
        .expect("port tasks alive");
}

async fn read_frames(conn: &mut TcpStream, count: usize) -> Vec<Frame> {
    let mut bytes = vec![0u8; count * 640];
    tokio::time::timeout(DEADLINE, conn.read_exact(&mut bytes))
        .await
        .expect("frames within deadline")
        .expect("read from input port");
    bytes
        .chunks_exact(640)
        .map(|c| Frame::from_bytes(c.try_into().unwrap()))
        .collect()
}

fn bind(allocator: &PortAllocator, setsockopt: bool) -> BridgedAudio {
    SkypeAudio::bind(allocator, AudioOptions { setsockopt })
        .map(|a| a.bridged(&CancellationToken::new()))
        .expect("ports bind")
}

#[tokio::test]
async fn frames_flow_both_ways_through_the_two_ports() {
    let allocator = PortAllocator::new(33_000..=36_000);
    let mut audio = bind(&allocator, true);
    assert_ne!(audio.ports.input, audio.ports.output);
    let mut links = audio.guard.links();

    // The client connects once the ALTERs are sent; the ports are already listening.
    let mut input = TcpStream::connect(("127.0.0.1", audio.ports.input))
        .await
        .unwrap();
    let mut output = TcpStream::connect(("127.0.0.1", audio.ports.output))
        .await
        .unwrap();
    wait_links(&mut links, |l| l.input_connected && l.output_connected).await;

    // Sidecar -> Skype (SET_INPUT): what the remote party hears.
    let sent: Vec<Frame> = (0..25).map(frame).collect();
    for f in &sent {
        audio.frames.tx.send(*f).await.unwrap();
    }
    assert_eq!(read_frames(&mut input, sent.len()).await, sent);

    // Skype -> sidecar (SET_OUTPUT): written in odd-sized pieces, re-cut into whole frames.
    let said: Vec<Frame> = (100..125).map(frame).collect();
    let stream: Vec<u8> = said.iter().flat_map(|f| f.as_bytes().to_vec()).collect();
    let writer = tokio::spawn(async move {
        for piece in stream.chunks(333) {
            output.write_all(piece).await.unwrap();
        }
        output
    });
    let mut got = Vec::new();
    while got.len() < said.len() {
        let f = tokio::time::timeout(DEADLINE, audio.frames.rx.recv())
            .await
            .expect("frame within deadline")
            .expect("output port open");
        got.push(f);
    }
    assert_eq!(got, said);
    let _output = writer.await.unwrap();
    audio.guard.close().await;
}

#[tokio::test]
async fn a_reconnect_replaces_the_previous_connection() {
    let allocator = PortAllocator::new(36_001..=39_000);
    let mut audio = bind(&allocator, false);
    let mut links = audio.guard.links();

    let mut first = TcpStream::connect(("127.0.0.1", audio.ports.input))
        .await
        .unwrap();
    wait_links(&mut links, |l| l.input_accepts == 1).await;
    audio.frames.tx.send(frame(1)).await.unwrap();
    assert_eq!(read_frames(&mut first, 1).await, vec![frame(1)]);

    // Hold/resume: the client opens a new connection without closing the old one.
    let mut second = TcpStream::connect(("127.0.0.1", audio.ports.input))
        .await
        .unwrap();
    wait_links(&mut links, |l| l.input_accepts == 2 && l.input_connected).await;
    audio.frames.tx.send(frame(2)).await.unwrap();
    assert_eq!(read_frames(&mut second, 1).await, vec![frame(2)]);
    // The replaced connection was closed by the sidecar.
    let mut rest = Vec::new();
    let eof = tokio::time::timeout(DEADLINE, first.read_to_end(&mut rest)).await;
    assert!(matches!(eof, Ok(Ok(0))), "old connection closed: {eof:?}");

    // The output port survives a client that disconnects and comes back.
    let out1 = TcpStream::connect(("127.0.0.1", audio.ports.output))
        .await
        .unwrap();
    wait_links(&mut links, |l| l.output_connected).await;
    drop(out1);
    wait_links(&mut links, |l| !l.output_connected).await;
    let mut out2 = TcpStream::connect(("127.0.0.1", audio.ports.output))
        .await
        .unwrap();
    wait_links(&mut links, |l| l.output_connected && l.output_accepts == 2).await;
    out2.write_all(frame(7).as_bytes()).await.unwrap();
    let got = tokio::time::timeout(DEADLINE, audio.frames.rx.recv())
        .await
        .unwrap();
    assert_eq!(got, Some(frame(7)));

    audio.guard.close().await;
}

#[tokio::test]
async fn dropping_the_frames_closes_the_ports() {
    let allocator = PortAllocator::new(39_001..=40_000);
    let audio = bind(&allocator, true);
    let ports = audio.ports;
    let mut links = audio.guard.links();
    let mut input = TcpStream::connect(("127.0.0.1", ports.input))
        .await
        .unwrap();
    wait_links(&mut links, |l| l.input_connected).await;
    // The pump ending (its duplex dropped) is enough to end the port tasks.
    drop(audio.frames);
    let mut rest = Vec::new();
    let eof = tokio::time::timeout(DEADLINE, input.read_to_end(&mut rest)).await;
    assert!(matches!(eof, Ok(Ok(0))), "input connection closed: {eof:?}");
    audio.guard.close().await;
    assert!(TcpStream::connect(("127.0.0.1", ports.input))
        .await
        .is_err());
    assert!(TcpStream::connect(("127.0.0.1", ports.output))
        .await
        .is_err());
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_may_come_back() {
    let allocator = PortAllocator::new(40_001..=41_000);
    let audio = bind(&allocator, true);
    let mut links = audio.guard.links();
    let stuck = TcpStream::connect(("127.0.0.1", audio.ports.input))
        .await
        .unwrap();
    wait_links(&mut links, |l| l.input_connected).await;
    // Far more than the small socket buffers and the bounded queue hold; the client reads
    // nothing, so the writes stall and the connection goes after a second.
    let tx = audio.frames.tx.clone();
    let feeder = tokio::spawn(async move {
        for n in 0.. {
            if tx.send(frame(n)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    wait_links(&mut links, |l| !l.input_connected).await;
    drop(stuck);
    // A reconnect gets whole frames again, from a frame boundary.
    let mut again = TcpStream::connect(("127.0.0.1", audio.ports.input))
        .await
        .unwrap();
    wait_links(&mut links, |l| l.input_connected && l.input_accepts == 2).await;
    let frames = read_frames(&mut again, 3).await;
    for f in &frames {
        let first = f.samples().next().unwrap_or(0);
        let expected: Vec<i16> = (0..320).map(|i| first.wrapping_add(i)).collect();
        assert_eq!(
            f.samples().collect::<Vec<_>>(),
            expected,
            "a frame cut mid-way"
        );
    }
    feeder.abort();
    audio.guard.close().await;
}
