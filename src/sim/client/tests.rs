//! The client's API state machine driven over channels (no X), against an in-process network.

use super::*;
use crate::media::dsp;
use crate::sim::ctl;
use crate::sim::network::{self, NetworkConfig};
use crate::sim::proto::Fault;
use crate::sim::proto::{AudioSource, CtlCommand};
use crate::skype::link::LINK_QUEUE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

struct World {
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn world() -> World {
    let stop = CancellationToken::new();
    let config = NetworkConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        routing_delay: Duration::from_millis(20),
        ring_delay: Duration::from_millis(20),
        bot_answer_delay: Duration::from_millis(100),
        pstn_answer_delay: Duration::from_millis(300),
        ring_timeout: Duration::from_millis(1500),
        echo_delay: Duration::from_millis(100),
        ..NetworkConfig::default()
    };
    let (addr, _) = network::spawn(config, stop.clone()).await.unwrap();
    World { addr, stop }
}

struct Controller {
    peer: u32,
    tx: mpsc::Sender<PeerMessage>,
    rx: mpsc::Receiver<ClientOutgoing>,
    seen: Vec<String>,
    stop: CancellationToken,
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Controller {
    async fn start(world: &World, user: &str, tune: impl FnOnce(&mut ClientConfig)) -> Controller {
        let mut config = ClientConfig::new(user, world.addr);
        config.attach_delay = Duration::from_millis(20);
        tune(&mut config);
        let (in_tx, in_rx) = mpsc::channel(LINK_QUEUE);
        let (out_tx, out_rx) = mpsc::channel(LINK_QUEUE);
        let stop = world.stop.child_token();
        let link = ClientLink {
            incoming: in_rx,
            outgoing: out_tx,
        };
        tokio::spawn(run(config, link, stop.clone()));
        Controller {
            peer: 0x400001,
            tx: in_tx,
            rx: out_rx,
            seen: Vec::new(),
            stop,
        }
    }

    async fn send(&self, text: &str) {
        self.tx
            .send(PeerMessage {
                peer: self.peer,
                text: text.into(),
            })
            .await
            .unwrap();
    }

    /// Waits for a message matching `pred`, keeping everything seen for later assertions.
    async fn wait(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}; seen {:?}", self.seen))
                .expect("client stopped");
            assert_eq!(msg.peer, self.peer);
            self.seen.push(msg.text.clone());
            if pred(&msg.text) {
                return msg.text;
            }
        }
    }

    async fn expect(&mut self, text: &str) {
        self.wait(text, |m| m == text).await;
    }

    /// Satisfied by a message already received too (notifications that may overtake replies).
    async fn expect_seen(&mut self, text: &str) {
        if !self.seen.iter().any(|m| m == text) {
            self.expect(text).await;
        }
    }

    async fn attach(&mut self, user: &str) {
        self.send("NAME skypopen").await;
        self.send("PROTOCOL 999").await;
        self.expect("OK").await;
        self.expect("PROTOCOL 8").await;
        self.expect(&format!("CURRENTUSERHANDLE {user}")).await;
        self.expect("USERSTATUS ONLINE").await;
        // CONNSTATUS ONLINE once the network login is through.
        if !self.seen.iter().any(|m| m == "CONNSTATUS ONLINE") {
            self.expect("CONNSTATUS ONLINE").await;
        }
    }

    /// `CALL <target>` → the id from `CALL <id> STATUS UNPLACED`.
    async fn dial(&mut self, target: &str) -> u64 {
        self.send(&format!("CALL {target}")).await;
        let line = self
            .wait("UNPLACED", |m| {
                m.ends_with("STATUS UNPLACED") || m.starts_with("ERROR")
            })
            .await;
        line.split(' ')
            .nth(1)
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no call: {line}"))
    }
}

async fn ctl_ok(world: &World, command: CtlCommand) -> serde_json::Value {
    ctl::request(world.addr, command).await.unwrap().0
}

