//! The whole product on one machine for call tests: the [`SkypeSide`] (emulated network and
//! clients, the real `skypopen` binary) in front of the FreeSWITCH double (in process) as the
//! inbound ESL server, with an audio fork client per forked channel. Everything listens on free
//! ports; the sidecar's log is printed when a test fails.

use super::fs_double::fork_client::{ForkClient, Source};
use super::fs_double::unicast::{UnicastHook, Voice};
use super::fs_double::{ChannelMedia, ForkRequest, FsDouble, MediaHook, UnicastRequest};
pub use super::skype_side::*;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the double's fork clients say and heard, per channel uuid.
#[derive(Default)]
pub struct ForkHook {
    default_source: Mutex<Option<Source>>,
    sources: Mutex<HashMap<String, Source>>,
    live: Mutex<HashMap<String, Arc<Mutex<Option<ForkClient>>>>>,
    finished: Mutex<HashMap<String, Vec<i16>>>,
    starts: Mutex<Vec<ForkRequest>>,
}

impl ForkHook {
    fn source_for(&self, uuid: &str) -> Source {
        if let Some(s) = self.sources.lock().unwrap().get(uuid) {
            return s.clone();
        }
        self.default_source
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| tone(440.0))
    }

    /// What the fork client of `uuid` received so far (live or ended).
    pub fn received(&self, uuid: &str) -> Option<Vec<i16>> {
        if let Some(done) = self.finished.lock().unwrap().get(uuid) {
            return Some(done.clone());
        }
        let slot = self.live.lock().unwrap().get(uuid).cloned()?;
        let guard = slot.lock().unwrap();
        guard.as_ref().map(|c| c.received())
    }

    pub fn starts(&self) -> Vec<ForkRequest> {
        self.starts.lock().unwrap().clone()
    }
}

/// The FreeSWITCH side's voice: a tone at [`TONE_DBFS`].
pub fn tone(hz: f64) -> Source {
    Source::Tone {
        hz,
        amplitude: 32767.0 * 10f64.powf(TONE_DBFS / 20.0),
    }
}

struct HookRef(Arc<ForkHook>, Arc<UnicastHook>);

impl MediaHook for HookRef {
    fn unicast(&self, request: UnicastRequest, channel: ChannelMedia) {
        self.1.unicast(request, channel);
    }

    fn fork_start(&self, request: ForkRequest, channel: ChannelMedia) {
        let hook = Arc::clone(&self.0);
        hook.starts.lock().unwrap().push(request.clone());
        let source = hook.source_for(channel.uuid());
        let uuid = channel.uuid().to_string();
        tokio::spawn(async move {
            let client = ForkClient::connect(&request.url, &request.metadata, source).await;
            let slot = Arc::new(Mutex::new(Some(client)));
            hook.live
                .lock()
                .unwrap()
                .insert(uuid.clone(), Arc::clone(&slot));
            channel.ended().cancelled().await;
            let client = slot.lock().unwrap().take();
            if let Some(client) = client {
                let samples = client.close().await;
                hook.finished.lock().unwrap().insert(uuid.clone(), samples);
            }
            hook.live.lock().unwrap().remove(&uuid);
        });
    }
}

pub struct Stack {
    pub side: SkypeSide,
    pub fs: FsDouble,
    pub forks: Arc<ForkHook>,
    /// The double's `unicast` legs (the caller says the test tone).
    pub unicasts: Arc<UnicastHook>,
}

impl Deref for Stack {
    type Target = SkypeSide;
    fn deref(&self) -> &SkypeSide {
        &self.side
    }
}

impl DerefMut for Stack {
    fn deref_mut(&mut self) -> &mut SkypeSide {
        &mut self.side
    }
}

impl Stack {
    pub async fn start(spec: StackSpec) -> Stack {
        let fs = FsDouble::start().await;
        let forks = Arc::new(ForkHook::default());
        let unicasts = UnicastHook::new(Voice::Tone {
            hz: 440.0,
            amplitude: 32767.0 * 10f64.powf(TONE_DBFS / 20.0),
        });
        fs.set_media_hook(Arc::new(HookRef(Arc::clone(&forks), Arc::clone(&unicasts))));
        let outbound = format!("127.0.0.1:{}", super::sim::free_port())
            .parse()
            .unwrap();
        let side = SkypeSide::start(spec, fs.esl_addr(), outbound).await;
        Stack {
            side,
            fs,
            forks,
            unicasts,
        }
    }

    /// The media hook this stack installed on its double, for a double that replaces it.
    pub fn media_hook(&self) -> Arc<dyn MediaHook> {
        Arc::new(HookRef(Arc::clone(&self.forks), Arc::clone(&self.unicasts)))
    }

    /// Digits of every `uuid_send_dtmf <uuid> ...` the double received so far.
    pub fn sent_dtmf(&self, uuid: &str) -> String {
        let prefix = format!("uuid_send_dtmf {uuid} ");
        self.fs
            .recorded()
            .api
            .iter()
            .filter_map(|line| line.strip_prefix(&prefix))
            .collect()
    }

