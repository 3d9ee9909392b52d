//! `sk` commands arriving from FreeSWITCH as `CUSTOM skypopen::command` events, with the output
//! fired back as `CUSTOM skypopen::command_result` carrying the request's `Job-UUID`.

mod support;

use std::time::Duration;
use support::fs_double::wire::Event;
use support::stack::{Stack, StackSpec, WAIT};

fn command_event(fs: &support::fs_double::FsDouble, job: &str, command: &str) -> Event {
    let mut headers = vec![(
        "Event-Subclass".to_string(),
        "skypopen::command".to_string(),
    )];
    headers.extend(fs.with(|state| state.standard("CUSTOM", "test.c", "fire", 1)));
    headers.push(("Job-UUID".into(), job.into()));
    headers.push(("command".into(), command.into()));
    Event {
        headers,
        body: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_command_events_get_their_result_back() {
    let stack = Stack::start(StackSpec::users(&["user1"])).await;
    stack.wait_all_idle().await;

    let event = command_event(&stack.fs, "job-42", "sk list");
    stack.fs.with(|state| state.fire(event));
    let result = stack
        .fs
        .wait_for("command_result for job-42", WAIT, |state| {
            state.recorded.sent_events.iter().find_map(|e| {
                let is_result = e
                    .header("Event-Subclass")
                    .is_some_and(|s| s.eq_ignore_ascii_case("skypopen::command_result"));
                // Header names exactly as sent: scripts match them case-sensitively.
                let job = e
                    .headers
                    .iter()
                    .find(|(name, _)| name == "Job-UUID")
                    .map(|(_, v)| v.as_str());
                (is_result && job == Some("job-42")).then(|| e.body.clone().unwrap_or_default())
            })
        })
        .await;
    assert!(
        result.contains("[interface1]\t  0/0\t     0/0\tIDLE\tIDLE"),
        "{result}\n{}",
        stack.log()
    );

    // A command that is not ours gets FreeSWITCH's not-found text back, not silence.
    let event = command_event(&stack.fs, "job-43", "nosuchcommand");
    stack.fs.with(|state| state.fire(event));
    let result = stack
        .fs
        .wait_for(
            "command_result for job-43",
            Duration::from_secs(20),
            |state| {
                state.recorded.sent_events.iter().find_map(|e| {
                    (e.header("Job-UUID") == Some("job-43"))
                        .then(|| e.body.clone().unwrap_or_default())
                })
            },
        )
        .await;
    assert_eq!(result, "-ERR nosuchcommand Command not found!\n");
}
