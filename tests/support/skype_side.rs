//! The Skype side of a call-test stack, whatever plays FreeSWITCH: a `skype-sim network`,
//! one Xvfb and one `skype-sim client` per interface, and the real `skypopen` binary with a
//! generated configuration pointed at the switch's Event Socket. [`super::stack::Stack`] puts
//! the FreeSWITCH double in front of it, [`super::real_stack::RealStack`] a real FreeSWITCH.

use super::sim::{free_port, SimClient, SimNetwork};
use super::xvfb::Xvfb;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// Generous: the machine running the tests may be busy.
pub const WAIT: Duration = Duration::from_secs(30);

/// Peak level of the tone the FreeSWITCH side says, in dBFS (the emulator's parties use the
/// same level, so both directions can be compared with one number).
pub const TONE_DBFS: f64 = -10.0;

/// One interface of the stack.
#[derive(Clone, Debug)]
pub struct IfaceSpec {
    /// The `id`; its position (1, 2, ...) when `None`.
    pub id: Option<u32>,
    pub name: String,
    pub user: String,
    /// Extra `skype-sim client` flags.
    pub client_args: Vec<String>,
    /// Extra TOML lines for this `[[interface]]` table.
    pub toml: String,
}

impl IfaceSpec {
    pub fn new(name: &str, user: &str) -> IfaceSpec {
        IfaceSpec {
            id: None,
            name: name.into(),
            user: user.into(),
            client_args: Vec::new(),
            toml: String::new(),
        }
    }

    pub fn toml(mut self, lines: &str) -> IfaceSpec {
        self.toml.push_str(lines);
        self.toml.push('\n');
        self
    }
}

#[derive(Clone, Debug)]
pub struct StackSpec {
    pub interfaces: Vec<IfaceSpec>,
    /// Extra TOML for `[defaults]`.
    pub defaults: String,
    /// Extra TOML for `[switch]`.
    pub switch: String,
    /// Extra top-level TOML (e.g. a `[calls]` table).
    pub extra: String,
    /// `skype-sim network` flags instead of the test timings, when not empty.
    pub network_args: Vec<String>,
    pub media: Media,
    /// Where the sidecar sends incoming Skype calls (`[defaults] destination`).
    pub destination: String,
    /// Join this running `skype-sim network` instead of starting one (several sidecar hosts
    /// in one test share one Skype network).
    pub shared_network: Option<SocketAddr>,
    /// The sidecar's `[log] level`.
    pub log_level: String,
}

/// How call audio travels between the double's channels and the sidecar (`[switch] media`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    AudioFork,
    Unicast,
}

impl StackSpec {
    /// `interface<n>` logged in as each of `users`, in order.
    pub fn users(users: &[&str]) -> StackSpec {
        StackSpec {
            interfaces: users
                .iter()
                .enumerate()
                .map(|(i, u)| IfaceSpec::new(&format!("interface{}", i + 1), u))
                .collect(),
            defaults: String::new(),
            // Named, not left to the default: the tests choose their transport.
            switch: "media = \"audio_fork\"\n".into(),
            extra: String::new(),
            network_args: Vec::new(),
            media: Media::AudioFork,
            destination: "5000".into(),
            log_level: "info,skypopen=debug".into(),
            shared_network: None,
        }
    }

    /// `count` interfaces logged in as user1 … user7 in turn (several clients of one account,
    /// as the benchmarks need more interfaces than there are accounts).
    pub fn interfaces(count: usize) -> StackSpec {
        let users: Vec<String> = (0..count).map(|i| format!("user{}", 1 + i % 7)).collect();
        let refs: Vec<&str> = users.iter().map(String::as_str).collect();
        StackSpec::users(&refs)
    }

    pub fn media(mut self, media: Media) -> StackSpec {
        if media == Media::Unicast {
            self.switch = self
                .switch
                .replace("media = \"audio_fork\"", "media = \"unicast\"");
        }
        self.media = media;
        self
    }
}

