//! Mutation fuzzing on stable Rust: every parser that reads another process's bytes, fed
//! mutations of a seed corpus (the FreeSWITCH captures, the shipped configuration, typical
//! Skype API lines, frames as the emulator and mod_audio_fork write them, L16 datagrams). A parser may refuse an input; it may
//! not panic, hang, or keep more than its bound. `fuzz_smoke` runs 10^4 inputs per parser in
//! every test run; `fuzz_campaign` (ignored) runs `FUZZ_INPUTS` (default 10^7) and writes
//! `tests/reports/fuzz.md`:
//!   FUZZ_INPUTS=10000000 cargo test --release --test fuzz -- --ignored fuzz_campaign --nocapture

#[path = "support/rng.rs"]
#[allow(dead_code)]
mod rng;

use bytes::BytesMut;
use rng::Rng;
use skypopen::switch::esl::{CommandDecoder, Event, Limits, MessageDecoder};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::codec::Decoder;

/// Byte strings the parsers give a meaning to.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"\n\n",
    b"\r\n",
    b": ",
    b"%",
    b"%0A",
    b"%ZZ",
    b"Content-Length: ",
    b"Content-Length: 99999999999\n\n",
    b"Content-Length: -1\n\n",
    b"Content-Type: text/event-plain\n",
    b"Content-Type: text/event-json\n",
    b"\xff\xfe",
    b"\x00",
    b"{",
    b"}",
    b"\"",
    b"#1 ",
    b"CALL 1 STATUS ",
    b"<",
    b"/>",
    b"[[interface]]\n",
    b"=",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 => data.insert(at, rng.next() as u8),
            2 if !data.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at.min(end)..end);
            }
            3 if !data.is_empty() => {
                let from = rng.below(data.len());
                let end = (from + 1 + rng.below(64)).min(data.len());
                let piece = data[from..end].to_vec();
                data.splice(at..at, piece);
            }
            4 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ => {
                let digits = (rng.next() % 100_000_000_000).to_string();
                data.splice(at..at, digits.bytes());
            }
        }
    }
    // Keep inputs small enough that a run measures parsing, not copying.
    data.truncate(256 * 1024);
    data
}

struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    run: fn(&[u8]),
}

/// Feeds `input` to a decoder in pieces (as a socket delivers it) until it wants more.
fn decode_all<D: Decoder>(decoder: &mut D, input: &[u8], cut: usize, max_buffered: usize)
where
    D::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::new();
    for piece in input.chunks(cut.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(
            buf.len() <= max_buffered,
            "{} bytes held by the decoder",
            buf.len()
        );
    }
}

/// An ESL decoder under its default limits, fed in pieces sized by the input's first byte; it
/// may hold at most one head and one body beyond the piece it is given.
fn esl_decode<D: Decoder>(decoder: impl FnOnce(Limits) -> D, input: &[u8])
where
    D::Error: std::fmt::Debug,
{
    let limits = Limits::default();
    let cut = 1 + input.first().copied().unwrap_or(0) as usize * 7;
    let bound = limits.max_head + limits.max_body + cut;
    decode_all(&mut decoder(limits), input, cut, bound);
}

fn esl_commands(input: &[u8]) {
    esl_decode(CommandDecoder::new, input);
}

fn esl_messages(input: &[u8]) {
    esl_decode(MessageDecoder::new, input);
}

fn esl_events(input: &[u8]) {
    let _ = Event::parse("text/event-plain", input);
    let _ = Event::parse("text/event-json", input);
}

fn skype_api(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    for line in text.split('\n') {
        let incoming = skypopen::skype::api::Incoming::parse(line);
        // Rendering it back must not panic either (logs do it).
        let _ = incoming.to_string();
    }
}

fn x11_reassembly(input: &[u8]) {
    use skypopen::skype::wire::{ChunkKind, Reassembler, CHUNK_LEN, MAX_MESSAGE_LEN};
    let mut reassembler = Reassembler::with_max_len(MAX_MESSAGE_LEN);
    for record in input.chunks(CHUNK_LEN + 1) {
        let kind = if record[0] & 1 == 0 {
            ChunkKind::Begin
        } else {
            ChunkKind::Continuation
        };
        let mut data = [0u8; CHUNK_LEN];
        let body = &record[1..];
        data[..body.len()].copy_from_slice(body);
        let _ = reassembler.push(kind, &data);
        assert!(reassembler.buffered() <= MAX_MESSAGE_LEN + CHUNK_LEN);
    }
}

