//! Starting the emulator's binaries (`skype-sim network`, `client`, `ctl`) from tests.
//! Tests start their own X servers on free display numbers and stop them when dropped.
//!
//! ```ignore
//! let net = SimNetwork::start();
//! let x = Xvfb::start();
//! let client = SimClient::start(&x.display, "user1", &net, &[]);
//! let call = net.ctl(&["call", "--from", "alice", "--to", "user1", "--tone", "440"]);
//! ```

use super::child_log::ChildLog;
use super::xvfb::Xvfb;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn sim_binary() -> &'static str {
    env!("CARGO_BIN_EXE_skype-sim")
}

/// A free loopback port (bound and released: tests accept the tiny race with other
/// processes). Never the same one twice in a test process: the kernel hands a just-released
/// port out again, and two of one stack's ports once came out equal.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A running `skype-sim network`, killed when dropped (unless attached to one another owns).
pub struct SimNetwork {
    pub addr: SocketAddr,
    child: Option<Child>,
    _log: Option<ChildLog>,
}

impl SimNetwork {
    /// Starts a network with test-friendly timings (short ring timeout and bot delays).
    pub fn start() -> SimNetwork {
        Self::start_with(TEST_TIMINGS)
    }

    /// Starts a test network on a given address (e.g. to bring one back after killing it).
    pub fn start_on(addr: &str) -> SimNetwork {
        let addr: SocketAddr = addr.parse().expect("bad address");
        for _ in 0..100 {
            if let Some(n) = Self::try_start(addr, TEST_TIMINGS) {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("skype-sim network did not start on {addr}");
    }

    /// A network someone else runs (and stops).
    pub fn attach(addr: SocketAddr) -> SimNetwork {
        SimNetwork {
            addr,
            child: None,
            _log: None,
        }
    }

    /// Starts a network with exactly these extra flags.
    pub fn start_with(args: &[&str]) -> SimNetwork {
        for _ in 0..5 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            if let Some(n) = Self::try_start(addr, args) {
                return n;
            }
        }
        panic!("skype-sim network did not start");
    }

    fn try_start(addr: SocketAddr, args: &[&str]) -> Option<SimNetwork> {
        let log = ChildLog::new(&format!("skype-sim network on {addr}"));
        let mut child = Command::new(sim_binary())
            .arg("network")
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.stdio())
            .spawn()
            .expect("cannot run skype-sim network");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return None; // lost the port race
            }
            if TcpStream::connect(addr).is_ok() {
                return Some(SimNetwork {
                    addr,
                    child: Some(child),
                    _log: Some(log),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

/// Short ring timeout and bot delays, so tests run quickly.
pub const TEST_TIMINGS: &[&str] = &[
    "--ring-timeout-ms",
    "3000",
    "--bot-answer-ms",
    "200",
    "--pstn-answer-ms",
    "600",
    "--routing-ms",
    "30",
    "--ringing-ms",
    "30",
];

impl SimNetwork {
    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    /// Runs `skype-sim ctl <args>`; the JSON it printed, or its stderr on failure.
    pub fn try_ctl(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let out = Command::new(sim_binary())
            .arg("ctl")
            .arg("--network")
            .arg(self.addr.to_string())
            .args(args)
            .output()
            .expect("cannot run skype-sim ctl");
        ctl_reply(out)
    }

    /// Runs `skype-sim ctl <args>` and panics unless it succeeded.
    pub fn ctl(&self, args: &[&str]) -> serde_json::Value {
        self.try_ctl(args)
            .unwrap_or_else(|e| panic!("skype-sim ctl {args:?} failed: {e}"))
    }

    /// `ctl` from async tests (does not block the runtime); panics unless it succeeded.
    pub async fn actl(&self, args: &[&str]) -> serde_json::Value {
        self.try_actl(args)
            .await
            .unwrap_or_else(|e| panic!("skype-sim ctl {args:?} failed: {e}"))
    }

    pub async fn try_actl(&self, args: &[&str]) -> Result<serde_json::Value, String> {
        let out = tokio::process::Command::new(sim_binary())
            .arg("ctl")
            .arg("--network")
            .arg(self.addr.to_string())
            .args(args)
            .output()
            .await
            .expect("cannot run skype-sim ctl");
        ctl_reply(out)
    }

    /// `ctl call <args>`: a remote party calls an account. The network's id of the call.
    pub async fn remote_call(&self, args: &[&str]) -> String {
        let call = [&["call"], args].concat();
        let placed = self.actl(&call).await;
        match placed["call"].as_u64() {
            Some(id) => id.to_string(),
            None => panic!("ctl {call:?} returned no call id: {placed}"),
        }
    }

    /// Waits until `pred` holds for `ctl <args>` (e.g. a call shows up in `calls`).
    pub fn wait_ctl(
        &self,
        args: &[&str],
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(v) = self.try_ctl(args) {
                if pred(&v) {
                    return v;
                }
                if Instant::now() > deadline {
                    panic!("ctl {args:?} never satisfied the condition; last {v}");
                }
            } else if Instant::now() > deadline {
                panic!("ctl {args:?} kept failing");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What `skype-sim ctl` printed: its JSON, or its stderr when it failed.
fn ctl_reply(out: std::process::Output) -> Result<serde_json::Value, String> {
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "ctl printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

impl Drop for SimNetwork {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh X server with a client logged in to `net` as `user`, and a controller that has
/// done the handshake. Bind them in this order so the controller goes first and the X server last.
pub async fn logged_in(net: &SimNetwork, user: &str) -> (Xvfb, SimClient, ApiController) {
    let x = Xvfb::start();
    let client = SimClient::start(&x.display, user, net, &[]);
    let mut api = ApiController::attach(&x.display).await;
    api.handshake(user).await;
    (x, client, api)
}

/// A running `skype-sim client`, killed when dropped.
pub struct SimClient {
    pub display: String,
    pub user: String,
    child: Child,
    _log: ChildLog,
}

impl SimClient {
    /// Starts a client and waits until it has published `_SKYPE_INSTANCE` on `display`.
    pub fn start(display: &str, user: &str, network: &SimNetwork, extra: &[&str]) -> SimClient {
        Self::start_with_network(display, user, &network.addr.to_string(), extra)
    }

    /// A client pointed at `network`, which may be an address where nothing listens (a
    /// client off the Skype network from the start).
    pub fn start_on_network(display: &str, user: &str, network: &str) -> SimClient {
        Self::start_with_network(display, user, network, &[])
    }

    fn start_with_network(display: &str, user: &str, network: &str, extra: &[&str]) -> SimClient {
        let log = ChildLog::new(&format!("skype-sim client {user} on {display}"));
        let child = Command::new(sim_binary())
            .args(["client", "--display", display, "--user", user, "--network"])
            .arg(network)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.stdio())
            .spawn()
            .expect("cannot run skype-sim client");
        let mut c = SimClient {
            display: display.to_string(),
            user: user.to_string(),
            child,
            _log: log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = c.child.try_wait() {
                panic!("skype-sim client exited early: {status}");
            }
            // A killed client leaves its property behind, and the X server may hand the next
            // client the same window id: wait for a property naming a window that exists.
            if skype_instance(display).is_some_and(|w| window_exists(display, w)) {
                return c;
            }
            if Instant::now() > deadline {
                panic!("skype-sim client never published _SKYPE_INSTANCE on {display}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit (e.g. after the `die` fault); its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stops the client as a crash would (SIGKILL): its `_SKYPE_INSTANCE` stays behind.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the client cleanly (SIGTERM): it withdraws `_SKYPE_INSTANCE` and exits.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            if self.wait_exit(Duration::from_secs(5)).is_none() {
                self.kill();
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for SimClient {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether `window` exists on `display`.
pub fn window_exists(display: &str, window: u32) -> bool {
    use x11rb::protocol::xproto::ConnectionExt;
    let Ok((conn, _)) = x11rb::connect(Some(display)) else {
        return false;
    };
    conn.get_window_attributes(window)
        .ok()
        .and_then(|c| c.reply().ok())
        .is_some()
}

/// The window id in the root property `_SKYPE_INSTANCE` of `display`, if set.
pub fn skype_instance(display: &str) -> Option<u32> {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{AtomEnum, ConnectionExt};
    let (conn, screen) = x11rb::connect(Some(display)).ok()?;
    let root = conn.setup().roots.get(screen)?.root;
    let atom = conn
        .intern_atom(true, b"_SKYPE_INSTANCE")
        .ok()?
        .reply()
        .ok()?
        .atom;
    if atom == 0 {
        return None;
    }
    let reply = conn
        .get_property(false, root, atom, AtomEnum::WINDOW, 0, 1)
        .ok()?
        .reply()
        .ok()?;
    if reply.format != 32 {
        return None;
    }
    let window = reply.value32()?.next();
    window
}

/// A minimal controller over X11 (the crate's controller link, no session logic): enough to
/// drive a `skype-sim client` the way the sidecar does and to see every message it sends.
pub struct ApiController {
    link: skypopen::skype::link::ControllerLink,
    stop: tokio_util::sync::CancellationToken,
    /// Every message received so far, in order.
    pub seen: Vec<String>,
}

pub const API_WAIT: Duration = Duration::from_secs(15);

impl ApiController {
    /// Links to the client on `display` and waits until it is found.
    pub async fn attach(display: &str) -> ApiController {
        use skypopen::skype::link::LinkEvent;
        let stop = tokio_util::sync::CancellationToken::new();
        let mut link = skypopen::skype::x11::spawn_controller_link(display, stop.clone());
        let deadline = tokio::time::Instant::now() + API_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, link.events.recv()).await {
                Ok(Some(LinkEvent::Attached { .. })) => break,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("controller link closed"),
                Err(_) => panic!("no Skype client found on {display}"),
            }
        }
        ApiController {
            link,
            stop,
            seen: Vec::new(),
        }
    }

    pub async fn send(&self, text: &str) {
        self.link
            .outgoing
            .send(text.to_string())
            .await
            .expect("controller link closed");
    }

    /// Waits for a message matching `pred` (everything received is kept in `seen`).
    pub async fn wait(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.try_wait(API_WAIT, pred)
            .await
            .unwrap_or_else(|| panic!("timed out waiting for {what}; seen {:?}", self.seen))
    }

    /// Like [`Self::wait`], but gives up quietly after `within`.
    pub async fn try_wait(
        &mut self,
        within: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        use skypopen::skype::link::LinkEvent;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.link.events.recv()).await {
                Ok(Some(LinkEvent::Message(text))) => {
                    self.seen.push(text.clone());
                    if pred(&text) {
                        return Some(text);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }

    pub async fn expect(&mut self, text: &str) {
        self.wait(text, |m| m == text).await;
    }

    /// Like [`Self::expect`], but also satisfied by a message already received (for
    /// notifications whose order relative to replies is not fixed).
    pub async fn expect_seen(&mut self, text: &str) {
        if !self.seen.iter().any(|m| m == text) {
            self.expect(text).await;
        }
    }

    /// NAME / PROTOCOL and the client's unsolicited attachment notifications.
    pub async fn handshake(&mut self, user: &str) {
        self.send("NAME skypopen").await;
        self.send("PROTOCOL 999").await;
        self.expect("OK").await;
        self.expect("PROTOCOL 8").await;
        self.expect(&format!("CURRENTUSERHANDLE {user}")).await;
        self.expect("USERSTATUS ONLINE").await;
        if !self.seen.iter().any(|m| m == "CONNSTATUS ONLINE") {
            self.expect("CONNSTATUS ONLINE").await;
        }
    }

    /// `CALL <target>`; the call id from the `UNPLACED` reply.
    pub async fn dial(&mut self, target: &str) -> u64 {
        self.send(&format!("CALL {target}")).await;
        let line = self
            .wait("UNPLACED", |m| {
                m.ends_with("STATUS UNPLACED") || m.starts_with("ERROR")
            })
            .await;
        call_id(&line).unwrap_or_else(|| panic!("no call placed: {line}"))
    }

    /// Waits for an incoming `CALL <id> STATUS RINGING`; its id.
    pub async fn ringing(&mut self) -> u64 {
        let line = self
            .wait("an incoming ring", |m| {
                m.starts_with("CALL ") && m.ends_with(" STATUS RINGING")
            })
            .await;
        call_id(&line).unwrap_or_else(|| panic!("bad ring line {line}"))
    }
}

impl Drop for ApiController {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The id in `CALL <id> ...` / `CHATMESSAGE <id> ...`.
pub fn call_id(line: &str) -> Option<u64> {
    line.split(' ').nth(1)?.parse().ok()
}

/// A call's two audio ports, opened as a controller opens them: bind, send the ALTERs, accept.
pub struct AudioPorts {
    /// We write here; the client reads it (what the remote party hears).
    pub to_client: tokio::net::TcpStream,
    /// We read here; the client writes it (what the remote party says).
    pub from_client: tokio::net::TcpStream,
}

impl AudioPorts {
    pub async fn open(api: &mut ApiController, call: u64) -> AudioPorts {
        let input = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let output = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let pin = input.local_addr().unwrap().port();
        let pout = output.local_addr().unwrap().port();
        api.send(&format!("ALTER CALL {call} SET_INPUT PORT=\"{pin}\""))
            .await;
        api.send(&format!(
            "#output ALTER CALL {call} SET_OUTPUT PORT=\"{pout}\""
        ))
        .await;
        api.expect(&format!("ALTER CALL {call} SET_INPUT PORT=\"{pin}\""))
            .await;
        api.expect(&format!(
            "#output ALTER CALL {call} SET_OUTPUT PORT=\"{pout}\""
        ))
        .await;
        let accept = async {
            let (a, _) = input.accept().await.unwrap();
            let (b, _) = output.accept().await.unwrap();
            (a, b)
        };
        let (to_client, from_client) = tokio::time::timeout(API_WAIT, accept)
            .await
            .expect("the client never connected its audio sockets");
        AudioPorts {
            to_client,
            from_client,
        }
    }

    /// Plays a tone for `frames` × 20 ms, paced, while recording the same span from the
    /// client; returns what was recorded.
    pub async fn tone_and_record(&mut self, hz: f64, frames: usize) -> Vec<i16> {
        use skypopen::media::dsp;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let AudioPorts {
            to_client,
            from_client,
        } = self;
        let play = async {
            let mut tone = dsp::Tone::new(hz, -10.0);
            let mut clock = tokio::time::interval(Duration::from_millis(20));
            for _ in 0..frames {
                clock.tick().await;
                let mut s = [0i16; dsp::SAMPLES_PER_FRAME];
                tone.mix_into(&mut s);
                let mut b = [0u8; dsp::BYTES_PER_FRAME];
                dsp::samples_to_le_bytes(&s, &mut b);
                to_client.write_all(&b).await.unwrap();
            }
        };
        let record = async {
            let mut buf = vec![0u8; frames * dsp::BYTES_PER_FRAME];
            from_client.read_exact(&mut buf).await.unwrap();
            let mut samples = Vec::new();
            dsp::samples_from_le_bytes(&buf, &mut samples);
            samples
        };
        let ((), samples) = tokio::join!(play, record);
        samples
    }

    /// Records `frames` × 20 ms from the client.
    pub async fn record(&mut self, frames: usize) -> Vec<i16> {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; frames * skypopen::media::dsp::BYTES_PER_FRAME];
        self.from_client.read_exact(&mut buf).await.unwrap();
        let mut samples = Vec::new();
        skypopen::media::dsp::samples_from_le_bytes(&buf, &mut samples);
        samples
    }
}
