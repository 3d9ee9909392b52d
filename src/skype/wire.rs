//! Skype Desktop API framing over X11 ClientMessages (spec 2.4 and 2.5), without any I/O.
//!
//! A message is its UTF-8 text plus one NUL terminator, cut into 20-byte slices (the data of
//! one format-8 ClientMessage). The first slice travels with the `BEGIN` atom, the rest with
//! the continuation atom. The receiving side keeps one [`Reassembler`] per peer window; since
//! nothing on the wire says how long a message is, everything that can go wrong (a lost
//! BEGIN, a BEGIN cutting a message short, a runaway sender) is reported as a typed
//! [`Dropped`] so the transport can log it and tests can see it.

use std::collections::HashMap;

/// Data bytes carried by one format-8 ClientMessage.
pub const CHUNK_LEN: usize = 20;

/// Largest message accepted on receive. The original module used a 17000-byte buffer without
/// bounds checks; real notifications are far shorter, so 64 KiB is generous and still bounded.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

/// How many peers may have a message in progress at once before new ones are refused, so a
/// display full of misbehaving senders cannot grow memory without bound.
pub const MAX_PEERS_IN_PROGRESS: usize = 256;

/// Which of the two message atoms a chunk travels with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// `SKYPECONTROLAPI_MESSAGE_BEGIN`
    Begin,
    /// `SKYPECONTROLAPI_MESSAGE`
    Continuation,
}

/// One ClientMessage worth of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub kind: ChunkKind,
    pub data: [u8; CHUNK_LEN],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The terminator is the only framing there is, so a NUL inside the text would cut it.
    #[error("message text contains a NUL byte at offset {offset}")]
    ContainsNul { offset: usize },
}

/// Cuts `text` into the chunks that carry it, terminator included.
pub fn chunks(text: &str) -> Result<Chunks<'_>, WireError> {
    if let Some(offset) = text.bytes().position(|b| b == 0) {
        return Err(WireError::ContainsNul { offset });
    }
    Ok(Chunks {
        payload: text.as_bytes(),
        offset: 0,
    })
}

/// Number of ClientMessages a text of `len` bytes needs (the NUL always travels).
pub fn chunk_count(len: usize) -> usize {
    len / CHUNK_LEN + 1
}

/// Iterator over the chunks of one message; allocates nothing.
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    payload: &'a [u8],
    /// Offset into the text plus its virtual terminator at `payload.len()`.
    offset: usize,
}

impl Iterator for Chunks<'_> {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        // The terminator sits at index payload.len(); once it has been emitted we are done.
        if self.offset > self.payload.len() {
            return None;
        }
        let kind = if self.offset == 0 {
            ChunkKind::Begin
        } else {
            ChunkKind::Continuation
        };
        let mut data = [0u8; CHUNK_LEN];
        let text_end = self.payload.len().min(self.offset + CHUNK_LEN);
        let taken = &self.payload[self.offset..text_end];
        data[..taken.len()].copy_from_slice(taken);
        // Bytes after the text are already zero, the terminator included when it fits.
        self.offset += CHUNK_LEN;
        Some(Chunk { kind, data })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = if self.offset > self.payload.len() {
            0
        } else {
            chunk_count(self.payload.len()) - self.offset / CHUNK_LEN
        };
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for Chunks<'_> {}

/// A complete message out of the reassembly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    /// The bytes were not valid UTF-8 and were decoded lossily (U+FFFD substituted).
    pub lossy: bool,
}

/// Something the reassembly threw away, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// A BEGIN arrived while a message was unfinished; the unfinished bytes were discarded.
    Interrupted { bytes: usize },
    /// A continuation arrived with no message in progress (its BEGIN was lost).
    Orphan { bytes: usize },
    /// The message grew past [`MAX_MESSAGE_LEN`]; the rest of it is skipped up to its end.
    Oversize { bytes: usize },
    /// Too many peers had a message in progress; this peer's BEGIN was refused.
    TooManyPeers,
}

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dropped::Interrupted { bytes } => write!(
                f,
                "unfinished message of {bytes} bytes dropped: a new message began"
            ),
            Dropped::Orphan { bytes } => write!(
                f,
                "continuation of {bytes} bytes without a message in progress dropped (lost BEGIN?)"
            ),
            Dropped::Oversize { bytes } => write!(
                f,
                "message dropped: longer than {MAX_MESSAGE_LEN} bytes ({bytes} so far)"
            ),
            Dropped::TooManyPeers => write!(
                f,
                "message dropped: more than {MAX_PEERS_IN_PROGRESS} peers have messages in progress"
            ),
        }
    }
}

