//! The double's switch state: channels, event subscribers, what tests can assert on, and the
//! behaviour of the API commands and channel operations. Everything here is synchronous and runs
//! under one lock; network work is handed to the double's background task as [`Deferred`].

use super::channel::{Channel, Profile, SocketBinding};
use super::hash::SharedHash;
use super::wire::{self, Event, Format};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

pub const CORE_UUID: &str = "7e0c42b5-0d3e-4c8e-9f5a-5d0b1f0e2a11";

/// Bytes for one connection's writer, or the order to close it.
#[derive(Debug)]
pub enum Out {
    Bytes(Vec<u8>),
    Close,
}

/// Work that needs the network or the media hook, done outside the lock.
#[derive(Debug)]
pub enum Deferred {
    /// Run `socket <addr> [async] [full]` for a channel; fire `after_connect` once the
    /// `connect` reply went out (or the connection failed).
    Socket {
        uuid: String,
        addr: SocketAddr,
        full: bool,
        is_async: bool,
        after_connect: Option<Event>,
    },
    CloseAfter {
        subscriber: u64,
        uuid: String,
        after: Duration,
    },
    ForkStart(ForkRequest),
    ForkStop {
        uuid: String,
        bug: String,
    },
    Unicast(UnicastRequest),
}

/// `uuid_audio_fork <uuid> start <url> <mix> <rate> [bug] [metadata] [bidirectional] [stream] [stream-rate]`
#[derive(Debug, Clone)]
pub struct ForkRequest {
    pub uuid: String,
    pub url: String,
    pub mix: String,
    pub rate: String,
    pub bug: String,
    pub metadata: String,
    pub bidirectional: bool,
    pub streaming: bool,
    pub stream_rate: Option<u32>,
}

/// `sendmsg` with `call-command: unicast`.
#[derive(Debug, Clone)]
pub struct UnicastRequest {
    pub uuid: String,
    pub local_ip: String,
    pub local_port: u16,
    pub remote_ip: String,
    pub remote_port: u16,
    pub transport: String,
    pub native: bool,
}

pub struct Subscriber {
    pub tx: mpsc::UnboundedSender<Out>,
    pub format: Format,
    pub all: bool,
    pub names: HashSet<String>,
    pub customs: HashSet<String>,
    /// `myevents`: only this channel's events (BACKGROUND_JOBs it owns too).
    pub session: Option<String>,
    pub filters: Vec<(String, String)>,
    busy: bool,
    held: Vec<Vec<u8>>,
}

const MYEVENTS: &[&str] = &[
    "CHANNEL_ANSWER",
    "CHANNEL_APPLICATION",
    "CHANNEL_BRIDGE",
    "CHANNEL_CREATE",
    "CHANNEL_DATA",
    "CHANNEL_DESTROY",
    "CHANNEL_EXECUTE",
    "CHANNEL_EXECUTE_COMPLETE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "CHANNEL_ORIGINATE",
    "CHANNEL_UUID",
    "CHANNEL_OUTGOING",
    "CHANNEL_PARK",
    "CHANNEL_PROGRESS",
    "CHANNEL_PROGRESS_MEDIA",
    "CHANNEL_STATE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_UNPARK",
    "DETECTED_SPEECH",
    "DTMF",
    "NOTALK",
    "TALK",
];

impl Subscriber {
    pub fn new(tx: mpsc::UnboundedSender<Out>) -> Subscriber {
        Subscriber {
            tx,
            format: Format::Plain,
            all: false,
            names: HashSet::new(),
            customs: HashSet::new(),
            session: None,
            filters: Vec::new(),
            busy: false,
            held: Vec::new(),
        }
    }

    fn wants(&self, event: &Event) -> bool {
        let name = event.name();
        let typed = if name == "CUSTOM" {
            let subclass = event.header("Event-Subclass").unwrap_or("");
            self.all || self.customs.contains(subclass)
        } else {
            self.all || self.names.contains(name)
        };
        if !typed {
            return false;
        }
        if !self.filters.is_empty()
            && !self
                .filters
                .iter()
                .any(|(h, v)| event.header(h).is_some_and(|x| x.eq_ignore_ascii_case(v)))
        {
            return false;
        }
        match &self.session {
            Some(uuid) => {
                event.header("Unique-ID") == Some(uuid.as_str())
                    || event.header("Job-Owner-UUID") == Some(uuid.as_str())
            }
            None => true,
        }
    }

    /// `event <format> <names...>`: after `CUSTOM` every word is a subclass (Q1).
    pub fn subscribe(&mut self, words: &[&str]) -> bool {
        let mut custom = false;
        let mut any = false;
        for word in words {
            if custom {
                self.customs.insert(word.to_string());
                any = true;
                continue;
            }
            let upper = word.to_ascii_uppercase();
            let upper = upper
                .strip_prefix("SWITCH_EVENT_")
                .unwrap_or(&upper)
                .to_string();
            match upper.as_str() {
                "ALL" => {
                    self.all = true;
                    any = true;
                }
                "CUSTOM" => custom = true,
                "" => {}
                name => {
                    self.names.insert(name.to_string());
                    any = true;
                }
            }
        }
        any
    }

    pub fn myevents(&mut self, uuid: &str) {
        self.session = Some(uuid.to_string());
        self.names.extend(MYEVENTS.iter().map(|s| s.to_string()));
    }

