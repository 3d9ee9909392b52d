//! The sidecar's command line: `run` (default), `check`, `sk ...`, `migrate-config`.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use skypopen::config::{default_config_path, ConfigError, Settings};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "skypopen",
    version,
    about = "FreeSWITCH sidecar for Linux Skype clients"
)]
struct Cli {
    /// Configuration file (TOML). Default: $SKYPOPEN_CONFIG, else conf/skypopen.toml when run
    /// from a checkout, else /etc/skypopen/skypopen.toml.
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sidecar (the default).
    Run,
    /// Validate the configuration, print every problem, and exit.
    Check,
    /// Convert the original module's skypopen.conf.xml to TOML on stdout; what cannot be
    /// carried over is listed on stderr.
    MigrateConfig {
        /// The original `skypopen.conf.xml`.
        xml: PathBuf,
    },
    /// Print the dialplan (for conf/dialplan/default/) that offers each call to several
    /// sidecar hosts in order: the next one when a host is full or unreachable.
    HostsDialplan {
        /// Each host's `switch.outbound_listen`, as host:port, in the order to try them.
        #[arg(required = true)]
        hosts: Vec<String>,
    },
    /// One screen of the running sidecar: the FreeSWITCH link, interfaces, live calls and
    /// waiting chats. Exit status 0 when it can carry calls, 1 when not, 2 when unreachable.
    Status {
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Run an `sk` command on the running sidecar through its listener (host, port and
    /// password from the configuration), e.g. `skypopen sk list`; with `--interface`, send
    /// raw Skype API text to that interface (`skypopen sk --interface interface1 GET
    /// CURRENTUSERHANDLE`).
    Sk {
        /// Send the words as raw Skype API text to this interface (a one-shot console).
        #[arg(long, short = 'i')]
        interface: Option<String>,
        /// The command's words, e.g. `list`, `console interface1`, `calls`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    report(match cli.command.unwrap_or(Command::Run) {
        Command::MigrateConfig { xml } => migrate_config(&xml),
        Command::HostsDialplan { hosts } => hosts_dialplan(&hosts),
        command => with_config(cli.config, command),
    })
}

/// The commands that read the configuration, with it found.
fn with_config(config: Option<PathBuf>, command: Command) -> anyhow::Result<ExitCode> {
    let config = config.map_or_else(default_config_path, Ok)?;
    match command {
        Command::Run => run(&config),
        Command::Check => check(&config),
        Command::Sk { interface, args } => {
            let line = match interface {
                Some(name) => format!("skypopen {name} {}", args.join(" ")),
                None => format!("sk {}", args.join(" ")),
            };
            listener_command(&config, &line, skypopen::gateway::commands::output_failed)
        }
        Command::Status { json } => {
            let line = if json {
                "skypopen_status json"
            } else {
                "skypopen_status"
            };
            listener_command(&config, line, status_unhealthy)
        }
        Command::MigrateConfig { xml } => migrate_config(&xml),
        Command::HostsDialplan { hosts } => hosts_dialplan(&hosts),
    }
}

fn hosts_dialplan(hosts: &[String]) -> anyhow::Result<ExitCode> {
    print!("{}", skypopen::switch::hosts_dialplan::render(hosts)?);
    Ok(ExitCode::SUCCESS)
}

fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("skypopen: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `skypopen_status` output of a sidecar that cannot carry calls.
fn status_unhealthy(output: &str) -> bool {
    let json_says = serde_json::from_str::<serde_json::Value>(output)
        .ok()
        .and_then(|v| v["healthy"].as_bool());
    match json_says {
        Some(healthy) => !healthy,
        None => output.starts_with("DOWN"),
    }
}

/// A client of the sidecar's own listener, like `fs_cli -x "..."`. Exit status: 0 when the
/// command did what it was asked, 1 when `failed` says its output reports a failure, 2 when
/// it could not be run (listener unreachable, password refused).
fn listener_command(
    path: &std::path::Path,
    line: &str,
    failed: fn(&str) -> bool,
) -> anyhow::Result<ExitCode> {
    const COULD_NOT_RUN: u8 = 2;
    let settings = Settings::load(path)?;
    let addr = settings.listener.listen;
    let host = if addr.ip().is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        addr.ip().to_string()
    };
    let command = line.trim_end();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let output = runtime.block_on(async {
        let connected = freeswitch_esl_tokio::EslClient::connect(
            &host,
            addr.port(),
            settings.listener_password.expose(),
        )
        .await;
        let client = match connected {
            Ok((client, _events)) => client,
            Err(freeswitch_esl_tokio::EslError::AuthenticationFailed { .. }) => {
                return Err(format!(
                    "the skypopen listener at {addr} refused the password \
                     (listener.password, listener.password_file or SKYPOPEN_LISTENER_PASSWORD)"
                ))
            }
            Err(e) => return Err(format!("cannot reach the skypopen listener at {addr}: {e}")),
        };
        let reply = client
            .api(command)
            .await
            .map_err(|e| format!("`{command}` was not answered: {e}"))?;
        if !reply.is_success() {
            return Err(format!(
                "the listener refused `{command}`: {}",
                reply.reply_text().unwrap_or("")
            ));
        }
        Ok(reply.body().unwrap_or("").to_string())
    });
    let output = match output {
        Ok(output) => output,
        Err(why) => {
            eprintln!("skypopen: {why}");
            return Ok(ExitCode::from(COULD_NOT_RUN));
        }
    };
    print!("{output}");
    if !output.ends_with('\n') {
        println!();
    }
    if failed(&output) {
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

fn run(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(path)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // One worker unless TOKIO_WORKER_THREADS says otherwise: a call's frames hop between a
    // few tasks, and with a worker per core each hop may wake another thread. One worker cut
    // the sidecar's CPU per call by about a quarter at 30 calls (tests/reports/bench-calls.md),
    // and 30 calls use well under a core. Blocking work runs on its own threads, never here.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(1);
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(skypopen::app::run(settings))?;
    Ok(ExitCode::SUCCESS)
}

fn check(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    match Settings::load(path) {
        Ok(settings) => {
            for warning in settings.warnings() {
                eprintln!("warning: {warning}");
            }
            println!(
                "{}: OK, {} interface(s)",
                path.display(),
                settings.interfaces.len()
            );
            let capacity = skypopen::config::capacity::Capacity::of(&settings);
            for line in capacity.describe(open_files_limit()) {
                println!("  {line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(ConfigError::Invalid { path, problems }) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            eprintln!("{}: {} problem(s)", path.display(), problems.len());
            Ok(ExitCode::FAILURE)
        }
        Err(err) => {
            eprintln!("{err}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The soft limit on open files this process (and so a sidecar started the same way) has.
fn open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    ok.then_some(limit.rlim_cur)
}

fn migrate_config(path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let xml =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let migration = skypopen::config::legacy::migrate(&xml)
        .with_context(|| format!("cannot convert {}", path.display()))?;
    print!("{}", migration.toml);
    for note in &migration.notes {
        eprintln!("{}: {note}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
