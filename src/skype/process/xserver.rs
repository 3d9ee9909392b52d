//! X servers for the clients: reuse one that already answers on the display, else start
//! Xvfb there. All X calls are blocking (x11rb), so they run on blocking threads.

use super::child::{self, Spec};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::process::Child;

#[derive(Debug, thiserror::Error)]
pub enum XError {
    #[error(
        "display {0:?} is not local (\":N\"): cannot start an X server for it, and none answers"
    )]
    NotLocal(String),
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("X server for {display} exited during start-up ({status})")]
    Exited { display: String, status: String },
    #[error("X server for {display} did not accept connections within {seconds} s")]
    Timeout { display: String, seconds: u64 },
}

/// The X server an interface's client runs on.
pub enum XServer {
    /// Started and owned by the supervisor.
    Owned(Child),
    /// Already running when the supervisor came (started by someone else).
    Foreign,
}

impl XServer {
    pub fn pid(&self) -> Option<u32> {
        match self {
            XServer::Owned(child) => child.id(),
            XServer::Foreign => None,
        }
    }
}

/// The display number of a local display (`:N`, `:N.S`, `unix:N`).
pub fn local_number(display: &str) -> Option<u32> {
    let (host, _) = display.rsplit_once(':')?;
    if !(host.is_empty() || host == "unix") {
        return None;
    }
    crate::config::validate::display_number(display)
}

pub fn socket_path(number: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X11-unix/X{number}"))
}

/// Whether an X server accepts connections on `display`, on the runtime (no thread).
pub async fn answers_async(display: &str) -> bool {
    let connect = x11rb_async::rust_connection::RustConnection::connect(Some(display));
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, connect).await,
        Ok(Ok(_))
    )
}

/// A local X server answers a probe in milliseconds; a stopped one never does.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reuses a server that answers on `display`, else starts `program :N args...` and waits
/// (up to `timeout`) until it accepts connections.
pub async fn ensure(
    display: &str,
    program: &str,
    args: &[String],
    timeout: Duration,
) -> Result<XServer, XError> {
    if answers_async(display).await {
        return Ok(XServer::Foreign);
    }
    let number = local_number(display).ok_or_else(|| XError::NotLocal(display.to_string()))?;
    let spec = Spec::new(
        program,
        std::iter::once(format!(":{number}"))
            .chain(args.iter().cloned())
            .collect(),
    );
    let mut server = child::spawn(&spec).await.map_err(|source| XError::Spawn {
        program: program.to_string(),
        source,
    })?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = server.try_wait() {
            return Err(XError::Exited {
                display: display.to_string(),
                status: child::describe(&status),
            });
        }
        if socket_path(number).exists() && answers_async(display).await {
            return Ok(XServer::Owned(server));
        }
        if Instant::now() >= deadline {
            child::terminate(&mut server, Duration::from_secs(1)).await;
            return Err(XError::Timeout {
                display: display.to_string(),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What `_SKYPE_INSTANCE` on the display's root window says (spec 2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instance {
    /// The X server does not answer.
    NoServer,
    /// No property, or it names a window that no longer exists (a crashed client's leftover).
    Absent,
    Present(u32),
}

/// Reads `_SKYPE_INSTANCE` on one display over a connection it keeps between reads, so a
/// liveness poll costs two round trips rather than a new connection and its authority
/// lookup (with 250 displays polled every 2 s, the reconnects were most of an idle
/// sidecar's CPU). A failed read drops the connection; the next read makes a new one.
#[derive(Debug, Default)]
pub struct InstanceProbe {
    open: Option<ProbeConnection>,
}

#[derive(Debug)]
struct ProbeConnection {
    conn: x11rb_async::rust_connection::RustConnection,
    driver: tokio::task::AbortHandle,
    root: u32,
    /// `_SKYPE_INSTANCE`, once some client has created it.
    atom: Option<u32>,
}

impl Drop for ProbeConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

type ProbeError = Box<dyn std::error::Error + Send + Sync>;

impl InstanceProbe {
    pub async fn read(&mut self, display: &str) -> Instance {
        if self.open.is_none() {
            self.open = ProbeConnection::open(display).await;
        }
        let Some(open) = self.open.as_mut() else {
            return Instance::NoServer;
        };
        match tokio::time::timeout(PROBE_TIMEOUT, open.read()).await {
            Ok(Ok(instance)) => instance,
            _ => {
                self.open = None;
                Instance::NoServer
            }
        }
    }
}

impl ProbeConnection {
    async fn open(display: &str) -> Option<ProbeConnection> {
        use x11rb_async::connection::Connection as _;
        let connect = x11rb_async::rust_connection::RustConnection::connect(Some(display));
        let Ok(Ok((conn, screen, drive))) = tokio::time::timeout(PROBE_TIMEOUT, connect).await
        else {
            return None;
        };
        let root = conn.setup().roots.get(screen)?.root;
        let driver = tokio::spawn(drive).abort_handle();
        Some(ProbeConnection {
            conn,
            driver,
            root,
            atom: None,
        })
    }

    async fn read(&mut self) -> Result<Instance, ProbeError> {
        use x11rb_async::protocol::xproto::{AtomEnum, ConnectionExt as _};
        let conn = &self.conn;
        if self.atom.is_none() {
            let atom = conn
                .intern_atom(true, b"_SKYPE_INSTANCE")
                .await?
                .reply()
                .await?
                .atom;
            self.atom = (atom != 0).then_some(atom);
        }
        let Some(atom) = self.atom else {
            return Ok(Instance::Absent);
        };
        let reply = conn
            .get_property(false, self.root, atom, AtomEnum::ANY, 0, 1)
            .await?
            .reply()
            .await?;
        let window = match reply.value32().and_then(|mut v| v.next()) {
            Some(window) if reply.format == 32 && reply.value_len == 1 => window,
            _ => return Ok(Instance::Absent),
        };
        let attributes = conn.get_window_attributes(window).await?;
        Ok(match attributes.reply().await {
            Ok(_) => Instance::Present(window),
            Err(_) => Instance::Absent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_displays_can_be_started() {
        assert_eq!(local_number(":101"), Some(101));
        assert_eq!(local_number(":7.0"), Some(7));
        assert_eq!(local_number("unix:3"), Some(3));
        assert_eq!(local_number("remote:101"), None);
        assert_eq!(local_number("101"), None);
    }
}
