//! Chats and commands through a real FreeSWITCH: a Skype chat becomes the switch's MESSAGE
//! event, UTF-8 intact; the switch's own `chat SKYPE|...`, `skypopen_chat` on the listener and
//! a CUSTOM `skypopen::command` fired into the switch each reach a Skype party; the real
//! `fs_cli` of the switch's build runs the `sk` family on the listener. Without a switch each
//! test says so in one line.
mod support;

use support::real_stack::{RealStack, StackSpec, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_cross_the_real_switch_both_ways_with_utf8_intact() {
    let Some(stack) = RealStack::start(
        "chats_cross_the_real_switch_both_ways_with_utf8_intact",
        StackSpec::users(&["user1"]),
        |_| {},
    )
    .await
    else {
        return;
    };
    // Skype → FreeSWITCH: one MESSAGE event, as FreeSWITCH itself decodes it.
    let text = "héllo ✓ 日本語 👍 100% & more";
    let sent = stack
        .net
        .actl(&["chat", "--from", "carol", "--to", "user1", "--text", text])
        .await;
    let id = sent["message"].as_u64().expect("message id").to_string();
    let message = stack
        .fs
        .events
        .wait("the chat's MESSAGE", WAIT, |e| {
            e.name() == "MESSAGE" && e.body.trim_end_matches('\n') == text
        })
        .await;
    for (name, value) in [
        ("proto", "skype"),
        ("login", "interface1"),
        ("from", "carol"),
        ("to", "user1"),
        ("id", id.as_str()),
        ("from_user", "carol"),
    ] {
        assert_eq!(message.get(name), Some(value), "header {name}: {message:?}");
    }
    let copies = stack
        .fs
        .events
        .all()
        .iter()
        .filter(|e| e.name() == "MESSAGE" && e.get("id") == Some(id.as_str()))
        .count();
    assert_eq!(copies, 1, "one MESSAGE per chat");

    // FreeSWITCH → Skype, three ways. The switch's own `chat` answers "Not Sent" (no module
    // registers SKYPE) but fires the event the sidecar delivers.
    let reply = stack
        .fs
        .api("chat SKYPE|user1|alice|héllo from chat ✓")
        .await;
    assert!(reply.contains("Not Sent"), "{reply}");
    let got = stack.wait_inbox("alice", "héllo from chat ✓").await;
    assert_eq!(got["from_handle"], "user1", "{got}");

    let reply = stack
        .api("skypopen_chat interface1 bob ünïcödé from the listener")
        .await;
    assert!(!reply.starts_with("-ERR"), "{reply}");
    stack.wait_inbox("bob", "ünïcödé from the listener").await;

    let reply = stack
        .fs
        .sendevent(
            "CUSTOM",
            &[
                ("Event-Subclass", "skypopen::command"),
                ("Job-UUID", "real-job-1"),
                ("command", "skypopen_chat interface1 dave — from an event"),
            ],
            "",
        )
        .await;
    assert!(reply.starts_with("+OK"), "{reply}");
    let result = stack
        .fs
        .events
        .wait("skypopen::command_result for real-job-1", WAIT, |e| {
            e.get("Event-Subclass") == Some("skypopen::command_result")
                && e.get("Job-UUID") == Some("real-job-1")
        })
        .await;
    assert!(!result.body.starts_with("-ERR"), "{}", result.body);
    stack.wait_inbox("dave", "— from an event").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_fs_cli_runs_the_sk_family_on_the_listener() {
    let Some(stack) = RealStack::start(
        "the_real_fs_cli_runs_the_sk_family_on_the_listener",
        StackSpec::users(&["user1", "user2"]),
        |_| {},
    )
    .await
    else {
        return;
    };
    let run = |command: &str| stack.fs.fs_cli(stack.listener, "ClueCon", command);
    let (ok, list) = run("sk list");
    assert!(ok, "{list}");
    assert!(
        list.contains("[interface1]") && list.contains("[interface2]"),
        "{list}"
    );
    let (ok, balances) = run("sk balances");
    assert!(ok && balances.contains("interface1"), "{balances}");
    let (ok, reply) = run("skypopen interface2 GET CURRENTUSERHANDLE");
    assert!(ok && reply.contains("CURRENTUSERHANDLE user2"), "{reply}");
    let (ok, reply) = run("skypopen_chat interface1 alice from fs_cli");
    assert!(ok && !reply.starts_with("-ERR"), "{reply}");
    stack.wait_inbox("alice", "from fs_cli").await;
    // A wrong password: fs_cli is refused.
    let (ok, _) = stack
        .fs
        .fs_cli(stack.listener, "not-the-password", "sk list");
    assert!(!ok, "fs_cli with a wrong password succeeded");
}

/// `sk`, `skypopen` and `skypopen_chat` typed in fs_cli connected to FreeSWITCH itself, as with
/// the in-process module: `lua/skypopen.lua` with the shipped alias lines carries them to the
/// sidecar as `skypopen::command` events and prints the result; with no sidecar it says so
/// within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sk_typed_in_fs_cli_on_the_switch_s_own_port_reaches_the_sidecar() {
    let Some(mut stack) = RealStack::start(
        "sk_typed_in_fs_cli_on_the_switch_s_own_port_reaches_the_sidecar",
        StackSpec::users(&["user1"]),
        |_| {},
    )
    .await
    else {
        return;
    };
    let esl = stack.fs.esl;
    let run = |command: &str| stack.fs.fs_cli(esl, "ClueCon", command);
    // The README's install steps, as written.
    let (_, script_dir) = run("global_getvar script_dir");
    let script_dir = std::path::PathBuf::from(script_dir.trim());
    assert!(
        script_dir.starts_with(stack.fs.dir.path()),
        "the test switch's own scripts folder: {script_dir:?}"
    );
    std::fs::create_dir_all(&script_dir).expect("script_dir");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("lua/skypopen.lua");
    std::fs::copy(&script, script_dir.join("skypopen.lua")).expect("install the script");
    for word in ["sk", "skypopen", "skypopen_chat"] {
        let (ok, reply) = run(&format!("alias stickyadd {word} lua skypopen.lua {word}"));
        assert!(ok && reply.contains("+OK"), "{reply}");
    }
    let (ok, reply) = run("sk list");
    assert!(ok, "{reply}");
    assert!(reply.contains("[interface1]"), "{reply}");
    let (_, reply) = run("skypopen interface1 GET CURRENTUSERHANDLE");
    assert!(reply.contains("CURRENTUSERHANDLE user1"), "{reply}");
    let (_, reply) = run("skypopen_chat interface1 alice typed in the switch's console");
    assert!(!reply.contains("-ERR"), "{reply}");
    stack
        .wait_inbox("alice", "typed in the switch's console")
        .await;

    stack.stop_sidecar();
    let asked = std::time::Instant::now();
    let (_, reply) = stack.fs.fs_cli(esl, "ClueCon", "sk list");
    let took = asked.elapsed();
    assert!(
        reply.contains("-ERR no skypopen sidecar answered `sk list` within 1500 ms"),
        "{reply}"
    );
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
}
