//! The FreeSWITCH double: a fake switch for integration tests. It serves inbound Event Socket
//! connections (auth, api, bgapi, events, sendevent), runs `originate ... &socket(...)` and the
//! `skype/<dest>` dialplan route by connecting to the sidecar's acceptor the way FreeSWITCH's
//! `socket` application does, obeys the controlled session's commands, and records everything
//! it received. Its wire behaviour follows the captures in the fixtures (see
//! `tests/fixtures_replay.rs`).
//!
//! Audio is not produced here: a [`MediaHook`] installed with [`FsDouble::set_media_hook`] is
//! told about `uuid_audio_fork ... start|stop` and `sendmsg unicast`, and gets a
//! [`ChannelMedia`] to report back (`mod_audio_fork::connect` ...) and to learn of the hangup.

pub mod channel;
pub mod core;
pub mod fork_client;
pub mod hash;
mod hosts;
mod inbound;
pub mod replay;
mod socket;
pub mod unicast;
pub mod wire;

pub use self::channel::Channel;
pub use self::core::{ForkRequest, Recorded, UnicastRequest};

use self::core::{Deferred, Out, State};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// What the media side of the double does when FreeSWITCH would start streaming audio.
/// Every method has a default that does nothing.
pub trait MediaHook: Send + Sync + 'static {
    /// `uuid_audio_fork <uuid> start <url> ...` was accepted (`+OK Success` already sent).
    fn fork_start(&self, request: ForkRequest, channel: ChannelMedia) {
        let _ = (request, channel);
    }
    /// `uuid_audio_fork <uuid> stop [bug]`.
    fn fork_stop(&self, uuid: &str, bug: &str) {
        let _ = (uuid, bug);
    }
    /// `sendmsg` with `call-command: unicast` (`+OK` already sent).
    fn unicast(&self, request: UnicastRequest, channel: ChannelMedia) {
        let _ = (request, channel);
    }
}

/// A channel as the media hook sees it.
#[derive(Clone)]
pub struct ChannelMedia {
    core: Arc<Core>,
    uuid: String,
    rate: u32,
    ended: CancellationToken,
}

impl ChannelMedia {
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The channel's codec rate (L16 at this rate on `unicast`).
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Cancelled when the channel hangs up.
    pub fn ended(&self) -> CancellationToken {
        self.ended.clone()
    }

    /// A channel variable as it is now (`send_silence_when_idle` decides whether `unicast`
    /// audio into the call is chopped).
    pub fn variable(&self, name: &str) -> Option<String> {
        let st = self.core.lock();
        st.channels
            .get(&self.uuid)
            .and_then(|c| c.variable(name).map(str::to_string))
    }

    /// Fires a module CUSTOM event on the channel, e.g. `mod_audio_fork::connect`.
    pub fn fire_custom(&self, subclass: &str, body: Option<String>) {
        self.core
            .with(|st| st.custom_channel_event(&self.uuid, subclass, vec![], body));
    }

    pub fn hangup(&self, cause: &str) {
        self.core.with(|st| st.hangup(&self.uuid, cause, false));
    }
}

pub struct Core {
    state: Mutex<State>,
    password: String,
    version: watch::Sender<u64>,
    hook: Mutex<Option<Arc<dyn MediaHook>>>,
}

impl Core {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state and wakes everyone waiting for a change.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let result = f(&mut self.lock());
        self.version.send_modify(|v| *v += 1);
        result
    }
}

/// A call placed on the double towards the sidecar (`skype/<dest>` route).
#[derive(Debug, Clone)]
pub struct DialedCall {
    /// The leg that runs `socket` (what the sidecar controls), `loopback/skype_<dest>-b`.
    pub socket_leg: String,
    /// The calling leg, `loopback/skype_<dest>-a`.
    pub caller_leg: String,
}

pub struct FsDouble {
    core: Arc<Core>,
    esl_addr: SocketAddr,
    cancel: CancellationToken,
}