fn ringing_id(line: &str) -> u64 {
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn handshake_tags_and_unknown_commands() {
    let w = world().await;
    let mut c = Controller::start(&w, "user1", |_| {}).await;
    c.attach("user1").await;
    c.send("#ciapalino PING").await;
    c.expect("#ciapalino PONG").await;
    c.send("PROTOCOL 7").await;
    c.expect("PROTOCOL 7").await;
    c.send("SET AUTOAWAY OFF").await;
    c.expect("AUTOAWAY OFF").await;
    c.send("#9 SET SILENT_MODE ON").await;
    c.expect("#9 SILENT_MODE ON").await;
    c.send("GET CURRENTUSERHANDLE").await;
    c.expect("CURRENTUSERHANDLE user1").await;
    c.send("FROBNICATE now").await;
    c.expect("ERROR 2 Unknown command").await;
    c.send("#x GET PROFILE PSTN_BALANCE").await;
    c.expect("#x PROFILE PSTN_BALANCE 1000").await;
    c.send("GET PROFILE PSTN_BALANCE_CURRENCY").await;
    c.expect("PROFILE PSTN_BALANCE_CURRENCY EUR").await;
}

#[tokio::test]
async fn authorization_modes() {
    let w = world().await;
    let mut denied = Controller::start(&w, "user1", |c| c.auth = AuthMode::Denied).await;
    denied.send("NAME skypopen").await;
    denied.expect("ERROR 68").await;
    denied.send("PROTOCOL 999").await;
    denied.expect("ERROR 68").await;
    denied.send("NAME skypopen").await;
    denied.expect("ERROR 68").await;

    let mut first = Controller::start(&w, "user2", |c| c.auth = AuthMode::RefuseFirst).await;
    first.send("NAME skypopen").await;
    first.expect("ERROR 68").await;
    first.send("NAME skypopen").await;
    first.expect("OK").await;
    first.expect("CURRENTUSERHANDLE user2").await;

    let mut pending = Controller::start(&w, "user3", |c| {
        c.auth = AuthMode::Pending(Duration::from_millis(300))
    })
    .await;
    pending.send("NAME skypopen").await;
    pending.send("PROTOCOL 999").await;
    pending.expect("ERROR 68").await;
    pending.expect("ERROR 68").await;
    pending.expect("OK").await;
    pending.send("PROTOCOL 999").await;
    pending.expect("PROTOCOL 8").await;
    pending.expect("CURRENTUSERHANDLE user3").await;
}

/// Points the call's audio at two fresh ports, as the sidecar does, and takes the client's
/// connections: (what goes to the client, what comes from it).
async fn audio_ports(c: &mut Controller, id: u64) -> (TcpStream, TcpStream) {
    let input = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let output = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (pin, pout) = (
        input.local_addr().unwrap().port(),
        output.local_addr().unwrap().port(),
    );
    c.send(&format!("ALTER CALL {id} SET_INPUT PORT=\"{pin}\""))
        .await;
    c.expect(&format!("ALTER CALL {id} SET_INPUT PORT=\"{pin}\""))
        .await;
    c.send(&format!(
        "#output ALTER CALL {id} SET_OUTPUT PORT=\"{pout}\""
    ))
    .await;
    c.expect(&format!(
        "#output ALTER CALL {id} SET_OUTPUT PORT=\"{pout}\""
    ))
    .await;
    let (to_client, _) = input.accept().await.unwrap();
    let (from_client, _) = output.accept().await.unwrap();
    (to_client, from_client)
}

/// Plays a tone into the client's input port and reads its output port, like a controller.
async fn echo_round_trip(c: &mut Controller, id: u64, hz: f64) -> f64 {
    let (mut to_client, mut from_client) = audio_ports(c, id).await;
    c.expect_seen(&format!("CALL {id} VAA_INPUT_STATUS TRUE"))
        .await;
    let writer = tokio::spawn(async move {
        let mut tone = dsp::Tone::new(hz, -10.0);
        let mut clock = tokio::time::interval(Duration::from_millis(20));
        for _ in 0..75 {
            clock.tick().await;
            let mut s = [0i16; dsp::SAMPLES_PER_FRAME];
            tone.mix_into(&mut s);
            let mut b = [0u8; dsp::BYTES_PER_FRAME];
            dsp::samples_to_le_bytes(&s, &mut b);
            if to_client.write_all(&b).await.is_err() {
                break;
            }
        }
        to_client
    });
    let mut heard = Vec::new();
    let mut buf = vec![0u8; 32000 * 2];
    from_client.read_exact(&mut buf).await.unwrap();
    dsp::samples_from_le_bytes(&buf, &mut heard);
    let _ = writer.await;
    let s = dsp::summarize(&heard);
    s.frequency_hz.unwrap_or(0.0)
}

#[tokio::test]
async fn echo123_call_returns_the_tone_and_hangs_up_once() {
    let w = world().await;
    let mut c = Controller::start(&w, "user1", |_| {}).await;
    c.attach("user1").await;
    let id = c.dial("echo123").await;
    c.expect(&format!("CALL {id} STATUS ROUTING")).await;
    c.expect(&format!("CALL {id} STATUS RINGING")).await;
    c.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    let f = echo_round_trip(&mut c, id, 1000.0).await;
    assert!((f - 1000.0).abs() < 10.0, "echo came back at {f} Hz");
    c.expect(&format!("CALL {id} DURATION 1")).await;
    c.send(&format!("GET CALL {id} PARTNER_DISPNAME")).await;
    c.expect(&format!(
        "CALL {id} PARTNER_DISPNAME Echo / Sound Test Service"
    ))
    .await;
    c.send(&format!("ALTER CALL {id} HANGUP")).await;
    c.expect(&format!("ALTER CALL {id} HANGUP")).await;
    c.expect(&format!("CALL {id} STATUS FINISHED")).await;
    c.send(&format!("ALTER CALL {id} END HANGUP")).await;
    c.wait("ERROR 559", |m| m.starts_with("ERROR 559")).await;
    let heard = ctl_ok(
        &w,
        CtlCommand::Heard {
            party: "echo123".into(),
            call: None,
            with_pcm: false,
        },
    )
    .await;
    let f = heard["frequency_hz"].as_f64().unwrap();
    assert!((f - 1000.0).abs() < 10.0, "{heard}");
}

#[tokio::test]
async fn call_outcomes() {
    let w = world().await;
    let mut c = Controller::start(&w, "user1", |_| {}).await;
    c.attach("user1").await;
    for (target, status) in [
        ("busybot", "BUSY"),
        ("refusebot", "REFUSED"),
        ("silentbot", "MISSED"),
    ] {
        let id = c.dial(target).await;
        c.expect(&format!("CALL {id} STATUS RINGING")).await;
        c.expect(&format!("CALL {id} STATUS {status}")).await;
    }
    c.send("CALL nosuchuser").await;
    c.expect("ERROR 92 CALL: Unrecognised identity").await;
    // user5 has no client: offline.
    let id = c.dial("user5").await;
    c.expect(&format!("CALL {id} FAILUREREASON 3")).await;
    c.expect(&format!("CALL {id} STATUS FAILED")).await;
    // SkypeOut with credit: early media, then answered.
    let id = c.dial("+3906123456").await;
    c.expect(&format!("CALL {id} STATUS ROUTING")).await;
    c.expect(&format!("CALL {id} STATUS EARLYMEDIA")).await;
    c.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    c.send(&format!("ALTER CALL {id} HANGUP")).await;
    c.expect(&format!("CALL {id} STATUS FINISHED")).await;

    let mut poor = Controller::start(&w, "user8", |_| {}).await;
    poor.attach("user8").await;
    poor.send("GET PROFILE PSTN_BALANCE").await;
    poor.expect("PROFILE PSTN_BALANCE 0").await;
    let id = poor.dial("+3906123456").await;
    poor.expect(&format!("CALL {id} FAILUREREASON 1")).await;
    poor.expect(&format!("CALL {id} STATUS FAILED")).await;
}

#[tokio::test]
async fn incoming_call_to_two_instances_of_one_account() {
    let w = world().await;
    let mut a = Controller::start(&w, "user2", |_| {}).await;
    let mut b = Controller::start(&w, "user2", |_| {}).await;
    a.attach("user2").await;
    b.attach("user2").await;
    let r = ctl_ok(
        &w,
        CtlCommand::Call {
            from: "bob".into(),
            to: "user2".into(),
            source: AudioSource::Tone { hz: 600.0 },
            seconds: None,
        },
    )
    .await;
    assert_eq!(r["legs"].as_array().unwrap().len(), 2);
    let ra = ringing_id(&a.wait("ring", |m| m.ends_with("STATUS RINGING")).await);
    let rb = ringing_id(&b.wait("ring", |m| m.ends_with("STATUS RINGING")).await);
    assert_ne!(ra, rb);
    a.send(&format!("GET CALL {ra} PARTNER_HANDLE")).await;
    a.expect(&format!("CALL {ra} PARTNER_HANDLE bob")).await;
    a.send(&format!("GET CALL {ra} PARTNER_DISPNAME")).await;
    a.expect(&format!("CALL {ra} PARTNER_DISPNAME Bob Smith Jr"))
        .await;
    a.send(&format!("ALTER CALL {ra} ANSWER")).await;
    a.expect(&format!("ALTER CALL {ra} ANSWER")).await;
    a.expect(&format!("CALL {ra} STATUS INPROGRESS")).await;
    b.expect(&format!("CALL {rb} STATUS MISSED")).await;
    // The remote hangs up.
    let call = r["call"].as_u64().unwrap();
    ctl_ok(
        &w,
        CtlCommand::Dtmf {
            call,
            digits: "5#".into(),
            inband: false,
        },
    )
    .await;
    a.expect(&format!("CALL {ra} DTMF 5")).await;
    a.expect(&format!("CALL {ra} DTMF #")).await;
    ctl_ok(&w, CtlCommand::Hangup { call }).await;
    a.expect(&format!("CALL {ra} STATUS FINISHED")).await;
}

#[tokio::test]
async fn client_to_client_call_with_audio_and_transfer() {
    let w = world().await;
    let mut one = Controller::start(&w, "user1", |_| {}).await;
    let mut two = Controller::start(&w, "user2", |_| {}).await;
    let mut three = Controller::start(&w, "user3", |_| {}).await;
    one.attach("user1").await;
    two.attach("user2").await;
    three.attach("user3").await;
    let id = one.dial("user2").await;
    let ring = ringing_id(&two.wait("ring", |m| m.ends_with("STATUS RINGING")).await);
    one.expect(&format!("CALL {id} STATUS RINGING")).await;
    // user2 is busy: transfer to user3.
    two.send(&format!("ALTER CALL {ring} TRANSFER user3")).await;
    two.expect(&format!("ALTER CALL {ring} TRANSFER user3"))
        .await;
    two.expect(&format!("CALL {ring} STATUS TRANSFERRING"))
        .await;
    two.expect(&format!("CALL {ring} STATUS TRANSFERRED")).await;
    let ring3 = ringing_id(&three.wait("ring", |m| m.ends_with("STATUS RINGING")).await);
    three
        .send(&format!("GET CALL {ring3} PARTNER_HANDLE"))
        .await;
    three
        .expect(&format!("CALL {ring3} PARTNER_HANDLE user1"))
        .await;
    three.send(&format!("ALTER CALL {ring3} ANSWER")).await;
    three
        .expect(&format!("CALL {ring3} STATUS INPROGRESS"))
        .await;
    one.expect(&format!("CALL {id} STATUS INPROGRESS")).await;

    // Transfer to nobody fails.
    two.send("ALTER CALL 999999 TRANSFER user9").await;
    two.wait("error", |m| m.starts_with("ERROR")).await;

    // Hold from user1: user3 sees REMOTEHOLD.
    one.send(&format!("ALTER CALL {id} HOLD")).await;
    one.expect(&format!("CALL {id} STATUS LOCALHOLD")).await;
    three
        .expect(&format!("CALL {ring3} STATUS REMOTEHOLD"))
        .await;
    one.send(&format!("ALTER CALL {id} RESUME")).await;
    one.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    three
        .expect(&format!("CALL {ring3} STATUS INPROGRESS"))
        .await;

    // DTMF from user1 reaches user3 as a notification and is echoed (default mode).
    one.send(&format!("SET CALL {id} DTMF 7")).await;
    one.expect(&format!("CALL {id} DTMF 7")).await;
    three.expect(&format!("CALL {ring3} DTMF 7")).await;

    three.send(&format!("ALTER CALL {ring3} END HANGUP")).await;
    three.expect(&format!("CALL {ring3} STATUS FINISHED")).await;
    one.expect(&format!("CALL {id} STATUS FINISHED")).await;
}

#[tokio::test]
async fn chats_both_ways_and_unseen_after_restart() {
    let w = world().await;
    let mut c = Controller::start(&w, "user4", |_| {}).await;
    c.attach("user4").await;
    c.send("CHAT CREATE alice").await;
    let line = c.wait("chat", |m| m.starts_with("CHAT ")).await;
    let chat = line.split(' ').nth(1).unwrap().to_string();
    assert!(line.ends_with("STATUS DIALOG"));
    c.send(&format!("GET CHAT {chat} DIALOG_PARTNER")).await;
    c.expect(&format!("CHAT {chat} DIALOG_PARTNER alice")).await;
    c.send(&format!("CHATMESSAGE {chat} héllo  wörld, ✓ ok"))
        .await;
    let sending = c.wait("sending", |m| m.ends_with("STATUS SENDING")).await;
    let mid = ringing_id(&sending);
    c.expect(&format!("CHATMESSAGE {mid} STATUS SENT")).await;
    let inbox = ctl_ok(
        &w,
        CtlCommand::Inbox {
            party: "alice".into(),
        },
    )
    .await;
    assert_eq!(inbox["messages"][0]["body"], "héllo  wörld, ✓ ok");

    let r = ctl_ok(
        &w,
        CtlCommand::Chat {
            from: "carol".into(),
            to: "user4".into(),
            text: "ciao bella — ü".into(),
        },
    )
    .await;
    let m1 = r["message"].as_u64().unwrap();
    c.expect(&format!("CHATMESSAGE {m1} STATUS RECEIVED")).await;
    for (prop, value) in [
        ("TYPE", "SAID".to_string()),
        ("FROM_HANDLE", "carol".into()),
        ("FROM_DISPNAME", "Carol Ann Jones".into()),
        ("BODY", "ciao bella — ü".into()),
    ] {
        c.send(&format!("GET CHATMESSAGE {m1} {prop}")).await;
        c.expect(&format!("CHATMESSAGE {m1} {prop} {value}")).await;
    }
    let r2 = ctl_ok(
        &w,
        CtlCommand::Chat {
            from: "carol".into(),
            to: "user4".into(),
            text: "second".into(),
        },
    )
    .await;
    let m2 = r2["message"].as_u64().unwrap();
    c.send(&format!("SET CHATMESSAGE {m1} SEEN")).await;
    c.expect(&format!("CHATMESSAGE {m1} STATUS READ")).await;
    drop(c);

    // A new client for the same account still finds the unseen message.
    let mut again = Controller::start(&w, "user4", |_| {}).await;
    again.attach("user4").await;
    again.send("SEARCH MISSEDCHATMESSAGES").await;
    again.expect(&format!("CHATMESSAGES {m2}")).await;
    again.send(&format!("GET CHATMESSAGE {m2} BODY")).await;
    again.expect(&format!("CHATMESSAGE {m2} BODY second")).await;
}

#[tokio::test]
async fn contact_requests_and_faults() {
    let w = world().await;
    let mut c = Controller::start(&w, "user6", |c| c.dtmf_echo = false).await;
    c.attach("user6").await;
    ctl_ok(
        &w,
        CtlCommand::AuthRequest {
            from: "dave".into(),
            to: "user6".into(),
            text: "please add me, I am Dave".into(),
        },
    )
    .await;
    c.expect("USER dave RECEIVEDAUTHREQUEST please add me, I am Dave")
        .await;
    c.send("SET USER dave ISAUTHORIZED TRUE").await;
    c.expect("USER dave ISAUTHORIZED TRUE").await;
    // Accepting makes dave a contact.
    c.expect_seen("USER dave BUDDYSTATUS 3").await;
    let contacts = ctl_ok(
        &w,
        CtlCommand::Contacts {
            user: "user6".into(),
        },
    )
    .await;
    assert_eq!(contacts["authorized"][0], "dave");

    ctl_ok(
        &w,
        CtlCommand::Fault {
            user: "user6".into(),
            fault: Fault::DropBegin { count: 1 },
        },
    )
    .await;
    // The fault travels the same connection as the chat, so the chat's notification is the
    // first message sent under it.
    let r = ctl_ok(
        &w,
        CtlCommand::Chat {
            from: "dave".into(),
            to: "user6".into(),
            text: "hi".into(),
        },
    )
    .await;
    let msg = tokio::time::timeout(WAIT, c.rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        msg.text,
        format!("CHATMESSAGE {} STATUS RECEIVED", r["message"])
    );
    assert!(msg.faults.drop_begin);
    c.send("PING").await;
    let msg = tokio::time::timeout(WAIT, c.rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(!msg.faults.drop_begin);

    // Network loss: CONNSTATUS OFFLINE, calls refused with ERROR 36, then back online.
    ctl_ok(
        &w,
        CtlCommand::Fault {
            user: "user6".into(),
            fault: Fault::Offline { ms: 500 },
        },
    )
    .await;
    c.expect("CONNSTATUS OFFLINE").await;
    c.send("CALL echo123").await;
    c.expect("ERROR 36 Not online").await;
    c.expect("CONNSTATUS ONLINE").await;
    let id = c.dial("echo123").await;
    c.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    // DTMF echo off: nothing comes back for SET CALL DTMF; the next reply is the PONG.
    c.send(&format!("SET CALL {id} DTMF 1")).await;
    c.send("PING").await;
    let next = c.wait("pong", |m| !m.contains("DURATION")).await;
    assert_eq!(next, "PONG");
}

#[tokio::test]
async fn audio_trace_records_every_frame_read_and_written() {
    let w = world().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audio.trace");
    let trace = trace::AudioTrace::create(&path).unwrap();
    let mut c = Controller::start(&w, "user1", |cfg| cfg.audio_trace = Some(trace.clone())).await;
    c.attach("user1").await;
    let id = c.dial("instantecho").await;
    c.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    let (mut to_client, mut from_client) = audio_ports(&mut c, id).await;
    // Distinct frames, written in odd-sized pieces: the trace holds whole frames only.
    let sent: Vec<u8> = (0..20u8)
        .flat_map(|k| [k + 1; dsp::BYTES_PER_FRAME])
        .collect();
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    for piece in sent.chunks(500) {
        clock.tick().await;
        to_client.write_all(piece).await.unwrap();
    }
    let mut heard = vec![0u8; 40 * dsp::BYTES_PER_FRAME];
    from_client.read_exact(&mut heard).await.unwrap();
    // The reads may overtake the trace's buffer by a frame: flush after a moment.
    tokio::time::sleep(Duration::from_millis(50)).await;
    trace.flush().unwrap();
    let records = trace::parse(&std::fs::read(&path).unwrap()).unwrap();
    let read: Vec<u8> = records
        .iter()
        .filter(|r| r.direction == audio::Direction::Input)
        .inspect(|r| assert_eq!(r.call, id))
        .flat_map(|r| r.payload.clone())
        .collect();
    assert_eq!(read, sent, "the input frames, whole and in order");
    let written: Vec<u8> = records
        .iter()
        .filter(|r| r.direction == audio::Direction::Output)
        .flat_map(|r| r.payload.clone())
        .collect();
    assert!(written.len() >= heard.len());
    assert_eq!(&written[..heard.len()], &heard[..], "the output frames");
    assert!(
        heard.chunks(dsp::BYTES_PER_FRAME).any(|f| f[0] == 5),
        "the echo went through the output"
    );
    let times: Vec<u64> = records.iter().map(|r| r.mono_ns).collect();
    assert!(times.windows(2).all(|t| t[0] <= t[1]));
}

#[tokio::test]
async fn outgoing_chat_states_blocking_refusals_and_balance() {
    let w = world().await;
    let mut sender = Controller::start(&w, "user4", |_| {}).await;
    sender.attach("user4").await;
    sender.send("CHAT CREATE user5").await;
    let line = sender.wait("chat", |m| m.starts_with("CHAT ")).await;
    let chat = line.split(' ').nth(1).unwrap().to_string();

    // user5 has no client: SENDING, and no SENT until one logs in.
    sender
        .send(&format!("CHATMESSAGE {chat} are you there"))
        .await;
    let sending = sender
        .wait("sending", |m| m.ends_with("STATUS SENDING"))
        .await;
    let mid = ringing_id(&sending);
    let early = tokio::time::timeout(
        Duration::from_millis(300),
        sender.wait("no SENT yet", |m| m.contains("STATUS SENT")),
    )
    .await;
    assert!(early.is_err(), "SENT while the recipient was offline");
    let mut recipient = Controller::start(&w, "user5", |_| {}).await;
    recipient.attach("user5").await;
    sender
        .expect_seen(&format!("CHATMESSAGE {mid} STATUS SENT"))
        .await;
    recipient.send(&format!("SET CHATMESSAGE {mid} SEEN")).await;
    sender
        .expect(&format!("CHATMESSAGE {mid} STATUS READ"))
        .await;

    // Blocked: the sender's messages stay SENDING and never reach the recipient.
    recipient.send("SET USER user4 ISBLOCKED TRUE").await;
    recipient.expect("USER user4 ISBLOCKED TRUE").await;
    recipient.send("GET USER user4 ISBLOCKED").await;
    recipient.expect("USER user4 ISBLOCKED TRUE").await;
    sender.send(&format!("CHATMESSAGE {chat} hello?")).await;
    let sending = sender
        .wait("sending", |m| m.ends_with("STATUS SENDING"))
        .await;
    let blocked = ringing_id(&sending);
    recipient.send("SEARCH MISSEDCHATMESSAGES").await;
    let missed = recipient
        .wait("missed", |m| m.starts_with("CHATMESSAGES"))
        .await;
    assert!(!missed.contains(&blocked.to_string()), "{missed}");

    // A refused contact request: nothing is authorized.
    ctl_ok(
        &w,
        CtlCommand::AuthRequest {
            from: "alice".into(),
            to: "user5".into(),
            text: "hi".into(),
        },
    )
    .await;
    recipient.expect("USER alice RECEIVEDAUTHREQUEST hi").await;
    recipient.send("SET USER alice ISAUTHORIZED FALSE").await;
    recipient.expect("USER alice ISAUTHORIZED FALSE").await;
    recipient.send("GET USER alice ISAUTHORIZED").await;
    recipient.expect("USER alice ISAUTHORIZED FALSE").await;
    let contacts = ctl_ok(
        &w,
        CtlCommand::Contacts {
            user: "user5".into(),
        },
    )
    .await;
    assert_eq!(contacts["authorized"], serde_json::json!([]));

    // A remote person reads: READ.
    sender.send("CHAT CREATE alice").await;
    let line = sender
        .wait("chat with alice", |m| m.contains("$alice;"))
        .await;
    let with_alice = line.split(' ').nth(1).unwrap().to_string();
    sender.send(&format!("CHATMESSAGE {with_alice} ping")).await;
    let sending = sender
        .wait("sending", |m| m.ends_with("STATUS SENDING"))
        .await;
    let to_alice = ringing_id(&sending);
    sender
        .expect(&format!("CHATMESSAGE {to_alice} STATUS SENT"))
        .await;
    let read = ctl_ok(
        &w,
        CtlCommand::Read {
            party: "alice".into(),
        },
    )
    .await;
    assert_eq!(read["read"], 1);
    sender
        .expect(&format!("CHATMESSAGE {to_alice} STATUS READ"))
        .await;

    // The balance changes under the client.
    ctl_ok(
        &w,
        CtlCommand::Balance {
            user: Some("user5".into()),
            set: Some(1234),
        },
    )
    .await;
    recipient.expect("PROFILE PSTN_BALANCE 1234").await;
    recipient.send("GET PROFILE PSTN_BALANCE").await;
    recipient.expect("PROFILE PSTN_BALANCE 1234").await;
}
