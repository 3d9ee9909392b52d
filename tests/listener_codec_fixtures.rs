//! Replays the captures of a real FreeSWITCH 1.10.12 (s1a-s1d, inbound ESL) through the
//! listener's codec: every command the client sent parses, every message FreeSWITCH sent
//! parses, and events and replies re-render to the very same bytes.

mod support;

use bytes::BytesMut;
use skypopen::switch::esl::event::wrap_event_payload;
use skypopen::switch::esl::{
    reply, Command, CommandDecoder, Event, EventFormat, Message, MessageDecoder, PercentMode,
};
use std::collections::HashMap;
use support::eslcap::{self, Capture, Direction};

const INBOUND: [&str; 4] = [
    "s1a_inbound_auth_fail.eslcap",
    "s1b_inbound_main_plain.eslcap",
    "s1c_inbound_observer_json.eslcap",
    "s1d_inbound_event_custom_first.eslcap",
];

fn load(name: &str) -> Capture {
    match eslcap::load(name) {
        Ok(capture) => capture,
        Err(err) => panic!("cannot read fixture: {err}"),
    }
}

fn decode_one_command(data: &[u8]) -> Command {
    let mut decoder = CommandDecoder::default();
    let mut buf = BytesMut::from(data);
    let command = decoder
        .decode(&mut buf)
        .unwrap_or_else(|err| panic!("command does not parse: {err}: {data:?}"))
        .unwrap_or_else(|| panic!("command incomplete: {data:?}"));
    assert!(buf.is_empty(), "bytes left after one command: {buf:?}");
    command
}

fn decode_one_message(data: &[u8]) -> Message {
    let mut decoder = MessageDecoder::default();
    let mut buf = BytesMut::from(data);
    let message = decoder
        .decode(&mut buf)
        .unwrap_or_else(|err| panic!("message does not parse: {err}"))
        .unwrap_or_else(|| panic!("message incomplete: {}", String::from_utf8_lossy(data)));
    assert!(buf.is_empty(), "bytes left after one message");
    message
}

fn event_of(message: &Message) -> Option<(EventFormat, Event)> {
    let format = match message.content_type()? {
        "text/event-plain" => EventFormat::Plain,
        "text/event-json" => EventFormat::Json,
        _ => return None,
    };
    let body = message.body.as_deref().unwrap_or_default();
    let event = Event::parse(format.content_type(), body)
        .unwrap_or_else(|err| panic!("event does not parse: {err}"));
    Some((format, event))
}

#[test]
fn every_client_command_parses_alone_and_as_a_stream() {
    for name in INBOUND {
        let capture = load(name);
        let mut lines = Vec::new();
        for record in capture.records(Direction::ClientToServer) {
            let command = decode_one_command(&record.data);
            lines.push(command.line.clone());
            if command.keyword() == "sendevent" {
                let declared = command.headers.get("Content-Length").map(str::to_string);
                let actual = command.body.as_ref().map(|body| body.len().to_string());
                assert_eq!(declared, actual, "{name}: sendevent body length");
            }
        }
        // The whole stream, one byte at a time, gives the same commands.
        let stream = capture.stream(Direction::ClientToServer);
        let mut decoder = CommandDecoder::default();
        let mut buf = BytesMut::new();
        let mut streamed = Vec::new();
        for byte in stream {
            buf.extend_from_slice(&[byte]);
            while let Some(command) = decoder.decode(&mut buf).expect("stream parses") {
                streamed.push(command.line);
            }
        }
        assert_eq!(streamed, lines, "{name}");
        assert!(!lines.is_empty());
    }
}

#[test]
fn every_server_record_is_one_message_and_the_stream_splits_the_same() {
    for name in INBOUND {
        let capture = load(name);
        let records: Vec<_> = capture.records(Direction::ServerToClient).collect();
        for record in &records {
            decode_one_message(&record.data);
        }
        let stream = capture.stream(Direction::ServerToClient);
        let mut decoder = MessageDecoder::default();
        let mut buf = BytesMut::from(&stream[..]);
        let mut count = 0;
        while let Some(message) = decoder.decode(&mut buf).expect("stream parses") {
            assert_eq!(message, decode_one_message(&records[count].data), "{name}");
            count += 1;
        }
        assert!(buf.is_empty());
        assert_eq!(count, records.len(), "{name}");
    }
}

