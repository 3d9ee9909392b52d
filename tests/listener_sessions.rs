//! The listener over real sockets: what a client sees, byte for byte where FreeSWITCH's
//! captures say how it must look.

mod support;

mod listener_support;

use listener_support::{wait_for, Client, Server, DEADLINE, PASSWORD};
use skypopen::switch::esl::{reply, Event, EventFormat, EventSource};
use skypopen::switch::listener::LockoutPolicy;
use skypopen::telemetry::LogBus;
use std::net::Ipv4Addr;
use std::time::Duration;
use support::eslcap::{self, Direction};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn wrong_password_gets_exactly_what_freeswitch_sends() {
    let server = Server::start(|_| {}).await;
    let mut client = Client::connect(server.addr).await;
    client.send(b"auth wrongpass\n\n").await;
    let received = client.rest().await;
    let capture = eslcap::load("s1a_inbound_auth_fail.eslcap").expect("fixture s1a");
    assert_eq!(
        String::from_utf8_lossy(&received),
        String::from_utf8_lossy(&capture.stream(Direction::ServerToClient))
    );
    assert_eq!(server.stats.auth_failures(), 1);
    server.stop().await;
}

#[tokio::test]
async fn login_status_version_and_exit() {
    let server = Server::start(|_| {}).await;
    let mut client = Client::login(server.addr).await;
    let status = client.api("status").await;
    assert!(
        status.starts_with("UP 0 years, 0 days, 0 hours, 0 minutes, "),
        "{status}"
    );
    assert!(status.contains("skypopen (Version "), "{status}");
    let version = client.api("version").await;
    assert!(version.starts_with("skypopen Version "), "{version}");
    assert_eq!(client.api("hostname").await, "testhost");
    assert_eq!(
        client.api("foobar").await,
        "-ERR foobar Command not found!\n"
    );
    assert_eq!(client.reply_text("foobar").await, "-ERR command not found");

    client.send(b"exit\n\n").await;
    let tail = client.rest().await;
    let expected = [
        reply::command_reply("+OK bye"),
        reply::disconnect_notice(reply::GOODBYE),
    ]
    .concat();
    assert_eq!(
        String::from_utf8_lossy(&tail),
        String::from_utf8_lossy(&expected)
    );
    server.stop().await;
}

#[tokio::test]
async fn commands_before_auth_are_not_found_and_crlf_is_accepted() {
    let server = Server::start(|_| {}).await;
    let mut client = Client::connect(server.addr).await;
    assert_eq!(
        client
            .recv()
            .await
            .and_then(|m| m.content_type().map(str::to_string))
            .as_deref(),
        Some("auth/request")
    );
    assert_eq!(
        client.reply_text("api status").await,
        "-ERR command not found"
    );
    client
        .send(format!("\r\nauth {PASSWORD}\r\n\r\n").as_bytes())
        .await;
    let reply = client.reply().await;
    assert_eq!(reply.headers.get("Reply-Text"), Some("+OK accepted"));
    server.stop().await;
}

fn quick_lockout() -> LockoutPolicy {
    LockoutPolicy {
        max_failures: 3,
        max_network_failures: 6,
        pause: Duration::from_millis(5),
        max_pause: Duration::from_millis(20),
        ..LockoutPolicy::default()
    }
}

/// A failed login from `local`; what the server sent.
async fn fail_from(server: &Server, local: Ipv4Addr) -> String {
    let mut client = Client::connect_from(server.addr, local).await;
    client.send(b"auth guess\n\n").await;
    String::from_utf8_lossy(&client.rest().await).into_owned()
}

#[tokio::test]
async fn wrong_passwords_from_an_admin_address_never_lock_it_out() {
    let server = Server::start(|config| config.lockout = quick_lockout()).await;
    for _ in 0..20 {
        assert!(fail_from(&server, Ipv4Addr::LOCALHOST)
            .await
            .contains("-ERR invalid"));
    }
    let mut client = Client::login(server.addr).await;
    assert!(client.api("status").await.starts_with("UP "));
    server.stop().await;
}

