//! `skype-sim client` over X11 on Xvfb: handshake, authorization modes, tags, chats, contact
//! requests, balances and the fault modes.
mod support;

use std::time::Duration;
use support::sim::{logged_in, skype_instance, ApiController, AudioPorts, SimClient, SimNetwork};
use support::xvfb::Xvfb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_tags_settings_and_balances() {
    let net = SimNetwork::start();
    let x = Xvfb::start();
    let _client = SimClient::start(&x.display, "user4", &net, &["--protocol-max", "7"]);
    let mut api = ApiController::attach(&x.display).await;
    api.send("NAME skypopen").await;
    api.send("PROTOCOL 999").await;
    api.expect("OK").await;
    api.expect("PROTOCOL 7").await;
    api.expect("CONNSTATUS ONLINE").await;
    api.expect("CURRENTUSERHANDLE user4").await;
    api.expect("USERSTATUS ONLINE").await;
    for (cmd, reply) in [
        ("SET AUTOAWAY OFF", "AUTOAWAY OFF"),
        ("SET WINDOWSTATE HIDDEN", "WINDOWSTATE HIDDEN"),
        ("SET USERSTATUS ONLINE", "USERSTATUS ONLINE"),
        ("SET SILENT_MODE ON", "SILENT_MODE ON"),
        ("#ciapalino PING", "#ciapalino PONG"),
        ("#7 GET CURRENTUSERHANDLE", "#7 CURRENTUSERHANDLE user4"),
        ("GET PROFILE PSTN_BALANCE", "PROFILE PSTN_BALANCE 1234"),
        (
            "GET PROFILE PSTN_BALANCE_CURRENCY",
            "PROFILE PSTN_BALANCE_CURRENCY GBP",
        ),
        ("DIE", "ERROR 2 Unknown command"),
        ("#t1 WHATEVER this is", "#t1 ERROR 2 Unknown command"),
        // A long command spans several ClientMessages both ways.
        (
            "#a_rather_long_tag_for_chunking SET USERSTATUS ONLINE",
            "#a_rather_long_tag_for_chunking USERSTATUS ONLINE",
        ),
    ] {
        api.send(cmd).await;
        api.expect(reply).await;
    }
    let b = net.actl(&["balance", "user4"]).await;
    assert_eq!(b["balances"][0]["balance"], 1234);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_68_pending_then_ok_and_denied() {
    let net = SimNetwork::start();
    let (x1, x2) = (Xvfb::start(), Xvfb::start());
    let _pending = SimClient::start(
        &x1.display,
        "user1",
        &net,
        &["--auth", "pending", "--auth-pending-ms", "800"],
    );
    let _denied = SimClient::start(&x2.display, "user2", &net, &["--auth", "denied"]);
    let mut api = ApiController::attach(&x1.display).await;
    // What the original module does: NAME and PROTOCOL back to back, PROTOCOL again on ERROR 68.
    api.send("NAME skypopen").await;
    api.send("PROTOCOL 999").await;
    api.expect("ERROR 68").await;
    api.expect("ERROR 68").await;
    api.expect("OK").await;
    api.send("PROTOCOL 999").await;
    api.expect("PROTOCOL 8").await;
    api.expect("CURRENTUSERHANDLE user1").await;

    let mut denied = ApiController::attach(&x2.display).await;
    denied.send("NAME skypopen").await;
    denied.expect("ERROR 68").await;
    denied.send("PROTOCOL 999").await;
    denied.expect("ERROR 68").await;
    let late = denied
        .try_wait(Duration::from_millis(1500), |m| m == "OK")
        .await;
    assert_eq!(late, None, "a denied client must never say OK");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_both_ways_and_unseen_messages_survive_a_client_restart() {
    let net = SimNetwork::start();
    let (x, client, mut api) = logged_in(&net, "user3").await;

    // Outgoing, as the sidecar does it.
    api.send("CHAT CREATE bob").await;
    let line = api.wait("dialog", |m| m.ends_with(" STATUS DIALOG")).await;
    let chat = line.split(' ').nth(1).unwrap().to_string();
    api.send(&format!("GET CHAT {chat} DIALOG_PARTNER")).await;
    api.expect(&format!("CHAT {chat} DIALOG_PARTNER bob")).await;
    let body = "grüße aus  Roma — ☎ ok";
    api.send(&format!("CHATMESSAGE {chat} {body}")).await;
    let sending = api.wait("SENDING", |m| m.ends_with("STATUS SENDING")).await;
    let id = support::sim::call_id(&sending).unwrap();
    api.expect(&format!("CHATMESSAGE {id} STATUS SENT")).await;
    let inbox = net.actl(&["inbox", "bob"]).await;
    assert_eq!(inbox["messages"][0]["body"], body, "{inbox}");
    assert_eq!(inbox["messages"][0]["from_handle"], "user3");

    // Incoming.
    let text = "ciao, come stai? àèìòù 日本";
    let m = net
        .actl(&["chat", "--from", "alice", "--to", "user3", "--text", text])
        .await;
    let mid = m["message"].as_u64().unwrap();
    api.expect(&format!("CHATMESSAGE {mid} STATUS RECEIVED"))
        .await;
    for prop in ["TYPE", "CHATNAME", "FROM_HANDLE", "FROM_DISPNAME", "BODY"] {
        api.send(&format!("GET CHATMESSAGE {mid} {prop}")).await;
    }
    api.expect(&format!("CHATMESSAGE {mid} TYPE SAID")).await;
    api.wait("CHATNAME", |l| {
        l.starts_with(&format!("CHATMESSAGE {mid} CHATNAME #"))
    })
    .await;
    api.expect(&format!("CHATMESSAGE {mid} FROM_HANDLE alice"))
        .await;
    api.expect(&format!("CHATMESSAGE {mid} FROM_DISPNAME Alice Liddell"))
        .await;
    api.expect(&format!("CHATMESSAGE {mid} BODY {text}")).await;
    api.send(&format!("SET CHATMESSAGE {mid} SEEN")).await;
    api.expect(&format!("CHATMESSAGE {mid} STATUS READ")).await;

    // Two more arrive while nobody reads; the client restarts.
    let m2 = net
        .actl(&["chat", "--from", "alice", "--to", "user3", "--text", "one"])
        .await["message"]
        .as_u64()
        .unwrap();
    let m3 = net
        .actl(&["chat", "--from", "dave", "--to", "user3", "--text", "two"])
        .await["message"]
        .as_u64()
        .unwrap();
    drop(api);
    drop(client);
    let _client = SimClient::start(&x.display, "user3", &net, &[]);
    let mut api = ApiController::attach(&x.display).await;
    api.handshake("user3").await;
    api.send("SEARCH MISSEDCHATMESSAGES").await;
    api.expect(&format!("CHATMESSAGES {m2}, {m3}")).await;
    api.send(&format!("GET CHATMESSAGE {m3} BODY")).await;
    api.expect(&format!("CHATMESSAGE {m3} BODY two")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contact_request_is_reported_and_authorized() {
    let net = SimNetwork::start();
    let (_x, _client, mut api) = logged_in(&net, "user2").await;
    net.actl(&[
        "auth-request",
        "--from",
        "dave",
        "--to",
        "user2",
        "--text",
        "Hi, I'm Dave — please add me",
    ])
    .await;
    api.expect("USER dave RECEIVEDAUTHREQUEST Hi, I'm Dave — please add me")
        .await;
    api.send("SET USER dave ISAUTHORIZED TRUE").await;
    api.expect("USER dave ISAUTHORIZED TRUE").await;
    let c = net.actl(&["contacts", "user2"]).await;
    assert_eq!(c["authorized"], serde_json::json!(["dave"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_begin_chunks_lose_exactly_the_faulted_messages() {
    let net = SimNetwork::start();
    let x = Xvfb::start();
    // The first three messages lose their BEGIN chunk: OK, PROTOCOL 8, CONNSTATUS ONLINE.
    let _client = SimClient::start(&x.display, "user1", &net, &["--drop-begin", "3"]);
    let mut api = ApiController::attach(&x.display).await;
    api.send("NAME skypopen").await;
    api.send("PROTOCOL 999").await;
    api.expect("CURRENTUSERHANDLE user1").await;
    assert_eq!(api.seen, vec!["CURRENTUSERHANDLE user1".to_string()]);
    api.expect("USERSTATUS ONLINE").await;
    api.send("#4 PING").await;
    api.expect("#4 PONG").await;

    // The same fault injected at run time through ctl: a chat notification sent after it
    // (long enough for several chunks) never reaches the controller, but the message exists.
    net.actl(&["fault", "user1", "drop-begin", "1"]).await;
    let m = net
        .actl(&[
            "chat",
            "--from",
            "bob",
            "--to",
            "user1",
            "--text",
            "lost note",
        ])
        .await["message"]
        .as_u64()
        .unwrap();
    api.send(&format!("GET CHATMESSAGE {m} BODY")).await;
    api.expect(&format!("CHATMESSAGE {m} BODY lost note")).await;
    let received = format!("CHATMESSAGE {m} STATUS RECEIVED");
    let late = api
        .try_wait(Duration::from_millis(500), |l| l == received)
        .await;
    assert!(
        !api.seen.contains(&received) && late.is_none(),
        "the faulted notification arrived: {:?}",
        api.seen
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_connect_faults_delay_and_missing() {
    let net = SimNetwork::start();
    let (x1, x2) = (Xvfb::start(), Xvfb::start());
    let _slow = SimClient::start(&x1.display, "user1", &net, &["--audio-delay-ms", "700"]);
    let _none = SimClient::start(&x2.display, "user2", &net, &["--no-audio"]);
    let mut slow = ApiController::attach(&x1.display).await;
    slow.handshake("user1").await;
    let id = slow.dial("instantecho").await;
    slow.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    let started = std::time::Instant::now();
    let mut ports = AudioPorts::open(&mut slow, id).await;
    assert!(started.elapsed() >= Duration::from_millis(700));
    let heard = ports.tone_and_record(1000.0, 25).await;
    assert!(skypopen::media::dsp::summarize(&heard)
        .frequency_hz
        .is_some());

    let mut none = ApiController::attach(&x2.display).await;
    none.handshake("user2").await;
    let id = none.dial("echo123").await;
    none.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    let input = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = input.local_addr().unwrap().port();
    none.send(&format!("ALTER CALL {id} SET_INPUT PORT=\"{port}\""))
        .await;
    none.expect(&format!("ALTER CALL {id} SET_INPUT PORT=\"{port}\""))
        .await;
    let accepted = tokio::time::timeout(Duration::from_millis(1500), input.accept()).await;
    assert!(accepted.is_err(), "a --no-audio client connected anyway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_loss_reports_offline_and_error_36_then_recovers() {
    let net = SimNetwork::start();
    let (_x, _client, mut api) = logged_in(&net, "user6").await;
    let id = api.dial("echo123").await;
    api.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    net.actl(&["fault", "user6", "offline", "1000"]).await;
    api.expect("CONNSTATUS OFFLINE").await;
    api.expect("ERROR 36 Not online").await;
    api.expect(&format!("CALL {id} STATUS FINISHED")).await;
    api.send("CALL echo123").await;
    api.expect("ERROR 36 Not online").await;
    api.expect("CONNSTATUS ONLINE").await;
    let id = api.dial("echo123").await;
    api.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_client_leaves_a_stale_instance_property() {
    let net = SimNetwork::start();
    let x = Xvfb::start();
    let mut client = SimClient::start(&x.display, "user7", &net, &[]);
    let window = skype_instance(&x.display).expect("property set");
    let mut api = ApiController::attach(&x.display).await;
    api.handshake("user7").await;
    net.actl(&["fault", "user7", "die"]).await;
    let code = client.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(70));
    assert_eq!(
        skype_instance(&x.display),
        Some(window),
        "the crashed client's property stays behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_network_keeps_the_client_running_offline() {
    let x = Xvfb::start();
    let mut net = SimNetwork::start();
    let addr = net.addr_string();
    net.kill();
    let mut client = SimClient::start(&x.display, "user1", &net, &[]);
    let mut api = ApiController::attach(&x.display).await;
    api.send("NAME skypopen").await;
    api.expect("OK").await;
    api.expect("CONNSTATUS OFFLINE").await;
    api.expect("CURRENTUSERHANDLE user1").await;
    api.send("CALL echo123").await;
    api.expect("ERROR 36 Not online").await;
    assert_eq!(client.wait_exit(Duration::from_millis(200)), None);
    // The network comes back on the same address: the client reconnects by itself.
    let _net2 = SimNetwork::start_on(&addr);
    api.expect("CONNSTATUS ONLINE").await;
    let id = api.dial("echo123").await;
    api.expect(&format!("CALL {id} STATUS RINGING")).await;
}
