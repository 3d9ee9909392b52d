//! Three sidecar hosts behind one FreeSWITCH (the double) and one Skype network: calls
//! overflow from a full host to the next with `socket`'s own semantics (the dialplan of
//! `skypopen hosts-dialplan`), every host names itself, a host killed mid-call ends its call
//! with DESTINATION_OUT_OF_ORDER while new calls go to the others, and one Skype account served
//! by all three hosts makes one FreeSWITCH call per Skype call and one MESSAGE per chat
//! message, arbitrated in the double's mod_hash.
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::fs_double::wire::Event as FsEvent;
use support::stack::{SkypeSide, Stack, StackSpec};

const WAIT: Duration = Duration::from_secs(20);

fn host_spec(users: &[&str], host: &str, arbitrate: bool) -> StackSpec {
    let mut spec = StackSpec::users(users);
    spec.extra = format!("[cluster]\nhost = \"{host}\"\narbitrate = {arbitrate}\n");
    spec
}

/// Host A is the stack (it owns the double and the network); B and C join them.
struct Hosts {
    a: Stack,
    b: SkypeSide,
    c: SkypeSide,
}

impl Hosts {
    async fn start(users: [&[&str]; 3], arbitrate: bool) -> Hosts {
        let a = Stack::start(host_spec(users[0], "host-a", arbitrate)).await;
        let mut others = Vec::new();
        for (users, host) in [(users[1], "host-b"), (users[2], "host-c")] {
            let mut spec = host_spec(users, host, arbitrate);
            spec.shared_network = Some(a.net.addr);
            let outbound: SocketAddr = format!("127.0.0.1:{}", support::sim::free_port())
                .parse()
                .unwrap();
            others.push(SkypeSide::start(spec, a.fs.esl_addr(), outbound).await);
        }
        let c = others.pop().unwrap();
        let b = others.pop().unwrap();
        Hosts { a, b, c }
    }

    fn outbound(&self) -> [SocketAddr; 3] {
        [self.a.outbound, self.b.outbound, self.c.outbound]
    }

    fn variable(&self, uuid: &str, name: &str) -> Option<String> {
        self.a
            .fs
            .channel(uuid)
            .and_then(|c| c.variable(name).map(str::to_string))
    }

    /// Dials through the N-host dialplan and waits for the call to be answered; the host
    /// that carries it.
    async fn call(&self) -> (support::fs_double::DialedCall, String) {
        let dialed = self
            .a
            .fs
            .dial_skype_hosts(&self.outbound(), "echo123", "1000");
        self.a.fs.wait_answered(&dialed.socket_leg, WAIT).await;
        let host = self
            .variable(&dialed.socket_leg, "skypopen_host")
            .expect("the host that took the call names itself");
        (dialed, host)
    }
}

