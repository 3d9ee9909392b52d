//! Supervision of the emulated world: `skype-sim network` (embedded) and `skype-sim client`
//! per interface, started, restarted and stopped by the supervisor.

mod support;

use support::sim::free_port;

use skypopen::config::Settings;
use skypopen::skype::process::xserver::{Instance, InstanceProbe};
use skypopen::skype::process::{ClientEvent, ClientState, Subject, Supervisor};
use std::path::Path;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(60);

fn free_display() -> u32 {
    let base = 7000 + (std::process::id() % 700) * 3;
    (base..base + 3000)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("a free display number")
}

async fn running(events: &mut broadcast::Receiver<ClientEvent>, subject: &Subject) -> u32 {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(ClientEvent {
                    subject: s,
                    state: ClientState::Running { pid },
                }) if &s == subject => return pid,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("event stream closed"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("{subject:?} not running within {DEADLINE:?}"))
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next()) != Some('Z'))
        .unwrap_or(false)
}

fn kill(pid: u32) {
    // SAFETY: plain syscall on a pid this test observed.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulated_network_and_client_are_started_restarted_and_stopped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let display = free_display();
    let path = dir.path().join("skypopen.toml");
    std::fs::write(
        &path,
        format!(
            "[clients]\nkind = \"sim\"\nnetwork = \"embedded\"\n\
             network_listen = \"127.0.0.1:{}\"\naudio_ports = \"20000-20100\"\nsim_binary = {:?}\nstop_grace_secs = 3\n\
             [state]\ndir = {:?}\n\
             [[interface]]\nid = 1\nname = \"interface1\"\nx11_display = \":{display}\"\n\
             skype_user = \"user1\"\n",
            free_port(),
            env!("CARGO_BIN_EXE_skype-sim"),
            dir.path()
        ),
    )
    .expect("config");
    // audio_ports is moved below the ephemeral range the network's free port comes from:
    // `check` rejects a service port inside the audio range.
    let settings = Settings::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let cancel = CancellationToken::new();
    let handle = Supervisor::start(&settings, cancel.clone());
    let mut events = handle.subscribe();
    let iface = Subject::Interface("interface1".into());

    let network = running(&mut events, &Subject::Network).await;
    let client = running(&mut events, &iface).await;
    let display_name = format!(":{display}");
    assert!(matches!(
        InstanceProbe::default().read(&display_name).await,
        Instance::Present(_)
    ));

    kill(client);
    let client = running(&mut events, &iface).await;
    assert!(alive(client));

    kill(network);
    let network = running(&mut events, &Subject::Network).await;
    assert!(alive(network));

    cancel.cancel();
    tokio::time::timeout(DEADLINE, handle.stopped())
        .await
        .expect("supervisor stops");
    assert!(!alive(client) && !alive(network));
    assert_eq!(
        InstanceProbe::default().read(&display_name).await,
        Instance::NoServer
    );
}