/// What one chunk did. A BEGIN can both drop an unfinished message and complete a short one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub dropped: Option<Dropped>,
    pub message: Option<Message>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Collecting,
    /// Inside an oversize message: swallow slices until its terminator.
    Skipping,
}

/// Reassembly of the messages of one peer window.
#[derive(Debug)]
pub struct Reassembler {
    buffer: Vec<u8>,
    state: State,
    max_len: usize,
}

impl Default for Reassembler {
    fn default() -> Self {
        Reassembler::new()
    }
}

impl Reassembler {
    pub fn new() -> Self {
        Reassembler::with_max_len(MAX_MESSAGE_LEN)
    }

    pub fn with_max_len(max_len: usize) -> Self {
        Reassembler {
            buffer: Vec::new(),
            state: State::Idle,
            max_len,
        }
    }

    /// True while a message is unfinished (a later chunk is expected).
    pub fn in_progress(&self) -> bool {
        self.state != State::Idle
    }

    /// Bytes currently held; never more than the maximum message length.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    pub fn push(&mut self, kind: ChunkKind, data: &[u8; CHUNK_LEN]) -> Outcome {
        let (slice, is_final) = match data.iter().position(|&b| b == 0) {
            Some(end) => (&data[..end], true),
            None => (&data[..], false),
        };
        let mut outcome = Outcome::default();
        match kind {
            ChunkKind::Begin => {
                if self.state == State::Collecting {
                    outcome.dropped = Some(Dropped::Interrupted {
                        bytes: self.buffer.len(),
                    });
                }
                self.reset();
                self.state = State::Collecting;
            }
            ChunkKind::Continuation => match self.state {
                State::Idle => {
                    outcome.dropped = Some(Dropped::Orphan { bytes: slice.len() });
                    return outcome;
                }
                State::Skipping => {
                    if is_final {
                        self.reset();
                    }
                    return outcome;
                }
                State::Collecting => {}
            },
        }
        if self.buffer.len() + slice.len() > self.max_len {
            outcome.dropped = Some(Dropped::Oversize {
                bytes: self.buffer.len() + slice.len(),
            });
            self.reset();
            if !is_final {
                self.state = State::Skipping;
            }
            return outcome;
        }
        self.buffer.extend_from_slice(slice);
        if is_final {
            outcome.message = Some(self.take_message());
        }
        outcome
    }

    fn take_message(&mut self) -> Message {
        let message = match String::from_utf8(std::mem::take(&mut self.buffer)) {
            Ok(text) => Message { text, lossy: false },
            Err(invalid) => Message {
                text: String::from_utf8_lossy(invalid.as_bytes()).into_owned(),
                lossy: true,
            },
        };
        self.state = State::Idle;
        message
    }

    fn reset(&mut self) {
        self.buffer.clear();
        // Keep a small buffer for the common short message, give back what a huge one took.
        self.buffer.shrink_to(4 * CHUNK_LEN * 8);
        self.state = State::Idle;
    }
}

/// Reassembly for every peer window on a display, keyed by the ClientMessage `window` field.
/// Only peers with a message in progress hold state.
#[derive(Debug, Default)]
pub struct PeerReassembly {
    peers: HashMap<u32, Reassembler>,
}

impl PeerReassembly {
    pub fn new() -> Self {
        PeerReassembly::default()
    }

