//! Spawning and stopping the processes the sidecar owns (X servers, clients, the emulated
//! network): each dies with the sidecar, even when the sidecar is SIGKILLed, and is stopped
//! with SIGTERM, then SIGKILL after a grace period.

use std::io;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, Command};

/// A command line plus what to feed the child's stdin (a real client's `--pipelogin`
/// credentials; never part of the command line, so never visible in `ps`).
#[derive(Clone)]
pub struct Spec {
    pub program: std::path::PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<crate::config::Secret>,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &self.env)
            .field("stdin", &self.stdin.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Spec {
    pub fn new(program: impl Into<std::path::PathBuf>, args: Vec<String>) -> Spec {
        Spec {
            program: program.into(),
            args,
            env: Vec::new(),
            stdin: None,
        }
    }

    /// For logs: the program and its arguments (which never hold secrets).
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.display().to_string())
            .chain(self.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Starts `spec` as a child in its own process group (so that a client's helpers can be
/// stopped with it) that receives SIGTERM when the sidecar dies.
///
/// Must be called within a tokio runtime.
pub async fn spawn(spec: &Spec) -> io::Result<Child> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true);
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The sidecar died between fork and prctl: nobody would ever stop this child.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = spawn_from_forker(command).await?;
    if let (Some(secret), Some(mut stdin)) = (&spec.stdin, child.stdin.take()) {
        // A client that exits before reading is reported by its exit, not by this write.
        let _ = stdin.write_all(secret.expose().as_bytes()).await;
        let _ = stdin.write_all(b"\n").await;
        let _ = stdin.shutdown().await;
    }
    Ok(child)
}

type SpawnRequest = (
    Command,
    tokio::runtime::Handle,
    tokio::sync::oneshot::Sender<io::Result<Child>>,
);

/// Forks from one thread that lives as long as the process: the kernel sends the death
/// signal when the *thread* that forked exits, and runtime threads can come and go
/// (`spawn_blocking` threads, workers after `block_in_place`).
async fn spawn_from_forker(command: Command) -> io::Result<Child> {
    static FORKER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<SpawnRequest>>> =
        std::sync::OnceLock::new();
    let forker = FORKER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnRequest>();
        let started = std::thread::Builder::new()
            .name("skypopen-forker".into())
            .spawn(move || {
                for (mut command, runtime, reply) in rx {
                    // The child's exit is reaped by the runtime that asked for it.
                    let _entered = runtime.enter();
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(err) = started {
            tracing::error!(error = %err, "cannot start the forker thread");
        }
        std::sync::Mutex::new(tx)
    });
    let (reply, result) = tokio::sync::oneshot::channel();
    let request = (command, tokio::runtime::Handle::current(), reply);
    let sent = forker
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .send(request);
    if sent.is_err() {
        return Err(io::Error::other("the forker thread is not running"));
    }
    result
        .await
        .unwrap_or_else(|_| Err(io::Error::other("the forker thread dropped a request")))
}

/// SIGTERM to the child's process group, then SIGKILL once `grace` has passed.
pub async fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    if let Some(pid) = child.id() {
        // SAFETY: plain syscall; the group id is the child's pid (process_group(0)).
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGTERM);
        }
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            if let Some(pid) = child.id() {
                // SAFETY: as above.
                unsafe {
                    libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
                }
            }
            let _ = child.start_kill();
            child.wait().await.ok()
        }
    }
}

/// `exit status 1`, `signal 9 (SIGKILL)`: for events and logs.
pub fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_that_ignores_sigterm_is_killed_after_the_grace() {
        let spec = Spec::new(
            "sh",
            vec!["-c".into(), "trap '' TERM; sleep 30 & wait".into()],
        );
        let mut child = spawn(&spec).await.unwrap();
        // Let the shell install its trap.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let status = terminate(&mut child, Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(describe(&status), "signal 9");
    }

    #[tokio::test]
    async fn stdin_carries_the_secret_and_the_command_line_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut spec = Spec::new("sh", vec!["-c".into(), format!("cat > {}", out.display())]);
        spec.stdin = Some(crate::config::Secret::new("user1 hunter2"));
        assert!(!format!("{spec:?} {}", spec.command_line()).contains("hunter2"));
        let mut child = spawn(&spec).await.unwrap();
        let status = child.wait().await.unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read_to_string(out).unwrap(), "user1 hunter2\n");
    }
}