#[tokio::test]
async fn other_addresses_are_banned_and_so_is_their_network() {
    let server = Server::start(|config| {
        config.lockout = quick_lockout();
        config.allow = vec!["127.0.0.0/8".parse().unwrap()];
        config.admin = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let guesser = Ipv4Addr::new(127, 0, 0, 2);
    for _ in 0..3 {
        assert!(fail_from(&server, guesser).await.contains("-ERR invalid"));
    }
    // Even the right password is refused now, with the reason.
    let mut client = Client::connect_from(server.addr, guesser).await;
    client.send(format!("auth {PASSWORD}\n\n").as_bytes()).await;
    let rest = String::from_utf8_lossy(&client.rest().await).into_owned();
    assert!(
        rest.starts_with("Content-Type: text/rude-rejection"),
        "{rest}"
    );
    assert!(
        rest.contains("Refused: address banned after failed logins."),
        "{rest}"
    );
    // Rotating through the network buys only a few more guesses before it is banned whole.
    for last in 3..6 {
        assert!(fail_from(&server, Ipv4Addr::new(127, 0, 0, last))
            .await
            .contains("-ERR invalid"));
    }
    let rest = fail_from(&server, Ipv4Addr::new(127, 0, 0, 77)).await;
    assert!(
        rest.contains("Refused: network banned after failed logins from its addresses."),
        "{rest}"
    );
    // The admin address in that network still gets in.
    let mut client = Client::login(server.addr).await;
    assert!(client.api("status").await.starts_with("UP "));
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_connections_that_never_log_in_leaves_room_for_the_operator() {
    let server = Server::start(|_| {}).await;
    let mut flood = Vec::new();
    for _ in 0..500 {
        flood.push(
            tokio::net::TcpStream::connect(server.addr)
                .await
                .expect("connect"),
        );
    }
    let started = std::time::Instant::now();
    let mut client = Client::login(server.addr).await;
    assert!(client.api("status").await.starts_with("UP "));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // The oldest of the flood were closed and told why.
    let mut first = flood.remove(0);
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, first.read_to_end(&mut seen)).await;
    let seen = String::from_utf8_lossy(&seen);
    assert!(
        seen.contains("too many connections waiting to log in"),
        "{seen}"
    );
    drop(flood);
    server.stop().await;
}

#[tokio::test]
async fn a_connection_that_does_not_log_in_is_told_and_closed() {
    let server = Server::start(|config| config.auth_timeout = Duration::from_millis(200)).await;
    let mut client = Client::connect(server.addr).await;
    let rest = String::from_utf8_lossy(&client.rest().await).into_owned();
    assert!(rest.contains("No auth in time"), "{rest}");
    server.stop().await;
}

#[tokio::test]
async fn addresses_outside_the_allow_list_are_rejected() {
    let server = Server::start(|config| {
        config.allow = vec!["192.0.2.0/24".parse().expect("network")];
    })
    .await;
    let mut client = Client::connect(server.addr).await;
    let first = client.recv().await.expect("a rejection");
    assert_eq!(first.content_type(), Some("text/rude-rejection"));
    assert_eq!(first.body_text().as_deref(), Some(reply::ACCESS_DENIED));
    let notice = client.recv().await.expect("a disconnect notice");
    assert_eq!(notice.content_type(), Some("text/disconnect-notice"));
    assert!(client.recv().await.is_none());
    server.stop().await;
}

#[tokio::test]
async fn bgapi_reply_then_background_job_to_every_subscriber() {
    let server = Server::start(|_| {}).await;
    let mut issuer = Client::login(server.addr).await;
    let mut observer = Client::login(server.addr).await;
    let mut unsubscribed = Client::login(server.addr).await;
    assert_eq!(
        issuer.reply_text("event plain BACKGROUND_JOB").await,
        "+OK event listener enabled plain"
    );
    assert_eq!(
        observer.reply_text("event json BACKGROUND_JOB").await,
        "+OK event listener enabled json"
    );

    // With a Job-UUID chosen by the client.
    issuer
        .send(b"bgapi status\nJob-UUID: df50d8b0-4251-4c92-b48a-ad56e2bf4e6b\n\n")
        .await;
    let reply = issuer.reply().await;
    assert_eq!(
        reply.headers.get("Reply-Text"),
        Some("+OK Job-UUID: df50d8b0-4251-4c92-b48a-ad56e2bf4e6b")
    );
    assert_eq!(
        reply.headers.get("Job-UUID"),
        Some("df50d8b0-4251-4c92-b48a-ad56e2bf4e6b")
    );
    for client in [&mut issuer, &mut observer] {
        let job = client.event().await;
        assert_eq!(job.name(), Some("BACKGROUND_JOB"));
        assert_eq!(
            job.header("Job-UUID"),
            Some("df50d8b0-4251-4c92-b48a-ad56e2bf4e6b")
        );
        assert_eq!(job.header("Job-Command"), Some("status"));
        assert_eq!(job.header("Job-Command-Arg"), None);
        assert!(job
            .body
            .as_deref()
            .unwrap_or_default()
            .starts_with("UP 0 years"));
        assert!(job.header("Core-UUID").is_some() && job.header("Event-Sequence").is_some());
    }

    // Without: the server picks one and reports it twice.
    let reply = issuer.command("bgapi version now").await;
    let job_uuid = reply
        .headers
        .get("Job-UUID")
        .expect("Job-UUID header")
        .to_string();
    assert_eq!(
        reply.headers.get("Reply-Text").map(str::to_string),
        Some(format!("+OK Job-UUID: {job_uuid}"))
    );
    assert_eq!(job_uuid.len(), 36);
    let job = issuer.event().await;
    assert_eq!(job.header("Job-UUID"), Some(job_uuid.as_str()));
    assert_eq!(job.header("Job-Command-Arg"), Some("now"));
    assert_eq!(
        observer.event().await.header("Job-UUID"),
        Some(job_uuid.as_str())
    );

    // A connection that did not subscribe got nothing but its own reply.
    assert!(unsubscribed
        .api("version")
        .await
        .starts_with("skypopen Version"));
    assert!(unsubscribed.buf.is_empty());
    server.stop().await;
}

fn chat_message(source: &EventSource) -> Event {
    source
        .event("MESSAGE", "chat_in")
        .with_header("proto", "skype")
        .with_header("login", "interface1")
        .with_header("from", "bob")
        .with_header("hint", "Bob B")
        .with_header("to", "user1")
        .with_body("Grüße aus Köln – привет, 你好 👋 \"quotes\" & <angle> 100%\nsecond line")
}

#[tokio::test]
async fn published_message_reaches_plain_and_json_subscribers_intact() {
    let server = Server::start(|_| {}).await;
    let mut plain = Client::login(server.addr).await;
    let mut json = Client::login(server.addr).await;
    assert_eq!(
        plain.reply_text("event plain MESSAGE").await,
        "+OK event listener enabled plain"
    );
    assert_eq!(
        json.reply_text("event json MESSAGE").await,
        "+OK event listener enabled json"
    );
    let sent = chat_message(server.bus.source());
    assert_eq!(server.bus.publish(sent.clone()), 2);

    let message = plain.recv().await.expect("plain event");
    assert_eq!(message.content_type(), Some("text/event-plain"));
    let payload = message.body.clone().unwrap_or_default();
    assert!(String::from_utf8_lossy(&payload).contains("hint: Bob%20B\n"));
    assert_eq!(Event::parse_plain(&payload).expect("plain parses"), sent);

    let message = json.recv().await.expect("json event");
    assert_eq!(message.content_type(), Some("text/event-json"));
    let payload = message.body_text().unwrap_or_default().into_owned();
    assert!(payload.contains(r#""_body":"Grüße aus Köln"#), "{payload}");
    assert_eq!(Event::parse_json(&payload).expect("json parses"), sent);
    assert_eq!(EventFormat::Json.content_type(), "text/event-json");
    server.stop().await;
}

#[tokio::test]
async fn words_after_custom_are_subclasses_as_in_freeswitch() {
    let server = Server::start(|_| {}).await;
    let mut client = Client::login(server.addr).await;
    assert_eq!(
        client
            .reply_text(
                "event plain CHANNEL_CREATE DTMF CUSTOM skypopen::command MESSAGE BACKGROUND_JOB"
            )
            .await,
        "+OK event listener enabled plain"
    );
    let source = server.bus.source();
    server.bus.publish(chat_message(source));
    server.bus.publish(source.custom("other::thing", "test"));
    server.bus.publish(
        source
            .custom("skypopen::command", "test")
            .with_body("sk list"),
    );
    let event = client.event().await;
    assert_eq!(event.subclass(), Some("skypopen::command"));
    assert_eq!(event.body.as_deref(), Some("sk list"));
    server.stop().await;
}

#[tokio::test]
async fn filters_nixevent_and_noevents() {
    let server = Server::start(|_| {}).await;
    let mut client = Client::login(server.addr).await;
    let source = server.bus.source();
    assert_eq!(
        client.reply_text("event plain ALL").await,
        "+OK event listener enabled plain"
    );
    assert_eq!(
        client.reply_text("filter Unique-ID b").await,
        "+OK filter added. [Unique-ID]=[b]"
    );
    server
        .bus
        .publish(source.event("DTMF", "t").with_header("Unique-ID", "a"));
    server
        .bus
        .publish(source.event("DTMF", "t").with_header("Unique-ID", "b"));
    assert_eq!(client.event().await.header("Unique-ID"), Some("b"));
    assert_eq!(client.reply_text("nixevent DTMF").await, "+OK events nixed");
    server
        .bus
        .publish(source.event("DTMF", "t").with_header("Unique-ID", "b"));
    server
        .bus
        .publish(source.event("TALK", "t").with_header("Unique-ID", "b"));
    assert_eq!(client.event().await.name(), Some("TALK"));
    assert_eq!(
        client.reply_text("filter delete Unique-ID").await,
        "+OK filter deleted. [Unique-ID][]"
    );
    assert_eq!(
        client.reply_text("noevents").await,
        "+OK no longer listening for events"
    );
    assert_eq!(
        client.reply_text("noevents").await,
        "-ERR not listening for events"
    );
    assert_eq!(
        client.reply_text("event plain").await,
        "-ERR no keywords supplied"
    );
    server.stop().await;
}

#[tokio::test]
async fn sendevent_is_fired_with_sender_headers_first() {
    let server = Server::start(|_| {}).await;
    let mut listener = Client::login(server.addr).await;
    let mut sender = Client::login(server.addr).await;
    listener
        .reply_text("event plain MESSAGE CUSTOM skypopen::command")
        .await;
    let body = "Grüße – привет 👋 100%\nzweite Zeile";
    let command = format!(
        "sendevent MESSAGE\nproto: skype\nhint: Bob B\nContent-Length: {}\n\n{body}",
        body.len()
    );
    sender.send(command.as_bytes()).await;
    let reply = sender.reply().await;
    let text = reply
        .headers
        .get("Reply-Text")
        .unwrap_or_default()
        .to_string();
    let event_uuid = text.strip_prefix("+OK ").expect("+OK <uuid>").to_string();
    let event = listener.event().await;
    let names: Vec<&str> = event.headers.iter().map(|(name, _)| name).take(6).collect();
    assert_eq!(
        names,
        [
            "Command",
            "proto",
            "hint",
            "Content-Length",
            "Event-UUID",
            "Event-Name"
        ]
    );
    assert_eq!(event.header("Command"), Some("sendevent MESSAGE"));
    assert_eq!(event.header("Event-UUID"), Some(event_uuid.as_str()));
    assert_eq!(event.body.as_deref(), Some(body));

    sender
        .send(b"sendevent CUSTOM\nsk-command: list\nEvent-Subclass: skypopen::command\n\n")
        .await;
    assert!(sender
        .reply()
        .await
        .headers
        .get("Reply-Text")
        .unwrap_or_default()
        .starts_with("+OK "));
    let event = listener.event().await;
    let names: Vec<&str> = event.headers.iter().map(|(name, _)| name).take(3).collect();
    assert_eq!(names, ["Event-Subclass", "Command", "sk-command"]);
    server.stop().await;
}

#[tokio::test]
async fn garbage_and_oversized_frames_close_only_that_connection() {
    let server = Server::start(|_| {}).await;
    let mut bystander = Client::login(server.addr).await;

    let mut binary = Client::login(server.addr).await;
    binary.send(b"\x00\xff\xfe garbage\n\n").await;
    assert_eq!(
        binary.reply().await.headers.get("Reply-Text"),
        Some("-ERR command not found")
    );
    assert!(binary.api("version").await.starts_with("skypopen"));
    drop(binary);

    let mut huge_length = Client::login(server.addr).await;
    huge_length
        .send(b"sendevent MESSAGE\nContent-Length: 99999999999\n\n")
        .await;
    let rest = huge_length.rest().await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("text/disconnect-notice"), "{rest}");
    assert!(rest.contains("over the size limits"), "told why: {rest}");

    let mut endless = Client::login(server.addr).await;
    let junk = vec![b'x'; 70 * 1024];
    // The server may close before it has read everything; a failed write is fine then.
    let _ = endless.stream.write_all(&junk).await;
    let rest = endless.rest().await;
    assert!(String::from_utf8_lossy(&rest).contains("text/disconnect-notice"));

    let mut truncated = Client::login(server.addr).await;
    truncated
        .send(b"sendevent MESSAGE\nContent-Length: 10\n\nabc")
        .await;
    drop(truncated);

    assert!(bystander.api("status").await.starts_with("UP "));
    wait_for("closed connections to be counted", || {
        server.stats.open() == 1
    })
    .await;
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_without_stalling_others() {
    let server = Server::start_with(
        |config| {
            config.queue_capacity = 16;
        },
        64,
        LogBus::new(),
    )
    .await;
    let mut slow = Client::login(server.addr).await;
    assert_eq!(
        slow.reply_text("event plain ALL").await,
        "+OK event listener enabled plain"
    );
    let mut healthy = Client::login(server.addr).await;
    assert_eq!(
        healthy.reply_text("event json CUSTOM load::test").await,
        "+OK event listener enabled json"
    );

    let body = "x".repeat(64 * 1024);
    let mut published = 0;
    while server.stats.lost_event_kills() == 0 {
        assert!(published < 10_000, "the slow client was never cut off");
        server.bus.publish(
            server
                .bus
                .source()
                .custom("load::test", "t")
                .with_body(body.clone()),
        );
        published += 1;
        // The healthy client keeps reading while the slow one does not.
        let event = healthy.event().await;
        assert_eq!(event.subclass(), Some("load::test"));
    }
    assert!(healthy.api("status").await.starts_with("UP "));

    let rest = slow.rest().await;
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.ends_with(
            &String::from_utf8_lossy(&reply::disconnect_notice(reply::LOST_EVENTS)).into_owned()
        ),
        "the slow client's stream ends with the lost-events notice"
    );
    server.stop().await;
}

#[tokio::test]
async fn stopping_the_listener_says_goodbye_to_connections() {
    let server = Server::start(|_| {}).await;
    let mut client = Client::login(server.addr).await;
    server.cancel.cancel();
    let rest = client.rest().await;
    assert_eq!(
        String::from_utf8_lossy(&rest),
        String::from_utf8_lossy(&reply::disconnect_notice(reply::SHUTTING_DOWN))
    );
    tokio::time::timeout(DEADLINE, server.task)
        .await
        .expect("listener stops")
        .expect("cleanly");
}
