//! One emulated Linux Skype client: the Desktop API state machine of spec 2-8 and 13, spoken
//! to any number of controllers through a [`ClientLink`] (X11 ClientMessages in the binary,
//! plain channels in tests), backed by the emulated network.
//!
//! Choices where the spec leaves the client's behaviour open (Q1, Q2):
//! - `SET CALL <id> DTMF <d>` is answered `CALL <id> DTMF <d>` by default (the Skype API's
//!   usual "SET echoes the property" convention; Skype4Py expects exactly that reply).
//!   `--dtmf-echo off` makes the client silent instead.
//! - Error texts: `ERROR 2 Unknown command`, `ERROR 36 Not online`,
//!   `ERROR 92 CALL: Unrecognised identity`, `ERROR 559 CALL: Action failed` (ANSWER of a call
//!   that does not ring, any ALTER of a finished call), `ERROR 592 ALTER CALL: Transferring
//!   failed`, `ERROR 589 ALTER CALL: Failed to connect audio` (an audio port that refused for
//!   5 s), `ERROR 11 Invalid call id`, `ERROR 14 Invalid message id`,
//!   `ERROR 105 Invalid chat name`, and a bare `ERROR 68` (the module compares it exactly).

pub mod audio;
mod calls;
pub mod command;
mod network;
pub mod trace;
pub mod uplink;
mod users;

use crate::sim::proto::{Reply, Request};
use crate::skype::link::{ClientLink, ClientOutgoing, PeerMessage, SendFaults};
use audio::{AudioContext, AudioEvent, CallAudio, ConnectPolicy, Direction};
use command::{Command, Tagged};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};
use uplink::{AudioRoutes, Uplink, UplinkEvent};

/// How the client treats a controller's `NAME` (spec 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Pre-authorized: `OK` at once.
    Authorized,
    /// `ERROR 68` until this long after the first `NAME`, then an unsolicited `OK`.
    Pending(Duration),
    /// `ERROR 68` forever.
    Denied,
    /// The first `NAME` of each controller gets `ERROR 68`, the next one `OK`.
    RefuseFirst,
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub user: String,
    pub network: SocketAddr,
    /// Highest API protocol version granted.
    pub protocol_max: u32,
    /// Delay between attaching and the unsolicited CONNSTATUS / CURRENTUSERHANDLE / USERSTATUS.
    pub attach_delay: Duration,
    pub auth: AuthMode,
    pub user_status: String,
    pub dtmf_echo: bool,
    pub audio_delay: Duration,
    pub no_audio: bool,
    pub answer_error: bool,
    /// Drop the BEGIN chunk of the next N messages sent.
    pub drop_begin: u32,
    /// Per-frame timestamps of the audio sockets (off: `None`).
    pub audio_trace: Option<trace::AudioTrace>,
}

impl ClientConfig {
    pub fn new(user: &str, network: SocketAddr) -> ClientConfig {
        ClientConfig {
            user: user.to_string(),
            network,
            protocol_max: 8,
            attach_delay: Duration::from_millis(150),
            auth: AuthMode::Authorized,
            user_status: "ONLINE".into(),
            dtmf_echo: true,
            audio_delay: Duration::ZERO,
            no_audio: false,
            answer_error: false,
            drop_begin: 0,
            audio_trace: None,
        }
    }
}

/// Why the client stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientExit {
    Shutdown,
    /// The link closed (the transport went away).
    LinkClosed,
    /// The `die` fault: the process should exit at once without cleaning up.
    Died,
}