    pub fn push(&mut self, peer: u32, kind: ChunkKind, data: &[u8; CHUNK_LEN]) -> Outcome {
        let outcome = match self.peers.get_mut(&peer) {
            Some(reassembler) => reassembler.push(kind, data),
            None => {
                let mut reassembler = Reassembler::new();
                let outcome = reassembler.push(kind, data);
                if reassembler.in_progress() {
                    if self.peers.len() >= MAX_PEERS_IN_PROGRESS {
                        return Outcome {
                            dropped: Some(Dropped::TooManyPeers),
                            message: None,
                        };
                    }
                    self.peers.insert(peer, reassembler);
                }
                return outcome;
            }
        };
        if self.peers.get(&peer).is_some_and(|r| !r.in_progress()) {
            self.peers.remove(&peer);
        }
        outcome
    }

    /// Forgets a peer (its window is gone).
    pub fn forget(&mut self, peer: u32) {
        self.peers.remove(&peer);
    }

    /// Peers with a message in progress.
    pub fn peers_in_progress(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn collect(text: &str) -> Vec<Chunk> {
        chunks(text).expect("text without NUL").collect()
    }

    fn data(bytes: &[u8]) -> [u8; CHUNK_LEN] {
        let mut d = [0u8; CHUNK_LEN];
        d[..bytes.len()].copy_from_slice(bytes);
        d
    }

    fn feed(r: &mut Reassembler, chunks: &[Chunk]) -> Vec<Outcome> {
        chunks.iter().map(|c| r.push(c.kind, &c.data)).collect()
    }

    #[test]
    fn nineteen_bytes_fit_one_event_with_the_terminator() {
        let text = "GET USERSTATUS 1234"; // 19 bytes
        assert_eq!(text.len(), 19);
        let c = collect(text);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].kind, ChunkKind::Begin);
        assert_eq!(&c[0].data[..19], text.as_bytes());
        assert_eq!(c[0].data[19], 0);
    }

    #[test]
    fn twenty_bytes_need_a_second_event_holding_only_the_terminator() {
        let text = "GET USERSTATUS 12345"; // 20 bytes
        let c = collect(text);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].kind, ChunkKind::Begin);
        assert_eq!(&c[0].data, text.as_bytes());
        assert_eq!(c[1].kind, ChunkKind::Continuation);
        assert_eq!(c[1].data, [0u8; CHUNK_LEN]);
    }

    #[test]
    fn twenty_one_bytes_spill_one_byte_and_zero_the_rest() {
        let text = "ABCDEFGHIJKLMNOPQRSTU";
        let c = collect(text);
        assert_eq!(c.len(), 2);
        assert_eq!(&c[0].data, b"ABCDEFGHIJKLMNOPQRST");
        assert_eq!(c[1].data, data(b"U"));
    }

    #[test]
    fn forty_bytes_take_three_events() {
        let text = "0123456789".repeat(4);
        let c = collect(&text);
        assert_eq!(c.len(), 3);
        assert_eq!(
            c.iter().map(|c| c.kind).collect::<Vec<_>>(),
            [
                ChunkKind::Begin,
                ChunkKind::Continuation,
                ChunkKind::Continuation
            ]
        );
        assert_eq!(&c[1].data, b"0123456789".repeat(2).as_slice());
        assert_eq!(c[2].data, [0u8; CHUNK_LEN]);
        assert_eq!(chunks(&text).map(|i| i.len()), Ok(3));
    }

    #[test]
    fn empty_text_is_one_begin_with_the_terminator() {
        let c = collect("");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].data, [0u8; CHUNK_LEN]);
        let mut r = Reassembler::new();
        assert_eq!(
            feed(&mut r, &c)[0]
                .message
                .as_ref()
                .map(|m| m.text.as_str()),
            Some("")
        );
    }

    #[test]
    fn text_with_nul_is_rejected() {
        assert_eq!(
            chunks("PING\0PONG").err(),
            Some(WireError::ContainsNul { offset: 4 })
        );
    }

    #[test]
    fn chunk_counts_match_the_spec_examples() {
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_count(19), 1);
        assert_eq!(chunk_count(20), 2);
        assert_eq!(chunk_count(21), 2);
        assert_eq!(chunk_count(40), 3);
    }

    #[test]
    fn reassembles_the_hand_worked_examples() {
        for text in [
            "GET USERSTATUS 1234",
            "GET USERSTATUS 12345",
            "ABCDEFGHIJKLMNOPQRSTU",
            &"0123456789".repeat(4),
        ] {
            let mut r = Reassembler::new();
            let outcomes = feed(&mut r, &collect(text));
            let (last, rest) = outcomes.split_last().expect("at least one chunk");
            assert!(rest.iter().all(|o| *o == Outcome::default()), "{text}");
            assert_eq!(
                last.message,
                Some(Message {
                    text: text.to_owned(),
                    lossy: false
                })
            );
            assert!(!r.in_progress());
        }
    }

    #[test]
    fn utf8_split_across_chunks_is_rebuilt() {
        // "é" is two bytes; place it across the 20-byte boundary.
        let text = format!("{}é and ünïcödé", "x".repeat(19));
        let c = collect(&text);
        assert_eq!(c[0].data[19], 0xC3, "first byte of é ends the first chunk");
        let mut r = Reassembler::new();
        let last = feed(&mut r, &c).pop().and_then(|o| o.message);
        assert_eq!(last.map(|m| (m.text, m.lossy)), Some((text, false)));
    }

    #[test]
    fn bytes_after_the_terminator_are_ignored() {
        let mut r = Reassembler::new();
        let mut d = data(b"OK");
        d[3..].fill(b'Z'); // leftovers from a reused event struct
        let out = r.push(ChunkKind::Begin, &d);
        assert_eq!(out.message.map(|m| m.text), Some("OK".to_owned()));
    }

    #[test]
    fn orphan_continuation_is_dropped() {
        let mut r = Reassembler::new();
        let out = r.push(ChunkKind::Continuation, &data(b"ognised identity"));
        assert_eq!(out.dropped, Some(Dropped::Orphan { bytes: 16 }));
        assert_eq!(out.message, None);
        assert!(!r.in_progress());
        // The next full message is unaffected.
        let out = feed(&mut r, &collect("PONG")).pop();
        assert_eq!(
            out.and_then(|o| o.message).map(|m| m.text),
            Some("PONG".to_owned())
        );
    }

    #[test]
    fn begin_interrupting_drops_the_unfinished_message() {
        let mut r = Reassembler::new();
        let first = collect("CALL 12 STATUS INPROGRESS, and more");
        assert!(r.push(first[0].kind, &first[0].data) == Outcome::default());
        let out = r.push(ChunkKind::Begin, &data(b"PONG"));
        assert_eq!(out.dropped, Some(Dropped::Interrupted { bytes: 20 }));
        assert_eq!(out.message.map(|m| m.text), Some("PONG".to_owned()));
        // The rest of the interrupted message is now an orphan.
        let out = r.push(first[1].kind, &first[1].data);
        assert!(matches!(out.dropped, Some(Dropped::Orphan { .. })));
    }

    #[test]
    fn oversize_message_is_dropped_and_the_next_one_survives() {
        let mut r = Reassembler::with_max_len(45);
        let big = "y".repeat(100);
        let outcomes = feed(&mut r, &collect(&big));
        let drops: Vec<_> = outcomes.iter().filter_map(|o| o.dropped).collect();
        assert_eq!(drops, [Dropped::Oversize { bytes: 60 }]);
        assert!(outcomes.iter().all(|o| o.message.is_none()));
        assert!(!r.in_progress(), "the terminator ended the skipping");
        assert!(r.buffered() <= 45);
        let last = feed(&mut r, &collect("OK")).pop();
        assert_eq!(
            last.and_then(|o| o.message).map(|m| m.text),
            Some("OK".to_owned())
        );
    }

    #[test]
    fn message_of_exactly_the_limit_is_delivered() {
        let mut r = Reassembler::with_max_len(40);
        let text = "z".repeat(40);
        let last = feed(&mut r, &collect(&text)).pop();
        assert_eq!(last.and_then(|o| o.message).map(|m| m.text), Some(text));
    }

    #[test]
    fn invalid_utf8_is_decoded_lossily_and_flagged() {
        let mut r = Reassembler::new();
        let out = r.push(ChunkKind::Begin, &data(b"BODY \xff\xfe ok"));
        assert_eq!(
            out.message,
            Some(Message {
                text: "BODY \u{FFFD}\u{FFFD} ok".to_owned(),
                lossy: true
            })
        );
    }

    #[test]
    fn peers_are_reassembled_independently() {
        let mut peers = PeerReassembly::new();
        let a = collect("#1 GET CURRENTUSERHANDLE");
        let b = collect("#2 GET USERSTATUS and more");
        assert_eq!(peers.push(1, a[0].kind, &a[0].data), Outcome::default());
        assert_eq!(peers.push(2, b[0].kind, &b[0].data), Outcome::default());
        assert_eq!(peers.peers_in_progress(), 2);
        let out_b = peers.push(2, b[1].kind, &b[1].data);
        let out_a = peers.push(1, a[1].kind, &a[1].data);
        assert_eq!(
            out_a.message.map(|m| m.text),
            Some("#1 GET CURRENTUSERHANDLE".to_owned())
        );
        assert_eq!(
            out_b.message.map(|m| m.text),
            Some("#2 GET USERSTATUS and more".to_owned())
        );
        assert_eq!(peers.peers_in_progress(), 0);
    }

    #[test]
    fn peers_in_progress_are_capped() {
        let mut peers = PeerReassembly::new();
        let begin = data(b"01234567890123456789");
        for peer in 0..MAX_PEERS_IN_PROGRESS as u32 {
            assert_eq!(peers.push(peer, ChunkKind::Begin, &begin).dropped, None);
        }
        let out = peers.push(u32::MAX, ChunkKind::Begin, &begin);
        assert_eq!(out.dropped, Some(Dropped::TooManyPeers));
        // A short message from a new peer needs no state and still gets through.
        let out = peers.push(u32::MAX, ChunkKind::Begin, &data(b"OK"));
        assert_eq!(out.message.map(|m| m.text), Some("OK".to_owned()));
        peers.forget(0);
        assert_eq!(peers.peers_in_progress(), MAX_PEERS_IN_PROGRESS - 1);
    }

    fn arbitrary_chunk() -> impl Strategy<Value = (u8, bool, [u8; CHUNK_LEN])> {
        (
            0u8..4,
            any::<bool>(),
            prop::array::uniform20(prop_oneof![Just(0u8), any::<u8>(), Just(b'a')]),
        )
    }

    proptest! {
        #[test]
        fn any_text_without_nul_round_trips(text in "[^\u{0}]{0,300}") {
            let chunks: Vec<Chunk> = chunks(&text).expect("no NUL").collect();
            prop_assert_eq!(chunks.len(), chunk_count(text.len()));
            let mut r = Reassembler::new();
            let outcomes = feed(&mut r, &chunks);
            let (last, rest) = outcomes.split_last().expect("at least one chunk");
            prop_assert!(rest.iter().all(|o| *o == Outcome::default()));
            prop_assert_eq!(last.dropped, None);
            prop_assert_eq!(last.message.clone(), Some(Message { text, lossy: false }));
        }

        #[test]
        fn arbitrary_chunk_sequences_never_panic_and_stay_bounded(
            sequence in prop::collection::vec(arbitrary_chunk(), 0..400)
        ) {
            let mut peers = PeerReassembly::new();
            let mut single = Reassembler::with_max_len(64);
            for (peer, begin, data) in sequence {
                let kind = if begin { ChunkKind::Begin } else { ChunkKind::Continuation };
                let outcome = peers.push(u32::from(peer), kind, &data);
                if let Some(m) = outcome.message {
                    prop_assert!(m.text.len() <= MAX_MESSAGE_LEN * 3);
                }
                let outcome = single.push(kind, &data);
                prop_assert!(single.buffered() <= 64);
                if let Some(m) = outcome.message {
                    prop_assert!(!m.text.contains('\0'));
                }
            }
            prop_assert!(peers.peers_in_progress() <= 4);
        }
    }
}
