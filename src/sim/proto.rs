//! The emulator's own wire protocol between clients, `ctl` and the network: one TCP
//! connection per peer carrying length-prefixed frames. A frame is either a JSON control
//! message, a 20 ms audio frame of one call, or a binary blob (a recording sent to `ctl`).
//!
//! Frame layout: `kind: u8`, `length: u32` big-endian, then `length` payload bytes.
//! Audio payload: `call: u64` big-endian, then s16le PCM.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::codec::{Decoder, Encoder};

const KIND_JSON: u8 = 1;
const KIND_AUDIO: u8 = 2;
const KIND_BLOB: u8 = 3;
const HEADER: usize = 5;
/// Large enough for a two-minute recording; bounds what a peer can make us buffer.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;
/// A frame's head alone reserves at most this much more: memory follows the bytes that
/// arrived, not the length a peer announced and may never send.
const RESERVE_AHEAD: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Json(Bytes),
    Audio { call: u64, pcm: Bytes },
    Blob(Bytes),
}

impl Frame {
    pub fn json<T: Serialize>(value: &T) -> Result<Frame, ProtoError> {
        Ok(Frame::Json(Bytes::from(serde_json::to_vec(value)?)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("audio frame too short")]
    ShortAudio,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct FrameCodec;

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = ProtoError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
        if src.len() < HEADER {
            return Ok(None);
        }
        let kind = src[0];
        let len = u32::from_be_bytes([src[1], src[2], src[3], src[4]]) as usize;
        if len > MAX_FRAME {
            return Err(ProtoError::TooLarge(len));
        }
        if src.len() < HEADER + len {
            src.reserve((HEADER + len - src.len()).min(RESERVE_AHEAD));
            return Ok(None);
        }
        src.advance(HEADER);
        let mut payload = src.split_to(len).freeze();
        match kind {
            KIND_JSON => Ok(Some(Frame::Json(payload))),
            KIND_BLOB => Ok(Some(Frame::Blob(payload))),
            KIND_AUDIO => {
                if payload.len() < 8 {
                    return Err(ProtoError::ShortAudio);
                }
                let call = payload.get_u64();
                Ok(Some(Frame::Audio { call, pcm: payload }))
            }
            other => Err(ProtoError::UnknownKind(other)),
        }
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = ProtoError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), ProtoError> {
        let (kind, prefix, body) = match &frame {
            Frame::Json(b) => (KIND_JSON, None, b),
            Frame::Blob(b) => (KIND_BLOB, None, b),
            Frame::Audio { call, pcm } => (KIND_AUDIO, Some(*call), pcm),
        };
        let len = body.len() + if prefix.is_some() { 8 } else { 0 };
        if len > MAX_FRAME {
            return Err(ProtoError::TooLarge(len));
        }
        dst.reserve(HEADER + len);
        dst.put_u8(kind);
        dst.put_u32(len as u32);
        if let Some(call) = prefix {
            dst.put_u64(call);
        }
        dst.extend_from_slice(body);
        Ok(())
    }
}

/// Messages a client or `ctl` sends to the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Up {
    /// First message of a client connection.
    Login { user: String },
    /// A client request; the network answers with [`Down::Reply`] carrying the same `rid`.
    Request { rid: u64, request: Request },
    /// The one message of a `ctl` connection; answered by [`Down::CtlReply`].
    Ctl { command: CtlCommand },
}

/// Requests of a logged-in client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Dial {
        target: String,
    },
    Answer {
        call: u64,
    },
    Hangup {
        call: u64,
    },
    Transfer {
        call: u64,
        target: String,
    },
    Hold {
        call: u64,
        on: bool,
    },
    Dtmf {
        call: u64,
        digit: char,
    },
    ChatCreate {
        partner: String,
    },
    ChatPartner {
        chat: String,
    },
    ChatSend {
        chat: String,
        body: String,
    },
    ChatGet {
        message: u64,
    },
    ChatSeen {
        message: u64,
    },
    MissedChats,
    Authorize {
        handle: String,
    },
    /// `SET USER <h> ISAUTHORIZED FALSE`: refuses a contact request (or withdraws one given).
    Deauthorize {
        handle: String,
    },
    /// `SET USER <h> ISBLOCKED TRUE|FALSE`.
    Block {
        handle: String,
        on: bool,
    },
    UserInfo {
        handle: String,
    },
    /// The account's contact list (`SEARCH FRIENDS`).
    Friends,
    /// `SET USER <h> BUDDYSTATUS 1|2 [text]`: remove a contact, or ask to add one.
    SetBuddy {
        handle: String,
        status: u8,
        text: String,
    },
}