    /// Waits until `uuid_send_dtmf` carried every digit of `digits` into `uuid`; every digit
    /// sent to it that way.
    pub async fn wait_sent_dtmf(&self, uuid: &str, digits: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let sent = self.sent_dtmf(uuid);
            if digits.chars().all(|d| sent.contains(d)) {
                return sent;
            }
            assert!(
                Instant::now() < deadline,
                "uuid_send_dtmf for {digits} never came; sent {sent:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A FreeSWITCH caller dials `skype/<dest>` through the dialplan variant of the stack's
    /// media mode: the audio fork one sets `send_silence_when_idle`, the unicast one must not
    /// (and runs the leg at 16 kHz).
    pub fn dial(&self, dest: &str) -> super::fs_double::DialedCall {
        match self.spec.media {
            Media::AudioFork => {
                self.fs
                    .dial_skype(self.outbound, dest, "1000", Some("FreeSWITCH Caller"))
            }
            Media::Unicast => self.fs.dial_route(
                self.outbound,
                dest,
                "1000",
                Some("FreeSWITCH Caller"),
                &[("read_rate".to_string(), "16000".to_string())],
                true,
            ),
        }
    }

    /// Waits for what the fork client of `uuid` received to reach `seconds` of audio, whatever
    /// the stack's media mode (a unicast stack falls back to the fork on some channels).
    pub async fn fork_audio(&self, uuid: &str, seconds: f64) -> Vec<i16> {
        let fork = || (self.forks.received(uuid).unwrap_or_default(), 16_000);
        let (samples, _) = wait_samples(seconds, fork, || format!("fork of {uuid}")).await;
        samples
    }

    /// What the double's channel `uuid` heard from the sidecar so far over the stack's
    /// transport, at the rate it travelled: the fork's 16 kHz or the unicast leg's codec rate.
    fn heard_at_channel_rate(&self, uuid: &str) -> (Vec<i16>, u32) {
        match (self.spec.media, self.unicasts.leg(uuid)) {
            (Media::AudioFork, _) => (self.forks.received(uuid).unwrap_or_default(), 16_000),
            (Media::Unicast, Some(leg)) => (leg.heard(), leg.samples_per_frame as u32 * 50),
            (Media::Unicast, None) => (Vec::new(), 16_000),
        }
    }

    /// What the double's channel `uuid` heard from the sidecar so far, over either transport,
    /// at 16 kHz.
    pub fn heard_so_far(&self, uuid: &str) -> Vec<i16> {
        let (samples, rate) = self.heard_at_channel_rate(uuid);
        at_16k(samples, rate)
    }

    /// Waits for the channel `uuid` to have heard `seconds` of audio from the sidecar, over
    /// whichever transport the stack runs; what it heard, at 16 kHz.
    pub async fn heard(&self, uuid: &str, seconds: f64) -> Vec<i16> {
        let (samples, rate) = wait_samples(
            seconds,
            || self.heard_at_channel_rate(uuid),
            || {
                format!(
                    "channel {uuid} over {:?} ({:?})",
                    self.spec.media,
                    self.unicasts.errors()
                )
            },
        )
        .await;
        at_16k(samples, rate)
    }

    /// The channel the sidecar originated for an inbound Skype call on `interface` whose
    /// socket is connected (FreeSWITCH answered and handed it to the sidecar).
    pub async fn inbound_channel(&self, interface: &str, skip: &[String]) -> String {
        let interface = interface.to_string();
        let skip = skip.to_vec();
        self.fs
            .wait_for("an inbound call's socket", WAIT, move |st| {
                st.channels.values().find_map(|c| {
                    let ours = c.variable("skypopen_interface") == Some(interface.as_str());
                    let bound = c.socket.as_ref().is_some_and(|b| b.connected);
                    (ours && bound && !skip.contains(&c.uuid)).then(|| c.uuid.clone())
                })
            })
            .await
    }

    /// Every channel the sidecar originated for an inbound Skype call (any interface).
    pub fn originated(&self) -> Vec<super::fs_double::Channel> {
        self.fs
            .channels()
            .into_iter()
            .filter(|c| {
                c.variable("skypopen_call_id").is_some() && c.variable("loopback_leg") == Some("A")
            })
            .collect()
    }

    /// Waits for an originated channel with a connected socket on any interface, other than
    /// those in `skip`; its uuid and interface.
    pub async fn any_inbound_channel(&self, skip: &[String]) -> (String, String) {
        let skip = skip.to_vec();
        self.fs
            .wait_for("an inbound call's socket", WAIT, move |st| {
                st.channels.values().find_map(|c| {
                    let iface = c.variable("skypopen_interface")?;
                    let bound = c.socket.as_ref().is_some_and(|b| b.connected);
                    (bound && !skip.contains(&c.uuid)).then(|| (c.uuid.clone(), iface.to_string()))
                })
            })
            .await
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // The sidecar goes first, so it never sees the switch vanish under a live call.
        self.side.stop_sidecar();
        self.fs.stop();
    }
}

/// Polls `read` (samples and their rate) until it holds `seconds` of audio; panics naming
/// `what` after [`WAIT`].
async fn wait_samples(
    seconds: f64,
    read: impl Fn() -> (Vec<i16>, u32),
    what: impl Fn() -> String,
) -> (Vec<i16>, u32) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (samples, rate) = read();
        let want = (seconds * rate as f64) as usize;
        if samples.len() >= want {
            return (samples, rate);
        }
        if Instant::now() > deadline {
            panic!("{} heard {} samples, wanted {want}", what(), samples.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