fn sim_protocol(input: &[u8]) {
    use skypopen::sim::proto::{FrameCodec, MAX_FRAME};
    let cut = 1 + input.first().copied().unwrap_or(0) as usize * 13;
    decode_all(&mut FrameCodec, input, cut, MAX_FRAME + 4 + cut);
}

fn config(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let _ = skypopen::config::Settings::from_text(Path::new("fuzz.toml"), &text);
}

fn legacy_xml(input: &[u8]) {
    let _ = skypopen::config::legacy::migrate(&String::from_utf8_lossy(input));
}

/// An in-memory peer for tungstenite: reads the input, swallows what the server writes.
struct Wire(std::io::Cursor<Vec<u8>>);

impl std::io::Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl std::io::Write for Wire {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The audio fork's byte stream after the upgrade, read with the server's limits; text frames
/// kept as inert strings, binary frames cut into 20 ms frames as the session does.
fn audio_fork_stream(input: &[u8]) {
    read_fork_stream(input);
}

/// Messages read (text, binary) before the stream ended or failed.
fn read_fork_stream(input: &[u8]) -> (usize, usize) {
    use skypopen::media::{FrameAssembler, FRAME_BYTES};
    use skypopen::switch::media::{websocket_config, MAX_MESSAGE_BYTES};
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};
    use tokio_tungstenite::tungstenite::Message;
    let wire = Wire(std::io::Cursor::new(input.to_vec()));
    let mut ws = WebSocket::from_raw_socket(wire, Role::Server, Some(websocket_config()));
    let mut assembler = FrameAssembler::new();
    let (mut texts, mut binaries) = (0, 0);
    // Every message needs at least a two-byte head, so this bounds the loop.
    for _ in 0..=input.len() / 2 {
        match ws.read() {
            Ok(Message::Binary(bytes)) => {
                binaries += 1;
                assert!(bytes.len() <= MAX_MESSAGE_BYTES);
                for piece in bytes.chunks(FRAME_BYTES) {
                    assembler.push(piece, |_| {});
                }
                assert!(assembler.buffered() < FRAME_BYTES);
            }
            Ok(Message::Text(text)) => {
                texts += 1;
                assert!(text.len() <= MAX_MESSAGE_BYTES);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    (texts, binaries)
}

/// A masked client frame, as mod_audio_fork writes them.
fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// FreeSWITCH's `unicast` datagrams: the first byte picks the channel rate, then each
/// datagram is a two-byte length and its bytes.
fn unicast_datagrams(input: &[u8]) {
    use skypopen::media::FRAME_BYTES;
    use skypopen::switch::unicast::relay::DatagramReader;
    let Some((&rate, mut rest)) = input.split_first() else {
        return;
    };
    let rate = [8000, 16000, 32000, 48000][rate as usize % 4];
    let mut reader = DatagramReader::new(rate).expect("a supported rate");
    while rest.len() >= 2 {
        let len = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let datagram = &rest[2..2 + len];
        rest = &rest[2 + len..];
        assert!(reader.read(datagram).count() <= DatagramReader::MAX_FRAMES);
        assert!(reader.carried() < FRAME_BYTES);
    }
}

fn datagram_seeds() -> Vec<Vec<u8>> {
    [
        (0u8, 320usize),
        (1, 640),
        (2, 1280),
        (3, 1920),
        (0, 7),
        (1, 4000),
    ]
    .iter()
    .map(|&(rate, len)| {
        let mut seed = vec![rate];
        for _ in 0..3 {
            seed.extend_from_slice(&(len as u16).to_be_bytes());
            seed.extend((0..len).map(|i| (i * 7) as u8));
        }
        seed
    })
    .collect()
}

fn fork_seeds() -> Vec<Vec<u8>> {
    let audio: Vec<u8> = (0..640).map(|i| (i * 3) as u8).collect();
    let mut call = ws_frame(0x1, br#"{"callId":"a","sampleRate":16000}"#);
    call.extend(ws_frame(0x2, &audio));
    call.extend(ws_frame(0x2, &audio[..100]));
    call.extend(ws_frame(0x9, b"ping"));
    call.extend(ws_frame(0x8, &[0x03, 0xe8]));
    vec![
        call,
        ws_frame(0x2, &[]),
        ws_frame(0x1, br#"{"type":"killAudio"}"#),
    ]
}

fn seeds_from(files: &[&str], extra: &[&[u8]]) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds: Vec<Vec<u8>> = files
        .iter()
        .filter_map(|f| std::fs::read(root.join(f)).ok())
        .collect();
    seeds.extend(extra.iter().map(|s| s.to_vec()));
    assert!(!seeds.is_empty());
    seeds
}

fn targets() -> Vec<Target> {
    let captures = [
        "tests/fixtures/freeswitch-1.10.12/s1a_inbound_auth_fail.eslcap",
        "tests/fixtures/freeswitch-1.10.12/s1b_inbound_main_plain.eslcap",
        "tests/fixtures/freeswitch-1.10.12/s1c_inbound_observer_json.eslcap",
        "tests/fixtures/freeswitch-1.10.12/s1d_inbound_event_custom_first.eslcap",
        "tests/fixtures/freeswitch-1.10.12/s4a_outbound_socket.eslcap",
    ];
    let commands: &[&[u8]] = &[
        b"auth ClueCon\n\n",
        b"api status\n\n",
        b"event plain ALL\n\n",
        b"sendevent MESSAGE\nproto: skype\nContent-Length: 5\n\nhello",
        b"bgapi sk list\nJob-UUID: 1\n\n",
    ];
    let events: &[&[u8]] = &[
        b"Event-Name: MESSAGE\nproto: skype\nfrom: bob%40x\nContent-Length: 2\n\nhi",
        br#"{"Event-Name":"CUSTOM","Event-Subclass":"skypopen::command","command":"sk list","_body":"x"}"#,
    ];
    let skype: &[&[u8]] = &[
        b"CALL 12 STATUS RINGING\nCALL 12 FAILUREREASON 3\n#4 CALL 13 STATUS UNPLACED",
        b"CHATMESSAGE 5 STATUS RECEIVED\nCHATMESSAGE 5 BODY h\xc3\xa9llo\nCHAT #bob/$alice;1 NAME x",
        b"#3 ERROR 92 CALL: Unrecognised identity\nCONNSTATUS ONLINE\nUSER bob RECEIVEDAUTHREQUEST hi",
        b"PROFILE PSTN_BALANCE 150\nCALL 12 DTMF 5\nCALL 12 VM_DURATION 0\nCURRENTUSERHANDLE user1",
    ];
    let frames: &[&[u8]] = &[
        b"\x00\x00\x00\x12{\"login\":\"user1\"}",
        b"\x00\x00\x00\x05hello\x00\x00\x00\x00",
    ];
    let xml: &[&[u8]] = &[br#"<?xml version="1.0"?>
<configuration name="skypopen.conf"><global_settings><param name="skype_user" value="a"/>
</global_settings><per_interface_settings><interface id="1" name="s1">
<param name="X11-display" value=":101"/></interface></per_interface_settings></configuration>"#];
    vec![
        Target {
            name: "ESL listener commands (CommandDecoder)",
            seeds: seeds_from(&captures, commands),
            run: esl_commands,
        },
        Target {
            name: "ESL client messages (MessageDecoder)",
            seeds: seeds_from(&captures, commands),
            run: esl_messages,
        },
        Target {
            name: "event bodies (plain, json)",
            seeds: seeds_from(&[], events),
            run: esl_events,
        },
        Target {
            name: "Skype API notifications",
            seeds: seeds_from(&[], skype),
            run: skype_api,
        },
        Target {
            name: "X11 message reassembly",
            seeds: seeds_from(&[], skype),
            run: x11_reassembly,
        },
        Target {
            name: "emulator protocol frames",
            seeds: seeds_from(&[], frames),
            run: sim_protocol,
        },
        Target {
            name: "audio fork websocket frames (text and audio)",
            seeds: fork_seeds(),
            run: audio_fork_stream,
        },
        Target {
            name: "unicast datagrams (any length, four rates)",
            seeds: datagram_seeds(),
            run: unicast_datagrams,
        },
        Target {
            name: "TOML configuration",
            seeds: seeds_from(&["conf/skypopen.toml", "debian/skypopen.toml"], &[]),
            run: config,
        },
        Target {
            name: "legacy skypopen.conf.xml",
            seeds: seeds_from(&[], xml),
            run: legacy_xml,
        },
    ]
}

struct Outcome {
    name: &'static str,
    inputs: u64,
    took: Duration,
    crashes: Vec<(String, Vec<u8>)>,
    slowest: Duration,
}

fn campaign(inputs: u64, seed: u64) -> Vec<Outcome> {
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut outcomes = Vec::new();
    for target in targets() {
        let mut rng = Rng(seed ^ target.name.len() as u64 ^ 0x9e37_79b9_7f4a_7c15);
        let mut crashes = Vec::new();
        let mut slowest = Duration::ZERO;
        let started = Instant::now();
        for _ in 0..inputs {
            let input = mutate(&mut rng, &target.seeds);
            let one = Instant::now();
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (target.run)(&input))) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                if crashes.len() < 5 {
                    crashes.push((why, input.clone()));
                }
            }
            slowest = slowest.max(one.elapsed());
        }
        outcomes.push(Outcome {
            name: target.name,
            inputs,
            took: started.elapsed(),
            crashes,
            slowest,
        });
    }
    std::panic::set_hook(quiet);
    outcomes
}

fn assert_clean(outcomes: &[Outcome]) {
    for o in outcomes {
        assert!(
            o.crashes.is_empty(),
            "{}: {} crash(es), first: {:?} on {:?}",
            o.name,
            o.crashes.len(),
            o.crashes[0].0,
            String::from_utf8_lossy(&o.crashes[0].1)
        );
        assert!(
            o.slowest < Duration::from_secs(2),
            "{}: an input took {:?}",
            o.name,
            o.slowest
        );
    }
}

/// The seeds must reach past the first check, or the mutations would only test refusals.
#[test]
fn seeds_are_read_as_their_parsers_intend() {
    assert_eq!(read_fork_stream(&fork_seeds()[0]), (1, 2));
    let mut reader = skypopen::switch::unicast::relay::DatagramReader::new(8000).unwrap();
    // One 20 ms datagram at 8 kHz is one 16 kHz frame.
    assert_eq!(reader.read(&[0u8; 320]).count(), 1);
    // A datagram of 4000 bytes at 8 kHz (125 ms) still makes at most two.
    assert_eq!(reader.read(&[0u8; 4000]).count(), 2);
}

#[test]
fn fuzz_smoke() {
    let inputs = std::env::var("FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    assert_clean(&campaign(inputs, 0x5eed));
}

#[test]
#[ignore = "a campaign: FUZZ_INPUTS=10000000 cargo test --release --test fuzz -- --ignored fuzz_campaign --nocapture"]
fn fuzz_campaign() {
    let inputs = std::env::var("FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0xc0ffee);
    let outcomes = campaign(inputs, seed);
    let mut report = format!(
        "# Fuzz campaign\n\n`FUZZ_INPUTS={inputs} FUZZ_SEED={seed} cargo test --release --test fuzz -- \
         --ignored fuzz_campaign --nocapture` (mutations of the seed corpus; a parser may refuse \
         an input, not panic, hang or hold more than its bound).\n\n\
         | parser | inputs | seconds | inputs/s | slowest input | crashes |\n|---|---:|---:|---:|---:|---:|\n"
    );
    for o in &outcomes {
        report.push_str(&format!(
            "| {} | {} | {:.1} | {:.0} | {:.2} ms | {} |\n",
            o.name,
            o.inputs,
            o.took.as_secs_f64(),
            o.inputs as f64 / o.took.as_secs_f64().max(1e-9),
            o.slowest.as_secs_f64() * 1e3,
            o.crashes.len()
        ));
    }
    println!("{report}");
    let out = std::env::var("FUZZ_OUT")
        .unwrap_or_else(|_| format!("{}/tests/reports/fuzz.md", env!("CARGO_MANIFEST_DIR")));
    std::fs::write(&out, &report).expect("write the report");
    assert_clean(&outcomes);
}