pub struct SkypeSide {
    pub net: SimNetwork,
    pub displays: Vec<Xvfb>,
    pub clients: Vec<Option<SimClient>>,
    pub spec: StackSpec,
    /// Where the switch's `socket` connects (the sidecar's acceptor).
    pub outbound: SocketAddr,
    pub listener: SocketAddr,
    /// The switch's inbound Event Socket, as the sidecar's configuration names it.
    pub esl: SocketAddr,
    sidecar: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl SkypeSide {
    /// Starts the network, the clients and the sidecar against the switch at `esl`; returns
    /// once every interface is IDLE.
    /// `outbound` is the sidecar's `socket` acceptor, chosen by the caller so a switch's
    /// dialplan can name it before the sidecar runs.
    pub async fn start(spec: StackSpec, esl: SocketAddr, outbound: SocketAddr) -> SkypeSide {
        let net_args: Vec<&str> = if spec.network_args.is_empty() {
            super::sim::TEST_TIMINGS.to_vec()
        } else {
            spec.network_args.iter().map(String::as_str).collect()
        };
        let net = match spec.shared_network {
            Some(addr) => SimNetwork::attach(addr),
            None => SimNetwork::start_with(&net_args),
        };
        let mut displays = Vec::new();
        let mut clients = Vec::new();
        for iface in &spec.interfaces {
            let x = Xvfb::start();
            let args: Vec<&str> = iface.client_args.iter().map(String::as_str).collect();
            clients.push(Some(SimClient::start(&x.display, &iface.user, &net, &args)));
            displays.push(x);
        }
        let mut side = SkypeSide {
            net,
            displays,
            clients,
            spec,
            outbound,
            listener: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
            esl,
            sidecar: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        side.start_sidecar();
        side.wait_all_idle().await;
        side
    }

    fn config_text(&self) -> String {
        let media_port = free_port();
        // Below the kernel's ephemeral range, and spread so parallel stacks rarely collide
        // (the allocator skips ports in use anyway).
        let base = 20_000 + (std::process::id() % 40) as u16 * 200 + (free_port() % 5) * 40;
        let mut text = format!(
            "[switch]\nesl = \"{esl}\"\npassword = \"ClueCon\"\noutbound_listen = \"{outbound}\"\n\
             media_listen = \"127.0.0.1:{media_port}\"\nmedia_url = \"ws://127.0.0.1:{media_port}\"\n{switch}\n\
             [listener]\nlisten = \"{listener}\"\npassword = \"ClueCon\"\nallow = [\"127.0.0.0/8\"]\n\n\
             [clients]\nkind = \"sim\"\nmanage = false\nnetwork = \"{net}\"\naudio_ports = \"{lo}-{hi}\"\n\n\
             [state]\ndir = \"{state}\"\n\n[log]\nformat = \"text\"\nlevel = \"{log_level}\"\n\n\
             [defaults]\ndialplan = \"XML\"\ncontext = \"default\"\ndestination = \"{destination}\"\n\
             write_silence_when_idle = true\nsetsockopt = true\n{defaults}\n\n{extra}\n",
            esl = self.esl,
            outbound = self.outbound,
            switch = self.spec.switch,
            listener = self.listener,
            net = self.net.addr,
            lo = base,
            hi = base + 199,
            state = self.dir.path().join("state").display(),
            destination = self.spec.destination,
            defaults = self.spec.defaults,
            extra = self.spec.extra,
            log_level = self.spec.log_level,
        );
        for (i, iface) in self.spec.interfaces.iter().enumerate() {
            text.push_str(&format!(
                "\n[[interface]]\nid = {}\nname = \"{}\"\nx11_display = \"{}\"\nskype_user = \"{}\"\n{}",
                iface.id.unwrap_or(i as u32 + 1),
                iface.name,
                self.displays[i].display,
                iface.user,
                iface.toml
            ));
        }
        text
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sidecar.log")
    }

    fn start_sidecar(&mut self) {
        let config = self.dir.path().join("skypopen.toml");
        std::fs::write(&config, self.config_text()).expect("write config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_skypopen"))
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("cannot run skypopen");
        self.sidecar = Some(child);
    }

    pub fn sidecar_pid(&self) -> u32 {
        self.sidecar.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `api <command>` on the sidecar's listener; the response body.
    pub async fn api(&self, command: &str) -> String {
        tokio::time::timeout(WAIT, listener_api(self.listener, command))
            .await
            .unwrap_or_else(|_| panic!("listener did not answer `{command}` in time"))
            .unwrap_or_else(|e| panic!("listener api `{command}`: {e}"))
    }

    pub async fn try_api(&self, command: &str) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(5), listener_api(self.listener, command))
            .await
            .ok()?
            .ok()
    }

