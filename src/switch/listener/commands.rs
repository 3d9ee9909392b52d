//! The `api` / `bgapi` command table. Other parts register their commands (the gateway's
//! `sk` family) next to the built-in `status`, `version`, `hostname` and `switchname`; a
//! handler gets the argument string and the calling connection's context, and answers
//! with the reply text.

use futures_util::FutureExt;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

pub type ApiFuture = Pin<Box<dyn Future<Output = String> + Send + 'static>>;

/// One `api <command> <args>` call.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// The command word, lower-cased.
    pub command: String,
    /// Everything after it, trimmed.
    pub args: String,
    pub session: SessionContext,
    /// True for `bgapi`: the reply goes into a BACKGROUND_JOB event.
    pub background: bool,
}

/// A command. Closures `Fn(ApiRequest) -> ApiFuture` are handlers too.
pub trait ApiHandler: Send + Sync + 'static {
    fn call(&self, request: ApiRequest) -> ApiFuture;
}

impl<F> ApiHandler for F
where
    F: Fn(ApiRequest) -> ApiFuture + Send + Sync + 'static,
{
    fn call(&self, request: ApiRequest) -> ApiFuture {
        self(request)
    }
}

/// Per-connection state handlers may keep (e.g. which interface `sk console` selected).
/// Cloned into background jobs; the values live as long as the connection's clones.
#[derive(Debug, Clone)]
pub struct SessionContext {
    id: u64,
    peer: SocketAddr,
    vars: Arc<Mutex<HashMap<String, String>>>,
}

impl SessionContext {
    pub fn new(id: u64, peer: SocketAddr) -> Self {
        SessionContext {
            id,
            peer,
            vars: Arc::default(),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.vars
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    pub fn set(&self, key: impl Into<String>, value: impl Into<String>) {
        self.vars
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.into(), value.into());
    }

    pub fn remove(&self, key: &str) -> Option<String> {
        self.vars
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key)
    }
}

/// What `status` reports besides uptime and version: one line per fact, e.g. the interfaces
/// the gateway knows so far.
pub trait StatusSource: Send + Sync + 'static {
    fn status_lines(&self) -> Vec<String>;
}

#[derive(Default)]
pub struct CommandTable {
    handlers: RwLock<HashMap<String, Arc<dyn ApiHandler>>>,
}

impl std::fmt::Debug for CommandTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandTable")
            .field("commands", &self.names())
            .finish()
    }
}

impl CommandTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// A table with `status`, `version`, `hostname` and `switchname`. `status` counts
    /// uptime from `started` and appends what `status_source` reports.
    pub fn with_builtins(
        started: Instant,
        hostname: String,
        status_source: Option<Arc<dyn StatusSource>>,
    ) -> Self {
        let table = Self::new();
        table.register("status", move |_request: ApiRequest| -> ApiFuture {
            let text = status_text(started, status_source.as_deref());
            Box::pin(async move { text })
        });
        table.register("version", |_request: ApiRequest| -> ApiFuture {
            Box::pin(async { version_text() })
        });
        let host = hostname.clone();
        table.register("hostname", move |_request: ApiRequest| -> ApiFuture {
            let host = host.clone();
            Box::pin(async move { host })
        });
        table.register("switchname", move |_request: ApiRequest| -> ApiFuture {
            let host = hostname.clone();
            Box::pin(async move { host })
        });
        table
    }

    /// Adds or replaces the command `name` (matched case-insensitively).
    pub fn register(&self, name: &str, handler: impl ApiHandler) {
        self.handlers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_ascii_lowercase(), Arc::new(handler));
    }

    pub fn lookup(&self, name: &str) -> Option<Arc<dyn ApiHandler>> {
        self.handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .handlers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Runs `<command> <args>`; an unknown command answers as FreeSWITCH does. A handler
    /// that panics answers `-ERR <command> failed` instead of taking the connection down.
    pub fn execute(&self, line: &str, session: SessionContext, background: bool) -> ApiFuture {
        let (command, args) = split_command(line);
        match self.lookup(command) {
            Some(handler) => {
                let name = command.to_ascii_lowercase();
                let call = handler.call(ApiRequest {
                    command: name.clone(),
                    args: args.to_string(),
                    session,
                    background,
                });
                Box::pin(async move {
                    match AssertUnwindSafe(call).catch_unwind().await {
                        Ok(output) => output,
                        Err(_) => {
                            tracing::error!(command = %name, "command handler panicked");
                            format!("-ERR {name} failed\n")
                        }
                    }
                })
            }
            None => {
                let text = format!("-ERR {command} Command not found!\n");
                Box::pin(async move { text })
            }
        }
    }
}

