//! A call's media path: the Skype audio ports on one side, the FreeSWITCH transport (audio
//! fork websocket or `unicast` UDP) on the other, and the pump between them.

use super::Gateway;
use crate::config::{InterfaceConfig, MediaMode};
use crate::media::dsp::DtmfDetector;
use crate::media::frame::Frame;
use crate::media::pump::{self, DirectionCounters, PumpConfig, PumpCounters, PumpReport, PumpStop};
use crate::media::side::{FrameDuplex, MediaSide, Offer};
use crate::shutdown::CancellationToken;
use crate::skype::api::{CallAction, CallId, Command};
use crate::skype::audio::{AudioOptions, SkypeAudio, SkypePorts};
use crate::skype::session::SessionHandle;
use crate::switch::media::ForkToken;
use crate::switch::outbound::ChannelControl;
use crate::switch::unicast::{self, relay::UnicastSide};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};

/// From `uuid_audio_fork ... start` to the websocket connecting.
const FORK_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("audio ports: {0}")]
    Audio(#[from] crate::skype::audio::AudioError),
    #[error("the client refused the audio ports: {0}")]
    Alter(#[from] crate::skype::session::SessionError),
    #[error("audio fork: {0}")]
    Fork(String),
    #[error("unicast: {0}")]
    Unicast(String),
}

/// Digits detected in-band before the call task takes them; a key press is rare, so a few
/// suffice and an overflow only loses digits of a runaway tone.
const INBAND_DIGITS: usize = 16;

/// A running media path. Closing it stops the pump, the ports and the fork.
pub struct MediaPath {
    cancel: CancellationToken,
    /// Owns the Skype ports and the switch side: they close when it ends.
    pump: Option<JoinHandle<PumpReport>>,
    fork: bool,
    /// Where the pump's counters are reported while the call lasts, and added up after.
    totals: Arc<crate::metrics::MediaTotals>,
    call: String,
    /// DTMF digits found in the Skype party's audio, when in-band detection is on.
    inband: Option<mpsc::Receiver<char>>,
}

/// The Skype side of the pump with a DTMF detector listening to what the Skype party says
/// (`skype_get_inband_dtmf`: SkypeIn / SkypeOut callers key digits as tones).
struct InbandDtmf {
    inner: SkypePorts,
    detector: DtmfDetector,
    reported: usize,
    samples: Vec<i16>,
    digits: mpsc::Sender<char>,
}

impl InbandDtmf {
    fn listen(&mut self, frame: &Frame) {
        self.samples.clear();
        self.samples.extend(frame.samples());
        self.detector.feed(&self.samples);
        let found = self.detector.digits();
        for digit in found[self.reported..].chars() {
            if self.digits.try_send(digit).is_err() {
                debug!(%digit, "in-band DTMF digit dropped: nobody takes them");
            }
        }
        self.reported = found.len();
    }
}

impl MediaSide for InbandDtmf {
    async fn recv(&mut self) -> Option<Frame> {
        // Cancel-safe: the ports' `recv` is, and a frame is handled at once.
        let frame = self.inner.recv().await?;
        self.listen(&frame);
        Some(frame)
    }

    fn offer(&mut self, frame: Frame) -> Offer {
        self.inner.offer(frame)
    }
}

/// What a running media path reports to its call.
#[derive(Debug)]
pub enum MediaEvent {
    /// The pump stopped by itself (a side closed), with the reason.
    Stopped(String),
    /// A DTMF digit detected in the Skype party's audio.
    InbandDigit(char),
}

impl MediaPath {
    /// The next thing the call must act on. Cancel-safe.
    pub async fn next_event(&mut self) -> MediaEvent {
        let inband = async {
            match self.inband.as_mut() {
                Some(rx) => match rx.recv().await {
                    Some(digit) => digit,
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        let pump = Self::pump_stopped(&mut self.pump);
        tokio::select! {
            digit = inband => MediaEvent::InbandDigit(digit),
            why = pump => MediaEvent::Stopped(why),
        }
    }

    async fn pump_stopped(pump: &mut Option<JoinHandle<PumpReport>>) -> String {
        let Some(handle) = pump.as_mut() else {
            return std::future::pending().await;
        };
        let result = handle.await;
        *pump = None;
        match result {
            Ok(report) => match report.stop {
                PumpStop::SkypeClosed => "the Skype client closed its audio".into(),
                PumpStop::SwitchClosed => "FreeSWITCH closed the media stream".into(),
                PumpStop::Cancelled => "media stopped".into(),
            },
            Err(e) => format!("media pump failed: {e}"),
        }
    }

    pub async fn close(mut self, channel: Option<&ChannelControl>) {
        self.cancel.cancel();
        if let Some(pump) = self.pump.take() {
            let _ = pump.await;
        }
        self.totals.closed(&self.call);
        if self.fork {
            if let Some(channel) = channel.filter(|c| !c.is_hung_up()) {
                if let Err(e) = channel.stop_audio_fork().await {
                    debug!(error = %e, "audio fork stop");
                }
            }
        }
        debug!("media closed");
    }
}

impl Drop for MediaPath {
    fn drop(&mut self) {
        // Also when a path is dropped without `close`: its counters join the totals once.
        self.totals.closed(&self.call);
    }
}

/// Binds the audio ports, tells the client, connects FreeSWITCH's side, starts the pump.
pub async fn open(
    gw: &Gateway,
    cfg: &InterfaceConfig,
    session: &SessionHandle,
    id: CallId,
    channel: &ChannelControl,
    inband_dtmf: bool,
) -> Result<MediaPath, MediaError> {
    let cancel = gw.cancel.child_token();
    let audio = SkypeAudio::bind(
        &gw.audio_ports,
        AudioOptions {
            setsockopt: cfg.setsockopt,
        },
    )?;
    for action in [
        CallAction::SetInput {
            port: audio.ports.input,
        },
        CallAction::SetOutput {
            port: audio.ports.output,
        },
    ] {
        session.request(Command::AlterCall { id, action }).await?;
    }
    debug!(
        input = audio.ports.input,
        output = audio.ports.output,
        "Skype audio ports sent"
    );
    let silence_var = channel.data().variable("send_silence_when_idle");
    let mode = match gw.settings.switch.media {
        MediaMode::Unicast if unicast::silence_when_idle_is_set(silence_var) => {
            warn!(
                send_silence_when_idle = silence_var.unwrap_or(""),
                "channel sets send_silence_when_idle, which chops unicast audio: using the audio fork for this call (install the unicast dialplan, which does not set it)"
            );
            MediaMode::AudioFork
        }
        mode => mode,
    };
    let (switch_side, fork) = match mode {
        MediaMode::AudioFork => (SwitchSide::Fork(open_fork(gw, channel).await?), true),
        MediaMode::Unicast => (
            SwitchSide::Unicast(Box::new(open_unicast(gw, channel).await?)),
            false,
        ),
    };
    let counters = Arc::new(PumpCounters {
        to_skype: DirectionCounters {
            latency: Some(gw.metrics.latency("to_skype")),
            ..DirectionCounters::default()
        },
        to_switch: DirectionCounters {
            latency: Some(gw.metrics.latency("to_switch")),
            ..DirectionCounters::default()
        },
    });
    let call = channel.uuid().to_string();
    gw.metrics.media.opened(&call, Arc::clone(&counters));
    let config = PumpConfig::for_interface(cfg.write_silence_when_idle);
    let (pump, inband) = if inband_dtmf {
        let (digits, inband) = mpsc::channel(INBAND_DIGITS);
        let skype = InbandDtmf {
            inner: audio.side,
            detector: DtmfDetector::new(),
            reported: 0,
            samples: Vec::with_capacity(crate::media::dsp::SAMPLES_PER_FRAME),
            digits,
        };
        let run = pump::run(skype, switch_side, config, counters, None, cancel.clone());
        (gw.tasks.spawn(run.in_current_span()), Some(inband))
    } else {
        let run = pump::run(
            audio.side,
            switch_side,
            config,
            counters,
            None,
            cancel.clone(),
        );
        (gw.tasks.spawn(run.in_current_span()), None)
    };
    info!(?mode, inband_dtmf, "media flowing");
    Ok(MediaPath {
        cancel,
        pump: Some(pump),
        fork,
        totals: Arc::clone(&gw.metrics.media),
        call,
        inband,
    })
}

async fn open_fork(gw: &Gateway, channel: &ChannelControl) -> Result<FrameDuplex, MediaError> {
    let token = ForkToken::generate();
    let (url, pending) = gw.media.expect(&token);
    channel
        .start_audio_fork(&url, &token)
        .await
        .map_err(|e| MediaError::Fork(e.to_string()))?;
    let fork = pending
        .wait(FORK_CONNECT_TIMEOUT)
        .await
        .map_err(|e| MediaError::Fork(e.to_string()))?;
    debug!(peer = %fork.peer, "audio fork connected");
    Ok(fork.frames)
}

async fn open_unicast(gw: &Gateway, channel: &ChannelControl) -> Result<UnicastSide, MediaError> {
    let rate = channel.data().codec_rate().unwrap_or(8000);
    if rate == 0 || rate % 50 != 0 {
        return Err(MediaError::Unicast(format!("channel rate {rate} Hz")));
    }
    let fs_ip = gw.settings.switch.unicast_ip;
    let leg = gw
        .unicast_ports
        .open(local_ip_towards(fs_ip), fs_ip)
        .await
        .map_err(|e| MediaError::Unicast(e.to_string()))?;
    let headers = leg.sendmsg_headers();
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    channel
        .sendmsg(&headers, None)
        .await
        .map_err(|e| MediaError::Unicast(e.to_string()))?;
    leg.lock_to_freeswitch()
        .await
        .map_err(|e| MediaError::Unicast(e.to_string()))?;
    debug!(local = %leg.local(), freeswitch = %leg.freeswitch(), rate, "unicast started");
    UnicastSide::new(leg, rate).map_err(|e| MediaError::Unicast(e.to_string()))
}

/// The pump's switch side: the fork's websocket task behind a channel pair, or the `unicast`
/// socket served in the pump's own task.
enum SwitchSide {
    Fork(FrameDuplex),
    Unicast(Box<UnicastSide>),
}

impl MediaSide for SwitchSide {
    async fn recv(&mut self) -> Option<Frame> {
        match self {
            SwitchSide::Fork(fork) => fork.recv().await,
            SwitchSide::Unicast(unicast) => unicast.recv().await,
        }
    }

    fn offer(&mut self, frame: Frame) -> Offer {
        match self {
            SwitchSide::Fork(fork) => fork.offer(frame),
            SwitchSide::Unicast(unicast) => unicast.offer(frame),
        }
    }
}

/// The sidecar listens where FreeSWITCH can reach it: loopback for a local switch, else any.
fn local_ip_towards(fs_ip: std::net::IpAddr) -> std::net::IpAddr {
    if fs_ip.is_loopback() {
        fs_ip
    } else {
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    }
}
