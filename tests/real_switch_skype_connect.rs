//! The shipped Skype Connect files on a real FreeSWITCH: sofia loads the gateway of
//! `conf/sip_profiles/external/skype.xml` and REGISTERs it to a stand-in for Skype Connect on
//! 127.0.0.1 (the switch's own internal profile with a directory user for the trunk's SIP
//! user); a call crosses that trunk outbound with `dialplan/default/01_skype.xml` and inbound
//! with `dialplan/public/01_skype.xml`. Nothing here needs the sidecar. Without a switch the
//! test says so in one line.
mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::real_fs::{available, RealSwitch, SwitchSpec};
use support::skype_side::Media;

const TRUNK_USER: &str = "99051000123456";
const TRUNK_PASSWORD: &str = "trunk-secret-for-tests";

/// The gateway file as it ships, but for the registrar's address: this machine has no
/// network, so Skype's host becomes the stand-in's.
fn gateway_file(registrar: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/sip_profiles/external/skype.xml");
    std::fs::read_to_string(path)
        .expect("the shipped gateway file")
        .replace("sip.skype.com", registrar)
}

/// The stand-in's far end: a number called over the trunk answers and says 1000 Hz.
const FAR_END: &str = r#"<include>
  <extension name="skype_connect_far_end">
    <condition field="destination_number" expression="^\+39\d+$">
      <action application="answer"/>
      <action application="playback" data="tone_stream://v=-7;%(1000,0,1000);loops=-1"/>
    </condition>
  </extension>
</include>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_skype_connect_trunk_registers_and_carries_calls_both_ways() {
    let Some(prefix) = available("the_skype_connect_trunk_registers_and_carries_calls_both_ways")
    else {
        return;
    };
    // No sidecar here: any port will do for the dialplan's socket address.
    let mut spec = SwitchSpec::new("127.0.0.1:9".parse().unwrap(), Media::AudioFork);
    spec.sofia = true;
    // The callers are loopback legs, whose codec a SIP offer inherits: PCMU, as a phone's,
    // rather than loopback's L16, which no SIP profile here accepts.
    spec.vars
        .push(("loopback_initial_codec".into(), "PCMU@8000h".into()));
    spec.vars
        .push(("skype_connect_user".into(), TRUNK_USER.into()));
    spec.vars
        .push(("skype_connect_password".into(), TRUNK_PASSWORD.into()));
    // FreeSWITCH's pre-processor reads an included file line by line: `<include>` must
    // stand on a line of its own, or the whole file is dropped.
    spec.files.push((
        format!("directory/default/{TRUNK_USER}.xml"),
        format!(
            "<include>\n  <user id=\"{TRUNK_USER}\">\n    <params>\n      \
             <param name=\"password\" value=\"{TRUNK_PASSWORD}\"/>\n    </params>\n    \
             <variables>\n      <variable name=\"user_context\" value=\"default\"/>\n    \
             </variables>\n  </user>\n</include>\n"
        ),
    ));
    spec.files
        .push(("dialplan/default/98_far_end.xml".into(), FAR_END.into()));
    spec.files.push((
        "sip_profiles/external/skype.xml".into(),
        gateway_file("127.0.0.1:@INTERNAL_SIP_PORT@"),
    ));
    let fs = RealSwitch::start(&prefix, spec).await;

    // The gateway registers with the trunk's user and password. Both profiles start together,
    // so its first REGISTER can meet a stand-in not yet listening (503, retry in 30 s): once
    // the stand-in runs, register again at once.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = fs.api("sofia status").await;
        let running = |name: &str| {
            status
                .lines()
                .any(|l| l.contains(name) && l.contains("profile") && l.contains("RUNNING"))
        };
        if running("internal") && running("external") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the profiles never ran: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    fs.api("sofia profile external register skype").await;
    loop {
        let status = fs.api("sofia status gateway skype").await;
        // Whole words: "UNREGED" must not pass for "REGED".
        let shows = |k: &str, v: &str| status.lines().any(|l| l.split_whitespace().eq([k, v]));
        if shows("State", "REGED") && shows("Status", "UP") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the gateway never registered: {status}\n{}",
            fs.api("sofia status").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The stand-in writes registrations through its SQL queue: a moment later.
    loop {
        let registrations = fs.api("sofia status profile internal reg").await;
        if registrations.contains(TRUNK_USER) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stand-in has no registration of {TRUNK_USER}: {registrations}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Outbound: 00 39 06 1234567 goes out as +39061234567 over the trunk and the far end
    // answers; the caller's hangup ends both sides. (Audio across two sofia profiles of one
    // switch is FreeSWITCH's RTP business, not the trunk files': not checked here.)
    let caller = uuid::Uuid::new_v4().to_string();
    fs.bgapi(&format!(
        "originate {{origination_uuid={caller}}}loopback/0039061234567/default &playback(tone_stream://%(1000,0,440);loops=-1)"
    ))
    .await;
    let far = fs
        .events
        .wait(
            "the trunk call at the far end",
            Duration::from_secs(30),
            |e| {
                e.name() == "CHANNEL_ANSWER"
                    && e.get("Caller-Destination-Number") == Some("+39061234567")
                    && e.get("Channel-Name")
                        .is_some_and(|n| n.starts_with("sofia/internal/"))
            },
        )
        .await;
    assert_eq!(
        far.get("Caller-Caller-ID-Number"),
        Some(TRUNK_USER),
        "Skype Connect sees the SIP user as the caller"
    );
    let far_uuid = far.get("Unique-ID").unwrap_or_default().to_string();
    fs.events
        .wait("the caller answered", Duration::from_secs(10), |e| {
            e.name() == "CHANNEL_ANSWER" && e.get("Unique-ID") == Some(caller.as_str())
        })
        .await;
    fs.api(&format!("uuid_kill {caller}")).await;
    assert_eq!(
        fs.events
            .hangup_cause(&far_uuid, Duration::from_secs(10))
            .await,
        "NORMAL_CLEARING"
    );

    // Inbound: the stand-in calls the trunk's registration; the call arrives on the external
    // profile with the SIP user as destination and the public dialplan takes it.
    fs.bgapi(&format!(
        "originate user/{TRUNK_USER}@127.0.0.1 &playback(tone_stream://%(1000,0,440);loops=-1)"
    ))
    .await;
    let arrived = fs
        .events
        .wait(
            "the trunk call in the public dialplan",
            Duration::from_secs(30),
            |e| {
                e.name() == "CHANNEL_EXECUTE"
                    && e.get("Application") == Some("transfer")
                    && e.get("variable_skype_connect_called") == Some(TRUNK_USER)
            },
        )
        .await;
    assert!(
        arrived
            .get("Channel-Name")
            .is_some_and(|n| n.starts_with("sofia/external/")),
        "{arrived:?}"
    );
    assert_eq!(arrived.get("Caller-Context"), Some("public"));
    assert_eq!(arrived.get("Application-Data"), Some("1000 XML default"));
    fs.api("hupall NORMAL_CLEARING").await;
}