    pub fn send(&mut self, bytes: Vec<u8>) {
        if self.busy {
            self.held.push(bytes);
        } else {
            let _ = self.tx.send(Out::Bytes(bytes));
        }
    }
}

/// One `sendmsg` a socket sent.
#[derive(Debug, Clone)]
pub struct SentMsg {
    pub uuid: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// What tests read back.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    /// Every `api`/`bgapi` command line (without the `api `/`bgapi ` word), in order, from
    /// inbound connections and sockets alike.
    pub api: Vec<String>,
    /// Every `sendevent`, as fired (headers in order, body).
    pub sent_events: Vec<Event>,
    /// Every `sendmsg` a socket sent: (channel uuid, headers, body).
    pub sendmsgs: Vec<SentMsg>,
    /// Every command line received on any connection.
    pub commands: Vec<String>,
    /// `sendevent`s closed unanswered by [`State::dropping_events`].
    pub dropped_events: usize,
}

pub struct State {
    seq: u64,
    pub channels: HashMap<String, Channel>,
    pub subs: HashMap<u64, Subscriber>,
    /// Subscribers that are inbound ESL connections (not sockets).
    pub inbound: HashSet<u64>,
    next_id: u64,
    session_counter: u32,
    pub recorded: Recorded,
    /// Close the inbound connection instead of answering the next `api` starting with this.
    pub drop_on_api: Option<String>,
    /// `sendevent` of these event names closes the connection instead of firing.
    pub dropping_events: Vec<String>,
    pub deferred: mpsc::UnboundedSender<Deferred>,
    /// `originate` destinations that fail, with their cause (`busy` → USER_BUSY ...).
    pub failing_destinations: HashMap<String, String>,
    /// `originate` destinations whose loopback leg rings until it is hung up.
    pub never_answering: HashSet<String>,
    /// BACKGROUND_JOBs of originates still ringing, by A-leg uuid: fired when it hangs up.
    pub ringing_jobs: HashMap<String, Event>,
    /// mod_hash's store, shared by every connection.
    pub hash: SharedHash,
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl State {
    pub fn new(deferred: mpsc::UnboundedSender<Deferred>) -> State {
        State {
            seq: 500,
            channels: HashMap::new(),
            subs: HashMap::new(),
            inbound: HashSet::new(),
            next_id: 1,
            session_counter: 0,
            recorded: Recorded::default(),
            drop_on_api: None,
            dropping_events: Vec::new(),
            deferred,
            failing_destinations: HashMap::new(),
            never_answering: HashSet::new(),
            ringing_jobs: HashMap::new(),
            hash: SharedHash::default(),
        }
    }

    pub fn add_subscriber(&mut self, tx: mpsc::UnboundedSender<Out>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.subs.insert(id, Subscriber::new(tx));
        id
    }

    pub fn remove_subscriber(&mut self, id: u64) {
        self.subs.remove(&id);
    }

    /// Replies of one command go out before the events it caused (Q2).
    pub fn begin_command(&mut self, id: u64) {
        if let Some(s) = self.subs.get_mut(&id) {
            s.busy = true;
        }
    }

    pub fn end_command(&mut self, id: u64, reply: Vec<u8>) {
        if let Some(s) = self.subs.get_mut(&id) {
            let _ = s.tx.send(Out::Bytes(reply));
            s.busy = false;
            for held in s.held.drain(..) {
                let _ = s.tx.send(Out::Bytes(held));
            }
        }
    }

    pub fn standard(
        &mut self,
        name: &str,
        file: &str,
        func: &str,
        line: u32,
    ) -> Vec<(String, String)> {
        self.seq += 1;
        let now = SystemTime::now();
        let (local, gmt) = dates(now);
        vec![
            ("Event-Name".into(), name.into()),
            ("Core-UUID".into(), CORE_UUID.into()),
            ("FreeSWITCH-Hostname".into(), "double".into()),
            ("FreeSWITCH-Switchname".into(), "double".into()),
            ("FreeSWITCH-IPv4".into(), "127.0.0.1".into()),
            ("FreeSWITCH-IPv6".into(), "::1".into()),
            ("Event-Date-Local".into(), local),
            ("Event-Date-GMT".into(), gmt),
            ("Event-Date-Timestamp".into(), now_us().to_string()),
            ("Event-Calling-File".into(), file.into()),
            ("Event-Calling-Function".into(), func.into()),
            ("Event-Calling-Line-Number".into(), line.to_string()),
            ("Event-Sequence".into(), self.seq.to_string()),
        ]
    }

    pub fn fire(&mut self, event: Event) {
        for sub in self.subs.values_mut() {
            if sub.wants(&event) {
                let bytes = wire::render_event(&event, sub.format);
                sub.send(bytes);
            }
        }
    }

    /// A channel event: standard headers, channel block, caller profile, variables (when
    /// `with_variables`), then `extra`.
    pub fn channel_event(
        &mut self,
        uuid: &str,
        name: &str,
        origin: (&str, &str, u32),
        with_variables: bool,
        extra: Vec<(String, String)>,
    ) {
        let Some(channel) = self.channels.get(uuid) else {
            return;
        };
        let mut tail = channel.channel_block();
        tail.extend(channel.profile_block("Caller"));
        if with_variables {
            tail.extend(channel.variables_block());
        }
        let mut headers = self.standard(name, origin.0, origin.1, origin.2);
        headers.extend(tail);
        headers.extend(extra);
        self.fire(Event {
            headers,
            body: None,
        });
    }

    pub fn custom_channel_event(
        &mut self,
        uuid: &str,
        subclass: &str,
        extra: Vec<(String, String)>,
        body: Option<String>,
    ) {
        let Some(channel) = self.channels.get(uuid) else {
            return;
        };
        let tail = channel.event_body_headers();
        let mut headers = vec![("Event-Subclass".to_string(), subclass.to_string())];
        headers.extend(self.standard("CUSTOM", "mod_audio_fork.c", "responseHandler", 22));
        headers.extend(tail);
        headers.extend(extra);
        self.fire(Event { headers, body });
    }

    fn next_session(&mut self) -> u32 {
        self.session_counter += 1;
        self.session_counter
    }

    /// A pair of loopback legs: `-a` (outbound, what originate returns) and `-b` (inbound).
    pub fn create_loopback_pair(
        &mut self,
        a_uuid: String,
        dest: &str,
        context: &str,
        dialplan: &str,
        vars: &[(String, String)],
    ) -> (String, String) {
        let b_uuid = uuid::Uuid::new_v4().to_string();
        let now = now_us();
        let var = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let cid_name = var("origination_caller_id_name");
        let cid_number = var("origination_caller_id_number");
        // The A-leg's caller id is "flipped" (s4, Q11).
        let a_profile = Profile {
            dialplan: dialplan.to_ascii_lowercase(),
            caller_id_name: Some("Outbound Call".into()),
            caller_id_number: Some(context.to_string()),
            orig_caller_id_name: cid_name.clone(),
            orig_caller_id_number: cid_number.clone(),
            callee_id_name: cid_name.clone(),
            callee_id_number: cid_number.clone(),
            ani: cid_number.clone(),
            destination: dest.to_string(),
            context: context.to_string(),
            index: 1,
            created_us: now,
        };
        let b_profile = Profile {
            dialplan: dialplan.to_string(),
            caller_id_name: cid_name.clone(),
            caller_id_number: Some(cid_number.clone().unwrap_or_else(|| "0000000000".into())),
            orig_caller_id_name: cid_name.clone(),
            orig_caller_id_number: Some(cid_number.clone().unwrap_or_else(|| "0000000000".into())),
            callee_id_name: Some("Outbound Call".into()),
            callee_id_number: Some(dest.to_string()),
            ani: Some(cid_number.clone().unwrap_or_else(|| "0000000000".into())),
            destination: dest.to_string(),
            context: context.to_string(),
            index: 1,
            created_us: now,
        };
        let mut a = Channel::new(
            a_uuid.clone(),
            format!("loopback/{dest}-a"),
            "outbound",
            a_profile,
        );
        let mut b = Channel::new(
            b_uuid.clone(),
            format!("loopback/{dest}-b"),
            "inbound",
            b_profile,
        );
        let a_session = self.next_session();
        let b_session = self.next_session();
        a.set_variable("direction", "outbound");
        a.set_variable("is_outbound", "true");
        a.set_variable("session_id", a_session.to_string());
        a.set_variable("read_codec", "L16");
        a.set_variable("read_rate", "8000");
        a.set_variable("write_codec", "L16");
        a.set_variable("write_rate", "8000");
        a.set_variable("channel_name", a.name.clone());
        a.set_variable("uuid", a_uuid.clone());
        for (k, v) in vars {
            a.set_variable(k, v.clone());
        }
        a.set_variable("originate_early_media", "true");
        a.set_variable("originate_endpoint", "loopback");
        a.set_variable("other_loopback_leg_uuid", b_uuid.clone());
        a.set_variable("loopback_leg", "A");
        a.other_leg = Some(b_uuid.clone());

        b.set_variable("direction", "inbound");
        b.set_variable("uuid", b_uuid.clone());
        b.set_variable("session_id", b_session.to_string());
        b.set_variable("channel_name", b.name.clone());
        b.set_variable("read_codec", "L16");
        b.set_variable("read_rate", "8000");
        b.set_variable("write_codec", "L16");
        b.set_variable("write_rate", "8000");
        b.set_variable("origination_uuid", a_uuid.clone());
        b.set_variable("other_loopback_leg_uuid", a_uuid.clone());
        b.set_variable("loopback_leg", "B");
        b.set_variable("max_forwards", "70");
        b.set_variable("call_uuid", b_uuid.clone());
        b.other_leg = Some(a_uuid.clone());

        self.channels.insert(a_uuid.clone(), a);
        self.channels.insert(b_uuid.clone(), b);
        for uuid in [&a_uuid, &b_uuid] {
            self.channel_event(
                uuid,
                "CHANNEL_CREATE",
                (
                    "switch_core_state_machine.c",
                    "switch_core_session_run",
                    627,
                ),
                true,
                vec![],
            );
        }
        (a_uuid, b_uuid)
    }

    /// Answers a channel, and its loopback partner with it.
    pub fn answer(&mut self, uuid: &str) {
        let mut to_answer = vec![uuid.to_string()];
        if let Some(other) = self.channels.get(uuid).and_then(|c| c.other_leg.clone()) {
            to_answer.push(other);
        }
        for u in to_answer {
            let Some(c) = self.channels.get_mut(&u) else {
                continue;
            };
            if c.is_answered() || !c.is_up() {
                continue;
            }
            c.answered_us = now_us();
            c.call_state = "ACTIVE";
            c.answer_state = "answered";
            c.set_variable("endpoint_disposition", "ANSWER");
            self.channel_event(
                &u,
                "CHANNEL_ANSWER",
                (
                    "switch_channel.c",
                    "switch_channel_perform_mark_answered",
                    3950,
                ),
                true,
                vec![],
            );
        }
    }

    pub fn progress(&mut self, uuid: &str, media: bool) {
        let Some(c) = self.channels.get_mut(uuid) else {
            return;
        };
        if c.is_answered() || !c.is_up() {
            return;
        }
        if media {
            c.progress_media_us = now_us();
            c.call_state = "EARLY";
            c.answer_state = "early";
        } else {
            c.progress_us = now_us();
        }
        let name = if media {
            "CHANNEL_PROGRESS_MEDIA"
        } else {
            "CHANNEL_PROGRESS"
        };
        self.channel_event(
            uuid,
            name,
            (
                "switch_channel.c",
                "switch_channel_perform_mark_ring_ready_value",
                3657,
            ),
            true,
            vec![],
        );
    }

    /// DTMF events on `uuid` itself, one per digit.
    pub fn dtmf(&mut self, uuid: &str, digits: &str, source: &str) {
        for digit in digits
            .chars()
            .filter(|c| c.is_ascii_digit() || "*#ABCDabcd".contains(*c))
        {
            let digit = digit.to_ascii_uppercase();
            if let Some(c) = self.channels.get_mut(uuid) {
                c.dtmf.push(digit);
            }
            self.channel_event(
                uuid,
                "DTMF",
                ("switch_channel.c", "switch_channel_dequeue_dtmf", 677),
                false,
                vec![
                    ("DTMF-Digit".into(), digit.to_string()),
                    ("DTMF-Duration".into(), "2000".into()),
                    ("DTMF-Source".into(), source.into()),
                ],
            );
        }
    }

    /// Hangs a channel (and its loopback partner) up. `by_socket`: the controlling socket asked
    /// for it, so it also gets the events after CHANNEL_HANGUP without `linger` (Q8).
    pub fn hangup(&mut self, uuid: &str, cause: &str, by_socket: bool) {
        let Some(c) = self.channels.get_mut(uuid) else {
            return;
        };
        if !c.is_up() {
            return;
        }
        let cause = normalize_cause(cause);
        c.hangup_cause = Some(cause.clone());
        c.hangup_us = now_us();
        c.call_state = "HANGUP";
        c.answer_state = "hangup";
        c.set_variable("hangup_cause", cause.clone());
        c.set_variable("hangup_cause_q850", q850(&cause).to_string());
        c.ended.cancel();
        let socket = c.socket.clone();
        let name = c.name.clone();
        let other = c.other_leg.clone();
        self.channel_event(
            uuid,
            "CHANNEL_HANGUP",
            ("switch_channel.c", "switch_channel_perform_hangup", 3445),
            true,
            vec![],
        );
        let mut socket_open = false;
        if let Some(binding) = socket.as_ref().filter(|b| b.connected) {
            match binding.linger {
                Some(linger) => {
                    socket_open = true;
                    if let Some(sub) = self.subs.get_mut(&binding.subscriber) {
                        sub.send(wire::linger_notice(uuid, &name, linger));
                    }
                    if let Some(secs) = linger {
                        let _ = self.deferred.send(Deferred::CloseAfter {
                            subscriber: binding.subscriber,
                            uuid: uuid.to_string(),
                            after: Duration::from_secs(secs),
                        });
                    }
                }
                None if by_socket => socket_open = true,
                None => self.close_socket(binding.subscriber, uuid),
            }
        }
        if socket.is_some() {
            self.channel_event(
                uuid,
                "CHANNEL_UNPARK",
                ("switch_ivr.c", "switch_ivr_park", 1213),
                true,
                vec![],
            );
            let data = self
                .channels
                .get(uuid)
                .and_then(|c| c.variable("current_application_data").map(str::to_string))
                .unwrap_or_default();
            self.channel_event(
                uuid,
                "CHANNEL_EXECUTE_COMPLETE",
                ("switch_core_session.c", "switch_core_session_exec", 2967),
                true,
                vec![
                    ("Application".into(), "socket".into()),
                    ("Application-Data".into(), data),
                    ("Application-Response".into(), "_none_".into()),
                    ("Application-UUID".into(), uuid::Uuid::new_v4().to_string()),
                ],
            );
        }
        self.channel_event(
            uuid,
            "CHANNEL_STATE",
            (
                "switch_channel.c",
                "switch_channel_perform_set_running_state",
                2408,
            ),
            false,
            vec![],
        );
        self.channel_event(
            uuid,
            "CHANNEL_STATE",
            (
                "switch_channel.c",
                "switch_channel_perform_set_running_state",
                2408,
            ),
            false,
            vec![],
        );
        self.channel_event(
            uuid,
            "CHANNEL_HANGUP_COMPLETE",
            (
                "switch_core_state_machine.c",
                "switch_core_session_reporting_state",
                943,
            ),
            true,
            vec![],
        );
        if let Some(binding) = socket.filter(|b| b.connected) {
            if socket_open && binding.linger.is_none() {
                self.close_socket(binding.subscriber, uuid);
            }
        }
        if let Some(other) = other {
            self.hangup(&other, &cause, false);
        }
        if let Some(mut job) = self.ringing_jobs.remove(uuid) {
            job.body = Some(format!("-ERR {cause}\n"));
            self.fire(job);
        }
    }

    /// Ends a controlled session: disconnect notice, then close.
    pub fn close_socket(&mut self, subscriber: u64, uuid: &str) {
        if let Some(mut sub) = self.subs.remove(&subscriber) {
            sub.send(wire::session_disconnect_notice(uuid));
            sub.busy = false;
            for held in sub.held.drain(..) {
                let _ = sub.tx.send(Out::Bytes(held));
            }
            let _ = sub.tx.send(Out::Close);
        }
        if let Some(c) = self.channels.get_mut(uuid) {
            if let Some(b) = c.socket.as_mut() {
                if b.subscriber == subscriber {
                    b.connected = false;
                }
            }
        }
    }

    /// The body of `api <line>` (also the BACKGROUND_JOB body of `bgapi <line>`).
    pub fn api(&mut self, line: &str) -> String {
        let line = line.trim();
        let (cmd, args) = line.split_once(' ').unwrap_or((line, ""));
        let args = args.trim();
        let words: Vec<&str> = args.split_whitespace().collect();
        match cmd {
            "status" => "UP 0 years, 0 days, 0 hours, 0 minutes, 1 second, 0 milliseconds, 0 microseconds\nFreeSWITCH (Version 1.10.12-release  64bit) is ready\n0 session(s) since startup\n0 session(s) - peak 0, last 5min 0 \n0 session(s) per Sec out of max 30, peak 0, last 5min 0 \n1000 session(s) max\nmin idle cpu 0.00/99.00\nCurrent Stack Size/Max 240K/8192K\n".to_string(),
            "originate" => self.originate(args, None),
            "hash" => self.hash.api(args),
            "uuid_kill" => match words.first() {
                Some(u) if self.channels.get(*u).is_some_and(|c| c.is_up()) => {
                    let cause = words.get(1).copied().unwrap_or("NORMAL_CLEARING");
                    let u = u.to_string();
                    self.hangup(&u, cause, false);
                    "+OK\n".into()
                }
                _ => "-ERR No such channel!\n".into(),
            },
            "uuid_answer" => match words.first() {
                Some(u) if self.channels.get(*u).is_some_and(|c| c.is_up()) => {
                    let u = u.to_string();
                    self.answer(&u);
                    "+OK\n".into()
                }
                _ => "-ERROR\n".into(),
            },
            "uuid_send_dtmf" | "uuid_recv_dtmf" => match (words.first(), words.get(1)) {
                (Some(u), Some(digits)) if self.channels.get(*u).is_some_and(|c| c.is_up()) => {
                    let u = u.to_string();
                    let target = if cmd == "uuid_send_dtmf" {
                        // Sent towards the far end: the other loopback leg sees it (Q6).
                        self.channels[&u].other_leg.clone().unwrap_or_else(|| u.clone())
                    } else {
                        u.clone()
                    };
                    let source = if cmd == "uuid_send_dtmf" { "ENDPOINT" } else { "APP" };
                    self.dtmf(&target, digits, source);
                    let verb = if cmd == "uuid_send_dtmf" { "sent" } else { "received" };
                    format!("+OK {u} {verb} DTMF {digits}.\n")
                }
                (Some(_), Some(_)) => "-ERR Cannot locate session!\n".into(),
                _ => "-USAGE: <uuid> <dtmf_data>\n".to_string(),
            },
            "uuid_getvar" => match (words.first(), words.get(1)) {
                (Some(u), Some(name)) => match self.channels.get(*u).filter(|c| c.is_up()) {
                    Some(c) => c.variable(name).unwrap_or("_undef_").to_string(),
                    None => "-ERR No such channel!\n".into(),
                },
                _ => "-USAGE: <uuid> <var>\n".into(),
            },
            "uuid_setvar" => match (words.first(), words.get(1)) {
                (Some(u), Some(name)) => {
                    let value = args
                        .splitn(3, ' ')
                        .nth(2)
                        .map(str::to_string);
                    match self.channels.get_mut(*u).filter(|c| c.is_up()) {
                        Some(c) => {
                            match value {
                                Some(v) => c.set_variable(name, v),
                                None => c.unset_variable(name),
                            }
                            "+OK\n".into()
                        }
                        None => "-ERR No such channel!\n".into(),
                    }
                }
                (Some(_), None) => "-ERR No variable specified\n".into(),
                _ => "-USAGE: <uuid> <var> [value]\n".into(),
            },
            "uuid_exists" => match words.first() {
                Some(u) if self.channels.get(*u).is_some_and(|c| c.is_up()) => "true".into(),
                _ => "false".into(),
            },
            "uuid_audio_fork" => self.audio_fork(&words, args),
            "chat" => self.chat(args),
            // The vanilla configuration's domain is the local address.
            "global_getvar" => match args {
                "domain" => "127.0.0.1".into(),
                _ => String::new(),
            },
            "" => "-ERR no reply\n".into(),
            other => format!("-ERR {other} Command not found!\n"),
        }
    }

    fn audio_fork(&mut self, words: &[&str], args: &str) -> String {
        const USAGE: &str = "-USAGE: <uuid> [start | stop | send_text | pause | resume | graceful-shutdown | stop_play ] [wss-url | path] [mono | mixed | stereo] [8000 | 16000 | 24000 | 32000 | 64000] [bugname] [metadata] [bidirectionalAudio_enabled] [bidirectionalAudio_stream_enabled] [bidirectionalAudio_stream_samplerate]\n";
        let (Some(uuid), Some(action)) = (words.first(), words.get(1)) else {
            return USAGE.into();
        };
        let Some(channel) = self.channels.get_mut(*uuid).filter(|c| c.is_up()) else {
            return "-ERR Operation Failed\n".into();
        };
        channel.forks.push(args.to_string());
        match *action {
            "start" => {
                if words.len() < 5 {
                    return USAGE.into();
                }
                let flag = |i: usize| words.get(i).is_some_and(|w| w.eq_ignore_ascii_case("true"));
                let request = ForkRequest {
                    uuid: uuid.to_string(),
                    url: words[2].to_string(),
                    mix: words[3].to_string(),
                    rate: words[4].to_string(),
                    bug: words.get(5).unwrap_or(&"audio_fork").to_string(),
                    metadata: words.get(6).unwrap_or(&"").to_string(),
                    bidirectional: flag(7),
                    streaming: flag(8),
                    stream_rate: words.get(9).and_then(|r| r.parse().ok()),
                };
                let _ = self.deferred.send(Deferred::ForkStart(request));
                "+OK Success\n".into()
            }
            "stop" => {
                let bug = words.get(2).unwrap_or(&"audio_fork").to_string();
                let _ = self.deferred.send(Deferred::ForkStop {
                    uuid: uuid.to_string(),
                    bug,
                });
                "+OK Success\n".into()
            }
            "send_text" | "pause" | "resume" | "stop_play" | "graceful-shutdown" => {
                "+OK Success\n".into()
            }
            _ => USAGE.into(),
        }
    }

    /// `chat <proto>|<from>|<to>|<text>`: the double has no chat interface for any protocol,
    /// like the capture's FreeSWITCH for SKYPE (Q5).
    fn chat(&mut self, args: &str) -> String {
        let parts: Vec<&str> = args.splitn(4, '|').collect();
        if parts.len() < 4 {
            return "-USAGE: <proto>|<from>|<to>|<message>|[<content-type>]\n".into();
        }
        let mut headers = self.standard(
            "MESSAGE",
            "switch_loadable_module.c",
            "switch_core_chat_send_args",
            1039,
        );
        headers.extend([
            ("proto".to_string(), "global".to_string()),
            ("from".into(), parts[1].into()),
            ("to".into(), parts[2].into()),
            ("skip_global_process".into(), "true".into()),
            ("blocking".into(), "true".into()),
            ("dest_proto".into(), parts[0].into()),
            ("Delivery-Failure".into(), "true".into()),
        ]);
        self.fire(Event {
            headers,
            body: Some(parts[3].to_string()),
        });
        "Error! Message Not Sent".into()
    }

    /// `originate <dial string> <&app(...)|exten> ...`. For `bgapi`, `job` is the
    /// BACKGROUND_JOB to fire once the result is known (after the socket connected, Q12).
    pub fn originate(&mut self, args: &str, job: Option<Event>) -> String {
        let (dial, rest) = split_dial_string(args);
        let (vars, target) = parse_vars(&dial);
        if let Some(a) = self.ring_without_answer(&vars, &target) {
            return match job {
                Some(job) => {
                    self.ringing_jobs.insert(a, job);
                    String::new()
                }
                // A blocking `api originate` cannot wait here: it gives up at once.
                None => {
                    self.hangup(&a, "NO_ANSWER", false);
                    "-ERR NO_ANSWER\n".into()
                }
            };
        }
        let result = self.originate_inner(&vars, &target, rest.trim(), job.is_some());
        match result {
            Ok((uuid, socket)) => {
                let body = format!("+OK {uuid}\n");
                match (socket, job) {
                    (Some(deferred), Some(mut job)) => {
                        job.body = Some(body.clone());
                        let Deferred::Socket {
                            uuid,
                            addr,
                            full,
                            is_async,
                            ..
                        } = deferred
                        else {
                            return body;
                        };
                        let _ = self.deferred.send(Deferred::Socket {
                            uuid,
                            addr,
                            full,
                            is_async,
                            after_connect: Some(job),
                        });
                    }
                    (Some(deferred), None) => {
                        let _ = self.deferred.send(deferred);
                    }
                    (None, Some(mut job)) => {
                        job.body = Some(body.clone());
                        self.fire(job);
                    }
                    (None, None) => {}
                }
                body
            }
            Err(body) => {
                if let Some(mut job) = job {
                    job.body = Some(body.clone());
                    self.fire(job);
                }
                body
            }
        }
    }

    /// For a destination in [`Self::never_answering`]: the loopback pair, created and left
    /// ringing (no answer, no socket); its A-leg uuid.
    fn ring_without_answer(&mut self, vars: &[(String, String)], target: &str) -> Option<String> {
        let mut parts = target.strip_prefix("loopback/")?.split('/');
        let dest = parts.next()?;
        if !self.never_answering.contains(dest) {
            return None;
        }
        let context = parts.next().filter(|s| !s.is_empty()).unwrap_or("default");
        let dialplan = parts.next().filter(|s| !s.is_empty()).unwrap_or("XML");
        let a_uuid = vars
            .iter()
            .find(|(k, _)| k == "origination_uuid")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if self.channels.contains_key(&a_uuid) {
            return None;
        }
        let (a, _b) = self.create_loopback_pair(a_uuid, dest, context, dialplan, vars);
        Some(a)
    }

    fn originate_inner(
        &mut self,
        vars: &[(String, String)],
        target: &str,
        app: &str,
        _background: bool,
    ) -> Result<(String, Option<Deferred>), String> {
        if let Some(cause) = target.strip_prefix("error/") {
            return Err(format!("-ERR {}\n", normalize_cause(cause)));
        }
        let Some(spec) = target.strip_prefix("loopback/") else {
            return Err("-ERR CHAN_NOT_IMPLEMENTED\n".into());
        };
        let mut parts = spec.split('/');
        let dest = parts.next().unwrap_or("").to_string();
        let context = parts
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        let dialplan = parts
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("XML")
            .to_string();
        if dest.is_empty() || app.is_empty() {
            return Err("-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n".into());
        }
        if let Some(cause) = self.failing_destinations.get(&dest) {
            return Err(format!("-ERR {cause}\n"));
        }
        let a_uuid = vars
            .iter()
            .find(|(k, _)| k == "origination_uuid")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if self.channels.contains_key(&a_uuid) {
            return Err("-ERR DESTINATION_OUT_OF_ORDER\n".into());
        }
        let (a, _b) = self.create_loopback_pair(a_uuid, &dest, &context, &dialplan, vars);
        // The B-leg's dialplan answers (like `park` / `9196` in the captures).
        self.answer(&a);
        if let Some(c) = self.channels.get_mut(&a) {
            let name = c.profile.orig_caller_id_name.clone();
            let number = c.profile.orig_caller_id_number.clone();
            if let Some(n) = name {
                c.set_variable("pre_transfer_caller_id_name", n);
            }
            if let Some(n) = number {
                c.set_variable("pre_transfer_caller_id_number", n);
            }
            c.set_variable("channel_cid_flipped", "yes");
            c.set_variable("call_uuid", a.clone());
        }
        let socket_arg = app
            .strip_prefix("&socket(")
            .and_then(|r| r.find(')').map(|end| &r[..end]));
        if let Some(arg) = socket_arg {
            let arg = arg.trim_matches('\'').to_string();
            let mut words = arg.split_whitespace();
            let target = words.next().unwrap_or("");
            let flags: Vec<String> = words.map(|w| w.to_ascii_lowercase()).collect();
            let addr: SocketAddr = match target.parse() {
                Ok(a) => a,
                Err(_) => format!("{target}:8084")
                    .parse()
                    .map_err(|_| "-ERR DESTINATION_OUT_OF_ORDER\n".to_string())?,
            };
            let c = self
                .channels
                .get_mut(&a)
                .ok_or("-ERR NORMAL_TEMPORARY_FAILURE\n")?;
            c.set_variable("current_application_data", arg.clone());
            c.set_variable("current_application", "socket");
            c.set_variable("socket_host", addr.ip().to_string());
            return Ok((
                a.clone(),
                Some(Deferred::Socket {
                    uuid: a,
                    addr,
                    full: flags.iter().any(|f| f == "full"),
                    is_async: flags.iter().any(|f| f == "async"),
                    after_connect: None,
                }),
            ));
        }
        Ok((a, None))
    }

    /// The `connect` reply: the CHANNEL_DATA block, values URL-encoded, no Content-Length.
    pub fn channel_data(&mut self, uuid: &str) -> Option<Vec<u8>> {
        let channel = self.channels.get(uuid)?;
        let tail = channel.channel_data_headers();
        let binding = channel.socket.clone()?;
        let mut headers =
            self.standard("CHANNEL_DATA", "mod_event_socket.c", "parse_command", 2021);
        headers.extend(tail);
        headers.push(("Content-Type".into(), "command/reply".into()));
        headers.push(("Reply-Text".into(), "+OK\n".into()));
        headers.push((
            "Socket-Mode".into(),
            if binding.is_async { "async" } else { "static" }.into(),
        ));
        headers.push((
            "Control".into(),
            if binding.full {
                "full"
            } else {
                "single-channel"
            }
            .into(),
        ));
        let mut out = String::new();
        for (k, v) in headers {
            out.push_str(&k);
            out.push_str(": ");
            out.push_str(&wire::url_encode(&v));
            out.push('\n');
        }
        out.push('\n');
        Some(out.into_bytes())
    }

    /// The skypopen dialplan route (`skype/<dest>` → `socket <addr> async full`) for a call
    /// placed on the double: a loopback pair whose B-leg runs `socket`.
    pub fn dial_route(
        &mut self,
        dest: &str,
        caller_number: &str,
        caller_name: Option<&str>,
        variables: &[(String, String)],
        addr: SocketAddr,
        full: bool,
    ) -> (String, String) {
        let a_uuid = uuid::Uuid::new_v4().to_string();
        // `skypopen/<interface>/<dest>` is dialled as it is; anything else is `skype/<dest>`.
        let (destination, matched) = match dest.strip_prefix("skypopen/") {
            Some(rest) => (dest.to_string(), rest),
            None => (format!("skype/{dest}"), dest),
        };
        let exten = format!("skype_{}", matched.replace('/', "_"));
        let (a, b) = self.create_loopback_pair(a_uuid, &exten, "default", "XML", &[]);
        if let Some(c) = self.channels.get_mut(&b) {
            c.profile.destination = destination.clone();
            c.profile.caller_id_number = Some(caller_number.to_string());
            c.profile.orig_caller_id_number = Some(caller_number.to_string());
            c.profile.ani = Some(caller_number.to_string());
            c.profile.caller_id_name = caller_name.map(str::to_string);
            c.profile.orig_caller_id_name = caller_name.map(str::to_string);
            c.profile.index = 2;
            c.unset_variable("call_uuid");
            c.set_variable("DP_MATCH", format!("ARRAY::{destination}|:{matched}"));
            c.set_variable("call_uuid", b.clone());
            for (k, v) in variables {
                c.set_variable(k, v.clone());
            }
            // A `read_rate` among the variables picks the leg's codec rate (a 16 kHz L16 leg).
            if let Some(rate) = c.variable("read_rate").and_then(|r| r.parse::<u32>().ok()) {
                c.rate = rate;
                c.set_variable("write_rate", rate.to_string());
            }
            let data = format!("{addr} async{}", if full { " full" } else { "" });
            c.set_variable("current_application_data", data);
            c.set_variable("current_application", "socket");
            c.set_variable("socket_host", addr.ip().to_string());
        }
        (a, b)
    }
}

fn dates(now: SystemTime) -> (String, String) {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let (y, mo, d) = civil_from_days(days as i64);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let weekday = WEEKDAYS[(days % 7) as usize];
    let local = format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}");
    let gmt = format!(
        "{weekday}, {d:02} {} {y:04} {h:02}:{m:02}:{s:02} GMT",
        MONTHS[(mo - 1) as usize]
    );
    (local, gmt)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn normalize_cause(cause: &str) -> String {
    let cause = cause.trim();
    if let Ok(code) = cause.parse::<u32>() {
        return CAUSES
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(n, _)| n.to_string())
            .unwrap_or_else(|| "NORMAL_UNSPECIFIED".into());
    }
    let upper = cause.to_ascii_uppercase();
    if CAUSES.iter().any(|(n, _)| *n == upper) {
        upper
    } else {
        "NORMAL_CLEARING".into()
    }
}