/// `status 1` → (`status`, `1`).
pub fn split_command(line: &str) -> (&str, &str) {
    let line = line.trim();
    match line.split_once(' ') {
        Some((command, args)) => (command, args.trim()),
        None => (line, ""),
    }
}

pub fn version_text() -> String {
    format!(
        "skypopen Version {} ({}bit)\n",
        env!("CARGO_PKG_VERSION"),
        usize::BITS
    )
}

/// FreeSWITCH's `status` shape: uptime line, "is ready" line, then the facts.
pub fn status_text(started: Instant, source: Option<&dyn StatusSource>) -> String {
    let elapsed = started.elapsed();
    let seconds = elapsed.as_secs();
    let mut text = format!(
        "UP {} years, {} days, {} hours, {} minutes, {} seconds, {} milliseconds, {} microseconds\n",
        seconds / (365 * 86_400),
        seconds % (365 * 86_400) / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
        elapsed.subsec_millis(),
        elapsed.subsec_micros() % 1000,
    );
    text.push_str(&format!(
        "skypopen (Version {}  {}bit) is ready\n",
        env!("CARGO_PKG_VERSION"),
        usize::BITS
    ));
    match source {
        Some(source) => {
            for line in source.status_lines() {
                text.push_str(line.trim_end_matches('\n'));
                text.push('\n');
            }
        }
        None => text.push_str("0 interface(s) known\n"),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two;

    impl StatusSource for Two {
        fn status_lines(&self) -> Vec<String> {
            vec!["2 interface(s) known".into(), "interface1 IDLE".into()]
        }
    }

    fn session() -> SessionContext {
        SessionContext::new(1, SocketAddr::from(([127, 0, 0, 1], 1)))
    }

    #[tokio::test]
    async fn builtins_and_unknown_commands() {
        let table = CommandTable::with_builtins(Instant::now(), "box".into(), Some(Arc::new(Two)));
        let status = table.execute("status", session(), false).await;
        assert!(status.starts_with("UP 0 years, 0 days, 0 hours, 0 minutes, 0 seconds"));
        assert!(status.contains("skypopen (Version "));
        assert!(status.ends_with("2 interface(s) known\ninterface1 IDLE\n"));
        assert!(table
            .execute("VERSION", session(), false)
            .await
            .starts_with("skypopen Version "));
        assert_eq!(table.execute("hostname", session(), false).await, "box");
        assert_eq!(
            table.execute("foobar x y", session(), false).await,
            "-ERR foobar Command not found!\n"
        );
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_an_error() {
        let table = CommandTable::new();
        table.register("boom", |_request: ApiRequest| -> ApiFuture {
            Box::pin(async { panic!("handler bug") })
        });
        assert_eq!(
            table.execute("boom now", session(), false).await,
            "-ERR boom failed\n"
        );
    }

    #[tokio::test]
    async fn registered_handlers_see_args_and_session_state() {
        let table = CommandTable::new();
        table.register("sk", |request: ApiRequest| -> ApiFuture {
            Box::pin(async move {
                if let Some(console) = request.args.strip_prefix("console ") {
                    request.session.set("console", console);
                }
                format!("console={:?}\n", request.session.get("console"))
            })
        });
        let context = session();
        assert_eq!(
            table
                .execute("sk console interface2", context.clone(), false)
                .await,
            "console=Some(\"interface2\")\n"
        );
        assert_eq!(
            table.execute("SK list", context, false).await,
            "console=Some(\"interface2\")\n"
        );
        assert_eq!(
            table.execute("sk list", session(), false).await,
            "console=None\n"
        );
    }
}