/// Answers to [`Request`]s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    Ok,
    /// A Skype API error line the client passes on verbatim, e.g. `ERROR 92 CALL: ...`.
    Error {
        line: String,
    },
    Dialled {
        call: u64,
    },
    /// Hangup accepted; the status the hanging-up side reports (FINISHED, CANCELLED, REFUSED).
    Ended {
        status: String,
    },
    Chat {
        chat: String,
    },
    Partner {
        handle: String,
    },
    ChatSent {
        message: u64,
        /// The recipient can be reached now: the message is SENT at once; otherwise it stays
        /// SENDING until they come online.
        #[serde(default)]
        reachable: bool,
    },
    Message {
        message: ChatMessageInfo,
    },
    Ids {
        ids: Vec<u64>,
    },
    User {
        handle: String,
        display_name: String,
        online: bool,
        /// `ONLINESTATUS` as the asking account sees it.
        #[serde(default)]
        status: String,
        /// The asking account's `BUDDYSTATUS` for the user.
        #[serde(default)]
        buddy: u8,
        #[serde(default)]
        authorized: bool,
        #[serde(default)]
        blocked: bool,
    },
    Friends {
        handles: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessageInfo {
    pub id: u64,
    pub chat: String,
    pub from_handle: String,
    pub from_dispname: String,
    pub body: String,
    /// Unix seconds.
    pub timestamp: u64,
    /// `SAID` for ordinary messages.
    pub kind: String,
}

/// Messages the network sends to a client or `ctl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Down {
    Welcome {
        user: String,
        display_name: String,
        balance: i64,
        currency: String,
    },
    LoginRejected {
        reason: String,
    },
    Reply {
        rid: u64,
        reply: Reply,
    },
    /// An incoming call rings on this client.
    Incoming {
        call: u64,
        partner_handle: String,
        partner_dispname: String,
        /// `INCOMING_P2P` or `INCOMING_PSTN`.
        call_type: String,
    },
    /// A call status change (`ROUTING`, `RINGING`, `INPROGRESS`, `MISSED`, ...).
    Status {
        call: u64,
        status: String,
    },
    FailureReason {
        call: u64,
        code: u32,
    },
    Dtmf {
        call: u64,
        digit: char,
    },
    ChatReceived {
        message: u64,
    },
    /// One of this account's outgoing messages moved on (`SENT`, `READ`).
    ChatStatus {
        message: u64,
        status: String,
    },
    /// The account's SkypeOut balance changed.
    Balance {
        balance: i64,
    },
    AuthRequest {
        from: String,
        text: String,
    },
    /// A contact's `ONLINESTATUS` changed.
    UserStatus {
        handle: String,
        status: String,
    },
    /// Many contacts' `ONLINESTATUS` changed at once (`ctl crowd-presence`): one message for
    /// all, so the network's queue to the client does not overflow.
    UserStatuses {
        changes: Vec<(String, String)>,
    },
    /// This account's `BUDDYSTATUS` for a user changed.
    BuddyStatus {
        handle: String,
        status: u8,
    },
    Fault {
        fault: Fault,
    },
    CtlReply {
        ok: bool,
        #[serde(default)]
        result: serde_json::Value,
        #[serde(default)]
        error: String,
    },
}

/// Faults the network asks a client to inject (spec 13 item 2 and 7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Drop the BEGIN chunk of the next `count` messages.
    DropBegin { count: u32 },
    /// Wait this long before connecting the audio sockets.
    AudioDelay { ms: u64 },
    /// Never connect the audio sockets.
    NoAudio { on: bool },
    /// `ALTER CALL <id> ANSWER` fails with `ERROR 559`.
    AnswerError { on: bool },
    /// Lose the network for this long (ERROR 36, CONNSTATUS OFFLINE).
    Offline { ms: u64 },
    /// Exit at once, leaving a stale `_SKYPE_INSTANCE`.
    Die,
}

