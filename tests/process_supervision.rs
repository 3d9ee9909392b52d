//! Client supervision against real X servers: restarts after a client or X server dies,
//! independence of interfaces, reuse of a running X server, and a clean stop.
//!
//! The clients are stand-ins (this test binary re-executed as the ignored `standin_client`),
//! which do what the supervisor watches a Skype client for (publish `_SKYPE_INSTANCE` on its
//! display and live as long as the X server does).

mod support;

use skypopen::config::Settings;
use skypopen::skype::process::{
    ClientEvent, ClientState, Subject, Supervisor, SupervisorError, SupervisorHandle,
};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

/// The stand-in client the supervisor runs: this test binary re-executed for this entry alone
/// (`--ignored --exact standin_client`). Ignored, so a plain run never takes it for a test.
#[test]
#[ignore = "not a test: the stand-in client process the supervision tests run"]
fn standin_client() {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{
        AtomEnum, ConnectionExt as _, CreateWindowAux, PropMode, WindowClass,
    };
    use x11rb::wrapper::ConnectionExt as _;
    assert!(
        std::env::var_os("SKYPOPEN_STANDIN_CLIENT").is_some(),
        "not a test: the stand-in client, run by the supervision tests"
    );

    let display = std::env::var("DISPLAY").expect("DISPLAY");
    if std::env::var("SKYPOPEN_STANDIN_BROKEN").ok().as_deref() == Some(display.as_str()) {
        std::process::exit(3);
    }
    // A client whose X server is gone exits, as the real one does.
    let Ok((conn, screen)) = x11rb::connect(Some(&display)) else {
        std::process::exit(1);
    };
    let root = conn.setup().roots[screen].root;
    let window = conn.generate_id().expect("id");
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        window,
        root,
        0,
        0,
        1,
        1,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new(),
    )
    .expect("create window");
    let atom = conn
        .intern_atom(false, b"_SKYPE_INSTANCE")
        .expect("intern")
        .reply()
        .expect("atom")
        .atom;
    conn.change_property32(PropMode::REPLACE, root, atom, AtomEnum::WINDOW, &[window])
        .expect("set property");
    conn.flush().expect("flush");
    // Like the real client: live until the X server goes away.
    while conn.wait_for_event().is_ok() {}
    std::process::exit(1);
}

/// The stand-in sidecar (supervision only) for `children_die_with_a_killed_sidecar`, printing
/// `RUNNING <pid>` for every client that becomes ready.
#[test]
#[ignore = "not a test: the stand-in sidecar process children_die_with_a_killed_sidecar runs"]
fn standin_sidecar() {
    let config = std::env::var_os("SKYPOPEN_STANDIN_SIDECAR")
        .expect("not a test: the stand-in sidecar, run by children_die_with_a_killed_sidecar");
    let settings = Settings::load(Path::new(&config)).expect("config");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let handle = Supervisor::start(&settings, CancellationToken::new());
        let mut events = handle.subscribe();
        while let Ok(event) = events.recv().await {
            if let ClientState::Running { pid } = event.state {
                println!("RUNNING {pid}");
            }
        }
    });
}

/// This test binary, re-executed to run only the stand-in entry `name`.
fn standin_command(name: &str) -> Vec<String> {
    let exe = std::env::current_exe().expect("current exe");
    vec![
        exe.display().to_string(),
        "--ignored".into(),
        "--exact".into(),
        name.into(),
        "--nocapture".into(),
        "--test-threads=1".into(),
    ]
}

/// A display number nobody uses, distinct per test and per process.
fn free_display() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 6000 + (std::process::id() % 700) * 5;
    loop {
        let n = base + NEXT.fetch_add(1, Ordering::Relaxed);
        if !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        {
            return n;
        }
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    settings: Settings,
}

