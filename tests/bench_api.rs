//! Throughput of the Skype API model and session, without X11: parsing client messages,
//! rendering commands, and tagged request/reply round trips over in-memory links.
//!
//! Run with `cargo test --release --test bench_api -- --ignored --nocapture`; the report is
//! printed and written to `target/bench-reports/api.txt`.

mod support;

use skypopen::shutdown::CancellationToken;
use skypopen::skype::api::{CallId, CallProperty, Command, Incoming};
use skypopen::skype::link::{ControllerLink, LinkEvent};
use skypopen::skype::session::{spawn, SessionConfig, SessionEvent};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const MESSAGES: &[&str] = &[
    "CALL 12 STATUS INPROGRESS",
    "CALL 12 DURATION 37",
    "CALL 12 PARTNER_DISPNAME Echo Sound Test Service",
    "#41 CALL 12 PARTNER_HANDLE echo123",
    "CHATMESSAGE 4711 STATUS RECEIVED",
    "#42 CHATMESSAGE 4711 BODY ciao a tutti, this is a fairly ordinary chat message body",
    "CONNSTATUS ONLINE",
    "ERROR 92 CALL: Unrecognised identity",
    "CHATMESSAGES 1, 2, 3, 4, 5, 6",
    "something the parser does not know",
];

fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn bench_parse(report: &mut String) {
    let rounds = 200_000u64;
    let start = Instant::now();
    let mut known = 0u64;
    for _ in 0..rounds {
        for text in MESSAGES {
            let incoming = Incoming::parse(std::hint::black_box(text));
            if !matches!(
                incoming.notification,
                skypopen::skype::api::Notification::Unknown(_)
            ) {
                known += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    let total = rounds * MESSAGES.len() as u64;
    assert_eq!(known, rounds * (MESSAGES.len() as u64 - 1));
    let _ = writeln!(
        report,
        "parse: {total} messages in {elapsed:?}: {:.0} msg/s, {:.0} ns/msg",
        per_second(total, elapsed),
        elapsed.as_nanos() as f64 / total as f64
    );
}

fn bench_render(report: &mut String) {
    let commands = [
        Command::call("echo123").expect("valid destination"),
        Command::GetCall {
            id: CallId(12),
            property: CallProperty::PartnerDispname,
        },
        Command::chat_message("#user1/$user2;9f3e2a", "ciao a tutti").expect("valid chat"),
        Command::dtmf(CallId(12), '5').expect("valid digit"),
    ];
    let rounds = 250_000u64;
    let start = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..rounds {
        for command in &commands {
            bytes += std::hint::black_box(command).to_string().len();
        }
    }
    let elapsed = start.elapsed();
    let total = rounds * commands.len() as u64;
    assert!(bytes > 0);
    let _ = writeln!(
        report,
        "render: {total} commands in {elapsed:?}: {:.0} cmd/s",
        per_second(total, elapsed)
    );
}

/// A client that completes the handshake and answers every tagged command with its tag.
async fn echo_client(
    to_session: mpsc::Sender<LinkEvent>,
    mut from_session: mpsc::Receiver<String>,
) {
    let say = |text: &str| LinkEvent::Message(text.to_owned());
    if to_session
        .send(LinkEvent::Attached { window: 1 })
        .await
        .is_err()
    {
        return;
    }
    while let Some(command) = from_session.recv().await {
        let reply = if let Some(tagged) = command.strip_prefix('#') {
            let tag = tagged.split_once(' ').map_or(tagged, |(tag, _)| tag);
            format!("#{tag} PONG")
        } else if command == "NAME skypopen" {
            "OK".to_owned()
        } else if command == "GET CURRENTUSERHANDLE" {
            "CURRENTUSERHANDLE user1".to_owned()
        } else {
            continue;
        };
        if to_session.send(say(&reply)).await.is_err() {
            return;
        }
    }
}

async fn bench_round_trips(report: &mut String, concurrency: usize, per_task: u64) {
    let (to_session, link_events) = mpsc::channel(1024);
    let (outgoing, from_session) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let mut session = spawn(
        SessionConfig::new("bench", "user1"),
        ControllerLink {
            outgoing,
            events: link_events,
        },
        cancel.clone(),
    );
    tokio::spawn(echo_client(to_session, from_session));
    let drain = tokio::spawn(async move {
        while let Some(event) = session.events.recv().await {
            if let SessionEvent::Error(failure) = event {
                panic!("handshake failed: {failure}");
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(30), session.handle.ready())
        .await
        .expect("session ready in time")
        .expect("session ready");

    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let handle = session.handle.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                handle.request(Command::Ping).await.expect("reply");
            }
        }));
    }
    for task in tasks {
        task.await.expect("request task");
    }
    let elapsed = start.elapsed();
    let total = concurrency as u64 * per_task;
    let _ = writeln!(
        report,
        "round trips, {concurrency} concurrent: {total} in {elapsed:?}: {:.0} req/s, {:.1} us mean latency",
        per_second(total, elapsed),
        elapsed.as_micros() as f64 * concurrency as f64 / total as f64
    );
    cancel.cancel();
    let _ = drain.await;
}

#[test]
#[ignore = "benchmark: run explicitly with --ignored"]
fn bench_api() {
    let mut report = String::from("skypopen API model and session benchmark\n");
    bench_parse(&mut report);
    bench_render(&mut report);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        bench_round_trips(&mut report, 1, 20_000).await;
        bench_round_trips(&mut report, 32, 2_000).await;
    });
    print!("{report}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-reports");
    std::fs::create_dir_all(&dir).expect("report directory");
    std::fs::write(dir.join("api.txt"), &report).expect("write report");
}
