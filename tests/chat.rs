//! Chats through the whole product: `skype-sim` network and clients on Xvfb, the FreeSWITCH
//! double, and the real `skypopen`. Incoming chats become one MESSAGE event each (as FreeSWITCH
//! receives the `sendevent` and as the listener's subscribers see it); outgoing chats asked for
//! in every way FreeSWITCH can ask reach the remote account; nothing is lost or repeated
//! across FreeSWITCH outages and a killed sidecar.
mod support;

use skypopen::switch::esl::Event;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::fs_double::wire::Event as FsEvent;
use support::stack::{read_message, Stack, StackSpec, WAIT};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

const TEXT: &str = "Grüße aus Köln – привет, 你好 👋 \"quotes\" & <angle> 100%\nsecond line";

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// An authenticated ESL connection (to the sidecar's listener or to the double).
struct EslConn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl EslConn {
    async fn connect(addr: SocketAddr) -> EslConn {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (read, writer) = stream.into_split();
        let mut conn = EslConn {
            reader: BufReader::new(read),
            writer,
        };
        conn.read().await; // auth/request
        let reply = conn.command("auth ClueCon").await;
        assert!(reply.starts_with("+OK"), "auth refused: {reply}");
        conn
    }

    async fn read(&mut self) -> (Vec<(String, String)>, Vec<u8>) {
        tokio::time::timeout(WAIT, read_message(&mut self.reader))
            .await
            .expect("no ESL message in time")
            .expect("ESL connection failed")
    }

    /// Sends a command and returns its `Reply-Text` (events in between are skipped).
    async fn command(&mut self, text: &str) -> String {
        self.writer
            .write_all(format!("{text}\n\n").as_bytes())
            .await
            .expect("write");
        loop {
            let (headers, _) = self.read().await;
            if header(&headers, "Content-Type") == Some("command/reply") {
                return header(&headers, "Reply-Text").unwrap_or("").to_string();
            }
        }
    }

    /// The next event, decoded whatever its format.
    async fn next_event(&mut self) -> Event {
        loop {
            let (headers, body) = self.read().await;
            let content_type = header(&headers, "Content-Type").unwrap_or("").to_string();
            if content_type.starts_with("text/event-") {
                return Event::parse(&content_type, &body).expect("event decodes");
            }
        }
    }

    /// The next MESSAGE event whose body is `body`.
    async fn message_with_body(&mut self, body: &str) -> Event {
        loop {
            let event = self.next_event().await;
            if event.name() == Some("MESSAGE") && event.body.as_deref() == Some(body) {
                return event;
            }
        }
    }
}

fn fs_header<'a>(event: &'a FsEvent, name: &str) -> Option<&'a str> {
    event
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// MESSAGE events the sidecar fired into the double, in the order they arrived.
fn sent_messages(stack: &Stack) -> Vec<FsEvent> {
    stack
        .fs
        .recorded()
        .sent_events
        .into_iter()
        .filter(|e| fs_header(e, "Event-Name") == Some("MESSAGE"))
        .collect()
}

async fn wait_sent_message(stack: &Stack, body: &str) -> FsEvent {
    let body = body.to_string();
    stack
        .fs
        .wait_for("the sidecar's sendevent MESSAGE", WAIT, move |st| {
            st.recorded
                .sent_events
                .iter()
                .find(|e| {
                    fs_header(e, "Event-Name") == Some("MESSAGE")
                        && e.body.as_deref() == Some(body.as_str())
                })
                .cloned()
        })
        .await
}