/// Runs the client until shutdown, the link closing, or the `die` fault.
pub async fn run(
    config: ClientConfig,
    link: ClientLink,
    shutdown: CancellationToken,
) -> ClientExit {
    let span = tracing::info_span!("client", user = %config.user);
    async move {
        let (events_tx, events_rx) = mpsc::channel(1024);
        let (audio_tx, audio_rx) = mpsc::channel(256);
        let (timer_tx, timer_rx) = mpsc::channel(256);
        let routes: AudioRoutes = Default::default();
        let uplink_stop = shutdown.child_token();
        let uplink = uplink::spawn(
            config.network,
            config.user.clone(),
            events_tx,
            routes.clone(),
            uplink_stop.clone(),
        );
        let audio_trace = config.audio_trace.clone();
        let mut client = Client {
            drop_begin: config.drop_begin,
            config,
            outgoing: link.outgoing,
            uplink: uplink.clone(),
            audio: AudioContext {
                uplink,
                routes,
                events: audio_tx,
                policy: ConnectPolicy::default(),
                trace: audio_trace,
            },
            timers: timer_tx,
            peers: HashMap::new(),
            authorized_once: false,
            online: false,
            profile: Profile::default(),
            calls: BTreeMap::new(),
        };
        client.audio.policy = ConnectPolicy {
            delay: client.config.audio_delay,
            never: client.config.no_audio,
        };
        let exit = client
            .run(link.incoming, events_rx, audio_rx, timer_rx, shutdown)
            .await;
        uplink_stop.cancel();
        exit
    }
    .instrument(span)
    .await
}

#[derive(Debug, Default)]
struct Profile {
    display_name: String,
    balance: i64,
    currency: String,
}

#[derive(Debug, Default)]
struct Peer {
    attached: bool,
    name_attempts: u32,
    pending_since: Option<Instant>,
}

#[derive(Debug)]
struct ClientCall {
    partner_handle: String,
    partner_dispname: String,
    call_type: String,
    status: String,
    failure_reason: u32,
    answered_at: Option<Instant>,
    duration_sent: u64,
    finished: bool,
    vaa_input: bool,
    audio: CallAudio,
}

impl ClientCall {
    /// A call just placed or just ringing: nothing answered, sent or set up yet.
    fn new(
        partner_handle: String,
        partner_dispname: String,
        call_type: String,
        status: &str,
    ) -> ClientCall {
        ClientCall {
            partner_handle,
            partner_dispname,
            call_type,
            status: status.into(),
            failure_reason: 0,
            answered_at: None,
            duration_sent: 0,
            finished: false,
            vaa_input: false,
            audio: CallAudio::default(),
        }
    }

    fn duration(&self) -> u64 {
        self.answered_at.map(|t| t.elapsed().as_secs()).unwrap_or(0)
    }
}

#[derive(Debug)]
enum Timer {
    /// Attachment notifications for a peer.
    Attached(u32),
    /// A pending authorization has been granted.
    Authorize(u32),
    /// Notify to all peers (delayed follow-ups such as `CHATMESSAGE <id> STATUS SENT`).
    Notify(String),
}

const TERMINAL: [&str; 7] = [
    "FINISHED",
    "MISSED",
    "CANCELLED",
    "REFUSED",
    "BUSY",
    "FAILED",
    "TRANSFERRED",
];
/// Finished calls remembered so late commands get `ERROR 559` rather than "invalid id".
const REMEMBERED_CALLS: usize = 1000;

struct Client {
    config: ClientConfig,
    outgoing: mpsc::Sender<ClientOutgoing>,
    uplink: Uplink,
    audio: AudioContext,
    timers: mpsc::Sender<Timer>,
    peers: HashMap<u32, Peer>,
    authorized_once: bool,
    online: bool,
    profile: Profile,
    calls: BTreeMap<u64, ClientCall>,
    drop_begin: u32,
}

