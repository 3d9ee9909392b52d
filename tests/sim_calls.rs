//! `skype-sim client` over X11 on Xvfb, driven by a minimal controller: calls and their audio.
mod support;

use skypopen::media::dsp;
use support::sim::{logged_in, ApiController, AudioPorts, SimClient, SimNetwork};
use support::xvfb::Xvfb;

fn frequency(samples: &[i16]) -> f64 {
    dsp::summarize(samples).frequency_hz.unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo123_returns_the_tone_through_the_audio_ports() {
    let net = SimNetwork::start();
    let (_x, _client, mut api) = logged_in(&net, "user1").await;
    let id = api.dial("echo123").await;
    api.expect(&format!("CALL {id} STATUS ROUTING")).await;
    api.expect(&format!("CALL {id} STATUS RINGING")).await;
    api.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    let mut ports = AudioPorts::open(&mut api, id).await;
    api.expect_seen(&format!("CALL {id} VAA_INPUT_STATUS TRUE"))
        .await;
    let heard = ports.tone_and_record(880.0, 100).await;
    let f = frequency(&heard);
    assert!((f - 880.0).abs() < 8.8, "echo came back at {f} Hz");
    api.expect(&format!("CALL {id} DURATION 1")).await;
    // The order FreeSWITCH 1.10.12 used: HANGUP, then END HANGUP (which fails).
    api.send(&format!("ALTER CALL {id} HANGUP")).await;
    api.send(&format!("ALTER CALL {id} END HANGUP")).await;
    api.expect(&format!("ALTER CALL {id} HANGUP")).await;
    api.expect(&format!("CALL {id} STATUS FINISHED")).await;
    api.wait("ERROR 559", |m| m.starts_with("ERROR 559")).await;
    // The network's view of what echo123 heard.
    let h = net.actl(&["heard", "echo123"]).await;
    let f = h["frequency_hz"].as_f64().unwrap();
    assert!((f - 880.0).abs() < 8.8, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_outcomes_busy_refused_missed_unknown_and_no_credit() {
    let net = SimNetwork::start();
    let (_x, _client, mut api) = logged_in(&net, "user8").await;
    for (target, status) in [
        ("busybot", "BUSY"),
        ("refusebot", "REFUSED"),
        ("silentbot", "MISSED"),
    ] {
        let id = api.dial(target).await;
        api.expect(&format!("CALL {id} STATUS ROUTING")).await;
        api.expect(&format!("CALL {id} STATUS RINGING")).await;
        api.expect(&format!("CALL {id} STATUS {status}")).await;
    }
    api.send("CALL no_such_person").await;
    api.expect("ERROR 92 CALL: Unrecognised identity").await;
    // user8 has no SkypeOut credit.
    let id = api.dial("+15551234567").await;
    api.expect(&format!("CALL {id} FAILUREREASON 1")).await;
    api.expect(&format!("CALL {id} STATUS FAILED")).await;
    api.send("GET PROFILE PSTN_BALANCE").await;
    api.expect("PROFILE PSTN_BALANCE 0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skypeout_call_has_early_media_then_answers() {
    let net = SimNetwork::start();
    let (_x, _client, mut api) = logged_in(&net, "user2").await;
    let id = api.dial("+390612345678").await;
    api.expect(&format!("CALL {id} STATUS ROUTING")).await;
    api.expect(&format!("CALL {id} STATUS EARLYMEDIA")).await;
    let mut ports = AudioPorts::open(&mut api, id).await;
    // Ringback during early media.
    let ringback = ports.record(15).await;
    let f = frequency(&ringback);
    assert!((f - 425.0).abs() < 5.0, "ringback at {f} Hz");
    api.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    api.send(&format!("ALTER CALL {id} HANGUP")).await;
    api.expect(&format!("CALL {id} STATUS FINISHED")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_call_from_ctl_carries_the_remote_tone_and_dtmf() {
    let net = SimNetwork::start();
    let (_x, _client, mut api) = logged_in(&net, "user1").await;
    let net_call = net
        .remote_call(&["--from", "carol", "--to", "user1", "--tone", "523"])
        .await;
    let id = api.ringing().await;
    api.send(&format!("GET CALL {id} PARTNER_DISPNAME")).await;
    api.send(&format!("GET CALL {id} PARTNER_HANDLE")).await;
    api.expect(&format!("CALL {id} PARTNER_DISPNAME Carol Ann Jones"))
        .await;
    api.expect(&format!("CALL {id} PARTNER_HANDLE carol")).await;
    api.send(&format!("ALTER CALL {id} ANSWER")).await;
    api.expect(&format!("ALTER CALL {id} ANSWER")).await;
    api.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    let mut ports = AudioPorts::open(&mut api, id).await;
    let heard = ports.tone_and_record(1500.0, 50).await;
    let f = frequency(&heard[16000 / 5..]);
    assert!((f - 523.0).abs() < 5.3, "remote tone heard at {f} Hz");
    // Signalled DTMF from the remote side.
    net.actl(&["dtmf", &net_call, "42"]).await;
    api.expect(&format!("CALL {id} DTMF 4")).await;
    api.expect(&format!("CALL {id} DTMF 2")).await;
    // What carol heard is what we played.
    let h = net.actl(&["heard", "carol"]).await;
    let f = h["frequency_hz"].as_f64().unwrap();
    assert!((f - 1500.0).abs() < 15.0, "{h}");
    // Remote hold and resume.
    net.actl(&["hold", &net_call]).await;
    api.expect(&format!("CALL {id} STATUS REMOTEHOLD")).await;
    net.actl(&["resume", &net_call]).await;
    api.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    // Remote hangup.
    net.actl(&["hangup", &net_call]).await;
    api.expect(&format!("CALL {id} STATUS FINISHED")).await;
    let calls = net.actl(&["calls"]).await;
    assert_eq!(calls["calls"].as_array().unwrap().len(), 0, "{calls}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_band_dtmf_from_the_remote_is_detectable() {
    let net = SimNetwork::start();
    let (_x, _client, mut api) = logged_in(&net, "user3").await;
    let call = net.remote_call(&["--from", "dave", "--to", "user3"]).await;
    let id = api.ringing().await;
    api.send(&format!("ALTER CALL {id} ANSWER")).await;
    api.expect(&format!("CALL {id} STATUS INPROGRESS")).await;
    let mut ports = AudioPorts::open(&mut api, id).await;
    net.actl(&["dtmf", &call, "1590#", "--inband"]).await;
    let heard = ports.record(75).await;
    assert_eq!(dsp::detect_dtmf(&heard), "1590#");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_call_each_other_with_audio_both_ways() {
    let net = SimNetwork::start();
    let (x1, x2) = (Xvfb::start(), Xvfb::start());
    let _c1 = SimClient::start(&x1.display, "user1", &net, &[]);
    let _c2 = SimClient::start(&x2.display, "user2", &net, &[]);
    let mut one = ApiController::attach(&x1.display).await;
    let mut two = ApiController::attach(&x2.display).await;
    one.handshake("user1").await;
    two.handshake("user2").await;
    let out = one.dial("user2").await;
    let inc = two.ringing().await;
    one.expect(&format!("CALL {out} STATUS RINGING")).await;
    two.send(&format!("GET CALL {inc} PARTNER_HANDLE")).await;
    two.expect(&format!("CALL {inc} PARTNER_HANDLE user1"))
        .await;
    two.send(&format!("ALTER CALL {inc} ANSWER")).await;
    two.expect(&format!("CALL {inc} STATUS INPROGRESS")).await;
    one.expect(&format!("CALL {out} STATUS INPROGRESS")).await;
    let mut p1 = AudioPorts::open(&mut one, out).await;
    let mut p2 = AudioPorts::open(&mut two, inc).await;
    let (h1, h2) = tokio::join!(
        p1.tone_and_record(700.0, 75),
        p2.tone_and_record(1100.0, 75)
    );
    let (f1, f2) = (frequency(&h1), frequency(&h2));
    assert!((f1 - 1100.0).abs() < 11.0, "user1 heard {f1} Hz");
    assert!((f2 - 700.0).abs() < 7.0, "user2 heard {f2} Hz");
    // DTMF from user1 reaches user2 signalled.
    one.send(&format!("SET CALL {out} DTMF 9")).await;
    one.expect(&format!("CALL {out} DTMF 9")).await;
    two.expect(&format!("CALL {inc} DTMF 9")).await;
    one.send(&format!("ALTER CALL {out} END HANGUP")).await;
    one.expect(&format!("CALL {out} STATUS FINISHED")).await;
    two.expect(&format!("CALL {inc} STATUS FINISHED")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_account_on_two_clients_both_ring_and_the_other_gets_missed() {
    let net = SimNetwork::start();
    let (x1, x2) = (Xvfb::start(), Xvfb::start());
    let _c1 = SimClient::start(&x1.display, "user5", &net, &[]);
    let _c2 = SimClient::start(&x2.display, "user5", &net, &[]);
    let mut a = ApiController::attach(&x1.display).await;
    let mut b = ApiController::attach(&x2.display).await;
    a.handshake("user5").await;
    b.handshake("user5").await;
    let r = net
        .actl(&["call", "--from", "alice", "--to", "user5", "--tone", "440"])
        .await;
    assert_eq!(r["legs"].as_array().unwrap().len(), 2, "{r}");
    let ra = a.ringing().await;
    let rb = b.ringing().await;
    assert_ne!(ra, rb, "each instance rings with its own call id");
    b.send(&format!("ALTER CALL {rb} ANSWER")).await;
    b.expect(&format!("CALL {rb} STATUS INPROGRESS")).await;
    a.expect(&format!("CALL {ra} STATUS MISSED")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_incoming_call_is_missed_and_transfer_rings_the_target() {
    let net = SimNetwork::start();
    let (x1, x2) = (Xvfb::start(), Xvfb::start());
    let _c1 = SimClient::start(&x1.display, "user6", &net, &[]);
    let _c2 = SimClient::start(&x2.display, "user7", &net, &[]);
    let mut six = ApiController::attach(&x1.display).await;
    let mut seven = ApiController::attach(&x2.display).await;
    six.handshake("user6").await;
    seven.handshake("user7").await;
    net.actl(&["call", "--from", "bob", "--to", "user6"]).await;
    let id = six.ringing().await;
    six.expect(&format!("CALL {id} STATUS MISSED")).await;

    net.actl(&["call", "--from", "bob", "--to", "user6"]).await;
    let id = six.ringing().await;
    six.send(&format!("ALTER CALL {id} TRANSFER nobody_here"))
        .await;
    six.wait("ERROR 592", |m| m.starts_with("ERROR 592")).await;
    six.send(&format!("ALTER CALL {id} TRANSFER user7")).await;
    six.expect(&format!("CALL {id} STATUS TRANSFERRING")).await;
    six.expect(&format!("CALL {id} STATUS TRANSFERRED")).await;
    let t = seven.ringing().await;
    seven.send(&format!("GET CALL {t} PARTNER_HANDLE")).await;
    seven.expect(&format!("CALL {t} PARTNER_HANDLE bob")).await;
    seven.send(&format!("ALTER CALL {t} HANGUP")).await;
    seven.expect(&format!("CALL {t} STATUS REFUSED")).await;
}