async fn chat(stack: &Stack, from: &str, to: &str, text: &str) -> serde_json::Value {
    stack
        .net
        .actl(&["chat", "--from", from, "--to", to, "--text", text])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_chat_is_one_message_event_with_every_header() {
    let stack = Stack::start(StackSpec::users(&["user1"])).await;
    let mut plain = EslConn::connect(stack.listener).await;
    assert!(plain
        .command("event plain MESSAGE")
        .await
        .starts_with("+OK"));
    let mut json = EslConn::connect(stack.listener).await;
    assert!(json.command("event json MESSAGE").await.starts_with("+OK"));

    let sent = chat(&stack, "carol", "user1", TEXT).await;
    let id = sent["message"].as_u64().expect("message id").to_string();

    let fired = wait_sent_message(&stack, TEXT).await;
    let expect = [
        ("proto", "skype"),
        ("login", "interface1"),
        ("from", "carol"),
        ("hint", "Carol Ann Jones"),
        ("to", "user1"),
        ("subject", "SIMPLE MESSAGE"),
        ("id", id.as_str()),
        ("to_proto", "skype"),
        ("from_user", "carol"),
        ("to_user", "interface1"),
        ("during-call", "false"),
    ];
    for (name, value) in expect {
        assert_eq!(
            fs_header(&fired, name),
            Some(value),
            "header {name}: {fired:?}"
        );
    }
    let chatname = fs_header(&fired, "chatname").expect("chatname").to_string();
    assert!(
        chatname.contains("carol") && chatname.contains("user1"),
        "{chatname}"
    );
    let date = fs_header(&fired, "date").expect("date").to_string();
    assert!(date.ends_with(" GMT"), "{date}");
    let key = fs_header(&fired, "skypopen_message_key")
        .expect("an idempotency key")
        .to_string();
    assert!(
        key.len() == 32 && key.chars().all(|c| c.is_ascii_hexdigit()),
        "{key}"
    );
    assert_eq!(fired.body.as_deref(), Some(TEXT));

    for (format, conn) in [("plain", &mut plain), ("json", &mut json)] {
        let event = conn.message_with_body(TEXT).await;
        for (name, value) in expect {
            assert_eq!(event.header(name), Some(value), "{format} header {name}");
        }
        assert_eq!(
            event.header("chatname"),
            Some(chatname.as_str()),
            "{format}"
        );
        assert_eq!(event.header("date"), Some(date.as_str()), "{format}");
        assert_eq!(
            event.header("skypopen_message_key"),
            Some(key.as_str()),
            "{format}"
        );
        assert!(
            event.header("Event-Sequence").is_some(),
            "{format} is stamped"
        );
    }

    // Marked SEEN once delivered: nothing is left for the account.
    let deadline = Instant::now() + WAIT;
    while !stack.log().contains("SET CHATMESSAGE") {
        assert!(Instant::now() < deadline, "message never marked SEEN");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sent_messages(&stack).len(), 1, "one event per message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_of_one_account_make_one_event_per_message() {
    let stack = Stack::start(StackSpec::users(&["user2", "user2"])).await;
    chat(&stack, "alice", "user2", "first — één").await;
    chat(&stack, "alice", "user2", "second — twee").await;
    wait_sent_message(&stack, "first — één").await;
    wait_sent_message(&stack, "second — twee").await;
    // The sibling works through its copies in order too, so its first one is behind it.
    chat(&stack, "alice", "user2", "third — drie").await;
    wait_sent_message(&stack, "third — drie").await;
    let bodies: Vec<String> = sent_messages(&stack)
        .iter()
        .filter_map(|e| e.body.clone())
        .collect();
    assert_eq!(
        bodies,
        ["first — één", "second — twee", "third — drie"],
        "each message exactly once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_freeswitch_asks_for_reach_the_remote_account() {
    let stack = Stack::start(StackSpec::users(&["user3"])).await;

    // FreeSWITCH's own `chat`: it answers "Not Sent" (no SKYPE chat interface) but fires the
    // MESSAGE the sidecar delivers.
    let reply = stack.fs.api("chat SKYPE|user3|alice|héllo from chat ✓");
    assert!(reply.contains("Not Sent"), "{reply}");
    let got = stack.wait_inbox("alice", "héllo from chat ✓").await;
    assert_eq!(got["from_handle"], "user3", "{got}");

    // SEND_MESSAGE fired by any ESL client of FreeSWITCH.
    let mut esl = EslConn::connect(stack.fs.esl_addr()).await;
    let body = "send_message — ünïcödé 👍";
    let text = format!(
        "sendevent SEND_MESSAGE\nproto: skype\nfrom: user3\nto: bob\nhint: interface1\nContent-Length: {}\n\n{}",
        body.len(),
        body
    );
    esl.writer.write_all(text.as_bytes()).await.expect("write");
    let got = stack.wait_inbox("bob", body).await;
    assert_eq!(got["from_handle"], "user3", "{got}");

    // A second chat to the same partner goes through the cached chat.
    let reply = stack.fs.api("chat SKYPE|user3|alice|again");
    assert!(reply.contains("Not Sent"), "{reply}");
    stack.wait_inbox("alice", "again").await;
    let log = stack.log();
    let creates: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("api >>") && l.contains("CHAT CREATE alice"))
        .collect();
    assert_eq!(
        creates.len(),
        1,
        "CHAT CREATE once per partner: {creates:#?}"
    );
}

/// A new double on the address of the stopped one (the sidecar reconnects to it).
async fn bring_double_back(stack: &mut Stack, addr: SocketAddr) {
    let deadline = Instant::now() + WAIT;
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(e) if Instant::now() > deadline => panic!("cannot listen on {addr} again: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    stack.fs = support::fs_double::FsDouble::start_on(listener, "ClueCon");
}

fn kill_hard(pid: u32) {
    // SAFETY: kill(2) on a child this test started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// A sidecar started by the test itself on the stack's configuration; killed when dropped.
struct Sidecar(std::process::Child);

impl Sidecar {
    fn start(stack: &Stack) -> Sidecar {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(stack.log_path())
            .expect("log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_skypopen"))
            .arg("--config")
            .arg(stack.dir.path().join("skypopen.toml"))
            .arg("run")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("cannot run skypopen");
        Sidecar(child)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 1,000 chats while FreeSWITCH goes away and comes back three times and the sidecar is
/// killed and started again once: every one arrives, once, in order.
/// `cargo test --test chat -- --ignored thousand_chats`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: about a minute"]
async fn thousand_chats_arrive_once_and_in_order_across_outages() {
    const TOTAL: usize = 1000;
    let mut stack = Stack::start(StackSpec::users(&["user4"])).await;
    let mut kept: Vec<FsEvent> = Vec::new();
    let mut replacement: Option<Sidecar> = None;
    let body = |i: usize| format!("chat {i:04} — ✓");
    let addr = stack.fs.esl_addr();
    for i in 0..TOTAL {
        match i {
            150 | 400 | 650 => {
                // Stopped first, then read: an event the old double took after a read would be
                // counted as missing.
                stack.fs.stop();
                kept.extend(sent_messages(&stack));
            }
            250 | 500 | 750 => bring_double_back(&mut stack, addr).await,
            850 => kill_hard(stack.sidecar_pid()),
            900 => replacement = Some(Sidecar::start(&stack)),
            _ => {}
        }
        chat(&stack, "dave", "user4", &body(i)).await;
    }
    let last = body(TOTAL - 1);
    stack
        .fs
        .wait_for("the last chat", Duration::from_secs(180), move |st| {
            st.recorded
                .sent_events
                .iter()
                .any(|e| e.body.as_deref() == Some(last.as_str()))
                .then_some(())
        })
        .await;
    kept.extend(sent_messages(&stack));
    // At least once: a repeat is allowed only as a copy with the same idempotency key (the
    // kill may land between FreeSWITCH's acceptance and the ledger's write), and a consumer
    // that drops seen keys gets every message once, in order.
    let mut by_key: HashMap<String, String> = HashMap::new();
    let mut order = Vec::new();
    let mut repeats = 0;
    for e in &kept {
        let b = e.body.clone().unwrap_or_default();
        let key = fs_header(e, "skypopen_message_key")
            .expect("every MESSAGE has its key")
            .to_string();
        match by_key.get(&key) {
            Some(first) => {
                assert_eq!(first, &b, "one key, two messages");
                repeats += 1;
            }
            None => {
                by_key.insert(key, b.clone());
                order.push(b);
            }
        }
    }
    assert!(repeats <= 1, "{repeats} repeats for one kill");
    let distinct: std::collections::HashSet<_> = order.iter().collect();
    assert_eq!(
        distinct.len(),
        order.len(),
        "a message repeated under another key"
    );
    let expected: Vec<String> = (0..TOTAL).map(body).collect();
    assert_eq!(order.len(), TOTAL, "missing: {:?}", {
        let got: std::collections::HashSet<_> = order.iter().collect();
        expected
            .iter()
            .filter(|b| !got.contains(b))
            .take(20)
            .collect::<Vec<_>>()
    });
    assert_eq!(order, expected, "out of order");
    drop(replacement);
}

/// Waits until the sidecar's log has a line with every one of `parts`.
async fn wait_log(stack: &Stack, parts: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(line) = stack
            .log()
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return line.to_string();
        }
        if Instant::now() > deadline {
            panic!("no log line with {parts:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_requests_are_accepted_or_asked_per_auto_authorize() {
    let mut spec = StackSpec::users(&["user5", "user6"]);
    spec.interfaces[1] =
        support::stack::IfaceSpec::new("interface2", "user6").toml("auto_authorize = false");
    let stack = Stack::start(spec).await;
    for (from, to) in [("dave", "user5"), ("alice", "user6")] {
        stack
            .net
            .actl(&[
                "auth-request",
                "--from",
                from,
                "--to",
                to,
                "--text",
                "Hallo — bitte hinzufügen",
            ])
            .await;
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let c = stack.net.actl(&["contacts", "user5"]).await;
        if c["authorized"] == serde_json::json!(["dave"]) {
            break;
        }
        assert!(Instant::now() < deadline, "dave never authorized: {c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // auto_authorize = false now means "ask": the request waits for `sk auth`.
    wait_log(&stack, &["interface2", "contact request", "asked", "alice"]).await;
    assert!(stack.api("sk auth interface2").await.contains("alice\t"));
    let c = stack.net.actl(&["contacts", "user6"]).await;
    assert_eq!(c["authorized"], serde_json::json!([]), "{c}");
}

/// One client of an account off the Skype network: `chat SKYPE|…` from that account goes out
/// through another client of the account instead of failing on the first one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_goes_out_through_another_client_when_the_first_is_offline() {
    let mut stack = Stack::start(StackSpec::users(&["user3", "user3"])).await;
    // interface1's client comes back pointed at a network that is not there: attached over
    // X11, never online.
    if let Some(mut client) = stack.clients[0].take() {
        client.kill();
    }
    let nowhere = format!("127.0.0.1:{}", support::sim::free_port());
    let display = stack.displays[0].display.clone();
    stack.clients[0] = Some(support::sim::SimClient::start_on_network(
        &display, "user3", &nowhere,
    ));
    stack
        .wait_list("interface1 DOWN", |rows| {
            rows.iter()
                .any(|r| r.name == "interface1" && r.state == "DOWN")
        })
        .await;

    stack.fs.api("chat SKYPE|user3|alice|through the other one");
    let got = stack.wait_inbox("alice", "through the other one").await;
    assert_eq!(got["from_handle"], "user3", "{got}");
    let log = stack.log();
    let sent = log
        .lines()
        .find(|l| l.contains("chat sent"))
        .unwrap_or_else(|| panic!("no chat sent line:\n{log}"));
    assert!(sent.contains("interface=interface2"), "{sent}");
}

/// Every client of the account off the Skype network for 3 s: the chats FreeSWITCH asks for
/// meanwhile wait and go out, in order, once a client is back (as a Skype client keeps what it
/// cannot send yet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_wait_for_an_offline_account_and_go_out_in_order() {
    let stack = Stack::start(StackSpec::users(&["user3"])).await;
    stack.net.actl(&["fault", "user3", "offline", "3000"]).await;
    stack
        .wait_list("interface1 DOWN", |rows| {
            rows.iter()
                .any(|r| r.name == "interface1" && r.state == "DOWN")
        })
        .await;
    for i in 0..3 {
        stack.fs.api(&format!("chat SKYPE|user3|alice|waiting {i}"));
    }
    stack.wait_inbox("alice", "waiting 2").await;
    let inbox = stack.net.actl(&["inbox", "alice"]).await;
    let bodies: Vec<&str> = inbox["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert_eq!(bodies, ["waiting 0", "waiting 1", "waiting 2"], "{inbox}");
    let log = stack.log();
    assert!(
        log.contains("no client of the sender can take the chat now; it waits"),
        "{log}"
    );
}
