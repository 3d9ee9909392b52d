//! The [`SkypeSide`] in front of a real FreeSWITCH ([`RealSwitch`]): calls are originated by
//! the switch itself into the shipped dialplan, audio is the switch's own `tone_stream` and
//! `record_session`, and what FreeSWITCH saw is read from its own events.

pub use super::real_fs::{FsEvent, RealSwitch, SwitchSpec};
pub use super::skype_side::*;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

/// The destination the sidecar gives incoming Skype calls in these tests: an extension the
/// suite adds to the default context that answers, records what it hears and says 440 Hz.
pub const ANSWER_EXTENSION: &str = "skypopen_test_answer";

/// Volume of the switch's test tone: teletone's `v=` is in dB below its full scale.
const TONE_VOLUME: &str = "v=-7";

/// The switch's voice in these tests: a tone of `hz` (a number, or a channel variable's
/// `${...}`), forever.
pub fn fs_tone(hz: impl std::fmt::Display) -> String {
    format!("tone_stream://{TONE_VOLUME};%(1000,0,{hz});loops=-1")
}

/// Where [`RealStack::dial`]'s caller sits: it answers at once (so the originate goes on to
/// the destination), records what it hears and says `${skypopen_test_hz}`.
pub const CALLER_EXTENSION: &str = "skypopen_test_caller";

fn test_extensions() -> String {
    format!(
        r#"<include>
  <extension name="{CALLER_EXTENSION}">
    <condition field="destination_number" expression="^{CALLER_EXTENSION}$">
      <action application="answer"/>
      <action application="set" data="RECORD_READ_ONLY=true"/>
      <action application="record_session" data="$${{recordings_dir}}/caller_${{origination_uuid}}.wav"/>
      <action application="playback" data="{caller_tone}"/>
    </condition>
  </extension>
  <extension name="{ANSWER_EXTENSION}">
    <condition field="destination_number" expression="^{ANSWER_EXTENSION}$">
      <action application="answer"/>
      <action application="set" data="RECORD_READ_ONLY=true"/>
      <action application="record_session" data="$${{recordings_dir}}/answered_${{uuid}}.wav"/>
      <action application="playback" data="{tone}"/>
    </condition>
  </extension>
</include>
"#,
        tone = fs_tone(440),
        caller_tone = fs_tone("${skypopen_test_hz}"),
    )
}

pub struct RealStack {
    pub side: SkypeSide,
    pub fs: RealSwitch,
}

impl Deref for RealStack {
    type Target = SkypeSide;
    fn deref(&self) -> &SkypeSide {
        &self.side
    }
}

impl DerefMut for RealStack {
    fn deref_mut(&mut self) -> &mut SkypeSide {
        &mut self.side
    }
}

/// A call FreeSWITCH originated into `skype/...`: the channel the dialplan hands to the sidecar,
/// and the recording of what its caller (a loopback leg saying a tone) heard.
pub struct Dialed {
    pub leg: String,
    pub recording: PathBuf,
}

impl RealStack {
    /// The stack on a real switch, or `None` (after one line saying why) when there is none.
    /// `media` picks both the sidecar's `[switch] media` and the dialplan variant installed.
    pub async fn start(
        test: &str,
        mut spec: StackSpec,
        tune: impl FnOnce(&mut SwitchSpec),
    ) -> Option<RealStack> {
        let prefix = super::real_fs::available(test)?;
        if spec.destination == "5000" {
            spec.destination = ANSWER_EXTENSION.into();
        }
        let outbound = format!("127.0.0.1:{}", super::sim::free_port())
            .parse()
            .unwrap();
        let mut switch_spec = SwitchSpec::new(outbound, spec.media);
        switch_spec.files.push((
            "dialplan/default/99_skypopen_tests.xml".into(),
            test_extensions(),
        ));
        tune(&mut switch_spec);
        let fs = RealSwitch::start(&prefix, switch_spec).await;
        let side = SkypeSide::start(spec, fs.esl, outbound).await;
        Some(RealStack { side, fs })
    }

