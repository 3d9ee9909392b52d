//! Calls through a real FreeSWITCH 1.10.12 (at `/usr/local/freeswitch` or `SKYPOPEN_FREESWITCH`),
//! its shipped dialplans installed: FreeSWITCH → Skype on `skype/...` and
//! `skypopen/<interface>/...`, Skype → the dialplan, over the audio fork and over `unicast` at
//! 8 and 16 kHz, tones checked both ways. Without a switch each test says so in one line.
mod support;

use support::real_stack::{
    assert_fs_tone, assert_heard_tone, recorded, Media, RealStack, StackSpec,
};

/// FreeSWITCH dials `dest` and says 440 Hz; echo123 hears it and returns it. The channel
/// runs at `rate`.
async fn echo_call(stack: &RealStack, dest: &str, interface: &str, rate: u32) {
    let call = stack.dial(dest, 440, &[]).await;
    let leg = stack.socket_leg(interface, "UP").await;
    assert_eq!(
        leg, call.leg,
        "the sidecar drives the channel the dialplan handed it"
    );
    let read_rate = stack.fs.api(&format!("uuid_getvar {leg} read_rate")).await;
    assert_eq!(read_rate.trim(), rate.to_string(), "the channel's rate");
    let heard = stack.heard_audio("echo123").await;
    assert_heard_tone(&heard, 440.0);
    // Two seconds of the echo, then the caller hangs up.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    stack.kill(&call.leg, "NORMAL_CLEARING").await;
    assert_eq!(stack.hangup_cause(&leg).await, "NORMAL_CLEARING");
    let back = recorded(&stack.fs, &call.recording).await;
    assert!(back.len() > 32_000, "recorded {} samples", back.len());
    // The caller recorded from its own answer: ringing is silence, which the measure skips.
    assert_fs_tone("echo returned to the caller", &back, 440.0);
    stack.wait_idle(interface).await;
    stack.wait_no_calls().await;
    stack.wait_network_idle().await;
}

/// alice calls user1 saying 1000 Hz: the call lands in the dialplan with her caller id, the
/// switch hears 1000 Hz and alice hears the switch's 440 Hz.
async fn inbound_call(stack: &RealStack) {
    let net_call = stack
        .net
        .remote_call(&["--from", "alice", "--to", "user1", "--tone", "1000"])
        .await;
    let answered = stack.answered_leg(&[]).await;
    let uuid = answered.get("Unique-ID").unwrap().to_string();
    assert_eq!(answered.get("Caller-Caller-ID-Number"), Some("alice"));
    assert_eq!(answered.get("Caller-Caller-ID-Name"), Some("Alice Liddell"));
    assert_eq!(
        answered.get("variable_skypopen_interface"),
        Some("interface1")
    );
    assert_eq!(answered.get("variable_skype_user"), Some("user1"));
    let heard = stack.heard_audio("alice").await;
    assert_heard_tone(&heard, 440.0);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    stack.net.actl(&["hangup", &net_call]).await;
    assert_eq!(stack.hangup_cause(&uuid).await, "NORMAL_CLEARING");
    let in_fs = recorded(&stack.fs, &stack.answered_recording(&uuid)).await;
    assert!(in_fs.len() > 32_000, "recorded {} samples", in_fs.len());
    assert_fs_tone("alice's voice in FreeSWITCH", &in_fs[16_000..], 1000.0);
    let row = stack.wait_idle("interface1").await;
    assert_eq!((row.ib_failed, row.ib_total), (0, 1));
    stack.wait_no_calls().await;
}

async fn both_ways(test: &str, media: Media, rate: u32) {
    // Loopback legs take their first codec from this variable, read before the originate's
    // own variables are set: a global one reaches them.
    let codec = format!("L16@{rate}h");
    let spec = StackSpec::users(&["user1"]).media(media);
    let Some(stack) = RealStack::start(test, spec, |switch| {
        switch.vars.push(("loopback_initial_codec".into(), codec));
    })
    .await
    else {
        return;
    };
    echo_call(&stack, "skype/echo123", "interface1", rate).await;
    echo_call(&stack, "skypopen/interface1/echo123", "interface1", rate).await;
    inbound_call(&stack).await;
    // Every call crossed on the transport asked for: the sidecar falls back to the fork on a
    // channel that would chop unicast audio, and says so.
    let mode = match media {
        Media::AudioFork => "mode=AudioFork",
        Media::Unicast => "mode=Unicast",
    };
    let log = stack.log();
    let flowing: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("media flowing"))
        .collect();
    assert_eq!(flowing.len(), 3, "{flowing:?}");
    assert!(flowing.iter().all(|l| l.contains(mode)), "{flowing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_both_ways_over_audio_fork() {
    both_ways("calls_both_ways_over_audio_fork", Media::AudioFork, 8_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_both_ways_over_unicast_16k() {
    both_ways("calls_both_ways_over_unicast_16k", Media::Unicast, 16_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_both_ways_over_unicast_8k() {
    both_ways("calls_both_ways_over_unicast_8k", Media::Unicast, 8_000).await;
}