impl FsDouble {
    /// Listens for inbound ESL on a free loopback port, password `ClueCon`.
    pub async fn start() -> FsDouble {
        FsDouble::start_with_password("ClueCon").await
    }

    pub async fn start_with_password(password: &str) -> FsDouble {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the double's ESL port");
        FsDouble::start_on(listener, password)
    }

    /// Serves on an already bound listener (a test that restarts the double on the same port).
    pub fn start_on(listener: TcpListener, password: &str) -> FsDouble {
        let esl_addr = listener.local_addr().expect("local addr");
        let (deferred_tx, deferred_rx) = mpsc::unbounded_channel();
        let (version, _) = watch::channel(0);
        let core = Arc::new(Core {
            state: Mutex::new(State::new(deferred_tx)),
            password: password.to_string(),
            version,
            hook: Mutex::new(None),
        });
        let cancel = CancellationToken::new();
        tokio::spawn(inbound::serve(core.clone(), listener, cancel.clone()));
        tokio::spawn(run_deferred(core.clone(), deferred_rx, cancel.clone()));
        FsDouble {
            core,
            esl_addr,
            cancel,
        }
    }

    /// Runs `f` on the switch's state (e.g. to fire an event to every subscriber).
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.core.with(f)
    }

    pub fn esl_addr(&self) -> SocketAddr {
        self.esl_addr
    }

    pub fn set_media_hook(&self, hook: Arc<dyn MediaHook>) {
        *self.core.hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    pub fn recorded(&self) -> Recorded {
        self.core.lock().recorded.clone()
    }

    /// The events fired with `sendevent` whose `Event-Name` or `Event-Subclass` is `name`, in
    /// order.
    pub fn fired(&self, name: &str) -> Vec<wire::Event> {
        self.core
            .lock()
            .recorded
            .sent_events
            .iter()
            .filter(|e| is_named(e, name))
            .cloned()
            .collect()
    }

    /// How many events have been fired with `sendevent` so far.
    pub fn fired_count(&self) -> usize {
        self.core.lock().recorded.sent_events.len()
    }

    /// The first event named `name` (as in [`fired`](Self::fired)) among those fired after the
    /// first `seen`, with its position counting from 1.
    pub fn fired_after(&self, seen: usize, name: &str) -> Option<(usize, wire::Event)> {
        let state = self.core.lock();
        let sent = &state.recorded.sent_events;
        sent.iter()
            .enumerate()
            .skip(seen)
            .find(|(_, e)| is_named(e, name))
            .map(|(at, e)| (at + 1, e.clone()))
    }

    pub fn channel(&self, uuid: &str) -> Option<Channel> {
        self.core.lock().channels.get(uuid).cloned()
    }

    pub fn channels(&self) -> Vec<Channel> {
        self.core.lock().channels.values().cloned().collect()
    }

    /// Waits until `check` returns something; panics with `what` after `deadline`.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        deadline: Duration,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> T {
        let mut version = self.core.version.subscribe();
        let give_up = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(found) = check(&self.core.lock()) {
                return found;
            }
            if tokio::time::timeout_at(give_up, version.changed())
                .await
                .is_err()
            {
                panic!("FreeSWITCH double: gave up after {deadline:?} waiting for {what}");
            }
        }
    }

    /// Waits for a channel to hang up; returns its cause.
    pub async fn wait_hangup(&self, uuid: &str, deadline: Duration) -> String {
        self.wait_for(&format!("hangup of {uuid}"), deadline, |st| {
            st.channels.get(uuid).and_then(|c| c.hangup_cause.clone())
        })
        .await
    }

    pub async fn wait_answered(&self, uuid: &str, deadline: Duration) {
        self.wait_for(&format!("answer of {uuid}"), deadline, |st| {
            st.channels
                .get(uuid)
                .filter(|c| c.is_answered())
                .map(|_| ())
        })
        .await
    }

    /// Runs an API command as if typed at the console (not recorded as received).
    pub fn api(&self, line: &str) -> String {
        self.core.with(|st| st.api(line))
    }

    /// Closes every inbound ESL connection at once (FreeSWITCH restarting, say).
    pub fn drop_inbound_connections(&self) {
        self.core.with(|st| {
            let ids: Vec<u64> = st.inbound.drain().collect();
            for id in ids {
                if let Some(s) = st.subs.remove(&id) {
                    let _ = s.tx.send(Out::Close);
                }
            }
        });
    }

    /// The next inbound `api` command starting with `prefix` gets no reply: the connection is
    /// closed instead, mid-command.
    pub fn drop_on_next_api(&self, prefix: &str) {
        self.core
            .with(|st| st.drop_on_api = Some(prefix.to_string()));
    }

    /// While set, a `sendevent <name>` closes its connection instead of firing the event (a
    /// switch that goes away mid-request, again and again); `None` fires them again.
    pub fn drop_sendevents(&self, name: Option<&str>) {
        self.core
            .with(|st| st.dropping_events = name.map(|n| vec![n.to_string()]).unwrap_or_default());
    }

    /// `originate` to `loopback/<dest>` fails with `-ERR <cause>`.
    pub fn fail_destination(&self, dest: &str, cause: &str) {
        self.core.with(|st| {
            st.failing_destinations
                .insert(dest.to_string(), cause.to_string())
        });
    }

    /// `originate` to `loopback/<dest>` rings and is never answered: the A-leg exists (so
    /// `uuid_kill` can cancel it), the socket never connects, and a `bgapi` job reports only
    /// when the leg hangs up, with its cause.
    pub fn never_answer(&self, dest: &str) {
        self.core
            .with(|st| st.never_answering.insert(dest.to_string()));
    }

    /// A call to `skype/<dest>`: the dialplan sets `send_silence_when_idle=-1` and runs
    /// `socket <sidecar> async full`, which connects to the sidecar's acceptor.
    pub fn dial_skype(
        &self,
        sidecar: SocketAddr,
        dest: &str,
        caller_number: &str,
        caller_name: Option<&str>,
    ) -> DialedCall {
        self.dial_route(
            sidecar,
            dest,
            caller_number,
            caller_name,
            &[("send_silence_when_idle".to_string(), "-1".to_string())],
            true,
        )
    }

    /// A call to `skype/<dest>` through the dialplan for several sidecar hosts (`skypopen
    /// hosts-dialplan`): `skypopen_overflow=resume`, then each host's `socket` in order.
    pub fn dial_skype_hosts(
        &self,
        hosts: &[SocketAddr],
        dest: &str,
        caller_number: &str,
    ) -> DialedCall {
        let first = hosts.first().copied().unwrap_or(([127, 0, 0, 1], 9).into());
        let variables = [("skypopen_overflow".to_string(), "resume".to_string())];
        let (caller_leg, socket_leg) = self
            .core
            .with(|st| st.dial_route(dest, caller_number, None, &variables, first, true));
        let plan = hosts::run(self.core.clone(), socket_leg.clone(), hosts.to_vec());
        let stopped = self.cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stopped.cancelled() => {}
                _ = plan => {}
            }
        });
        DialedCall {
            socket_leg,
            caller_leg,
        }
    }

    /// Like [`dial_skype`](Self::dial_skype) with chosen variables and `full` or not.
    pub fn dial_route(
        &self,
        sidecar: SocketAddr,
        dest: &str,
        caller_number: &str,
        caller_name: Option<&str>,
        variables: &[(String, String)],
        full: bool,
    ) -> DialedCall {
        let (caller_leg, socket_leg) = self.core.with(|st| {
            let legs = st.dial_route(dest, caller_number, caller_name, variables, sidecar, full);
            let _ = st.deferred.send(Deferred::Socket {
                uuid: legs.1.clone(),
                addr: sidecar,
                full,
                is_async: true,
                after_connect: None,
            });
            legs
        });
        DialedCall {
            socket_leg,
            caller_leg,
        }
    }

    /// The far side hangs up (`uuid_kill <uuid> <cause>` from elsewhere).
    pub fn hangup(&self, uuid: &str, cause: &str) {
        self.core.with(|st| st.hangup(uuid, cause, false));
    }

    /// DTMF on the channel itself (`uuid_recv_dtmf`), which its socket receives.
    pub fn recv_dtmf(&self, uuid: &str, digits: &str) {
        self.core.with(|st| st.dtmf(uuid, digits, "APP"));
    }

    /// FreeSWITCH going away: nothing new starts, and every connection it has (inbound event
    /// sockets and the channels' `socket` sessions alike) is closed.
    pub fn stop(&self) {
        self.cancel.cancel();
        self.core.with(|st| {
            st.inbound.clear();
            for (_, s) in st.subs.drain() {
                let _ = s.tx.send(Out::Close);
            }
        });
    }
}