/// Settings for `displays.len()` interfaces named `if0`, `if1`... running stand-ins; the
/// interface on display `broken` (if any) exits at once.
fn setup(displays: &[u32], broken: Option<u32>) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).expect("creds");
    let mut command = vec!["env".to_string(), "SKYPOPEN_STANDIN_CLIENT=1".to_string()];
    if let Some(b) = broken {
        command.push(format!("SKYPOPEN_STANDIN_BROKEN=:{b}"));
    }
    command.extend(standin_command("standin_client"));
    let mut text = format!(
        "[clients]\nkind = \"skype\"\ncredentials_dir = {creds:?}\ncommand = {command:?}\n\
         ready_timeout_secs = 30\nstop_grace_secs = 2\n\
         [state]\ndir = {:?}\n",
        dir.path()
    );
    for (i, d) in displays.iter().enumerate() {
        std::fs::write(creds.join(format!("user{i}")), "pw\n").expect("pw");
        text.push_str(&format!(
            "[[interface]]\nid = {}\nname = \"if{i}\"\nx11_display = \":{d}\"\nskype_user = \"user{i}\"\n",
            i + 1
        ));
    }
    let path = dir.path().join("skypopen.toml");
    std::fs::write(&path, text).expect("config");
    let settings = Settings::load(&path).unwrap_or_else(|e| panic!("{e}"));
    Setup {
        _dir: dir,
        settings,
    }
}

async fn next_matching(
    events: &mut broadcast::Receiver<ClientEvent>,
    what: &str,
    mut accept: impl FnMut(&ClientEvent) -> bool,
) -> ClientEvent {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) if accept(&event) => return event,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("event stream closed"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("no event within {DEADLINE:?}: {what}"))
}

async fn running(events: &mut broadcast::Receiver<ClientEvent>, iface: &str) -> u32 {
    let subject = Subject::Interface(iface.to_string());
    let event = next_matching(events, &format!("{iface} running"), |e| {
        e.subject == subject && matches!(e.state, ClientState::Running { .. })
    })
    .await;
    match event.state {
        ClientState::Running { pid } => pid,
        _ => unreachable!(),
    }
}

/// The live X server holding `display`'s lock file. A killed server leaves its lock behind,
/// and a server started with `-displayfd` may take the number without rewriting it, so a
/// lock naming a dead process names nobody.
fn x_server_pid(display: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/tmp/.X{display}-lock"))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .filter(|pid| alive(*pid))
}

fn alive(pid: u32) -> bool {
    // A zombie still has a /proc entry but is gone for every purpose here.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
            state != Some(Some('Z'))
        })
        .unwrap_or(false)
}

