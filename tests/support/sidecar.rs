//! The real `skypopen` binary on a generated configuration: embedded `skype-sim` network,
//! supervised emulated clients on fresh X displays, free ports everywhere, and a raw
//! fs_cli-style client of its listener.

use super::sim::free_port;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub const PASSWORD: &str = "s3cret-for-tests";

static NEXT_DISPLAY: AtomicU32 = AtomicU32::new(0);

/// An X display number nobody uses, distinct within this test process.
fn free_display() -> u32 {
    let base = 300 + (std::process::id() % 150) * 4;
    loop {
        let n = base + NEXT_DISPLAY.fetch_add(1, Ordering::Relaxed) % 600;
        if !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        {
            return n;
        }
    }
}

pub struct Sidecar {
    child: Child,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub listener: SocketAddr,
    /// Where FreeSWITCH's `socket` application would connect.
    pub outbound: SocketAddr,
    /// The audio fork websocket server.
    pub media: SocketAddr,
    pub log: PathBuf,
}

impl Sidecar {
    /// `interfaces`: (name, skype_user) pairs; ids are 1, 2, ...
    pub fn start(interfaces: &[(&str, &str)]) -> Sidecar {
        Self::start_with_env(interfaces, &[])
    }

    /// With these extra environment variables (e.g. `SKYPOPEN__LOG__FORMAT=json`).
    pub fn start_with_env(interfaces: &[(&str, &str)], env: &[(&str, &str)]) -> Sidecar {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let outbound: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let media_port = free_port();
        let mut toml = format!(
            r#"[switch]
esl = "127.0.0.1:{esl}"
outbound_listen = "{outbound}"
media_listen = "127.0.0.1:{media_port}"
media_url = "ws://127.0.0.1:{media_port}"
unicast_ports = "16000-19999"
[listener]
listen = "{listener}"
password = "{PASSWORD}"
[clients]
manage = true
network = "embedded"
network_listen = "127.0.0.1:{network}"
sim_binary = "{sim}"
# Below the kernel's ephemeral range, where free_port() finds the service ports.
audio_ports = "12000-15999"
[state]
dir = "{state}"
[log]
level = "info,skypopen=debug"
[cluster]
host = "sidecar-test"
"#,
            esl = free_port(),
            network = free_port(),
            sim = env!("CARGO_BIN_EXE_skype-sim"),
            state = dir.path().join("state").display(),
        );
        for (i, (name, user)) in interfaces.iter().enumerate() {
            toml.push_str(&format!(
                "[[interface]]\nid = {}\nname = \"{name}\"\nx11_display = \":{}\"\nskype_user = \"{user}\"\n",
                i + 1,
                free_display()
            ));
        }
        let config = dir.path().join("skypopen.toml");
        std::fs::write(&config, toml).expect("config written");
        let log = dir.path().join("skypopen.log");
        let child = Command::new(env!("CARGO_BIN_EXE_skypopen"))
            .arg("--config")
            .arg(&config)
            .arg("run")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("skypopen starts");
        Sidecar {
            child,
            dir,
            config,
            listener,
            outbound,
            media: ([127, 0, 0, 1], media_port).into(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `api <command>` through the listener and returns the body.
    pub async fn api(&self, command: &str) -> String {
        let mut conn = EslConn::login(self.listener, PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("listener login failed: {e}\n{}", self.log_text()));
        conn.api(command).await
    }

    /// Waits until `sk list` shows `count` interfaces IDLE.
    pub async fn wait_idle(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(mut conn) = EslConn::login(self.listener, PASSWORD).await {
                let list = conn.api("sk list").await;
                let idle = list
                    .lines()
                    .filter(|row| row.split('\t').nth(4) == Some("IDLE"))
                    .count();
                if idle >= count {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "interfaces not idle in time; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        // SIGTERM: the sidecar stops the clients, X servers and network it started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw Event Socket client, exchanging bytes as fs_cli does.
pub struct EslConn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl EslConn {
    pub async fn login(addr: SocketAddr, password: &str) -> std::io::Result<EslConn> {
        let stream = TcpStream::connect(addr).await?;
        let (read, writer) = stream.into_split();
        let mut conn = EslConn {
            reader: BufReader::new(read),
            writer,
        };
        let (greeting, _) = conn.read_message().await?;
        if !greeting.contains("Content-Type: auth/request") {
            return Err(std::io::Error::other(format!("greeting {greeting:?}")));
        }
        conn.send(&format!("auth {password}\n\n")).await?;
        let (reply, _) = conn.read_message().await?;
        if !reply.contains("Reply-Text: +OK accepted") {
            return Err(std::io::Error::other(format!("auth reply {reply:?}")));
        }
        Ok(conn)
    }

    pub async fn send(&mut self, bytes: &str) -> std::io::Result<()> {
        self.writer.write_all(bytes.as_bytes()).await
    }

    /// One message: the header block and its body (if it has a Content-Length).
    pub async fn read_message(&mut self) -> std::io::Result<(String, String)> {
        let mut headers = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line == "\n" {
                if headers.is_empty() {
                    continue;
                }
                break;
            }
            headers.push_str(&line);
        }
        let length = headers
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).await?;
        Ok((headers, String::from_utf8_lossy(&body).into_owned()))
    }

    pub async fn api(&mut self, command: &str) -> String {
        self.send(&format!("api {command}\n\n"))
            .await
            .expect("api sent");
        loop {
            let (headers, body) = self.read_message().await.expect("api reply");
            if headers.contains("Content-Type: api/response") {
                return body;
            }
        }
    }
}