impl Client {
    async fn run(
        &mut self,
        mut incoming: mpsc::Receiver<PeerMessage>,
        mut events: mpsc::Receiver<UplinkEvent>,
        mut audio: mpsc::Receiver<AudioEvent>,
        mut timers: mpsc::Receiver<Timer>,
        shutdown: CancellationToken,
    ) -> ClientExit {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return ClientExit::Shutdown,
                msg = incoming.recv() => match msg {
                    Some(m) => {
                        if self.on_command(m).await.is_break() {
                            return ClientExit::LinkClosed;
                        }
                    }
                    None => return ClientExit::LinkClosed,
                },
                ev = events.recv() => match ev {
                    Some(e) => {
                        if let Some(exit) = self.on_network(e).await {
                            return exit;
                        }
                    }
                    None => return ClientExit::Shutdown,
                },
                Some(ev) = audio.recv() => self.on_audio(ev).await,
                Some(t) = timers.recv() => self.on_timer(t).await,
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    // ----- sending --------------------------------------------------------------------

    async fn send(&mut self, peer: u32, text: String) -> std::ops::ControlFlow<()> {
        let faults = if self.drop_begin > 0 {
            self.drop_begin -= 1;
            SendFaults { drop_begin: true }
        } else {
            SendFaults::default()
        };
        debug!(peer, %text, "api out");
        match self
            .outgoing
            .send(ClientOutgoing { peer, text, faults })
            .await
        {
            Ok(()) => std::ops::ControlFlow::Continue(()),
            Err(_) => std::ops::ControlFlow::Break(()),
        }
    }

    async fn reply(
        &mut self,
        peer: u32,
        tag: &Option<String>,
        text: String,
    ) -> std::ops::ControlFlow<()> {
        let text = match tag {
            Some(t) => format!("#{t} {text}"),
            None => text,
        };
        self.send(peer, text).await
    }

    /// An unsolicited notification to every attached controller.
    async fn notify(&mut self, text: String) {
        let mut peers: Vec<u32> = self
            .peers
            .iter()
            .filter(|(_, p)| p.attached)
            .map(|(id, _)| *id)
            .collect();
        peers.sort_unstable();
        for peer in peers {
            let _ = self.send(peer, text.clone()).await;
        }
    }

    fn later(&self, after: Duration, timer: Timer) {
        let tx = self.timers.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(timer).await;
        });
    }

    // ----- controller commands --------------------------------------------------------

    async fn on_command(&mut self, msg: PeerMessage) -> std::ops::ControlFlow<()> {
        debug!(peer = msg.peer, text = %msg.text, "api in");
        let Tagged { tag, text, command } = command::parse(&msg.text);
        let peer = msg.peer;
        if let Command::Name(app) = &command {
            return self.on_name(peer, &tag, app).await;
        }
        let attached = self.peers.get(&peer).is_some_and(|p| p.attached);
        if !attached {
            return self.reply(peer, &tag, "ERROR 68".into()).await;
        }
        let lines = self.execute(command, &text).await;
        for line in lines {
            self.reply(peer, &tag, line).await?;
        }
        std::ops::ControlFlow::Continue(())
    }

    async fn on_name(
        &mut self,
        peer: u32,
        tag: &Option<String>,
        app: &str,
    ) -> std::ops::ControlFlow<()> {
        let mode = self.config.auth;
        let already = self.authorized_once;
        let entry = self.peers.entry(peer).or_default();
        entry.name_attempts += 1;
        let grant = match mode {
            AuthMode::Authorized => true,
            AuthMode::Denied => false,
            AuthMode::RefuseFirst => entry.name_attempts > 1,
            AuthMode::Pending(d) => {
                if already {
                    true
                } else {
                    if entry.pending_since.is_none() {
                        entry.pending_since = Some(Instant::now());
                        self.later(d, Timer::Authorize(peer));
                    }
                    false
                }
            }
        };
        info!(peer, app, granted = grant, "controller NAME");
        if grant {
            self.attach(peer);
            self.reply(peer, tag, "OK".into()).await
        } else {
            self.reply(peer, tag, "ERROR 68".into()).await
        }
    }

    fn attach(&mut self, peer: u32) {
        let p = self.peers.entry(peer).or_default();
        let first = !p.attached;
        p.attached = true;
        p.pending_since = None;
        self.authorized_once = true;
        if first {
            self.later(self.config.attach_delay, Timer::Attached(peer));
        }
    }

    /// Runs one command; returns the reply lines for the requesting controller.
    async fn execute(&mut self, command: Command, text: &str) -> Vec<String> {
        match command {
            Command::Name(_) => vec![],
            Command::Protocol(n) => {
                let granted = n
                    .unwrap_or(self.config.protocol_max)
                    .min(self.config.protocol_max);
                vec![format!("PROTOCOL {granted}")]
            }
            Command::Ping => vec!["PONG".into()],
            Command::GetGlobal(what) => vec![self.get_global(&what)],
            Command::GetProfile(what) => vec![self.get_profile(&what)],
            Command::SetSetting { name, value } => vec![format!("{name} {value}")],
            Command::SetUserAuthorized { handle, value } => {
                self.set_user_flag(handle, "ISAUTHORIZED", value).await
            }
            Command::SetUserBlocked { handle, value } => {
                self.set_user_flag(handle, "ISBLOCKED", value).await
            }
            Command::SetCallDtmf { call, digit } => self.set_dtmf(call, &digit).await,
            Command::SetCallStatus { call, status } => match status.as_str() {
                "FINISHED" => self.hangup(call, None).await,
                "INPROGRESS" => self.answer(call, None).await,
                "ONHOLD" => self.hold(call, true, None).await,
                _ => vec!["ERROR 2 Unknown command".into()],
            },
            Command::SetChatMessageSeen(id) => {
                match self.net(Request::ChatSeen { message: id }).await {
                    Ok(_) => vec![format!("CHATMESSAGE {id} STATUS READ")],
                    Err(line) => vec![line],
                }
            }
            Command::SetMessageSeen(id) => vec![format!("MESSAGE {id} STATUS READ")],
            Command::Call(target) => self.dial(&target).await,
            Command::GetCall { call, property } => vec![self.get_call(call, &property)],
            Command::AlterCall { call, action } => self.alter_call(call, action, text).await,
            Command::ChatCreate(partner) => match self.net(Request::ChatCreate { partner }).await {
                Ok(Reply::Chat { chat }) => vec![format!("CHAT {chat} STATUS DIALOG")],
                Ok(other) => vec![unexpected(other)],
                Err(line) => vec![line],
            },
            Command::GetChat { chat, property } => self.get_chat(&chat, &property).await,
            Command::ChatMessage { chat, body } => {
                match self.net(Request::ChatSend { chat, body }).await {
                    Ok(Reply::ChatSent { message, reachable }) => {
                        // Otherwise the network says SENT when the recipient can be reached.
                        if reachable {
                            self.later(
                                Duration::from_millis(30),
                                Timer::Notify(format!("CHATMESSAGE {message} STATUS SENT")),
                            );
                        }
                        vec![format!("CHATMESSAGE {message} STATUS SENDING")]
                    }
                    Ok(other) => vec![unexpected(other)],
                    Err(line) => vec![line],
                }
            }
            Command::GetChatMessage { message, property } => {
                self.get_chat_message(message, &property).await
            }
            Command::SearchFriends => self.search_friends().await,
            Command::SetUserBuddy {
                handle,
                status,
                text,
            } => self.set_buddy(&handle, status, &text).await,
            Command::SearchMissedChatMessages => match self.net(Request::MissedChats).await {
                Ok(Reply::Ids { ids }) => {
                    let list: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
                    if list.is_empty() {
                        vec!["CHATMESSAGES".into()]
                    } else {
                        vec![format!("CHATMESSAGES {}", list.join(", "))]
                    }
                }
                Ok(other) => vec![unexpected(other)],
                Err(line) => vec![line],
            },
            Command::GetUser { handle, property } => self.get_user(&handle, &property).await,
            Command::Unknown => vec!["ERROR 2 Unknown command".into()],
        }
    }

    /// A network request; an error becomes the API error line to reply.
    async fn net(&mut self, request: Request) -> Result<Reply, String> {
        match self.uplink.request(request).await {
            Ok(Reply::Error { line }) => Err(line),
            Ok(reply) => Ok(reply),
            Err(uplink::UplinkError::NotOnline) => Err("ERROR 36 Not online".into()),
            Err(uplink::UplinkError::Timeout) => Err("ERROR 36 Not online".into()),
        }
    }

    fn get_global(&self, what: &str) -> String {
        match what.to_ascii_uppercase().as_str() {
            "CURRENTUSERHANDLE" => format!("CURRENTUSERHANDLE {}", self.config.user),
            "USERSTATUS" => format!("USERSTATUS {}", self.config.user_status),
            "CONNSTATUS" => format!("CONNSTATUS {}", self.connstatus()),
            "SKYPEVERSION" => "SKYPEVERSION 4.3.0.37".into(),
            "SILENT_MODE" => "SILENT_MODE OFF".into(),
            _ => "ERROR 2 Unknown command".into(),
        }
    }

    fn connstatus(&self) -> &'static str {
        if self.online {
            "ONLINE"
        } else {
            "OFFLINE"
        }
    }

    fn get_profile(&self, what: &str) -> String {
        match what {
            "PSTN_BALANCE" => format!("PROFILE PSTN_BALANCE {}", self.profile.balance),
            "PSTN_BALANCE_CURRENCY" => {
                format!("PROFILE PSTN_BALANCE_CURRENCY {}", self.profile.currency)
            }
            "FULLNAME" => format!("PROFILE FULLNAME {}", self.profile.display_name),
            _ => "ERROR 2 Unknown command".into(),
        }
    }

    async fn get_chat(&mut self, chat: &str, property: &str) -> Vec<String> {
        match property {
            "DIALOG_PARTNER" => match self
                .net(Request::ChatPartner {
                    chat: chat.to_string(),
                })
                .await
            {
                Ok(Reply::Partner { handle }) => {
                    vec![format!("CHAT {chat} DIALOG_PARTNER {handle}")]
                }
                Ok(other) => vec![unexpected(other)],
                Err(line) => vec![line],
            },
            "STATUS" => vec![format!("CHAT {chat} STATUS DIALOG")],
            _ => vec!["ERROR 2 Unknown command".into()],
        }
    }

    async fn get_chat_message(&mut self, id: u64, property: &str) -> Vec<String> {
        let m = match self.net(Request::ChatGet { message: id }).await {
            Ok(Reply::Message { message }) => message,
            Ok(other) => return vec![unexpected(other)],
            Err(line) => return vec![line],
        };
        let value = match property {
            "TYPE" => m.kind,
            "CHATNAME" => m.chat,
            "FROM_HANDLE" => m.from_handle,
            "FROM_DISPNAME" => m.from_dispname,
            "BODY" => m.body,
            "TIMESTAMP" => m.timestamp.to_string(),
            "STATUS" => {
                if m.from_handle.eq_ignore_ascii_case(&self.config.user) {
                    "SENT".into()
                } else {
                    "RECEIVED".into()
                }
            }
            _ => return vec!["ERROR 2 Unknown command".into()],
        };
        vec![format!("CHATMESSAGE {id} {property} {value}")]
    }

    // ----- audio, timers -----------------------------------------------------------------

    async fn on_audio(&mut self, ev: AudioEvent) {
        match ev {
            AudioEvent::Connected {
                call,
                direction: Direction::Input,
            } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    if !c.finished && !c.vaa_input {
                        c.vaa_input = true;
                        self.notify(format!("CALL {call} VAA_INPUT_STATUS TRUE"))
                            .await;
                    }
                }
            }
            AudioEvent::Closed {
                call,
                direction: Direction::Input,
            } => {
                if let Some(c) = self.calls.get_mut(&call) {
                    if !c.finished && c.vaa_input {
                        c.vaa_input = false;
                        self.notify(format!("CALL {call} VAA_INPUT_STATUS FALSE"))
                            .await;
                    }
                }
            }
            AudioEvent::ConnectFailed { call, .. } => {
                if self.live(call) {
                    self.notify("ERROR 589 ALTER CALL: Failed to connect audio".into())
                        .await;
                }
            }
            AudioEvent::Connected { .. } | AudioEvent::Closed { .. } => {}
        }
    }

    async fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Attached(peer) => {
                let lines = [
                    format!("CONNSTATUS {}", self.connstatus()),
                    format!("CURRENTUSERHANDLE {}", self.config.user),
                    format!("USERSTATUS {}", self.config.user_status),
                ];
                for line in lines {
                    let _ = self.send(peer, line).await;
                }
            }
            Timer::Authorize(peer) => {
                let pending = self
                    .peers
                    .get(&peer)
                    .is_some_and(|p| !p.attached && p.pending_since.is_some());
                if pending {
                    info!(peer, "authorization granted");
                    self.attach(peer);
                    let _ = self.send(peer, "OK".into()).await;
                }
            }
            Timer::Notify(text) => self.notify(text).await,
        }
    }

    async fn on_tick(&mut self) {
        let mut due: Vec<(u64, u64)> = Vec::new();
        for (id, c) in self.calls.iter_mut() {
            if c.finished || c.answered_at.is_none() {
                continue;
            }
            let d = c.duration();
            if d > c.duration_sent {
                c.duration_sent = d;
                due.push((*id, d));
            }
        }
        for (id, d) in due {
            self.notify(format!("CALL {id} DURATION {d}")).await;
        }
    }
}

fn unexpected(reply: Reply) -> String {
    warn!(?reply, "unexpected network reply");
    "ERROR 1 Internal error".into()
}

#[cfg(test)]
mod tests;
