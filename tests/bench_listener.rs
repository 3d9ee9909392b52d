//! Throughput of the ESL listener: the codec alone (command framing, event rendering and
//! parsing in plain and JSON) and events fanned out over loopback to several subscribers.
//!
//! Run with `cargo test --release --test bench_listener -- --ignored --nocapture`; the report
//! is printed and written to `target/bench-reports/listener.txt`.

mod listener_support;
mod support;

use bytes::BytesMut;
use listener_support::{Client, Server};
use skypopen::switch::esl::{CommandDecoder, Event, EventFormat, MessageDecoder, PercentMode};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::eslcap::{self, Direction};
use tokio::io::AsyncReadExt;

fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn chat_event() -> Event {
    Event::new()
        .with_header("Event-Name", "MESSAGE")
        .with_header("Core-UUID", "5f0c2a9e-1b7d-4c3e-9a61-2d8e7f4b6c10")
        .with_header("Event-Date-Local", "2026-11-22 20:25:28")
        .with_header("proto", "skype")
        .with_header("login", "interface1")
        .with_header("from", "bob")
        .with_header("hint", "Bob B")
        .with_header("to", "user1")
        .with_header("chatname", "#bob/$user1;0123abcd")
        .with_body("Grüße aus Köln – привет, 你好 👋 \"quotes\" & <angle> 100%\nsecond line")
}

/// The largest event of the s1b capture (a CHANNEL_HANGUP_COMPLETE of about 4 KB).
fn large_event() -> Event {
    let capture = eslcap::load("s1b_inbound_main_plain.eslcap").expect("fixture s1b");
    capture
        .records(Direction::ServerToClient)
        .filter_map(|record| {
            let mut decoder = MessageDecoder::default();
            let mut buf = BytesMut::from(&record.data[..]);
            let message = decoder.decode(&mut buf).ok()??;
            (message.content_type() == Some("text/event-plain"))
                .then(|| Event::parse_plain(message.body.as_deref()?).ok())
                .flatten()
        })
        .max_by_key(|event| event.headers.len())
        .expect("an event in s1b")
}

fn bench_codec(report: &mut String) {
    let stream: Vec<u8> = (0..1000)
        .flat_map(|index| {
            format!("api status\n\nbgapi version\nJob-UUID: job-{index}\n\nevent plain ALL\n\n")
                .into_bytes()
        })
        .collect();
    let rounds = 50u64;
    let started = Instant::now();
    let mut commands = 0u64;
    for _ in 0..rounds {
        let mut decoder = CommandDecoder::default();
        let mut buf = BytesMut::from(&stream[..]);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {
            commands += 1;
        }
    }
    let elapsed = started.elapsed();
    let _ = writeln!(
        report,
        "command framing: {commands} commands in {elapsed:.2?} = {:.0} commands/s",
        per_second(commands, elapsed)
    );

    for (label, event) in [
        ("chat MESSAGE", chat_event()),
        ("CHANNEL_HANGUP_COMPLETE", large_event()),
    ] {
        let rounds = 20_000u64;
        let plain = event.plain_payload(PercentMode::Always);
        let json = event.json_payload();
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(event.plain_payload(PercentMode::Always));
        }
        let render_plain = started.elapsed();
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(event.json_payload());
        }
        let render_json = started.elapsed();
        let started = Instant::now();
        for _ in 0..rounds {
            let _ = std::hint::black_box(Event::parse_plain(plain.as_bytes()));
        }
        let parse_plain = started.elapsed();
        let started = Instant::now();
        for _ in 0..rounds {
            let _ = std::hint::black_box(Event::parse_json(&json));
        }
        let parse_json = started.elapsed();
        let _ = writeln!(
            report,
            "{label} ({} headers, plain {} B, json {} B): render plain {:.0}/s, render json {:.0}/s, parse plain {:.0}/s, parse json {:.0}/s",
            event.headers.len(),
            plain.len(),
            json.len(),
            per_second(rounds, render_plain),
            per_second(rounds, render_json),
            per_second(rounds, parse_plain),
            per_second(rounds, parse_json),
        );
    }
}

/// Publishes `total` chat events and waits until every subscriber has read all of them.
async fn bench_fanout(report: &mut String, subscribers: usize, format: EventFormat) {
    let total = 20_000u64;
    let server = Server::start(|config| config.queue_capacity = 10_000).await;
    let mut readers = Vec::new();
    let mut progress = Vec::new();
    for _ in 0..subscribers {
        let mut client = Client::login(server.addr).await;
        let reply = client
            .reply_text(&format!("event {} MESSAGE", format.as_str()))
            .await;
        assert!(reply.starts_with("+OK"), "{reply}");
        let counter = Arc::new(AtomicU64::new(0));
        progress.push(counter.clone());
        readers.push(tokio::spawn(async move {
            let mut decoder = MessageDecoder::default();
            let mut buf = std::mem::take(&mut client.buf);
            let mut seen = 0u64;
            let mut bytes = 0u64;
            while seen < total {
                while let Ok(Some(message)) = decoder.decode(&mut buf) {
                    if message
                        .content_type()
                        .is_some_and(|t| t.starts_with("text/event-"))
                    {
                        seen += 1;
                        counter.store(seen, Ordering::Relaxed);
                        bytes += message.body.map_or(0, |body| body.len() as u64);
                    }
                }
                if seen >= total {
                    break;
                }
                let read = client.stream.read_buf(&mut buf).await.expect("reads");
                assert!(read > 0, "server closed during the benchmark");
            }
            bytes
        }));
    }
    let event = chat_event();
    let started = Instant::now();
    for sent in 0..total {
        server.bus.publish(event.clone());
        // Stay well within the bus's capacity: this measures delivery, not lost-event kills.
        if sent % 256 == 255 {
            let deadline = Instant::now() + Duration::from_secs(60);
            while progress
                .iter()
                .any(|seen| sent.saturating_sub(seen.load(Ordering::Relaxed)) > 1024)
            {
                assert!(Instant::now() < deadline, "subscribers stopped reading");
                tokio::task::yield_now().await;
            }
        }
    }
    let mut bytes = 0;
    for reader in readers {
        bytes += tokio::time::timeout(Duration::from_secs(120), reader)
            .await
            .expect("subscribers read everything in time")
            .expect("reader task");
    }
    let elapsed = started.elapsed();
    let delivered = total * subscribers as u64;
    let _ = writeln!(
        report,
        "fan-out {format:?} to {subscribers} subscriber(s): {delivered} events in {elapsed:.2?} = {:.0} events/s delivered, {:.1} MB/s",
        per_second(delivered, elapsed),
        bytes as f64 / elapsed.as_secs_f64().max(1e-9) / 1e6,
    );
    assert_eq!(server.stats.lost_event_kills(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --release --test bench_listener -- --ignored --nocapture"]
async fn listener_throughput() {
    let mut report = String::from("ESL listener benchmark\n");
    let _ = writeln!(
        report,
        "profile: {}",
        if cfg!(debug_assertions) {
            "dev (numbers are pessimistic)"
        } else {
            "release"
        }
    );
    bench_codec(&mut report);
    for format in [EventFormat::Plain, EventFormat::Json] {
        for subscribers in [1, 8] {
            bench_fanout(&mut report, subscribers, format).await;
        }
    }
    println!("{report}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-reports");
    std::fs::create_dir_all(&dir).expect("report directory");
    std::fs::write(dir.join("listener.txt"), &report).expect("write report");
}
