//! Call flows at their edges: a Skype caller giving up while FreeSWITCH still rings, a hostile
//! caller name, the client losing the Skype network mid-call, and FreeSWITCH hanging up before
//! Skype rang. Each test checks what both ends saw and that the interface recovers.
mod support;

use support::stack::{Media, Stack, StackSpec, WAIT};

/// The A-leg the sidecar originated for an incoming Skype call (exists while it rings).
async fn originated_leg(stack: &Stack) -> String {
    stack
        .fs
        .wait_for("the originate of the incoming call", WAIT, |st| {
            st.channels.values().find_map(|c| {
                (c.variable("skypopen_call_id").is_some()
                    && c.variable("loopback_leg") == Some("A"))
                .then(|| c.uuid.clone())
            })
        })
        .await
}

/// The `{...}` block of a dial string, split into `name=value` items (commas inside quotes
/// belong to the value, as FreeSWITCH reads them).
fn variable_block(line: &str) -> Vec<(String, String)> {
    let start = line.find('{').expect("a variable block");
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for ch in line[start + 1..].chars() {
        match ch {
            '\'' => {
                quoted = !quoted;
                current.push(ch);
            }
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            '}' if !quoted => {
                items.push(std::mem::take(&mut current));
                break;
            }
            c => current.push(c),
        }
    }
    items
        .into_iter()
        .map(|item| {
            let (k, v) = item.split_once('=').unwrap_or((item.as_str(), ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skype_caller_hanging_up_while_freeswitch_rings_cancels_the_originate() {
    let stack = Stack::start(StackSpec::users(&["user1"])).await;
    stack.fs.never_answer("5000");
    let net_call = stack
        .net
        .remote_call(&["--from", "alice", "--to", "user1"])
        .await;
    let leg = originated_leg(&stack).await;
    let rows = stack
        .wait_list("interface1 busy with the ring", |rows| {
            rows[0].state != "IDLE" && rows[0].uuid == leg
        })
        .await;
    assert_eq!(rows[0].ib_total, 1, "{rows:?}");

    stack.net.actl(&["hangup", &net_call]).await;
    let cause = stack.fs.wait_hangup(&leg, WAIT).await;
    assert_eq!(cause, "ORIGINATOR_CANCEL");
    let kill = format!("uuid_kill {leg} ORIGINATOR_CANCEL");
    let api = stack.fs.recorded().api;
    assert!(
        api.iter().any(|l| l.trim() == kill),
        "no `{kill}` among {api:?}"
    );
    assert!(
        stack.fs.channel(&leg).is_some_and(|c| c.socket.is_none()),
        "the socket never connected"
    );
    let row = stack.wait_idle("interface1").await;
    assert_eq!((row.ib_failed, row.ib_total), (1, 1));
    stack.wait_no_calls().await;
    stack.wait_network_idle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_display_name_arrives_as_one_inert_variable() {
    let stack = Stack::start(StackSpec::users(&["user1"])).await;
    let net_call = stack
        .net
        .remote_call(&["--from", "mallory", "--to", "user1"])
        .await;
    let uuid = stack.inbound_channel("interface1", &[]).await;

    let api = stack.fs.recorded().api;
    let originates: Vec<&String> = api.iter().filter(|l| l.starts_with("originate ")).collect();
    assert_eq!(originates.len(), 1, "{api:?}");
    let line = originates[0];
    assert_eq!(line.lines().count(), 1, "one line: {line:?}");
    assert_eq!(line.matches('{').count(), 1, "{line}");
    assert_eq!(line.matches('}').count(), 1, "{line}");
    let names: Vec<String> = variable_block(line).into_iter().map(|(k, _)| k).collect();
    let expected = [
        "origination_uuid",
        "origination_caller_id_number",
        "origination_caller_id_name",
        "skypopen_interface",
        "skypopen_call_id",
        "skype_user",
        "skypopen_host",
        "send_silence_when_idle",
    ];
    assert_eq!(names, expected, "{line}");

    let channel = stack.fs.channel(&uuid).unwrap();
    assert_eq!(
        channel.variable("origination_caller_id_name"),
        Some("x,api_on_answer=system touch /tmp/p,y=")
    );
    assert_eq!(
        channel.profile.orig_caller_id_name.as_deref(),
        Some("x,api_on_answer=system touch /tmp/p,y=")
    );
    assert_eq!(
        channel.profile.orig_caller_id_number.as_deref(),
        Some("mallory")
    );
    assert_eq!(channel.variable("api_on_answer"), None);
    assert_eq!(channel.variable("y"), None);

    // Hung up once answered on both sides (earlier it is a caller giving up).
    stack
        .wait_list("interface1 UP", |rows| rows[0].state == "UP")
        .await;
    stack.net.actl(&["hangup", &net_call]).await;
    let cause = stack.fs.wait_hangup(&uuid, WAIT).await;
    assert_eq!(cause, "NORMAL_CLEARING");
    stack.wait_idle("interface1").await;
    stack.wait_no_calls().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_skype_network_mid_call_ends_it_and_the_interface_recovers_over_audio_fork() {
    losing_the_skype_network_mid_call_ends_it_and_the_interface_recovers(Media::AudioFork).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_skype_network_mid_call_ends_it_and_the_interface_recovers_over_unicast() {
    losing_the_skype_network_mid_call_ends_it_and_the_interface_recovers(Media::Unicast).await;
}

async fn losing_the_skype_network_mid_call_ends_it_and_the_interface_recovers(media: Media) {
    let stack = Stack::start(StackSpec::users(&["user1"]).media(media)).await;
    let call = stack.dial("echo123");
    stack.fs.wait_answered(&call.socket_leg, WAIT).await;
    stack.heard(&call.socket_leg, 0.5).await;
    stack
        .wait_list("interface1 UP", |rows| rows[0].state == "UP")
        .await;

    stack.net.actl(&["fault", "user1", "offline", "5000"]).await;
    let cause = stack.fs.wait_hangup(&call.socket_leg, WAIT).await;
    assert_eq!(cause, "NETWORK_OUT_OF_ORDER");
    stack
        .wait_list("interface1 DOWN while offline", |rows| {
            rows[0].state == "DOWN"
        })
        .await;
    // Offline interfaces are out of the hunt.
    let refused = stack.dial("echo123");
    let cause = stack.fs.wait_hangup(&refused.socket_leg, WAIT).await;
    assert_eq!(cause, "NORMAL_CIRCUIT_CONGESTION");

    stack.wait_idle("interface1").await;
    stack.wait_no_calls().await;
    stack.wait_network_idle().await;
    let again = stack.dial("echo123");
    stack.fs.wait_answered(&again.socket_leg, WAIT).await;
    stack.fs.hangup(&again.caller_leg, "NORMAL_CLEARING");
    stack.wait_idle("interface1").await;
    stack.wait_no_calls().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeswitch_hanging_up_before_skype_rang_leaves_nothing_behind() {
    let stack = Stack::start(StackSpec::users(&["user1"])).await;
    let call = stack.dial("echo123");
    let leg = call.socket_leg.clone();
    stack
        .fs
        .wait_for("the socket to connect", WAIT, |st| {
            st.channels
                .get(&leg)
                .and_then(|c| c.socket.as_ref())
                .filter(|b| b.connected)
                .map(|_| ())
        })
        .await;
    stack.fs.hangup(&call.caller_leg, "ORIGINATOR_CANCEL");
    let cause = stack.fs.wait_hangup(&call.socket_leg, WAIT).await;
    assert_eq!(cause, "ORIGINATOR_CANCEL");
    assert!(!stack.fs.channel(&leg).unwrap().is_answered());

    // echo123 answers whatever reaches it: a Skype call left behind would stay up.
    stack.wait_idle("interface1").await;
    stack.wait_no_calls().await;
    stack.wait_network_idle().await;

    let again = stack.dial("echo123");
    stack.fs.wait_answered(&again.socket_leg, WAIT).await;
    stack
        .wait_list("interface1 UP", |rows| rows[0].state == "UP")
        .await;
    stack.fs.hangup(&again.caller_leg, "NORMAL_CLEARING");
    stack.wait_idle("interface1").await;
    stack.wait_no_calls().await;
    stack.wait_network_idle().await;
}