impl Drop for FsDouble {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn run_deferred(
    core: Arc<Core>,
    mut rx: mpsc::UnboundedReceiver<Deferred>,
    cancel: CancellationToken,
) {
    loop {
        let job = tokio::select! {
            // A stopped switch starts nothing more, even with jobs queued.
            biased;
            _ = cancel.cancelled() => return,
            job = rx.recv() => match job { Some(j) => j, None => return },
        };
        let hook = core.hook.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match job {
            Deferred::Socket {
                uuid,
                addr,
                full,
                is_async,
                after_connect,
            } => {
                let socket =
                    socket::run_socket(core.clone(), uuid, addr, full, is_async, after_connect);
                let stopped = cancel.clone();
                // FreeSWITCH going away closes its sockets: dropping the future closes this one.
                tokio::spawn(async move {
                    tokio::select! {
                        _ = stopped.cancelled() => {}
                        _ = socket => {}
                    }
                });
            }
            Deferred::CloseAfter {
                subscriber,
                uuid,
                after,
            } => {
                let core = core.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    core.with(|st| st.close_socket(subscriber, &uuid));
                });
            }
            Deferred::ForkStart(request) => {
                if let Some(hook) = hook {
                    if let Some(media) = channel_media(&core, &request.uuid) {
                        hook.fork_start(request, media);
                    }
                }
            }
            Deferred::ForkStop { uuid, bug } => {
                if let Some(hook) = hook {
                    hook.fork_stop(&uuid, &bug);
                }
            }
            Deferred::Unicast(request) => {
                if let Some(hook) = hook {
                    if let Some(media) = channel_media(&core, &request.uuid) {
                        hook.unicast(request, media);
                    }
                }
            }
        }
    }
}

fn channel_media(core: &Arc<Core>, uuid: &str) -> Option<ChannelMedia> {
    let st = core.lock();
    let c = st.channels.get(uuid)?;
    Some(ChannelMedia {
        core: core.clone(),
        uuid: uuid.to_string(),
        rate: c.rate,
        ended: c.ended.clone(),
    })
}

/// An authenticated connection to the double's event socket, to write `sendevent`s on (the
/// replies are left unread).
fn is_named(event: &wire::Event, name: &str) -> bool {
    event.header("Event-Subclass") == Some(name) || event.header("Event-Name") == Some(name)
}

pub async fn event_sender(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    for step in ["auth/request", "+OK"] {
        while !String::from_utf8_lossy(&seen).contains(step) {
            let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
                .await
                .expect("ESL answer in time")
                .expect("read");
            assert!(n > 0, "ESL closed");
            seen.extend_from_slice(&buf[..n]);
        }
        if step == "auth/request" {
            stream.write_all(b"auth ClueCon\n\n").await.expect("auth");
        }
    }
    stream
}
