//! Supervision of the processes behind the interfaces (`[clients] manage = true`): per
//! interface an X server (reused when one already answers on the display, else Xvfb) and a
//! client (`skype-sim client`, or a real client's command line with credentials piped on
//! stdin), plus `skype-sim network` when the network is embedded.
//!
//! Each interface is independent: one that cannot start never delays or stops the others.
//! Exits and hangs are restarted with capped exponential backoff; every state change is
//! published so that the gateway can mark interfaces down. Children die with the sidecar
//! (PR_SET_PDEATHSIG) and are stopped with SIGTERM, then SIGKILL, on cancel.

mod backoff;
pub mod child;
pub mod client;
mod runner;
pub mod xserver;

pub use backoff::Backoff;

use crate::config::{ClientKind, ClientsSettings, InterfaceConfig, Settings};
use std::collections::HashMap;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What a supervised process is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientState {
    /// Its X server and process are being started.
    Starting,
    /// Ready: the client published `_SKYPE_INSTANCE` (the network accepts connections).
    Running { pid: u32 },
    /// It ended, could not start, or was stopped for hanging; `status` when a process exited.
    Exited {
        status: Option<ExitStatus>,
        reason: String,
    },
    /// The next start comes after `delay`.
    Backoff { delay: Duration },
    /// Supervision ended (cancel or `stop`); nothing of it runs any more.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The emulated network (`skype-sim network`).
    Network,
    /// An interface, by name.
    Interface(String),
}

#[derive(Debug, Clone)]
pub struct ClientEvent {
    pub subject: Subject,
    pub state: ClientState,
}

#[derive(Debug, Clone, Copy)]
enum Control {
    Restart,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SupervisorError {
    #[error("interface {0:?} is not supervised")]
    Unknown(String),
    #[error("interface {0:?} is already supervised")]
    AlreadySupervised(String),
    #[error("clients are not managed here ([clients] manage = false)")]
    NotManaged,
}

/// Buffer of the event stream; a receiver that falls further behind loses the oldest events
/// (and can read the current state with [`SupervisorHandle::state`]).
const EVENT_BUFFER: usize = 256;

struct Slot {
    control: mpsc::Sender<Control>,
    cancel: CancellationToken,
    state: watch::Receiver<ClientState>,
    task: Option<JoinHandle<()>>,
}

struct Inner {
    clients: ClientsSettings,
    cancel: CancellationToken,
    events: broadcast::Sender<ClientEvent>,
    network: Mutex<Option<Slot>>,
    interfaces: Mutex<HashMap<String, Slot>>,
}

pub struct Supervisor;

impl Supervisor {
    /// Starts supervising every interface of `settings` (nothing when `manage = false`), and
    /// the embedded network when configured. Must be called within a tokio runtime. Everything
    /// stops when `cancel` is cancelled; await [`SupervisorHandle::stopped`] after that.
    pub fn start(settings: &Settings, cancel: CancellationToken) -> SupervisorHandle {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let handle = SupervisorHandle {
            inner: Arc::new(Inner {
                clients: settings.clients.clone(),
                cancel,
                events,
                network: Mutex::new(None),
                interfaces: Mutex::new(HashMap::new()),
            }),
        };
        let clients = &settings.clients;
        if !clients.manage {
            return handle;
        }
        if clients.kind == ClientKind::Sim && clients.embedded_network() {
            let accounts = client::sim_accounts_needed(&settings.interfaces);
            let slot = handle.spawn(runner::Job::Network { accounts }, None);
            *lock(&handle.inner.network) = Some(slot);
        }
        for iface in &settings.interfaces {
            // Names are unique in validated settings.
            let _ = handle.add(iface.clone());
        }
        handle
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Shared access to a running supervisor; cheap to clone.
#[derive(Clone)]
pub struct SupervisorHandle {
    inner: Arc<Inner>,
}

impl SupervisorHandle {
    fn spawn(&self, job: runner::Job, network: Option<watch::Receiver<ClientState>>) -> Slot {
        let (control_tx, control_rx) = mpsc::channel(4);
        let (state_tx, state_rx) = watch::channel(ClientState::Starting);
        let cancel = self.inner.cancel.child_token();
        let runner = runner::Runner {
            job,
            clients: self.inner.clients.clone(),
            events: self.inner.events.clone(),
            state: state_tx,
            control: control_rx,
            cancel: cancel.clone(),
            network,
            probe: Default::default(),
        };
        Slot {
            control: control_tx,
            cancel,
            state: state_rx,
            task: Some(tokio::spawn(runner.run())),
        }
    }

    /// Every state change of every supervised process, from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.inner.events.subscribe()
    }

    /// The current state of an interface's client.
    pub fn state(&self, interface: &str) -> Option<ClientState> {
        lock(&self.inner.interfaces)
            .get(interface)
            .map(|slot| slot.state.borrow().clone())
    }

    /// The current state of the embedded network, if the supervisor runs one.
    pub fn network_state(&self) -> Option<ClientState> {
        lock(&self.inner.network)
            .as_ref()
            .map(|slot| slot.state.borrow().clone())
    }

    /// Names of the supervised interfaces.
    pub fn interfaces(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.inner.interfaces).keys().cloned().collect();
        names.sort();
        names
    }

    /// Stops the interface's client and starts it again at once (backoff reset).
    pub fn restart(&self, interface: &str) -> Result<(), SupervisorError> {
        let interfaces = lock(&self.inner.interfaces);
        let slot = interfaces
            .get(interface)
            .ok_or_else(|| SupervisorError::Unknown(interface.to_string()))?;
        // A full queue already holds a restart: nothing is lost.
        let _ = slot.control.try_send(Control::Restart);
        Ok(())
    }

    /// Stops supervising the interface: its client and the X server started for it end.
    pub async fn stop(&self, interface: &str) -> Result<(), SupervisorError> {
        let slot = lock(&self.inner.interfaces)
            .remove(interface)
            .ok_or_else(|| SupervisorError::Unknown(interface.to_string()))?;
        slot.cancel.cancel();
        if let Some(task) = slot.task {
            let _ = task.await;
        }
        Ok(())
    }

    /// Starts supervising one more interface (configuration reload).
    pub fn add(&self, iface: InterfaceConfig) -> Result<(), SupervisorError> {
        if !self.inner.clients.manage {
            return Err(SupervisorError::NotManaged);
        }
        let mut interfaces = lock(&self.inner.interfaces);
        if interfaces.contains_key(&iface.name) {
            return Err(SupervisorError::AlreadySupervised(iface.name));
        }
        let network = lock(&self.inner.network)
            .as_ref()
            .map(|slot| slot.state.clone());
        let name = iface.name.clone();
        let slot = self.spawn(runner::Job::Interface(iface), network);
        interfaces.insert(name, slot);
        Ok(())
    }

    /// Resolves when every supervised process has been stopped (after the cancel token given
    /// to [`Supervisor::start`] was cancelled).
    pub async fn stopped(&self) {
        let mut tasks: Vec<JoinHandle<()>> = lock(&self.inner.interfaces)
            .values_mut()
            .filter_map(|slot| slot.task.take())
            .collect();
        tasks.extend(
            lock(&self.inner.network)
                .as_mut()
                .and_then(|s| s.task.take()),
        );
        for task in tasks {
            let _ = task.await;
        }
    }
}
