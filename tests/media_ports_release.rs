//! Closing a call's audio ports releases every file descriptor and both ports. Alone in its
//! file (its own process) so that no other test opens descriptors while it counts.
mod support;

use skypopen::media::Frame;
use skypopen::skype::audio::{AudioOptions, PortAllocator, SkypeAudio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("procfs").count()
}

#[tokio::test(flavor = "current_thread")]
async fn closing_releases_ports_and_descriptors() {
    let allocator = PortAllocator::new(33_500..=39_500);
    // Warm up the runtime's own descriptors (reactor, signal pipes) before the baseline.
    drop(
        SkypeAudio::bind(&allocator, AudioOptions::default())
            .map(|a| a.bridged(&CancellationToken::new())),
    );
    tokio::task::yield_now().await;
    let before = open_fds();

    for round in 0..3 {
        let mut audio = SkypeAudio::bind(&allocator, AudioOptions { setsockopt: true })
            .map(|a| a.bridged(&CancellationToken::new()))
            .expect("ports bind");
        let ports = audio.ports;
        let mut links = audio.guard.links();
        let mut input = TcpStream::connect(("127.0.0.1", ports.input))
            .await
            .unwrap();
        let mut output = TcpStream::connect(("127.0.0.1", ports.output))
            .await
            .unwrap();
        tokio::time::timeout(
            DEADLINE,
            links.wait_for(|l| l.input_connected && l.output_connected),
        )
        .await
        .expect("connected")
        .unwrap();
        audio.frames.tx.send(Frame::SILENCE).await.unwrap();
        let mut buf = [0u8; 640];
        input.read_exact(&mut buf).await.unwrap();
        output.write_all(&[1u8; 640]).await.unwrap();
        assert!(audio.frames.rx.recv().await.is_some());

        // The client goes first (as Skype does at hangup), then the call closes its ports.
        drop((input, output));
        tokio::time::timeout(
            DEADLINE,
            links.wait_for(|l| !l.input_connected && !l.output_connected),
        )
        .await
        .expect("disconnect seen")
        .unwrap();
        drop(audio.frames);
        audio.guard.close().await;

        assert_eq!(open_fds(), before, "descriptors leaked in round {round}");
        for port in [ports.input, ports.output] {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_reuseaddr(true).unwrap();
            socket
                .bind(([127, 0, 0, 1], port).into())
                .unwrap_or_else(|e| panic!("port {port} still held: {e}"));
            drop(socket.listen(1).expect("listen on released port"));
        }
    }
}
