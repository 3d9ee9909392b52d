//! Calls with `[switch] media = "unicast"`: the double's channel sends and plays L16 UDP at its
//! codec rate, the sidecar resamples to and from Skype's 16 kHz.
mod support;

use std::time::Duration;
use support::stack::{energy_share, Stack, StackSpec, WAIT};

fn unicast_spec() -> StackSpec {
    let mut spec = StackSpec::users(&["user1"]);
    spec.switch = "media = \"unicast\"\n".to_string();
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo123_over_unicast_on_an_8khz_leg_returns_the_callers_tone() {
    echo123_over_unicast(8000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo123_over_unicast_on_a_16khz_leg_returns_the_callers_tone() {
    echo123_over_unicast(16_000).await;
}

async fn echo123_over_unicast(rate: usize) {
    let stack = Stack::start(unicast_spec()).await;
    // The unicast dialplan: no send_silence_when_idle.
    let vars = [("read_rate".to_string(), rate.to_string())];
    let call = stack
        .fs
        .dial_route(stack.outbound, "echo123", "1000", None, &vars, true);
    stack.fs.wait_answered(&call.socket_leg, WAIT).await;
    let leg = stack
        .unicasts
        .wait_leg(&call.socket_leg, WAIT)
        .await
        .unwrap_or_else(|| panic!("no unicast leg: {:?}", stack.unicasts.errors()));
    assert_eq!(stack.forks.starts().len(), 0, "no fork on a unicast call");
    // Three seconds of what the call heard; the echo starts after its delay.
    assert_eq!(
        leg.samples_per_frame,
        rate / 50,
        "frames at the channel rate"
    );
    let heard = leg.wait_heard(3 * rate, WAIT * 2).await;
    assert!(
        heard.len() >= 3 * rate,
        "call heard {} samples",
        heard.len()
    );
    let tail = &heard[rate..];
    let share = energy_share(tail, rate as u32, 440.0);
    assert!(share > 0.5, "440 Hz share {share:.3} in the echo");
    let heard_by_echo = stack.net.actl(&["heard", "echo123"]).await;
    support::stack::assert_heard(&heard_by_echo, 440.0);
    stack.fs.hangup(&call.caller_leg, "NORMAL_CLEARING");
    stack.wait_idle("interface1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_silence_when_idle_in_unicast_mode_falls_back_to_the_fork_with_a_warning() {
    let stack = Stack::start(unicast_spec()).await;
    // The audio fork dialplan's route: send_silence_when_idle=-1.
    let call = stack.dial("echo123");
    stack.fs.wait_answered(&call.socket_leg, WAIT).await;
    let back = stack.fork_audio(&call.socket_leg, 2.0).await;
    assert!(!back.is_empty());
    assert!(
        stack.unicasts.leg(&call.socket_leg).is_none(),
        "no unicast on a channel that would chop it"
    );
    let deadline = std::time::Instant::now() + WAIT;
    while !stack.log().contains("send_silence_when_idle") {
        assert!(
            std::time::Instant::now() < deadline,
            "no warning in the log:\n{}",
            stack.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.fs.hangup(&call.caller_leg, "NORMAL_CLEARING");
    stack.wait_idle("interface1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_to_user1_over_unicast_carries_audio_both_ways() {
    let stack = Stack::start(unicast_spec()).await;
    let net_call = stack
        .net
        .remote_call(&["--from", "alice", "--to", "user1", "--tone", "1000"])
        .await;
    let uuid = stack.inbound_channel("interface1", &[]).await;
    let channel = stack.fs.channel(&uuid).expect("originated channel");
    assert_eq!(
        channel.variable("send_silence_when_idle"),
        None,
        "unicast mode originates without send_silence_when_idle"
    );
    let leg = stack
        .unicasts
        .wait_leg(&uuid, WAIT)
        .await
        .unwrap_or_else(|| panic!("no unicast leg: {:?}", stack.unicasts.errors()));
    let heard = leg.wait_heard(2 * 8000, WAIT * 2).await;
    assert!(
        heard.len() >= 2 * 8000,
        "call heard {} samples",
        heard.len()
    );
    let share = energy_share(&heard[8000..], 8000, 1000.0);
    assert!(share > 0.5, "alice's 1 kHz share {share:.3} in FreeSWITCH");
    support::stack::assert_heard(&stack.heard_audio("alice").await, 440.0);
    stack.net.actl(&["hangup", &net_call]).await;
    let cause = stack.fs.wait_hangup(&uuid, WAIT).await;
    assert_eq!(cause, "NORMAL_CLEARING");
    stack.wait_idle("interface1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_both_ways_and_in_band_over_unicast() {
    let mut spec = unicast_spec();
    spec.interfaces[0]
        .toml
        .push_str("skype_get_inband_dtmf = true\n");
    let stack = Stack::start(spec).await;
    let net_call = stack
        .net
        .remote_call(&["--from", "alice", "--to", "user1", "--tone", "1000"])
        .await;
    let uuid = stack.inbound_channel("interface1", &[]).await;
    let leg = stack
        .unicasts
        .wait_leg(&uuid, WAIT)
        .await
        .unwrap_or_else(|| panic!("no unicast leg: {:?}", stack.unicasts.errors()));
    leg.wait_heard(4000, WAIT).await;
    // FreeSWITCH → Skype, signalled.
    stack.fs.recv_dtmf(&uuid, "12#");
    stack.heard_signalled("alice", "12#").await;
    // Skype → FreeSWITCH: signalled 4, then in-band 9 in alice's audio.
    stack.net.actl(&["dtmf", &net_call, "4"]).await;
    stack.net.actl(&["dtmf", &net_call, "9", "--inband"]).await;
    stack.wait_sent_dtmf(&uuid, "49").await;
    stack.net.actl(&["hangup", &net_call]).await;
    stack.fs.wait_hangup(&uuid, WAIT).await;
    stack.wait_idle("interface1").await;
}