#[test]
fn events_re_render_byte_for_byte() {
    let mut checked = HashMap::new();
    for name in INBOUND {
        let capture = load(name);
        for record in capture.records(Direction::ServerToClient) {
            let message = decode_one_message(&record.data);
            let Some((format, event)) = event_of(&message) else {
                continue;
            };
            let payload = message.body_text().unwrap_or_default().into_owned();
            match format {
                EventFormat::Plain => {
                    assert_eq!(
                        event.plain_payload(PercentMode::Always),
                        payload,
                        "{name} record {}",
                        record.seq
                    );
                    assert_eq!(event.plain_payload(PercentMode::KeepEncoded), payload);
                }
                _ => assert_eq!(
                    event.json_payload(),
                    payload,
                    "{name} record {}",
                    record.seq
                ),
            }
            assert_eq!(
                event.render(format),
                record.data,
                "{name} record {}",
                record.seq
            );
            assert_eq!(wrap_event_payload(format, &payload), record.data);
            *checked.entry(format.as_str()).or_insert(0) += 1;
        }
    }
    assert!(
        checked.get("plain").copied().unwrap_or(0) > 20,
        "{checked:?}"
    );
    assert!(
        checked.get("json").copied().unwrap_or(0) > 20,
        "{checked:?}"
    );
}

#[test]
fn plain_and_json_captures_decode_to_the_same_events() {
    let by_sequence = |name: &str, format: EventFormat| -> HashMap<String, Event> {
        load(name)
            .records(Direction::ServerToClient)
            .filter_map(|record| event_of(&decode_one_message(&record.data)))
            .filter(|(found, _)| *found == format)
            .filter_map(|(_, event)| Some((event.header("Event-Sequence")?.to_string(), event)))
            .collect()
    };
    let plain = by_sequence("s1b_inbound_main_plain.eslcap", EventFormat::Plain);
    let json = by_sequence("s1c_inbound_observer_json.eslcap", EventFormat::Json);
    let mut compared = 0;
    for (sequence, event) in &plain {
        if let Some(other) = json.get(sequence) {
            assert_eq!(event, other, "Event-Sequence {sequence}");
            compared += 1;
        }
    }
    assert!(compared > 20, "only {compared} events in both captures");
}

#[test]
fn sendevent_events_keep_sender_headers_first_and_both_lengths() {
    let capture = load("s1b_inbound_main_plain.eslcap");
    let events: Vec<Event> = capture
        .records(Direction::ServerToClient)
        .filter_map(|record| event_of(&decode_one_message(&record.data)))
        .map(|(_, event)| event)
        .collect();
    let message = events
        .iter()
        .find(|event| event.name() == Some("MESSAGE") && event.header("hint").is_some())
        .expect("the MESSAGE sent with sendevent is in s1b");
    let names: Vec<&str> = message
        .headers
        .iter()
        .map(|(name, _)| name)
        .take(10)
        .collect();
    assert_eq!(
        names,
        [
            "Command",
            "proto",
            "login",
            "from",
            "hint",
            "to",
            "during-call",
            "Content-Length",
            "Event-UUID",
            "Event-Name"
        ]
    );
    assert_eq!(message.header("hint"), Some("Bob B"));
    let body = message.body.as_deref().unwrap_or_default();
    assert!(body.contains("Grüße") && body.contains("100%") && body.contains('\n'));
    assert_eq!(message.header("Content-Length"), Some("83"));
    assert_eq!(body.len(), 83);

    let custom = events
        .iter()
        .find(|event| event.name() == Some("CUSTOM"))
        .expect("the CUSTOM event is in s1b");
    assert_eq!(
        custom.headers.iter().next(),
        Some(("Event-Subclass", "skypopen::command"))
    );
}

#[test]
fn replies_re_render_byte_for_byte() {
    let mut checked = 0;
    for name in INBOUND {
        let capture = load(name);
        for record in capture.records(Direction::ServerToClient) {
            let message = decode_one_message(&record.data);
            let rendered = match message.content_type() {
                Some("auth/request") => reply::AUTH_REQUEST.to_vec(),
                Some("command/reply") => {
                    let text = message.headers.get("Reply-Text").unwrap_or_default();
                    let extra: Vec<(&str, &str)> = message
                        .headers
                        .iter()
                        .filter(|(name, _)| !matches!(*name, "Content-Type" | "Reply-Text"))
                        .collect();
                    reply::command_reply_with(text, &extra)
                }
                Some("api/response") => {
                    reply::api_response(&message.body_text().unwrap_or_default())
                }
                Some("text/disconnect-notice") => {
                    assert_eq!(message.body_text().as_deref(), Some(reply::GOODBYE));
                    reply::disconnect_notice(reply::GOODBYE)
                }
                _ => continue,
            };
            assert_eq!(
                String::from_utf8_lossy(&rendered),
                record.text(),
                "{name} record {}",
                record.seq
            );
            checked += 1;
        }
    }
    assert!(checked > 30, "only {checked} replies");
}

#[test]
fn auth_failure_capture_is_what_the_listener_sends() {
    let capture = load("s1a_inbound_auth_fail.eslcap");
    let expected = [
        reply::AUTH_REQUEST.to_vec(),
        reply::command_reply("-ERR invalid"),
        reply::disconnect_notice(reply::GOODBYE),
    ]
    .concat();
    assert_eq!(capture.stream(Direction::ServerToClient), expected);
    assert!(capture.records(Direction::Eof).count() == 1);
}