    /// FreeSWITCH dials `dest` (e.g. `skype/echo123`) in the default context, as a phone's
    /// call would arrive there: the caller is a loopback leg in [`CALLER_EXTENSION`] that
    /// says `hz` and records what it hears; `vars` go on the originate (both legs get them).
    pub async fn dial(&self, dest: &str, hz: u32, vars: &[(&str, &str)]) -> Dialed {
        let leg = uuid::Uuid::new_v4().to_string();
        let mut all = vec![
            format!("origination_uuid={leg}"),
            "origination_caller_id_number=1000".into(),
            "origination_caller_id_name='FreeSWITCH Caller'".into(),
            format!("skypopen_test_hz={hz}"),
        ];
        all.extend(vars.iter().map(|(k, v)| format!("{k}={v}")));
        self.fs
            .bgapi(&format!(
                "originate {{{}}}loopback/{CALLER_EXTENSION}/default {dest} XML default",
                all.join(","),
            ))
            .await;
        Dialed {
            recording: self.fs.recordings.join(format!("caller_{leg}.wav")),
            leg,
        }
    }

    /// The uuid of the channel the sidecar drives for `interface` (from `sk list`), once it
    /// shows `state`.
    pub async fn socket_leg(&self, interface: &str, state: &str) -> String {
        let rows = self
            .wait_list(&format!("{interface} {state}"), |rows| {
                rows.iter()
                    .any(|r| r.name == interface && r.state == state && !r.uuid.is_empty())
            })
            .await;
        rows.into_iter()
            .find(|r| r.name == interface)
            .map(|r| r.uuid)
            .unwrap_or_default()
    }

    /// The answered channel of an incoming Skype call (the leg in [`ANSWER_EXTENSION`]).
    pub async fn answered_leg(&self, skip: &[String]) -> FsEvent {
        self.fs
            .events
            .wait("an answered incoming Skype call", WAIT, |e| {
                e.name() == "CHANNEL_ANSWER"
                    && e.get("Caller-Destination-Number") == Some(ANSWER_EXTENSION)
                    && e.get("variable_loopback_leg") == Some("B")
                    && !skip.iter().any(|s| Some(s.as_str()) == e.get("Unique-ID"))
            })
            .await
    }

    /// The recording of the answered leg `uuid`.
    pub fn answered_recording(&self, uuid: &str) -> PathBuf {
        self.fs.recordings.join(format!("answered_{uuid}.wav"))
    }

    /// `uuid_kill <uuid> <cause>` on the switch.
    pub async fn kill(&self, uuid: &str, cause: &str) {
        self.fs.api(&format!("uuid_kill {uuid} {cause}")).await;
    }

    /// Waits for the hangup of `uuid`; its cause as FreeSWITCH's event gives it.
    pub async fn hangup_cause(&self, uuid: &str) -> String {
        self.fs.events.hangup_cause(uuid, WAIT).await
    }
}

impl Drop for RealStack {
    fn drop(&mut self) {
        // The sidecar goes first, so it never sees the switch vanish under a live call.
        self.side.stop_sidecar();
    }
}

/// A recording as 16 kHz samples, once the switch has closed it (its RECORD_STOP event:
/// reading earlier races the final header write).
pub async fn recorded(fs: &RealSwitch, path: &Path) -> Vec<i16> {
    let wanted = path.display().to_string();
    fs.events
        .wait(&format!("RECORD_STOP of {wanted}"), WAIT, |e| {
            e.name() == "RECORD_STOP" && e.get("Record-File-Path") == Some(wanted.as_str())
        })
        .await;
    let reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("recording {wanted}: {e}"));
    let rate = reader.spec().sample_rate;
    let samples: Vec<i16> = reader
        .into_samples::<i16>()
        .filter_map(Result::ok)
        .collect();
    at_16k(samples, rate)
}

/// Asserts the last 1.5 s of a recording (16 kHz) hold a tone of `hz` (within 2 %), loud
/// enough to be the test tone rather than noise. The tail, because a call's first frames
/// (ringing, the echo's onset) are not the steady tone the measure expects.
pub fn assert_fs_tone(what: &str, samples: &[i16], hz: f64) {
    let tail = &samples[samples.len().saturating_sub(24_000)..];
    let (f, level) = measure(tail);
    assert!(
        (f - hz).abs() / hz <= 0.02,
        "{what}: dominant frequency {f:.1} Hz, expected {hz} Hz"
    );
    assert!(level > -30.0, "{what}: level {level:.1} dBFS is too quiet");
}

/// Asserts `ctl heard <party>` reports a tone of `hz` (within 2 %), loud enough.
pub fn assert_heard_tone(heard: &serde_json::Value, hz: f64) {
    let f = heard["frequency_hz"].as_f64().unwrap_or(0.0);
    let level = heard["rms_dbfs"].as_f64().unwrap_or(-120.0);
    assert!(
        (f - hz).abs() / hz <= 0.02,
        "heard {f:.1} Hz, expected {hz} Hz: {heard}"
    );
    assert!(level > -30.0, "heard at {level:.1} dBFS: {heard}");
}