fn header<'a>(event: &'a FsEvent, name: &str) -> Option<&'a str> {
    event
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn messages(hosts: &Hosts) -> Vec<FsEvent> {
    hosts
        .a
        .fs
        .recorded()
        .sent_events
        .into_iter()
        .filter(|e| header(e, "Event-Name") == Some("MESSAGE"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_overflow_host_to_host_and_a_lost_host_ends_only_its_own_call() {
    let mut hosts = Hosts::start([&["user1"], &["user2"], &["user3"]], false).await;

    // Every host says who it is: in `sk list` and on the calls it originates.
    assert!(hosts.b.api("sk list").await.ends_with("Host: host-b\n"));
    hosts
        .a
        .net
        .actl(&["call", "--from", "alice", "--to", "user3", "--tone", "1000"])
        .await;
    let (inbound, _) = hosts.a.any_inbound_channel(&[]).await;
    assert_eq!(
        hosts.variable(&inbound, "skypopen_host").as_deref(),
        Some("host-c")
    );
    hosts.a.fs.hangup(&inbound, "NORMAL_CLEARING");
    hosts.c.wait_all_idle().await;

    // One interface per host: the calls fill A, then B, then C; the fourth finds every host
    // full and the dialplan ends it with NORMAL_CIRCUIT_CONGESTION.
    let (first, on) = hosts.call().await;
    assert_eq!(on, "host-a");
    let (second, on) = hosts.call().await;
    assert_eq!(on, "host-b");
    let handed_back = format!(
        "uuid_setvar {} skypopen_overflow_reason no_idle_interface",
        second.socket_leg
    );
    assert!(
        hosts.a.fs.recorded().api.contains(&handed_back),
        "host A handed the second call back with its reason"
    );
    assert_eq!(
        hosts
            .variable(&second.socket_leg, "skypopen_overflow_host")
            .as_deref(),
        Some("host-a")
    );
    let (third, on) = hosts.call().await;
    assert_eq!(on, "host-c");
    let fourth = hosts
        .a
        .fs
        .dial_skype_hosts(&hosts.outbound(), "echo123", "1000");
    assert_eq!(
        hosts.a.fs.wait_hangup(&fourth.socket_leg, WAIT).await,
        "NORMAL_CIRCUIT_CONGESTION"
    );

    // Host B dies mid-call: its call ends with DESTINATION_OUT_OF_ORDER, the others go on.
    hosts.b.kill_sidecar();
    assert_eq!(
        hosts.a.fs.wait_hangup(&second.socket_leg, WAIT).await,
        "DESTINATION_OUT_OF_ORDER"
    );
    assert!(hosts.a.fs.channel(&first.socket_leg).unwrap().is_up());
    assert!(hosts.a.fs.channel(&third.socket_leg).unwrap().is_up());

    // A new call passes full A and dead B and lands on C once C is free.
    hosts.a.fs.hangup(&third.socket_leg, "NORMAL_CLEARING");
    hosts.c.wait_all_idle().await;
    let started = Instant::now();
    let (fifth, on) = hosts.call().await;
    let took = started.elapsed();
    println!("new call past a full host and a dead one answered on {on} in {took:?}");
    assert_eq!(on, "host-c");
    assert!(
        took < Duration::from_secs(5),
        "a dead host must not hold new calls up: {took:?}"
    );
    hosts.a.fs.hangup(&fifth.socket_leg, "NORMAL_CLEARING");
    hosts.a.fs.hangup(&first.socket_leg, "NORMAL_CLEARING");
    hosts.a.wait_all_idle().await;
    hosts.c.wait_all_idle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_on_three_hosts_makes_one_call_and_one_message_each() {
    let mut hosts = Hosts::start([&["user1"], &["user1"], &["user1"]], true).await;

    // alice calls user1: it rings on all three hosts, one of them takes it.
    let placed = hosts
        .a
        .net
        .actl(&["call", "--from", "alice", "--to", "user1", "--tone", "1000"])
        .await;
    assert_eq!(placed["legs"].as_array().unwrap().len(), 3, "{placed}");
    let (uuid, _) = hosts.a.any_inbound_channel(&[]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        hosts.a.originated().len(),
        1,
        "one Skype call, one originate"
    );
    let claims = hosts.a.fs.with(|st| st.hash.realm("skypopen_ring"));
    let winner = hosts.variable(&uuid, "skypopen_host").unwrap();
    assert_eq!(claims.len(), 1, "{claims:?}");
    assert_eq!(claims[0].0, "user1|alice");
    assert!(claims[0].1.starts_with(&format!("{winner};")), "{claims:?}");
    hosts.a.fs.hangup(&uuid, "NORMAL_CLEARING");
    hosts
        .a
        .fs
        .wait_for("the ring's claim released", WAIT, |st| {
            st.hash.realm("skypopen_ring").is_empty().then_some(())
        })
        .await;

    // Chats: each message once, whichever host delivers it.
    for n in 0..20 {
        let text = format!("m{n}");
        hosts
            .a
            .net
            .actl(&["chat", "--from", "alice", "--to", "user1", "--text", &text])
            .await;
    }
    wait_messages(&hosts, 20).await;

    // A host dies; the others still deliver every new message once.
    hosts.a.kill_sidecar();
    for n in 20..40 {
        let text = format!("m{n}");
        hosts
            .a
            .net
            .actl(&["chat", "--from", "bob", "--to", "user1", "--text", &text])
            .await;
    }
    let events = wait_messages(&hosts, 40).await;
    let late: Vec<&str> = events[20..]
        .iter()
        .filter_map(|e| header(e, "skypopen_host"))
        .collect();
    assert!(
        late.iter().all(|h| *h == "host-b" || *h == "host-c"),
        "{late:?}"
    );

    // FreeSWITCH's `chat SKYPE|user1|carol|...` reaches every host; exactly one sends it.
    hosts
        .a
        .fs
        .api("chat SKYPE|user1|carol|once from three hosts");
    hosts.b.wait_inbox("carol", "once from three hosts").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let inbox = hosts.b.net.actl(&["inbox", "carol"]).await;
    let copies = inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["body"] == "once from three hosts")
        .count();
    assert_eq!(copies, 1, "{inbox}");
}

/// Waits until `count` MESSAGE events arrived, lets late copies show, and checks that every
/// body `m0`.. arrived exactly once.
async fn wait_messages(hosts: &Hosts, count: usize) -> Vec<FsEvent> {
    let deadline = Instant::now() + WAIT;
    while messages(hosts).len() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} messages arrived",
            messages(hosts).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = messages(hosts);
    let mut bodies: Vec<String> = events
        .iter()
        .map(|e| e.body.clone().unwrap_or_default())
        .collect();
    bodies.sort();
    let mut expected: Vec<String> = (0..count).map(|n| format!("m{n}")).collect();
    expected.sort();
    assert_eq!(bodies, expected, "every message exactly once");
    events
}
