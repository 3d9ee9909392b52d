//! A real FreeSWITCH for the tests: found through `SKYPOPEN_FREESWITCH` (an installation prefix)
//! or the usual source-build prefix, run as a throw-away instance on free
//! ports with a copy of its configuration in a temporary folder, the project's `dialplan/` files
//! installed as they ship (only the sidecar's address rewritten to this instance's), and killed
//! with its folder when dropped, so it never meets a switch already running on the machine.

use super::sim::free_port;
use super::skype_side::Media;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWriteExt, BufReader};

/// Where a FreeSWITCH built from source installs by default.
pub const DEFAULT_PREFIX: &str = "/usr/local/freeswitch";

/// Modules the suite needs besides the vanilla set.
const NEEDED_MODULES: &[&str] = &[
    "mod_event_socket",
    "mod_loopback",
    "mod_audio_fork",
    "mod_sofia",
    "mod_tone_stream",
    "mod_sndfile",
    "mod_commands",
    "mod_dptools",
    "mod_dialplan_xml",
];

/// The prefix of the FreeSWITCH to test against, or why there is none. `scripts/test.sh`
/// applies the same rule for its summary line.
pub fn locate() -> Result<PathBuf, String> {
    let (prefix, source) = match std::env::var_os("SKYPOPEN_FREESWITCH") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), "SKYPOPEN_FREESWITCH"),
        _ => (PathBuf::from(DEFAULT_PREFIX), "the default prefix"),
    };
    if !prefix.join("bin/freeswitch").is_file() {
        return Err(format!(
            "no bin/freeswitch under {} ({source}); install FreeSWITCH 1.10.12 there \
             or set SKYPOPEN_FREESWITCH to its prefix",
            prefix.display()
        ));
    }
    let mods = prefix.join("lib/freeswitch/mod");
    let missing: Vec<&str> = NEEDED_MODULES
        .iter()
        .copied()
        .filter(|m| !mods.join(format!("{m}.so")).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(format!("{} lacks {}", prefix.display(), missing.join(", ")));
    }
    Ok(prefix)
}