    /// `sk list`, parsed.
    pub async fn interfaces(&self) -> Vec<Row> {
        parse_list(&self.api("sk list").await)
    }

    /// Waits until `pred` holds for `sk list`; panics (with the log) after [`WAIT`].
    pub async fn wait_list(&self, what: &str, pred: impl Fn(&[Row]) -> bool) -> Vec<Row> {
        let deadline = Instant::now() + WAIT;
        let mut last = Vec::new();
        loop {
            if let Some(text) = self.try_api("sk list").await {
                last = parse_list(&text);
                if pred(&last) {
                    return last;
                }
            }
            if Instant::now() > deadline {
                panic!("sk list never showed {what}; last {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_all_idle(&self) -> Vec<Row> {
        let n = self.spec.interfaces.len();
        self.wait_list("every interface IDLE", |rows| {
            rows.len() == n && rows.iter().all(|r| r.state == "IDLE")
        })
        .await
    }

    pub async fn wait_idle(&self, name: &str) -> Row {
        let rows = self
            .wait_list(&format!("{name} IDLE"), |rows| {
                rows.iter().any(|r| r.name == name && r.state == "IDLE")
            })
            .await;
        rows.into_iter().find(|r| r.name == name).unwrap()
    }

    /// Number of live calls `sk calls` reports.
    pub async fn live_calls(&self) -> usize {
        let text = self.api("sk calls").await;
        text.lines()
            .find_map(|l| l.strip_prefix("Total calls: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no total in sk calls: {text}"))
    }

    pub async fn wait_no_calls(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.live_calls().await == 0 {
                return;
            }
            if Instant::now() > deadline {
                panic!("calls still live: {}", self.api("sk calls").await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `ctl heard <party>` satisfies `done`; `what` words the failure.
    pub async fn wait_heard(
        &self,
        party: &str,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let heard = self.net.actl(&["heard", party]).await;
            if done(&heard) {
                return heard;
            }
            assert!(Instant::now() < deadline, "{party}: {what}: {heard}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `party` has heard a second of audio on its call; what it heard.
    pub async fn heard_audio(&self, party: &str) -> serde_json::Value {
        self.wait_heard(party, "heard nothing", |h| {
            h["active_seconds"].as_f64().unwrap_or(0.0) >= 1.0
        })
        .await
    }

    /// Waits until `party` has received exactly `digits` as signalled DTMF.
    pub async fn heard_signalled(&self, party: &str, digits: &str) -> serde_json::Value {
        self.wait_heard(party, &format!("never got DTMF {digits}"), |h| {
            h["dtmf_signalled"].as_str() == Some(digits)
        })
        .await
    }

    /// Waits until the emulated Skype network has no call left (it ends its side of a call
    /// a moment after the sidecar is idle again).
    pub async fn wait_network_idle(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let calls = self.net.actl(&["calls"]).await;
            if calls["calls"].as_array().is_some_and(|c| c.is_empty()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the network still has calls: {calls}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `sk contacts <interface>` has a row starting with `row` (e.g.
    /// `"alice\tONLINE"`).
    pub async fn wait_contact(&self, interface: &str, row: &str) {
        let deadline = Instant::now() + WAIT;
        let needle = format!("\n{row}");
        loop {
            let table = self.api(&format!("sk contacts {interface}")).await;
            if table.contains(&needle) {
                return;
            }
            if Instant::now() > deadline {
                panic!("{interface} never listed {row:?}:\n{table}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `party`'s inbox on the emulated network holds a message with `body`;
    /// returns it.
    pub async fn wait_inbox(&self, party: &str, body: &str) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let inbox = self.net.actl(&["inbox", party]).await;
            if let Some(found) = inbox["messages"]
                .as_array()
                .and_then(|m| m.iter().find(|m| m["body"] == body))
            {
                return found.clone();
            }
            if Instant::now() > deadline {
                panic!("{party} never received {body:?}; inbox {inbox}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the client of interface `index` (0-based) as a crash would.
    pub fn kill_client(&mut self, index: usize) {
        if let Some(mut c) = self.clients[index].take() {
            c.kill();
        }
    }

    /// Starts the client of interface `index` again (after [`Self::kill_client`]).
    pub fn restart_client(&mut self, index: usize) {
        let iface = &self.spec.interfaces[index];
        let args: Vec<&str> = iface.client_args.iter().map(String::as_str).collect();
        self.clients[index] = Some(SimClient::start(
            &self.displays[index].display,
            &iface.user,
            &self.net,
            &args,
        ));
    }

    /// Sends SIGTERM to the sidecar and returns at once.
    pub fn sigterm_sidecar(&self) {
        if let Some(child) = &self.sidecar {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
    }

    /// Waits up to `within` for the sidecar to exit: its exit status, or `None` when it was
    /// still running (it is killed then).
    pub async fn wait_sidecar_exit(
        &mut self,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let mut child = self.sidecar.take()?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Starts the sidecar again (after it stopped) and waits for every interface to be IDLE.
    pub async fn restart_sidecar(&mut self) {
        self.start_sidecar();
        self.wait_all_idle().await;
    }

    /// SIGKILL: no drain, no cleanup, as a crash or the OOM killer would.
    pub fn kill_sidecar(&mut self) {
        if let Some(mut child) = self.sidecar.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the sidecar again on the same configuration (after a stop or a kill) and
    /// returns at once.
    pub fn spawn_sidecar(&mut self) {
        assert!(self.sidecar.is_none(), "the sidecar is still running");
        self.start_sidecar();
    }

    pub fn stop_sidecar(&mut self) {
        if let Some(mut child) = self.sidecar.take() {
            // SAFETY: kill(2) on our own child.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(8);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SkypeSide {
    fn drop(&mut self) {
        self.stop_sidecar();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(400);
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "---- sidecar log (last {} lines) ----",
                lines.len() - from
            );
            for line in &lines[from..] {
                let _ = writeln!(err, "{line}");
            }
            let _ = writeln!(err, "---- end of sidecar log ----");
        }
    }
}

/// One row of `sk list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub next: bool,
    pub id: u32,
    pub name: String,
    pub ib_failed: u32,
    pub ib_total: u32,
    pub ob_failed: u32,
    pub ob_total: u32,
    pub state: String,
    pub callflow: String,
    pub uuid: String,
}

pub fn parse_list(text: &str) -> Vec<Row> {
    let pair = |s: &str| -> (u32, u32) {
        let (f, t) = s.trim().split_once('/').unwrap_or(("0", "0"));
        (f.parse().unwrap_or(0), t.parse().unwrap_or(0))
    };
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() < 6 || !fields[1].starts_with('[') {
                return None;
            }
            let head = fields[0];
            let id = head.get(2..)?.trim().parse().ok()?;
            let (ib_failed, ib_total) = pair(fields[2]);
            let (ob_failed, ob_total) = pair(fields[3]);
            Some(Row {
                next: head.starts_with('*'),
                id,
                name: fields[1].trim_matches(['[', ']']).trim().to_string(),
                ib_failed,
                ib_total,
                ob_failed,
                ob_total,
                state: fields[4].to_string(),
                callflow: fields[5].to_string(),
                uuid: fields.get(6).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// One ESL message as sent: header pairs (not URL-decoded) and the raw body.
pub async fn read_message(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> std::io::Result<(Vec<(String, String)>, Vec<u8>)> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if headers.is_empty() {
                continue;
            }
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    Ok((headers, body))
}

async fn listener_api(addr: SocketAddr, command: &str) -> std::io::Result<String> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    read_message(&mut reader).await?; // auth/request
    write.write_all(b"auth ClueCon\n\n").await?;
    let (headers, _) = read_message(&mut reader).await?;
    if !headers
        .iter()
        .any(|(k, v)| k == "Reply-Text" && v.starts_with("+OK"))
    {
        return Err(std::io::Error::other(format!("auth refused: {headers:?}")));
    }
    write
        .write_all(format!("api {command}\n\n").as_bytes())
        .await?;
    loop {
        let (headers, body) = read_message(&mut reader).await?;
        if headers
            .iter()
            .any(|(k, v)| k == "Content-Type" && v == "api/response")
        {
            let _ = write.write_all(b"exit\n\n").await;
            return Ok(String::from_utf8_lossy(&body).into_owned());
        }
    }
}

/// Dominant frequency and level of the active part of `samples`.
pub fn measure(samples: &[i16]) -> (f64, f64) {
    let s = skypopen::media::dsp::summarize(samples);
    (s.frequency_hz.unwrap_or(0.0), s.rms_dbfs)
}

/// Share of the energy of `samples` (at `rate` Hz) in the `hz` bin (Goertzel), 0..1.
pub fn energy_share(samples: &[i16], rate: u32, hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let total: f64 = samples.iter().map(|&x| f64::from(x).powi(2)).sum();
    if total == 0.0 {
        return 0.0;
    }
    2.0 * power / (samples.len() as f64 * total)
}

/// Asserts a tone of `hz` (within 2 %) at the level of [`TONE_DBFS`] (within 3 dB).
pub fn assert_tone(what: &str, samples: &[i16], hz: f64) {
    let (f, level) = measure(samples);
    let expected_level = TONE_DBFS - 3.01;
    assert!(
        (f - hz).abs() / hz <= 0.02,
        "{what}: dominant frequency {f:.1} Hz, expected {hz} Hz"
    );
    assert!(
        (level - expected_level).abs() <= 3.0,
        "{what}: level {level:.1} dBFS, expected {expected_level:.1} dBFS"
    );
}

/// Asserts `ctl heard <party>` reports a tone of `hz` (within 2 %) at the test level.
pub fn assert_heard(heard: &serde_json::Value, hz: f64) {
    let f = heard["frequency_hz"].as_f64().unwrap_or(0.0);
    let level = heard["rms_dbfs"].as_f64().unwrap_or(-120.0);
    let expected_level = TONE_DBFS - 3.01;
    assert!(
        (f - hz).abs() / hz <= 0.02,
        "heard {f:.1} Hz, expected {hz} Hz: {heard}"
    );
    assert!(
        (level - expected_level).abs() <= 3.0,
        "heard at {level:.1} dBFS, expected {expected_level:.1}: {heard}"
    );
}

/// `samples` at `rate` as 16 kHz, converted (for an 8 kHz unicast leg) with the sidecar's own
/// resampler, which its unit tests hold to its figures.
pub fn at_16k(samples: Vec<i16>, rate: u32) -> Vec<i16> {
    if rate == 16_000 {
        return samples;
    }
    let mut up =
        skypopen::media::resample::Resampler::new(rate, 16_000).expect("a unicast leg has a rate");
    let mut out = Vec::with_capacity(samples.len() * 16_000 / rate as usize);
    up.process(&samples, &mut out);
    out
}