pub fn q850(cause: &str) -> u32 {
    CAUSES
        .iter()
        .find(|(n, _)| *n == cause)
        .map(|(_, c)| if *c > 127 { 16 } else { *c })
        .unwrap_or(16)
}

const CAUSES: &[(&str, u32)] = &[
    ("UNALLOCATED_NUMBER", 1),
    ("NO_ROUTE_DESTINATION", 3),
    ("NORMAL_CLEARING", 16),
    ("USER_BUSY", 17),
    ("NO_USER_RESPONSE", 18),
    ("NO_ANSWER", 19),
    ("SUBSCRIBER_ABSENT", 20),
    ("CALL_REJECTED", 21),
    ("DESTINATION_OUT_OF_ORDER", 27),
    ("INVALID_NUMBER_FORMAT", 28),
    ("NORMAL_UNSPECIFIED", 31),
    ("NORMAL_CIRCUIT_CONGESTION", 34),
    ("NETWORK_OUT_OF_ORDER", 38),
    ("NORMAL_TEMPORARY_FAILURE", 41),
    ("SWITCH_CONGESTION", 42),
    ("REQUESTED_CHAN_UNAVAIL", 44),
    ("OUTGOING_CALL_BARRED", 52),
    ("INCOMING_CALL_BARRED", 54),
    ("SERVICE_UNAVAILABLE", 63),
    ("CHAN_NOT_IMPLEMENTED", 66),
    ("RECOVERY_ON_TIMER_EXPIRE", 102),
    ("INTERWORKING", 127),
    ("ORIGINATOR_CANCEL", 487),
    ("LOSE_RACE", 702),
    ("MANAGER_REQUEST", 703),
    ("SYSTEM_SHUTDOWN", 705),
    ("ALLOTTED_TIMEOUT", 802),
    ("MEDIA_TIMEOUT", 804),
    ("PROGRESS_TIMEOUT", 807),
];