fn kill(pid: u32) {
    // SAFETY: plain syscall on a pid this test observed.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

async fn shut_down(handle: &SupervisorHandle, cancel: &CancellationToken) {
    cancel.cancel();
    tokio::time::timeout(DEADLINE, handle.stopped())
        .await
        .expect("supervisor stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_is_restarted_and_restart_works() {
    let d = free_display();
    let s = setup(&[d], None);
    let cancel = CancellationToken::new();
    let handle = Supervisor::start(&s.settings, cancel.clone());
    let mut events = handle.subscribe();
    let first = running(&mut events, "if0").await;
    kill(first);
    let second = running(&mut events, "if0").await;
    assert_ne!(first, second);
    assert!(!alive(first));

    handle.restart("if0").expect("restart");
    let third = running(&mut events, "if0").await;
    assert_ne!(second, third);
    assert!(!alive(second));
    assert_eq!(
        handle.restart("nope"),
        Err(SupervisorError::Unknown("nope".into()))
    );
    let x = x_server_pid(d).expect("X server lock");
    shut_down(&handle, &cancel).await;
    assert!(!alive(third) && !alive(x));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_x_server_is_restarted_with_its_client() {
    let d = free_display();
    let s = setup(&[d], None);
    let cancel = CancellationToken::new();
    let handle = Supervisor::start(&s.settings, cancel.clone());
    let mut events = handle.subscribe();
    let client = running(&mut events, "if0").await;
    let x = x_server_pid(d).expect("X server lock");
    kill(x);
    let new_client = running(&mut events, "if0").await;
    let new_x = x_server_pid(d).expect("new X server lock");
    assert_ne!(x, new_x);
    assert!(alive(new_x) && alive(new_client));
    assert!(!alive(client));
    shut_down(&handle, &cancel).await;
    assert!(!alive(new_x) && !alive(new_client));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_interface_does_not_stop_the_other() {
    let (good, bad) = (free_display(), free_display());
    let s = setup(&[good, bad], Some(bad));
    let cancel = CancellationToken::new();
    let handle = Supervisor::start(&s.settings, cancel.clone());
    let mut events = handle.subscribe();
    let bad_subject = Subject::Interface("if1".into());
    // The broken one fails, backs off, and is tried again ...
    for attempt in 0..2 {
        next_matching(&mut events, &format!("if1 exit {attempt}"), |e| {
            e.subject == bad_subject && matches!(e.state, ClientState::Exited { .. })
        })
        .await;
    }
    // ... while the good one runs.
    let good_pid = match handle.state("if0") {
        Some(ClientState::Running { pid }) => pid,
        _ => running(&mut events, "if0").await,
    };
    assert!(alive(good_pid));
    assert!(matches!(
        handle.state("if1"),
        Some(ClientState::Backoff { .. } | ClientState::Starting | ClientState::Exited { .. })
    ));
    // Stopping one interface leaves the other running.
    handle.stop("if1").await.expect("stop if1");
    assert_eq!(handle.interfaces(), ["if0"]);
    assert!(alive(good_pid));
    shut_down(&handle, &cancel).await;
    assert!(!alive(good_pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_leaves_no_child_process() {
    let displays = [free_display(), free_display()];
    let s = setup(&displays, None);
    let cancel = CancellationToken::new();
    let handle = Supervisor::start(&s.settings, cancel.clone());
    let mut events = handle.subscribe();
    let mut pids = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 2 {
        let e = next_matching(&mut events, "both running", |e| {
            matches!(e.state, ClientState::Running { .. })
        })
        .await;
        if let (Subject::Interface(name), ClientState::Running { pid }) = (e.subject, e.state) {
            seen.insert(name);
            pids.push(pid);
        }
    }
    for d in displays {
        pids.push(x_server_pid(d).expect("X server lock"));
    }
    assert!(pids.iter().all(|p| alive(*p)));
    shut_down(&handle, &cancel).await;
    let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "still running: {left:?}");
    for d in displays {
        assert!(!Path::new(&format!("/tmp/.X11-unix/X{d}")).exists());
    }
    assert_eq!(handle.state("if0"), Some(ClientState::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_x_server_is_reused_and_left_running() {
    let xvfb = support::xvfb::Xvfb::start();
    let s = setup(&[xvfb.number], None);
    let cancel = CancellationToken::new();
    let handle = Supervisor::start(&s.settings, cancel.clone());
    let mut events = handle.subscribe();
    let client = running(&mut events, "if0").await;
    // No second server was started for the display (it would hold the lock file).
    let lock_holder = x_server_pid(xvfb.number);
    assert!(
        lock_holder.is_none() || lock_holder == Some(xvfb.pid()),
        "another X server holds display {}: {lock_holder:?}",
        xvfb.number
    );
    shut_down(&handle, &cancel).await;
    assert!(!alive(client));
    assert!(
        alive(xvfb.pid()),
        "the supervisor stopped an X server it did not start"
    );
}

#[tokio::test]
async fn manage_false_supervises_nothing() {
    let mut s = setup(&[free_display()], None);
    s.settings.clients.manage = false;
    let cancel = CancellationToken::new();
    let handle = Supervisor::start(&s.settings, cancel.clone());
    assert!(handle.interfaces().is_empty());
    assert_eq!(handle.network_state(), None);
    let iface = s.settings.interfaces[0].clone();
    assert_eq!(handle.add(iface), Err(SupervisorError::NotManaged));
    shut_down(&handle, &cancel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_die_with_a_killed_sidecar() {
    use tokio::io::AsyncBufReadExt as _;
    let d = free_display();
    let s = setup(&[d], None);
    let sidecar_command = standin_command("standin_sidecar");
    let mut sidecar = tokio::process::Command::new(&sidecar_command[0])
        .args(&sidecar_command[1..])
        .env("SKYPOPEN_STANDIN_SIDECAR", &s.settings.path)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the stand-in sidecar");
    let stdout = sidecar.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let client = tokio::time::timeout(DEADLINE, async {
        while let Ok(Some(line)) = lines.next_line().await {
            // The harness may have printed "test standin_sidecar ... " on the same line.
            if let Some((_, pid)) = line.split_once("RUNNING ") {
                return pid.trim().parse::<u32>().ok();
            }
        }
        None
    })
    .await
    .expect("a client runs within the deadline")
    .expect("the stand-in sidecar reported a client");
    let x = x_server_pid(d).expect("X server lock");
    assert!(alive(client) && alive(x));

    sidecar.start_kill().expect("SIGKILL the sidecar");
    let _ = sidecar.wait().await;
    let gone = async {
        while alive(client) || alive(x) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(DEADLINE, gone)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "children outlived the sidecar: client {} X server {}",
                alive(client),
                alive(x)
            )
        });
}
