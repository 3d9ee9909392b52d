//! Three sidecar hosts behind a real FreeSWITCH 1.10.12: the dialplan `skypopen hosts-dialplan`
//! writes, FreeSWITCH's own `socket`/`resume`/`transfer`, and its mod_hash deciding which host
//! acts. Needs a FreeSWITCH installed (see README); says so in one line and passes otherwise.
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::real_stack::{Media, RealStack, SkypeSide, StackSpec};

const WAIT: Duration = Duration::from_secs(20);

fn spec(users: &[&str], host: &str, arbitrate: bool) -> StackSpec {
    let mut spec = StackSpec::users(users).media(Media::Unicast);
    spec.extra = format!("[cluster]\nhost = \"{host}\"\narbitrate = {arbitrate}\n");
    spec
}

fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", support::sim::free_port())
        .parse()
        .unwrap()
}

/// B and C are dropped (stopped) before A's switch goes.
struct Hosts {
    b: SkypeSide,
    c: SkypeSide,
    a: RealStack,
}

async fn start(test: &str, users: [&[&str]; 3], arbitrate: bool) -> Option<Hosts> {
    let (outbound_b, outbound_c) = (free_addr(), free_addr());
    let a = RealStack::start(test, spec(users[0], "host-a", arbitrate), |switch| {
        let hosts = [switch.outbound, outbound_b, outbound_c].map(|a| a.to_string());
        let dialplan =
            skypopen::switch::hosts_dialplan::render(&hosts).expect("three good host addresses");
        // Sorted before the one-host file, so its extensions match first.
        switch
            .files
            .push(("dialplan/default/000_skypopen_hosts.xml".into(), dialplan));
    })
    .await?;
    let mut others = Vec::new();
    for (users, host, outbound) in [
        (users[1], "host-b", outbound_b),
        (users[2], "host-c", outbound_c),
    ] {
        let mut spec = spec(users, host, arbitrate);
        spec.shared_network = Some(a.net.addr);
        spec.destination = a.spec.destination.clone();
        others.push(SkypeSide::start(spec, a.fs.esl, outbound).await);
    }
    let c = others.pop()?;
    let b = others.pop()?;
    Some(Hosts { b, c, a })
}

impl Hosts {
    /// The host whose interface carries the channel `uuid` (from `sk list`), waiting for it.
    async fn carrier(&self, uuid: &str) -> &'static str {
        let deadline = Instant::now() + WAIT;
        loop {
            for (side, name) in [
                (&*self.a, "host-a"),
                (&self.b, "host-b"),
                (&self.c, "host-c"),
            ] {
                if let Some(list) = side.try_api("sk list").await {
                    if list.contains(uuid) {
                        return name;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no host carries {uuid}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn variable(&self, uuid: &str, name: &str) -> String {
        self.a
            .fs
            .api(&format!("uuid_getvar {uuid} {name}"))
            .await
            .trim()
            .to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_dialplan_overflows_and_ends_a_lost_hosts_call_on_the_real_switch() {
    let Some(mut hosts) = start(
        "the_hosts_dialplan_overflows_and_ends_a_lost_hosts_call_on_the_real_switch",
        [&["user1"], &["user2"], &["user3"]],
        false,
    )
    .await
    else {
        return;
    };
    let first = hosts.a.dial("skype/echo123", 440, &[]).await;
    assert_eq!(hosts.carrier(&first.leg).await, "host-a");
    let second = hosts.a.dial("skype/echo123", 440, &[]).await;
    assert_eq!(hosts.carrier(&second.leg).await, "host-b");
    assert_eq!(hosts.variable(&second.leg, "skypopen_host").await, "host-b");
    assert_eq!(
        hosts.variable(&second.leg, "skypopen_overflow_host").await,
        "host-a"
    );
    let third = hosts.a.dial("skype/echo123", 440, &[]).await;
    assert_eq!(hosts.carrier(&third.leg).await, "host-c");
    let fourth = hosts.a.dial("skype/echo123", 440, &[]).await;
    assert_eq!(
        hosts.a.hangup_cause(&fourth.leg).await,
        "NORMAL_CIRCUIT_CONGESTION"
    );

    // Host B dies mid-call: FreeSWITCH goes on with the dialplan after its socket, and the
    // re-hunt ends the call rather than handing it to host C.
    hosts.b.kill_sidecar();
    assert_eq!(
        hosts.a.hangup_cause(&second.leg).await,
        "DESTINATION_OUT_OF_ORDER"
    );
    hosts.a.kill(&third.leg, "NORMAL_CLEARING").await;
    hosts.c.wait_all_idle().await;
    let started = Instant::now();
    let fifth = hosts.a.dial("skype/echo123", 440, &[]).await;
    assert_eq!(hosts.carrier(&fifth.leg).await, "host-c");
    println!(
        "real switch: a call past a full host and a dead one reached host-c in {:?}",
        started.elapsed()
    );
    hosts.a.kill(&fifth.leg, "NORMAL_CLEARING").await;
    hosts.a.kill(&first.leg, "NORMAL_CLEARING").await;
    hosts.a.wait_all_idle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_on_three_hosts_is_arbitrated_by_the_real_mod_hash() {
    let Some(mut hosts) = start(
        "one_account_on_three_hosts_is_arbitrated_by_the_real_mod_hash",
        [&["user1"], &["user1"], &["user1"]],
        true,
    )
    .await
    else {
        return;
    };
    hosts
        .a
        .net
        .actl(&["call", "--from", "alice", "--to", "user1", "--tone", "1000"])
        .await;
    let answered = hosts.a.answered_leg(&[]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let originates = hosts
        .a
        .fs
        .events
        .all()
        .iter()
        .filter(|e| {
            e.name() == "CHANNEL_ANSWER"
                && e.get("Caller-Destination-Number") == answered.get("Caller-Destination-Number")
                && e.get("variable_loopback_leg") == Some("B")
        })
        .count();
    assert_eq!(originates, 1, "one Skype call, one FreeSWITCH call");
    let uuid = answered.get("Unique-ID").unwrap_or("").to_string();
    hosts.a.kill(&uuid, "NORMAL_CLEARING").await;

    for n in 0..10 {
        let text = format!("r{n}");
        hosts
            .a
            .net
            .actl(&["chat", "--from", "alice", "--to", "user1", "--text", &text])
            .await;
    }
    hosts.a.kill_sidecar();
    for n in 10..20 {
        let text = format!("r{n}");
        hosts
            .a
            .net
            .actl(&["chat", "--from", "bob", "--to", "user1", "--text", &text])
            .await;
    }
    let delivered = || -> Vec<String> {
        let mut bodies: Vec<String> = hosts
            .a
            .fs
            .events
            .all()
            .iter()
            .filter(|e| e.name() == "MESSAGE" && e.get("skypopen_message_key").is_some())
            .map(|e| e.body.clone())
            .collect();
        bodies.sort();
        bodies
    };
    let deadline = Instant::now() + WAIT;
    while delivered().len() < 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Late copies would show by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bodies = delivered();
    let mut expected: Vec<String> = (0..20).map(|n| format!("r{n}")).collect();
    expected.sort();
    assert_eq!(bodies, expected, "every chat exactly once");
}