/// `{a=1,b='x y'}loopback/...` and the rest of the originate arguments. Quotes may hold spaces.
fn split_dial_string(args: &str) -> (String, String) {
    let mut depth = 0;
    let mut quoted = false;
    for (i, ch) in args.char_indices() {
        match ch {
            '\'' => quoted = !quoted,
            '{' | '[' if !quoted => depth += 1,
            '}' | ']' if !quoted => depth -= 1,
            ' ' if !quoted && depth == 0 => {
                return (args[..i].to_string(), args[i + 1..].to_string())
            }
            _ => {}
        }
    }
    (args.to_string(), String::new())
}

fn parse_vars(dial: &str) -> (Vec<(String, String)>, String) {
    let Some(rest) = dial.strip_prefix('{') else {
        return (Vec::new(), dial.to_string());
    };
    let Some(end) = rest.find('}') else {
        return (Vec::new(), dial.to_string());
    };
    let mut vars = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = rest[..end].chars().peekable();
    let mut items = Vec::new();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if chars.peek() == Some(&',') => {
                current.push(',');
                chars.next();
            }
            '\'' => quoted = !quoted,
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    items.push(current);
    for item in items {
        if let Some((k, v)) = item.split_once('=') {
            vars.push((k.trim().to_string(), v.to_string()));
        }
    }
    (vars, rest[end + 1..].to_string())
}

/// A channel's socket binding, for the session that controls it.
pub fn bind_socket(state: &mut State, uuid: &str, subscriber: u64, full: bool, is_async: bool) {
    if let Some(c) = state.channels.get_mut(uuid) {
        c.socket = Some(SocketBinding {
            subscriber,
            full,
            is_async,
            linger: None,
            connected: true,
        });
    }
}
