//! More interfaces than the original module's 63 slots on one sidecar: 70 clients of 70
//! accounts (the emulator made to have them), the last one with id 4095.

mod support;

use std::time::Instant;
use support::sim::TEST_TIMINGS;
use support::stack::{Stack, StackSpec, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seventy_interfaces_with_ids_past_63_log_in_carry_a_call_and_are_removed() {
    const COUNT: usize = 70;
    let users: Vec<String> = (1..=COUNT).map(|n| format!("user{n}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let mut spec = StackSpec::users(&refs);
    spec.interfaces[COUNT - 1].id = Some(4095);
    spec.network_args = TEST_TIMINGS.iter().map(|s| s.to_string()).collect();
    spec.network_args
        .extend(["--accounts".to_string(), COUNT.to_string()]);
    let started = Instant::now();
    // Returns once every interface is IDLE.
    let stack = Stack::start(spec).await;
    println!(
        "{COUNT} interfaces IDLE {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );
    // The X11 links share the runtime: no thread per display.
    let pid = stack.sidecar_pid();
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0);
    println!("sidecar threads with {COUNT} interfaces: {threads}");
    assert!(
        threads > 0 && threads < 32,
        "{threads} threads for {COUNT} links"
    );

    let rows = stack.interfaces().await;
    assert_eq!(rows.len(), COUNT, "{rows:?}");
    let last = rows
        .iter()
        .find(|r| r.id == 4095)
        .expect("slot 4095 listed");
    assert_eq!(
        (last.name.as_str(), last.state.as_str()),
        ("interface70", "IDLE")
    );
    let list = stack.api("sk list").await;
    assert!(
        list.contains(&format!("Total Interfaces: {COUNT} ")),
        "{list}"
    );

    // user70 has one client, behind slot 4095: its call reaches FreeSWITCH from there.
    stack
        .net
        .remote_call(&["--from", "alice", "--to", "user70", "--tone", "440"])
        .await;
    let uuid = stack.inbound_channel("interface70", &[]).await;
    stack.heard(&uuid, 0.3).await;
    stack.fs.hangup(&uuid, "NORMAL_CLEARING");
    stack.fs.wait_hangup(&uuid, WAIT).await;
    let row = stack.wait_idle("interface70").await;
    assert_eq!(
        (row.id, row.ib_failed, row.ib_total),
        (4095, 0, 1),
        "{row:?}"
    );

    let reply = stack.api("sk remove #4095").await;
    assert!(reply.contains("sk remove '#4095' success"), "{reply}");
    let rows = stack.interfaces().await;
    assert_eq!(rows.len(), COUNT - 1);
    assert!(rows.iter().all(|r| r.id != 4095));
}
