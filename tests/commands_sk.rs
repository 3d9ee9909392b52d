//! The `sk` / `skypopen` / `skypopen_chat` family against a live sidecar with emulated
//! clients, compared byte for byte with the golden outputs written from spec 9.

mod support;

use support::sidecar::{EslConn, Sidecar, PASSWORD};

fn golden(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/sk")
        .join(format!("{name}.golden"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sk_family_outputs_match_the_goldens() {
    let sidecar = Sidecar::start(&[("interface1", "user1"), ("interface2", "user2")]);
    sidecar.wait_idle(2).await;

    for (command, name) in [
        ("sk", "sk_no_args"),
        ("sk list", "sk_list_two_idle"),
        ("sk console interface", "sk_console_prefix_not_found"),
        ("sk console", "sk_console_no_arg"),
        ("sk remove", "sk_remove_no_arg"),
        ("sk GET CURRENTUSERHANDLE", "sk_raw_without_console"),
        ("skypopen", "skypopen_no_args"),
        ("skypopen interface1", "skypopen_one_arg"),
        (
            "skypopen interface GET CURRENTUSERHANDLE",
            "skypopen_prefix_not_found",
        ),
        ("skypopen_chat interface1 alice", "skypopen_chat_two_args"),
    ] {
        assert_eq!(sidecar.api(command).await, golden(name), "`{command}`");
    }

    // The console is chosen per connection and raw API text returns the client's reply.
    let mut conn = EslConn::login(sidecar.listener, PASSWORD).await.unwrap();
    assert_eq!(
        conn.api("sk console interface2").await,
        golden("sk_console_interface2")
    );
    assert_eq!(
        conn.api("sk GET CURRENTUSERHANDLE").await,
        "sk console is: |||interface2|||\nCURRENTUSERHANDLE user2\n"
    );
    assert_eq!(
        sidecar.api("sk GET CURRENTUSERHANDLE").await,
        golden("sk_raw_without_console"),
        "another connection has no console"
    );

    assert_eq!(
        sidecar.api("skypopen interface1 GET CURRENTUSERHANDLE").await,
        "Using interface: globals.SKYPOPEN_INTERFACES[1].name=|||interface1|||\nCURRENTUSERHANDLE user1\n"
    );

    let balances = sidecar.api("sk balances").await;
    let mut lines = balances.lines();
    assert_eq!(lines.next(), Some("sk console is NOT yet assigned"));
    assert_eq!(lines.next(), Some("  Name  \tBalance\tCurrency"));
    assert_eq!(lines.next(), Some("  ====  \t=======\t========"));
    for iface in ["interface1", "interface2"] {
        let row = lines.next().unwrap_or_default();
        let cols: Vec<&str> = row.split('\t').collect();
        assert_eq!(cols.len(), 3, "{row:?}");
        assert_eq!(cols[0], format!("  {iface} "));
        assert!(cols[1].parse::<i64>().is_ok(), "balance {row:?}");
        assert_eq!(cols[2].len(), 3, "ISO currency {row:?}");
    }

    let calls = sidecar.api("sk calls").await;
    assert!(calls.ends_with("\nTotal calls: 0\n"), "{calls}");
    assert!(sidecar
        .api("sk help")
        .await
        .contains("sk remove <skype_user>|#<id>|#<name> [force]"));

    // remove by #name, then it is gone from the list; reload brings it back from the file.
    assert_eq!(
        sidecar.api("sk remove #interface2").await,
        "sk console is NOT yet assigned\nsk remove '#interface2' success\n"
    );
    assert!(!sidecar.api("sk list").await.contains("interface2"));
    assert_eq!(
        sidecar.api("sk remove #interface2").await,
        "sk console is NOT yet assigned\nsk remove '#interface2' failed\n"
    );
    let reload = sidecar.api("sk reload").await;
    assert!(reload.contains("interface1: unchanged"), "{reload}");
    assert!(reload.contains("interface2: added"), "{reload}");
    assert!(reload.ends_with("sk reload success\n"), "{reload}");
    sidecar.wait_idle(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skypopen_sk_cli_and_greenswitch_run_sk_list() {
    let sidecar = Sidecar::start(&[("interface1", "user1")]);
    sidecar.wait_idle(1).await;

    let out = skypopen_sk(&sidecar.config, &["list"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("* 1\t[interface1]\t  0/0\t     0/0\tIDLE\tIDLE"),
        "the next hunt's interface is starred: {stdout}"
    );
    // Exit statuses scripts can trust: 1 for a command that failed or is unknown.
    let out = skypopen_sk(&sidecar.config, &["frobnicate"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("-ERR unknown sk command `frobnicate`: `sk help` lists them"),
        "{stdout}"
    );
    let out = skypopen_sk(&sidecar.config, &["GET", "CURRENTUSERHANDLE"]).await;
    assert_eq!(out.status.code(), Some(1), "raw text with no console");
    let out = skypopen_sk(&sidecar.config, &["remove", "#nosuch"]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = skypopen_sk(&sidecar.config, &["calls"]).await;
    assert_eq!(out.status.code(), Some(0));
    // A one-shot console from a shell.
    let out = skypopen_sk(
        &sidecar.config,
        &["--interface", "interface1", "GET", "CURRENTUSERHANDLE"],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("CURRENTUSERHANDLE user1"), "{stdout}");
    let out = skypopen_sk(
        &sidecar.config,
        &["-i", "nosuch", "GET", "CURRENTUSERHANDLE"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));

    // One screen; no FreeSWITCH here, so not healthy (exit 1), and it says why.
    let out = skypopen_cli(&sidecar.config, &["status"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("DOWN  FreeSWITCH event socket at "),
        "{stdout}"
    );
    assert!(stdout.contains("Interfaces  1 (1 usable)"), "{stdout}");
    assert!(stdout.contains("\nHost        sidecar-test\n"), "{stdout}");
    assert!(
        stdout.contains("  interface1     user1          IDLE"),
        "{stdout}"
    );
    assert!(stdout.contains("Calls       0 up"), "{stdout}");
    let out = skypopen_cli(&sidecar.config, &["status", "--json"]).await;
    let status: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("status --json is JSON");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(status["healthy"], false);
    assert_eq!(status["freeswitch"]["connected"], false);
    assert_eq!(status["host"], "sidecar-test");
    assert_eq!(status["interfaces"][0]["name"], "interface1");
    assert_eq!(status["interfaces"][0]["state"], "IDLE");
    assert_eq!(status["calls"].as_array().map(Vec::len), Some(0));

    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/greenswitch_sk.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(sidecar.listener.ip().to_string())
        .arg(sidecar.listener.port().to_string())
        .arg(PASSWORD)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("[interface1]"),
        "greenswitch sk list failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A wrong password is refused with a clear message and a non-zero exit.
    let bad = sidecar.dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&sidecar.config)
        .unwrap()
        .replace(PASSWORD, "wrong");
    std::fs::write(&bad, text).unwrap();
    let out = skypopen_sk(&bad, &["list"]).await;
    assert_eq!(out.status.code(), Some(2), "could not run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused the password"), "{stderr}");
    // Loopback is an admin address: 20 wrong passwords never lock the operator out.
    for _ in 0..19 {
        assert_eq!(skypopen_sk(&bad, &["list"]).await.status.code(), Some(2));
    }
    let out = skypopen_sk(&sidecar.config, &["list"]).await;
    assert_eq!(out.status.code(), Some(0), "after 20 wrong passwords");

    // 500 connections that never log in: the operator still gets an answer within 1 s.
    let mut flood = Vec::new();
    for _ in 0..500 {
        flood.push(
            tokio::net::TcpStream::connect(sidecar.listener)
                .await
                .expect("connect"),
        );
    }
    let asked = std::time::Instant::now();
    let out = skypopen_sk(&sidecar.config, &["list"]).await;
    let took = asked.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < std::time::Duration::from_secs(1), "took {took:?}");
    drop(flood);
}

/// `skypopen --config <config> sk <args>`.
async fn skypopen_sk(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["sk"];
    all.extend_from_slice(args);
    skypopen_cli(config, &all).await
}

/// `skypopen --config <config> <args>`.
async fn skypopen_cli(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_skypopen"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SKYPOPEN_LISTENER_PASSWORD")
        .output()
        .await
        .expect("skypopen sk runs")
}