/// `skype-sim ctl` verbs as the network receives them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum CtlCommand {
    Call {
        from: String,
        to: String,
        #[serde(default)]
        source: AudioSource,
        /// Hang up after this many seconds in progress.
        #[serde(default)]
        seconds: Option<f64>,
    },
    Answer {
        call: u64,
        #[serde(default)]
        source: AudioSource,
    },
    Refuse {
        call: u64,
    },
    Hangup {
        call: u64,
    },
    Heard {
        party: String,
        #[serde(default)]
        call: Option<u64>,
        #[serde(default)]
        with_pcm: bool,
    },
    Dtmf {
        call: u64,
        digits: String,
        #[serde(default)]
        inband: bool,
    },
    Hold {
        call: u64,
        on: bool,
    },
    Chat {
        from: String,
        to: String,
        text: String,
    },
    Inbox {
        party: String,
    },
    /// A remote party reads what it has received (the senders hear `STATUS READ`).
    Read {
        party: String,
    },
    AuthRequest {
        from: String,
        to: String,
        text: String,
    },
    Contacts {
        user: String,
    },
    /// A remote person's status changes (and every account with them as a contact hears it).
    Presence {
        party: String,
        status: String,
    },
    /// Makes `crowd1`..`crowd<count>` contacts of `user`, silently (the client learns them at
    /// its next full read).
    Crowd {
        user: String,
        count: usize,
    },
    /// Sets the status of `crowd1`..`crowd<count>` at once.
    CrowdPresence {
        count: usize,
        status: String,
    },
    /// Adds `handle` to `user`'s contacts (authorized), or removes it.
    Contact {
        user: String,
        handle: String,
        add: bool,
    },
    Calls,
    Status,
    Balance {
        #[serde(default)]
        user: Option<String>,
        /// Sets the account's balance (its clients hear `PROFILE PSTN_BALANCE`).
        #[serde(default)]
        set: Option<i64>,
    },
    Fault {
        user: String,
        fault: Fault,
    },
}

/// What a remote party (played by `ctl`) says into a call.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AudioSource {
    #[default]
    Silence,
    Tone {
        hz: f64,
    },
    Dtmf {
        digits: String,
    },
    /// A 16 kHz mono 16-bit WAV file on the network's host.
    Wav {
        path: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) -> Frame {
        let mut buf = BytesMut::new();
        FrameCodec.encode(frame, &mut buf).unwrap();
        FrameCodec.decode(&mut buf).unwrap().unwrap()
    }

    #[test]
    fn an_announced_length_is_not_reserved_before_its_bytes_arrive() {
        let mut buf = BytesMut::new();
        buf.put_u8(KIND_BLOB);
        buf.put_u32(MAX_FRAME as u32);
        buf.extend_from_slice(&[0u8; 100]);
        assert!(FrameCodec.decode(&mut buf).unwrap().is_none());
        assert!(
            buf.capacity() <= HEADER + 100 + RESERVE_AHEAD,
            "{}",
            buf.capacity()
        );
    }

    #[test]
    fn frames_round_trip() {
        let audio = Frame::Audio {
            call: 42,
            pcm: Bytes::from(vec![1u8; 640]),
        };
        assert_eq!(round_trip(audio.clone()), audio);
        let json = Frame::json(&Up::Login {
            user: "user1".into(),
        })
        .unwrap();
        assert_eq!(round_trip(json.clone()), json);
    }

    #[test]
    fn partial_frames_wait_for_more() {
        let mut buf = BytesMut::new();
        FrameCodec
            .encode(Frame::Blob(Bytes::from_static(b"hello")), &mut buf)
            .unwrap();
        let mut part = buf.split_to(7);
        assert_eq!(FrameCodec.decode(&mut part).unwrap(), None);
        part.unsplit(buf);
        assert_eq!(
            FrameCodec.decode(&mut part).unwrap(),
            Some(Frame::Blob(Bytes::from_static(b"hello")))
        );
    }

    #[test]
    fn oversize_and_unknown_frames_are_errors() {
        let mut buf = BytesMut::from(&[9u8, 0, 0, 0, 1, 0][..]);
        assert!(FrameCodec.decode(&mut buf).is_err());
        let mut buf = BytesMut::from(&[1u8, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(FrameCodec.decode(&mut buf).is_err());
    }

    #[test]
    fn ctl_commands_serialise_with_verbs() {
        let c = CtlCommand::Call {
            from: "alice".into(),
            to: "user1".into(),
            source: AudioSource::Tone { hz: 440.0 },
            seconds: None,
        };
        let text = serde_json::to_string(&Up::Ctl { command: c.clone() }).unwrap();
        assert!(text.contains("\"verb\":\"call\""), "{text}");
        let back: Up = serde_json::from_str(&text).unwrap();
        assert_eq!(back, Up::Ctl { command: c });
    }
}
