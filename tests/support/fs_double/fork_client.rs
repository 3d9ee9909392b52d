//! The audio fork client side of the double (what mod_audio_fork does on a real switch).
//!
//! It writes the upgrade request in exactly the shape libwebsockets used in the s2a capture
//! (`Host` without the port, `Origin`, `Sec-WebSocket-Protocol: audio.drachtio.org`), sends the
//! metadata as the first text frame, streams the caller's voice in 640-byte binary frames every
//! 20 ms, records what the server sends back, and closes with 1000 at hangup.

use futures_util::{SinkExt, StreamExt};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;

pub const SAMPLES_PER_FRAME: usize = 320;

/// What the double streams as the FreeSWITCH side's voice.
#[derive(Debug, Clone)]
pub enum Source {
    /// A sine tone, forever.
    Tone { hz: f64, amplitude: f64 },
    /// These samples once (padded with zeros to whole frames), then nothing.
    Samples(Vec<i16>),
    /// Send no audio at all.
    Nothing,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Offer the `audio.drachtio.org` subprotocol (the module's default).
    pub offer_subprotocol: bool,
    /// Frames per binary message: 1 normally, 2 to reproduce the 1280-byte payloads FreeSWITCH
    /// sometimes sends.
    pub frames_per_message: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            offer_subprotocol: true,
            frames_per_message: 1,
        }
    }
}

#[derive(Debug, Default)]
struct Record {
    samples: Vec<i16>,
    binary_sizes: Vec<usize>,
    texts: Vec<String>,
    /// Close code the server sent, if it closed first.
    server_close: Option<u16>,
    ended: bool,
}

pub struct ForkClient {
    record: Arc<Mutex<Record>>,
    hangup: CancellationToken,
    task: JoinHandle<()>,
    /// The raw 101 response, for shape checks.
    pub response: String,
}

/// The raw answer to an upgrade request: status line and headers, and the stream if it was 101.
pub struct Upgrade {
    pub response: String,
    pub stream: Option<(TcpStream, Vec<u8>)>,
}

impl Upgrade {
    pub fn status(&self) -> u16 {
        self.response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.response.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

fn split_url(url: &str) -> (String, String) {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("http://"))
        .expect("fork url must be ws:// or http://");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    (authority.to_string(), path.to_string())
}

/// Sends the upgrade request as mod_audio_fork does and reads the response head.
pub async fn upgrade(url: &str, offer_subprotocol: bool) -> std::io::Result<Upgrade> {
    let (authority, path) = split_url(url);
    let host = authority.split(':').next().unwrap_or("").to_string();
    let key = generate_key();
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nPragma: no-cache\r\nCache-Control: no-cache\r\nHost: {host}\r\n\
         Origin: http://{host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\n"
    );
    if offer_subprotocol {
        request.push_str("Sec-WebSocket-Protocol: audio.drachtio.org\r\n");
    }
    request.push_str("Sec-WebSocket-Version: 13\r\n\r\n");
    let mut stream = TcpStream::connect(&authority).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let end = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(Upgrade {
                response: String::from_utf8_lossy(&head).into_owned(),
                stream: None,
            });
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let leftover = head.split_off(end);
    let upgrade = Upgrade {
        response: String::from_utf8_lossy(&head).into_owned(),
        stream: None,
    };
    if upgrade.status() != 101 {
        return Ok(upgrade);
    }
    let expected = derive_accept_key(key.as_bytes());
    assert_eq!(
        upgrade.header("Sec-WebSocket-Accept").as_deref(),
        Some(expected.as_str()),
        "bad accept key in {}",
        upgrade.response
    );
    Ok(Upgrade {
        stream: Some((stream, leftover)),
        ..upgrade
    })
}

impl ForkClient {
    pub async fn connect(url: &str, metadata: &str, source: Source) -> ForkClient {
        Self::connect_with(url, metadata, source, Options::default()).await
    }

    /// Panics (fails the test) unless the server answers 101.
    pub async fn connect_with(
        url: &str,
        metadata: &str,
        source: Source,
        options: Options,
    ) -> ForkClient {
        let up = upgrade(url, options.offer_subprotocol)
            .await
            .expect("fork connect");
        assert_eq!(up.status(), 101, "upgrade refused: {}", up.response);
        let response = up.response.clone();
        let (stream, leftover) = up.stream.expect("101 has a stream");
        let ws = WebSocketStream::from_partially_read(stream, leftover, Role::Client, None).await;
        let record = Arc::new(Mutex::new(Record::default()));
        let hangup = CancellationToken::new();
        let task = tokio::spawn(run(
            ws,
            metadata.to_string(),
            source,
            options.frames_per_message.max(1),
            Arc::clone(&record),
            hangup.clone(),
        ));
        ForkClient {
            record,
            hangup,
            task,
            response,
        }
    }