/// The prefix, or `None` after saying in one line why `test` does not run. The line goes
/// straight to the standard error stream, past the test harness's capture, so a skipped
/// test is seen in every run, not only in failing ones.
pub fn available(test: &str) -> Option<PathBuf> {
    match locate() {
        Ok(prefix) => Some(prefix),
        Err(why) => {
            let line = format!("real FreeSWITCH suite: {test} not run ({why})\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            None
        }
    }
}

/// What a test wants of its switch.
pub struct SwitchSpec {
    /// The sidecar's `socket` address, put where the shipped dialplan says 127.0.0.1:8084.
    pub outbound: SocketAddr,
    /// Which variant of `dialplan/default/` is installed.
    pub media: Media,
    /// Load mod_sofia (two profiles on free loopback ports); off, start-up is faster.
    pub sofia: bool,
    /// Extra files: (path under the configuration folder, contents); `@INTERNAL_SIP_PORT@`
    /// in them becomes the internal profile's port, chosen at start.
    pub files: Vec<(String, String)>,
    /// `<X-PRE-PROCESS cmd="set">` lines added to vars.xml.
    pub vars: Vec<(String, String)>,
}

impl SwitchSpec {
    pub fn new(outbound: SocketAddr, media: Media) -> SwitchSpec {
        SwitchSpec {
            outbound,
            media,
            sofia: false,
            files: Vec::new(),
            vars: Vec::new(),
        }
    }
}

pub struct RealSwitch {
    child: Child,
    pub prefix: PathBuf,
    pub dir: tempfile::TempDir,
    pub esl: SocketAddr,
    /// Where `record_session` writes (the instance's recordings folder).
    pub recordings: PathBuf,
    /// The internal sofia profile's SIP port (the stand-in registrar), when sofia is loaded.
    pub internal_sip: u16,
    pub events: EventLog,
}

const PASSWORD: &str = "ClueCon";

impl RealSwitch {
    pub async fn start(prefix: &Path, spec: SwitchSpec) -> RealSwitch {
        // SKYPOPEN_KEEP_SWITCH=1 keeps the instance's folder (configuration, log) to look at.
        let dir = tempfile::Builder::new()
            .prefix("real-fs-")
            .disable_cleanup(std::env::var_os("SKYPOPEN_KEEP_SWITCH").is_some())
            .tempdir()
            .expect("temp dir");
        let conf = dir.path().join("conf");
        copy_tree(&prefix.join("etc/freeswitch"), &conf).expect("copy the configuration");
        for sub in ["log", "db", "run", "temp", "recordings", "storage", "cache"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("instance folder");
        }
        let esl_port = free_port();
        let (internal_sip, external_sip) = (free_port(), free_port());
        edit(&conf.join("autoload_configs/event_socket.conf.xml"), |s| {
            s.replace(
                r#"name="listen-port" value="8021""#,
                &format!(r#"name="listen-port" value="{esl_port}""#),
            )
            .replace(
                r#"name="listen-ip" value="::""#,
                r#"name="listen-ip" value="127.0.0.1""#,
            )
        });
        edit(&conf.join("autoload_configs/modules.conf.xml"), |s| {
            let s = s.replace("<load module=\"mod_console\"/>", "");
            if spec.sofia {
                s
            } else {
                s.replace("<load module=\"mod_sofia\"/>", "")
            }
        });
        // RTP on a range of its own, away from the sidecar's audio and unicast ports.
        let rtp = 49_000 + (std::process::id() % 20) as u16 * 50;
        edit(&conf.join("autoload_configs/switch.conf.xml"), |s| {
            s.replace(
                r#"<!-- <param name="rtp-start-port" value="16384"/> -->"#,
                &format!(r#"<param name="rtp-start-port" value="{rtp}"/>"#),
            )
            .replace(
                r#"<!-- <param name="rtp-end-port" value="32768"/> -->"#,
                &format!(r#"<param name="rtp-end-port" value="{}"/>"#, rtp + 49),
            )
        });
        // Everything on loopback: the tests send nothing to any other address.
        let mut vars = vec![
            ("local_ip_v4".to_string(), "127.0.0.1".to_string()),
            ("internal_sip_port".into(), internal_sip.to_string()),
            ("external_sip_port".into(), external_sip.to_string()),
            ("internal_tls_port".into(), free_port().to_string()),
            ("external_tls_port".into(), free_port().to_string()),
        ];
        vars.extend(spec.vars.iter().cloned());
        edit(&conf.join("vars.xml"), |s| {
            let mut out = String::new();
            for line in s.lines() {
                let overridden = vars.iter().any(|(k, _)| {
                    line.contains(&format!("data=\"{k}=")) && line.contains("X-PRE-PROCESS")
                });
                if !overridden {
                    out.push_str(line);
                    out.push('\n');
                }
                if line.trim_start().starts_with("<include>") {
                    for (k, v) in &vars {
                        out.push_str(&format!(
                            "  <X-PRE-PROCESS cmd=\"set\" data=\"{k}={v}\"/>\n"
                        ));
                    }
                }
            }
            out
        });
        for v6 in ["internal-ipv6.xml", "external-ipv6.xml"] {
            let _ = std::fs::remove_file(conf.join("sip_profiles").join(v6));
        }
        install_dialplans(&conf, &spec);
        for (path, text) in &spec.files {
            let path = conf.join(path);
            std::fs::create_dir_all(path.parent().expect("a file has a folder"))
                .expect("config folder");
            let text = text.replace("@INTERNAL_SIP_PORT@", &internal_sip.to_string());
            std::fs::write(path, text).expect("config file");
        }
        let recordings = dir.path().join("recordings");
        let arg = |sub: &str| dir.path().join(sub);
        let child = Command::new(prefix.join("bin/freeswitch"))
            .args(["-nf", "-nc", "-nonat"])
            .arg("-conf")
            .arg(&conf)
            .arg("-log")
            .arg(arg("log"))
            .arg("-db")
            .arg(arg("db"))
            .arg("-run")
            .arg(arg("run"))
            .arg("-temp")
            .arg(arg("temp"))
            .arg("-recordings")
            .arg(&recordings)
            .arg("-storage")
            .arg(arg("storage"))
            .arg("-cache")
            .arg(arg("cache"))
            // A script a test installs stays in its own switch, not in the shared build.
            .arg("-scripts")
            .arg(arg("scripts"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("FreeSWITCH starts");
        let esl: SocketAddr = format!("127.0.0.1:{esl_port}").parse().unwrap();
        let mut switch = RealSwitch {
            child,
            prefix: prefix.to_path_buf(),
            dir,
            esl,
            recordings,
            internal_sip,
            events: EventLog::default(),
        };
        switch.wait_ready().await;
        switch.events = EventLog::subscribe(esl).await;
        switch
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "FreeSWITCH exited at start-up ({status}); log:\n{}",
                    self.log()
                );
            }
            if let Ok(text) = esl_api(self.esl, "status").await {
                if text.contains("is ready") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "FreeSWITCH not ready in 30 s; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `api <command>` on the switch's Event Socket; the reply body.
    pub async fn api(&self, command: &str) -> String {
        tokio::time::timeout(Duration::from_secs(30), esl_api(self.esl, command))
            .await
            .unwrap_or_else(|_| panic!("FreeSWITCH did not answer `{command}` in 30 s"))
            .unwrap_or_else(|e| panic!("FreeSWITCH api `{command}`: {e}"))
    }

    /// `bgapi <command>`: the Job-UUID; the result comes as a BACKGROUND_JOB event.
    pub async fn bgapi(&self, command: &str) -> String {
        let mut conn = EslClient::login(self.esl).await.expect("ESL login");
        let (headers, _) = conn
            .command(&format!("bgapi {command}"))
            .await
            .expect("bgapi reply");
        header(&headers, "Job-UUID")
            .unwrap_or_else(|| panic!("bgapi `{command}` got no Job-UUID: {headers:?}"))
            .to_string()
    }

    /// `sendevent <name>` with `headers` (and a body when not empty); the reply text.
    pub async fn sendevent(&self, name: &str, headers: &[(&str, &str)], body: &str) -> String {
        let mut conn = EslClient::login(self.esl).await.expect("ESL login");
        let mut text = format!("sendevent {name}\n");
        for (k, v) in headers {
            text.push_str(&format!("{k}: {v}\n"));
        }
        if !body.is_empty() {
            text.push_str(&format!("Content-Length: {}\n\n{body}", body.len()));
        } else {
            text.push('\n');
        }
        conn.writer
            .write_all(text.as_bytes())
            .await
            .expect("sendevent sent");
        let (headers, _) = super::skype_side::read_message(&mut conn.reader)
            .await
            .expect("sendevent reply");
        header(&headers, "Reply-Text")
            .unwrap_or_default()
            .to_string()
    }

    /// `sendmsg <uuid>` with `headers` (e.g. `call-command: unicast`); the reply text.
    pub async fn sendmsg(&self, uuid: &str, headers: &[(&str, &str)]) -> String {
        let mut conn = EslClient::login(self.esl).await.expect("ESL login");
        let mut text = format!("sendmsg {uuid}");
        for (k, v) in headers {
            text.push_str(&format!("\n{k}: {v}"));
        }
        let (headers, _) = conn.command(&text).await.expect("sendmsg reply");
        header(&headers, "Reply-Text")
            .unwrap_or_default()
            .to_string()
    }

    pub fn log(&self) -> String {
        let path = self.dir.path().join("log/freeswitch.log");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let lines: Vec<&str> = lines.into_iter().filter(|l| !l.starts_with('|')).collect();
        lines[lines.len().saturating_sub(300)..].join("\n")
    }

    /// Runs the real `fs_cli` of this prefix: `-x <command>` against `addr`.
    pub fn fs_cli(&self, addr: SocketAddr, password: &str, command: &str) -> (bool, String) {
        let out = Command::new(self.prefix.join("bin/fs_cli"))
            .args(["-H", &addr.ip().to_string(), "-P", &addr.port().to_string()])
            .args(["-p", password, "-x", command])
            .stdin(Stdio::null())
            .output()
            .expect("fs_cli runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for RealSwitch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- FreeSWITCH log (tail) ----\n{}\n---- end ----",
                self.log()
            );
        }
        // Nothing in a test's switch needs a clean shutdown, and SIGTERM takes seconds.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn edit(path: &Path, change: impl FnOnce(String) -> String) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::write(path, change(text)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The repository's dialplan files, as they ship but for the sidecar's address.
fn install_dialplans(conf: &Path, spec: &SwitchSpec) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplan");
    let chosen = match spec.media {
        Media::AudioFork => "00_skypopen_audio_fork.xml",
        Media::Unicast => "00_skypopen_unicast.xml",
    };
    for (context, files) in [
        ("default", vec![chosen, "01_skype.xml"]),
        ("public", vec!["00_skypopen_inbound.xml", "01_skype.xml"]),
    ] {
        for file in files {
            let text = std::fs::read_to_string(repo.join(context).join(file))
                .unwrap_or_else(|e| panic!("dialplan/{context}/{file}: {e}"));
            let text = text.replace("127.0.0.1:8084", &spec.outbound.to_string());
            std::fs::write(conf.join("dialplan").join(context).join(file), text)
                .expect("dialplan installed");
        }
    }
}

/// One event as FreeSWITCH sent it in plain form: URL-decoded headers and the body.
#[derive(Clone, Debug)]
pub struct FsEvent {
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl FsEvent {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn name(&self) -> &str {
        self.get("Event-Name").unwrap_or("")
    }
}

/// Every event of the switch since the test started, collected by one `event plain ALL`
/// connection.
#[derive(Clone, Default)]
pub struct EventLog {
    events: Arc<Mutex<Vec<FsEvent>>>,
}

impl EventLog {
    async fn subscribe(esl: SocketAddr) -> EventLog {
        let log = EventLog::default();
        let mut conn = EslClient::login(esl).await.expect("ESL login for events");
        conn.command("event plain ALL")
            .await
            .expect("event plain ALL");
        let events = Arc::clone(&log.events);
        tokio::spawn(async move {
            // The whole client moves in: dropping its write half would shut the socket's
            // sending side, and FreeSWITCH closes an Event Socket that did.
            let mut conn = conn;
            while let Ok((headers, body)) = super::skype_side::read_message(&mut conn.reader).await
            {
                if header(&headers, "Content-Type") != Some("text/event-plain") {
                    continue;
                }
                events
                    .lock()
                    .unwrap()
                    .push(parse_plain(&String::from_utf8_lossy(&body)));
            }
        });
        log
    }

    pub fn all(&self) -> Vec<FsEvent> {
        self.events.lock().unwrap().clone()
    }

    /// Waits up to `within` for an event `pred` accepts; panics naming `what`.
    pub async fn wait(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&FsEvent) -> bool,
    ) -> FsEvent {
        let deadline = Instant::now() + within;
        loop {
            if let Some(e) = self.events.lock().unwrap().iter().find(|e| pred(e)) {
                return e.clone();
            }
            if Instant::now() > deadline {
                let names: Vec<String> = self
                    .all()
                    .iter()
                    .rev()
                    .take(40)
                    .map(|e| {
                        format!(
                            "{} {}",
                            e.name(),
                            e.get("Event-Subclass").or(e.get("Unique-ID")).unwrap_or("")
                        )
                    })
                    .collect();
                panic!("FreeSWITCH never fired {what}; last events: {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The hangup cause of channel `uuid`, from its CHANNEL_HANGUP event.
    pub async fn hangup_cause(&self, uuid: &str, within: Duration) -> String {
        let e = self
            .wait(&format!("CHANNEL_HANGUP of {uuid}"), within, |e| {
                e.name() == "CHANNEL_HANGUP" && e.get("Unique-ID") == Some(uuid)
            })
            .await;
        e.get("Hangup-Cause").unwrap_or("").to_string()
    }
}

fn parse_plain(text: &str) -> FsEvent {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let headers = head
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| {
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned();
            (k.to_string(), v)
        })
        .collect();
    FsEvent {
        headers,
        body: body.to_string(),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A raw client of FreeSWITCH's inbound Event Socket.
pub struct EslClient {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl EslClient {
    pub async fn login(addr: SocketAddr) -> std::io::Result<EslClient> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (read, writer) = stream.into_split();
        let mut conn = EslClient {
            reader: BufReader::new(read),
            writer,
        };
        super::skype_side::read_message(&mut conn.reader).await?;
        let (headers, _) = conn.command(&format!("auth {PASSWORD}")).await?;
        if !header(&headers, "Reply-Text").is_some_and(|r| r.starts_with("+OK")) {
            return Err(std::io::Error::other(format!("auth refused: {headers:?}")));
        }
        Ok(conn)
    }

    /// Sends `line` and reads the command/reply or api/response that answers it.
    pub async fn command(
        &mut self,
        line: &str,
    ) -> std::io::Result<(Vec<(String, String)>, Vec<u8>)> {
        self.writer
            .write_all(format!("{line}\n\n").as_bytes())
            .await?;
        loop {
            let (headers, body) = super::skype_side::read_message(&mut self.reader).await?;
            match header(&headers, "Content-Type") {
                Some("command/reply") | Some("api/response") => return Ok((headers, body)),
                _ => continue,
            }
        }
    }
}

async fn esl_api(addr: SocketAddr, command: &str) -> std::io::Result<String> {
    let mut conn = EslClient::login(addr).await?;
    let (_, body) = conn.command(&format!("api {command}")).await?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}
