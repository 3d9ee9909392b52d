//! A listener on a loopback port and a minimal ESL client for the listener tests.
#![allow(dead_code)]

use bytes::BytesMut;
use skypopen::config::Secret;
use skypopen::switch::esl::{Event, EventSource, Message, MessageDecoder};
use skypopen::switch::listener::{CommandTable, EventBus, Listener, ListenerConfig, ListenerStats};
use skypopen::telemetry::LogBus;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const DEADLINE: Duration = Duration::from_secs(20);
pub const PASSWORD: &str = "ClueCon";

pub struct Server {
    pub addr: SocketAddr,
    pub bus: EventBus,
    pub stats: Arc<ListenerStats>,
    pub cancel: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Server {
    pub async fn start(adjust: impl FnOnce(&mut ListenerConfig)) -> Server {
        Self::start_with(adjust, 4096, LogBus::new()).await
    }

    pub async fn start_with(
        adjust: impl FnOnce(&mut ListenerConfig),
        bus_capacity: usize,
        logs: LogBus,
    ) -> Server {
        let mut config =
            ListenerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), Secret::new(PASSWORD));
        adjust(&mut config);
        let source = Arc::new(EventSource::new());
        let bus = EventBus::with_capacity(source, bus_capacity);
        let table = Arc::new(CommandTable::with_builtins(
            Instant::now(),
            "testhost".into(),
            None,
        ));
        let listener = Listener::bind(config, table, bus.clone(), logs)
            .await
            .expect("listener binds on loopback");
        let addr = listener.local_addr().expect("bound address");
        let stats = listener.stats();
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            listener.run(stop).await.expect("listener runs");
        });
        Server {
            addr,
            bus,
            stats,
            cancel,
            task,
        }
    }

    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("listener stops in time")
            .expect("listener task ends cleanly");
    }
}

pub struct Client {
    pub stream: TcpStream,
    pub buf: BytesMut,
    decoder: MessageDecoder,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Self::connect_from(addr, std::net::Ipv4Addr::LOCALHOST).await
    }

    /// Connects from another loopback address (127.0.0.2 ...), as another host would.
    pub async fn connect_from(addr: SocketAddr, local: std::net::Ipv4Addr) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((local, 0)))
            .expect("bind the local address");
        let stream = socket.connect(addr).await.expect("connects");
        Client {
            stream,
            buf: BytesMut::new(),
            decoder: MessageDecoder::default(),
        }
    }

    /// Connects, reads the greeting, authenticates.
    pub async fn login(addr: SocketAddr) -> Client {
        let mut client = Self::connect(addr).await;
        let greeting = client.recv().await.expect("greeting");
        assert_eq!(greeting.content_type(), Some("auth/request"));
        let reply = client.command(&format!("auth {PASSWORD}")).await;
        assert_eq!(reply.headers.get("Reply-Text"), Some("+OK accepted"));
        client
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("sends");
    }

    /// The next message, or None at EOF.
    pub async fn recv(&mut self) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(message) = self.decoder.decode(&mut self.buf).expect("valid framing") {
                return Some(message);
            }
            let read = tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf))
                .await
                .expect("a message arrives before the deadline")
                .expect("reads");
            if read == 0 {
                assert!(self.buf.is_empty(), "EOF inside a message");
                return None;
            }
        }
    }

    /// The next reply (`command/reply` or `api/response`), skipping events and log lines.
    pub async fn reply(&mut self) -> Message {
        loop {
            let message = self.recv().await.expect("a reply before EOF");
            match message.content_type() {
                Some("command/reply") | Some("api/response") => return message,
                _ => continue,
            }
        }
    }

    pub async fn command(&mut self, line: &str) -> Message {
        self.send(format!("{line}\n\n").as_bytes()).await;
        self.reply().await
    }

    pub async fn reply_text(&mut self, line: &str) -> String {
        let message = self.command(line).await;
        assert_eq!(message.content_type(), Some("command/reply"), "{line}");
        message
            .headers
            .get("Reply-Text")
            .unwrap_or_default()
            .to_string()
    }

    pub async fn api(&mut self, line: &str) -> String {
        let message = self.command(&format!("api {line}")).await;
        assert_eq!(message.content_type(), Some("api/response"), "{line}");
        message.body_text().unwrap_or_default().into_owned()
    }

    /// The next event (in either format), skipping the API events of our own commands.
    pub async fn event(&mut self) -> Event {
        loop {
            let message = self.recv().await.expect("an event before EOF");
            let Some(content_type) = message.content_type().map(str::to_string) else {
                continue;
            };
            if !content_type.starts_with("text/event-") {
                continue;
            }
            let event = Event::parse(&content_type, message.body.as_deref().unwrap_or_default())
                .expect("event parses");
            if event.name() != Some("API") {
                return event;
            }
        }
    }

    /// Everything until the server closes.
    pub async fn rest(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf).to_vec();
        tokio::time::timeout(DEADLINE, self.stream.read_to_end(&mut out))
            .await
            .expect("server closes before the deadline")
            .expect("reads");
        out
    }
}

pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The crate's root, where the interoperability scripts and their installed libraries are.
fn crate_root() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `program args` succeeds from the crate's root (e.g. a client library is installed).
pub fn runs(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .current_dir(crate_root())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// Runs a foreign ESL client's check script, `program <script> <ip> <port> <password>`, from
/// the crate's root against `server`; panics unless it exits successfully. Its stdout.
pub async fn run_client_script(server: &Server, program: &str, script: &str) -> String {
    let child = tokio::process::Command::new(program)
        .arg(crate_root().join(script))
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string())
        .arg(PASSWORD)
        .current_dir(crate_root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program} does not run: {e}"));
    let output = tokio::time::timeout(DEADLINE * 2, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{script} does not finish"))
        .expect("its output is readable");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    eprintln!("{stdout}");
    stdout
}