    pub fn received(&self) -> Vec<i16> {
        self.record.lock().unwrap().samples.clone()
    }

    pub fn binary_sizes(&self) -> Vec<usize> {
        self.record.lock().unwrap().binary_sizes.clone()
    }

    pub fn texts(&self) -> Vec<String> {
        self.record.lock().unwrap().texts.clone()
    }

    pub fn server_close_code(&self) -> Option<u16> {
        self.record.lock().unwrap().server_close
    }

    /// Waits until `n` samples arrived (or the deadline passes); returns what arrived.
    pub async fn wait_samples(&self, n: usize, deadline: Duration) -> Vec<i16> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let got = self.received();
            if got.len() >= n || tokio::time::Instant::now() >= until {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the connection ended (server close or loss).
    pub async fn wait_ended(&self, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        while tokio::time::Instant::now() < until {
            if self.record.lock().unwrap().ended {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// Hangup: Close 1000 with no final text, as FreeSWITCH does. Returns what was received.
    pub async fn close(self) -> Vec<i16> {
        self.hangup.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        let samples = self.record.lock().unwrap().samples.clone();
        samples
    }
}

/// What mod_audio_fork does when its channel hangs up: a normal close, then it reads until
/// the server's close arrives (or two seconds pass).
pub async fn hang_up(ws: &mut WebSocketStream<TcpStream>) {
    let _ = ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while ws.next().await.is_some() {}
    })
    .await;
}

fn frame_of(source: &Source, index: usize) -> Option<[i16; SAMPLES_PER_FRAME]> {
    let mut frame = [0i16; SAMPLES_PER_FRAME];
    match source {
        Source::Nothing => return None,
        Source::Tone { hz, amplitude } => {
            for (i, s) in frame.iter_mut().enumerate() {
                let t = (index * SAMPLES_PER_FRAME + i) as f64 / 16_000.0;
                *s = (amplitude * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
            }
        }
        Source::Samples(all) => {
            let start = index * SAMPLES_PER_FRAME;
            if start >= all.len() {
                return None;
            }
            let end = (start + SAMPLES_PER_FRAME).min(all.len());
            frame[..end - start].copy_from_slice(&all[start..end]);
        }
    }
    Some(frame)
}

async fn run(
    mut ws: WebSocketStream<TcpStream>,
    metadata: String,
    source: Source,
    frames_per_message: usize,
    record: Arc<Mutex<Record>>,
    hangup: CancellationToken,
) {
    if ws.send(Message::Text(metadata.into())).await.is_err() {
        record.lock().unwrap().ended = true;
        return;
    }
    let mut clock = tokio::time::interval(Duration::from_millis(20) * frames_per_message as u32);
    let mut index = 0usize;
    let mut carry: Option<u8> = None;
    loop {
        tokio::select! {
            _ = hangup.cancelled() => {
                hang_up(&mut ws).await;
                break;
            }
            _ = clock.tick() => {
                let mut payload = Vec::with_capacity(640 * frames_per_message);
                for _ in 0..frames_per_message {
                    if let Some(frame) = frame_of(&source, index) {
                        index += 1;
                        payload.extend(frame.iter().flat_map(|s| s.to_le_bytes()));
                    }
                }
                if !payload.is_empty() && ws.send(Message::Binary(payload.into())).await.is_err() {
                    break;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(bytes))) => {
                    let mut rec = record.lock().unwrap();
                    rec.binary_sizes.push(bytes.len());
                    let mut iter = bytes.iter().copied();
                    if let Some(lo) = carry.take() {
                        if let Some(hi) = iter.next() {
                            rec.samples.push(i16::from_le_bytes([lo, hi]));
                        }
                    }
                    let rest: Vec<u8> = iter.collect();
                    let mut pairs = rest.chunks_exact(2);
                    for p in &mut pairs {
                        rec.samples.push(i16::from_le_bytes([p[0], p[1]]));
                    }
                    carry = pairs.remainder().first().copied();
                }
                Some(Ok(Message::Text(text))) => {
                    record.lock().unwrap().texts.push(text.as_str().to_string());
                }
                Some(Ok(Message::Close(frame))) => {
                    record.lock().unwrap().server_close = frame.map(|f| u16::from(f.code));
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while ws.next().await.is_some() {}
                    })
                    .await;
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
        }
    }
    record.lock().unwrap().ended = true;
}
