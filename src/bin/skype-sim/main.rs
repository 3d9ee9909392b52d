//! `skype-sim`: the emulated Skype world. `network` is the cloud, `client` one Linux client on
//! one X display, `ctl` drives the world from tests and shells.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use skypopen::shutdown::{signalled, CancellationToken};
use skypopen::sim::client::trace::AudioTrace;
use skypopen::sim::client::{self, AuthMode, ClientConfig, ClientExit};
use skypopen::sim::ctl;
use skypopen::sim::network::{self, NetworkConfig};
use skypopen::sim::proto::{AudioSource, CtlCommand, Fault};
use skypopen::skype::link::{ClientLink, ClientOutgoing, PeerMessage, LINK_QUEUE};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(
    name = "skype-sim",
    version,
    about = "Emulated Skype network and Linux Skype clients"
)]
struct Cli {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Run the emulated Skype network (accounts, routing, bots, control API).
    Network(NetworkArgs),
    /// Run one emulated Linux Skype client on an X display.
    Client(ClientArgs),
    /// Send one control command to the network; prints one JSON object.
    Ctl(CtlArgs),
}

#[derive(Args)]
struct NetworkArgs {
    #[arg(long, default_value = "127.0.0.1:8099")]
    listen: SocketAddr,
    /// Unanswered calls end as MISSED after this many milliseconds.
    #[arg(long, default_value_t = 30_000)]
    ring_timeout_ms: u64,
    /// How late echo123 returns what it hears.
    #[arg(long, default_value_t = 200)]
    echo_delay_ms: u64,
    /// RINGING to the bots' answer (echo123 INPROGRESS, busybot BUSY, refusebot REFUSED).
    #[arg(long, default_value_t = 600)]
    bot_answer_ms: u64,
    /// EARLYMEDIA to INPROGRESS for SkypeOut numbers.
    #[arg(long, default_value_t = 2000)]
    pstn_answer_ms: u64,
    /// CALL to ROUTING.
    #[arg(long, default_value_t = 80)]
    routing_ms: u64,
    /// ROUTING to RINGING.
    #[arg(long, default_value_t = 150)]
    ringing_ms: u64,
    /// A connection that has not sent a whole login or ctl frame by then is closed.
    #[arg(long, default_value_t = 10_000)]
    first_frame_timeout_ms: u64,
    /// Accounts user1 … userN (the first eight built in; the others "User N", 10.00 EUR).
    #[arg(long, default_value_t = 8)]
    accounts: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum AuthArg {
    Authorized,
    Pending,
    Denied,
    RefuseFirst,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OnOff {
    On,
    Off,
}

#[derive(Args)]
struct ClientArgs {
    /// X display to publish `_SKYPE_INSTANCE` on, e.g. `:101`.
    #[arg(long, required_unless_present = "stdio")]
    display: Option<String>,
    /// Account to log in as (user1..user8).
    #[arg(long)]
    user: String,
    #[arg(long, default_value = "127.0.0.1:8099")]
    network: SocketAddr,
    /// Highest API protocol version granted to `PROTOCOL n`.
    #[arg(long, default_value_t = 8)]
    protocol_max: u32,
    /// Delay before the unsolicited CONNSTATUS / CURRENTUSERHANDLE / USERSTATUS after NAME.
    #[arg(long, default_value_t = 150)]
    attach_delay_ms: u64,
    /// How `NAME` is answered: OK, ERROR 68 then OK after --auth-pending-ms, ERROR 68 forever,
    /// or ERROR 68 to each controller's first NAME only.
    #[arg(long, value_enum, default_value = "authorized")]
    auth: AuthArg,
    #[arg(long, default_value_t = 2000)]
    auth_pending_ms: u64,
    #[arg(long, default_value = "ONLINE")]
    user_status: String,
    /// Answer `SET CALL <id> DTMF <d>` with `CALL <id> DTMF <d>` (on) or nothing (off).
    #[arg(long, value_enum, default_value = "on")]
    dtmf_echo: OnOff,
    /// Wait this long before connecting the audio sockets.
    #[arg(long, default_value_t = 0)]
    audio_delay_ms: u64,
    /// Never connect the audio sockets.
    #[arg(long)]
    no_audio: bool,
    /// `ALTER CALL <id> ANSWER` fails with ERROR 559.
    #[arg(long)]
    answer_error: bool,
    /// Drop the BEGIN chunk of the first N messages sent.
    #[arg(long, default_value_t = 0)]
    drop_begin: u32,
    /// No X: read API commands as lines on stdin, write messages as lines on stdout.
    #[arg(long)]
    stdio: bool,
    /// Write a binary per-frame audio trace here (benchmarks): CLOCK_MONOTONIC ns, call id,
    /// direction and samples of every frame read from an input socket or written to an
    /// output socket. Format: see the README's skype-sim section. Off by default.
    #[arg(long, value_name = "FILE")]
    audio_trace: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct CtlArgs {
    #[arg(long, default_value = "127.0.0.1:8099", global = true)]
    network: SocketAddr,
    #[command(subcommand)]
    verb: CtlVerb,
}

#[derive(Args, Default)]
struct SourceArgs {
    /// The party says a sine tone of this frequency.
    #[arg(long, conflicts_with_all = ["dtmf", "wav"])]
    tone: Option<f64>,
    /// The party keys these DTMF digits in-band (100 ms tone, 100 ms pause).
    #[arg(long, conflicts_with = "wav")]
    dtmf: Option<String>,
    /// The party plays this 16 kHz mono 16-bit WAV file.
    #[arg(long)]
    wav: Option<PathBuf>,
}

impl SourceArgs {
    fn source(&self) -> anyhow::Result<AudioSource> {
        Ok(if let Some(hz) = self.tone {
            AudioSource::Tone { hz }
        } else if let Some(digits) = &self.dtmf {
            AudioSource::Dtmf {
                digits: digits.clone(),
            }
        } else if let Some(path) = &self.wav {
            let abs = std::fs::canonicalize(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            AudioSource::Wav {
                path: abs.to_string_lossy().into_owned(),
            }
        } else {
            AudioSource::Silence
        })
    }
}

#[derive(Subcommand)]
enum CtlVerb {
    /// A remote party calls an account: rings every client logged in as it.
    Call {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        #[command(flatten)]
        source: SourceArgs,
        /// Hang up this many seconds after the call is answered.
        #[arg(long)]
        seconds: Option<f64>,
    },
    /// A remote party answers a call a client placed to it.
    Answer {
        call: u64,
        #[command(flatten)]
        source: SourceArgs,
    },
    /// A remote party refuses a call a client placed to it.
    Refuse { call: u64 },
    /// The remote side ends a call.
    Hangup { call: u64 },
    /// Analysis of what a party received on its latest (or the given) call.
    Heard {
        party: String,
        #[arg(long)]
        call: Option<u64>,
        /// Also write the received audio to this WAV file.
        #[arg(long)]
        wav: Option<PathBuf>,
    },
    /// The remote side keys DTMF digits (signalled, or in-band with --inband).
    Dtmf {
        call: u64,
        digits: String,
        #[arg(long)]
        inband: bool,
    },
    /// The remote side puts the call on hold (clients see REMOTEHOLD).
    Hold { call: u64 },
    /// The remote side resumes a held call (clients see INPROGRESS).
    Resume { call: u64 },
    /// A party sends a chat message to an account.
    Chat(PartyText),
    /// Chat messages a remote party or bot received.
    Inbox { party: String },
    /// A party asks an account for authorization (a contact request).
    AuthRequest(PartyText),
    /// Handles an account has authorized.
    Contacts { user: String },
    /// A remote person's (or bot's) ONLINESTATUS changes: UNKNOWN, OFFLINE, ONLINE, AWAY, NA,
    /// DND, SKYPEOUT, SKYPEME or INVISIBLE (seen as OFFLINE).
    Presence {
        #[arg(long)]
        party: String,
        #[arg(long)]
        status: String,
    },
    /// Adds a party to an account's contacts (authorized), or removes it with --remove.
    Contact {
        #[arg(long)]
        user: String,
        #[arg(long)]
        handle: String,
        #[arg(long)]
        remove: bool,
    },
    /// Makes crowd1..crowdN contacts of USER (silently: its clients learn them at their next
    /// full read), for load tests.
    Crowd {
        #[arg(long)]
        user: String,
        #[arg(long)]
        count: usize,
    },
    /// Sets the ONLINESTATUS of crowd1..crowdN at once.
    CrowdPresence {
        #[arg(long)]
        count: usize,
        #[arg(long)]
        status: String,
    },
    /// Live calls.
    Calls,
    /// Clients online per account, live call count.
    Status,
    /// PSTN balances.
    Balance {
        user: Option<String>,
        /// Sets USER's balance; its clients hear `PROFILE PSTN_BALANCE`.
        #[arg(long, requires = "user")]
        set: Option<i64>,
    },
    /// A remote person (or bot) reads the chat messages it has received; the senders' clients
    /// hear `CHATMESSAGE <id> STATUS READ`.
    Read {
        #[arg(long)]
        party: String,
    },
    /// Injects a fault into every client logged in as USER.
    Fault {
        user: String,
        #[command(subcommand)]
        fault: FaultArg,
    },
}

#[derive(Subcommand)]
enum FaultArg {
    /// Drop the BEGIN chunk of the next N messages.
    DropBegin { count: u32 },
    /// Delay audio connects by MS milliseconds.
    AudioDelay { ms: u64 },
    /// Stop (on) or resume (off) connecting audio sockets.
    NoAudio { state: OnOff },
    /// Make ANSWER fail with ERROR 559 (on) or work again (off).
    AnswerError { state: OnOff },
    /// Lose the network for MS milliseconds.
    Offline { ms: u64 },
    /// Exit at once, leaving a stale _SKYPE_INSTANCE.
    Die,
}

// What a remote party sends to an account: a chat message or an authorization request.
#[derive(Args)]
struct PartyText {
    #[arg(long)]
    from: String,
    #[arg(long)]
    to: String,
    #[arg(long)]
    text: String,
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A client is one user's traffic, and a machine runs hundreds of them: one thread each.
    // Two workers per client cost more in cross-thread wake-ups than the chat benchmark's
    // whole sidecar. The network serves every client and keeps two.
    let mut builder = match cli.command {
        Verb::Network(_) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        }
        Verb::Client(_) | Verb::Ctl(_) => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("skype-sim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Verb::Network(a) => run_network(a).await,
            Verb::Client(a) => run_client(a).await,
            Verb::Ctl(a) => run_ctl(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skype-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn stop_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        match signalled().await {
            Ok(sig) => tracing::info!(signal = sig, "stopping"),
            Err(e) => tracing::warn!(error = %e, "cannot watch signals"),
        }
        t.cancel();
    });
    token
}

async fn run_network(a: NetworkArgs) -> anyhow::Result<()> {
    init_logging("info");
    let accounts = skypopen::sim::accounts::set_account_count(a.accounts);
    tracing::info!(accounts, "accounts user1 … user{accounts}");
    let config = NetworkConfig {
        listen: a.listen,
        routing_delay: Duration::from_millis(a.routing_ms),
        ring_delay: Duration::from_millis(a.ringing_ms),
        bot_answer_delay: Duration::from_millis(a.bot_answer_ms),
        pstn_answer_delay: Duration::from_millis(a.pstn_answer_ms),
        ring_timeout: Duration::from_millis(a.ring_timeout_ms),
        echo_delay: Duration::from_millis(a.echo_delay_ms),
        first_frame_timeout: Duration::from_millis(a.first_frame_timeout_ms),
    };
    let stop = stop_on_signal();
    let (_, task) = network::spawn(config, stop)
        .await
        .with_context(|| format!("cannot listen on {}", a.listen))?;
    task.await.context("network task failed")?;
    Ok(())
}

async fn run_client(a: ClientArgs) -> anyhow::Result<()> {
    init_logging("info");
    // The network knows how many accounts it has; here only the name is checked.
    if !skypopen::sim::accounts::is_account_name(&a.user) {
        bail!("no account named {:?} (user1, user2, …)", a.user);
    }
    let mut config = ClientConfig::new(&a.user, a.network);
    config.protocol_max = a.protocol_max;
    config.attach_delay = Duration::from_millis(a.attach_delay_ms);
    config.auth = match a.auth {
        AuthArg::Authorized => AuthMode::Authorized,
        AuthArg::Pending => AuthMode::Pending(Duration::from_millis(a.auth_pending_ms)),
        AuthArg::Denied => AuthMode::Denied,
        AuthArg::RefuseFirst => AuthMode::RefuseFirst,
    };
    config.user_status = a.user_status.clone();
    config.dtmf_echo = a.dtmf_echo == OnOff::On;
    config.audio_delay = Duration::from_millis(a.audio_delay_ms);
    config.no_audio = a.no_audio;
    config.answer_error = a.answer_error;
    config.drop_begin = a.drop_begin;
    if let Some(path) = &a.audio_trace {
        config.audio_trace = Some(
            AudioTrace::create(path)
                .with_context(|| format!("cannot write the audio trace {}", path.display()))?,
        );
    }
    let trace = config.audio_trace.clone();
    let stop = stop_on_signal();

    if a.stdio {
        let link = stdio_link(stop.clone());
        let exit = client::run(config, link, stop).await;
        flush_trace(trace.as_ref());
        return finish(exit);
    }
    let display = a.display.clone().unwrap_or_default();
    let (link, endpoint) = skypopen::skype::x11::spawn_client_endpoint(&display, stop.clone())
        .await
        .with_context(|| format!("cannot serve the Skype API on display {display}"))?;
    let exit = client::run(config, link, stop).await;
    flush_trace(trace.as_ref());
    if exit == ClientExit::Died {
        endpoint.set_stale_on_exit(true);
        eprintln!("skype-sim client: dying (fault injected)");
        std::process::exit(70);
    }
    endpoint.shutdown().await;
    finish(exit)
}

fn flush_trace(trace: Option<&AudioTrace>) {
    if let Some(Err(e)) = trace.map(AudioTrace::flush) {
        tracing::warn!(error = %e, "cannot write the end of the audio trace");
    }
}

fn finish(exit: ClientExit) -> anyhow::Result<()> {
    match exit {
        ClientExit::Shutdown => Ok(()),
        ClientExit::LinkClosed => bail!("the API transport closed"),
        ClientExit::Died => {
            eprintln!("skype-sim client: dying (fault injected)");
            std::process::exit(70);
        }
    }
}

/// API over stdin/stdout lines, one controller (peer 1): for shells and debugging without X.
fn stdio_link(stop: CancellationToken) -> ClientLink {
    let (in_tx, in_rx) = mpsc::channel(LINK_QUEUE);
    let (out_tx, mut out_rx) = mpsc::channel::<ClientOutgoing>(LINK_QUEUE);
    let reader_stop = stop.clone();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if in_tx
                .send(PeerMessage {
                    peer: 1,
                    text: line,
                })
                .await
                .is_err()
            {
                break;
            }
        }
        reader_stop.cancel();
    });
    tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(msg) = out_rx.recv().await {
            let line = format!("{}\n", msg.text);
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    ClientLink {
        incoming: in_rx,
        outgoing: out_tx,
    }
}

async fn run_ctl(a: CtlArgs) -> anyhow::Result<()> {
    init_logging("warn");
    let mut wav_out: Option<PathBuf> = None;
    let command = match a.verb {
        CtlVerb::Call {
            from,
            to,
            source,
            seconds,
        } => CtlCommand::Call {
            from,
            to,
            source: source.source()?,
            seconds,
        },
        CtlVerb::Answer { call, source } => CtlCommand::Answer {
            call,
            source: source.source()?,
        },
        CtlVerb::Refuse { call } => CtlCommand::Refuse { call },
        CtlVerb::Hangup { call } => CtlCommand::Hangup { call },
        CtlVerb::Heard { party, call, wav } => {
            let with_pcm = wav.is_some();
            wav_out = wav;
            CtlCommand::Heard {
                party,
                call,
                with_pcm,
            }
        }
        CtlVerb::Dtmf {
            call,
            digits,
            inband,
        } => CtlCommand::Dtmf {
            call,
            digits,
            inband,
        },
        CtlVerb::Hold { call } => CtlCommand::Hold { call, on: true },
        CtlVerb::Resume { call } => CtlCommand::Hold { call, on: false },
        CtlVerb::Chat(PartyText { from, to, text }) => CtlCommand::Chat { from, to, text },
        CtlVerb::Inbox { party } => CtlCommand::Inbox { party },
        CtlVerb::AuthRequest(PartyText { from, to, text }) => {
            CtlCommand::AuthRequest { from, to, text }
        }
        CtlVerb::Contacts { user } => CtlCommand::Contacts { user },
        CtlVerb::Presence { party, status } => CtlCommand::Presence { party, status },
        CtlVerb::Contact {
            user,
            handle,
            remove,
        } => CtlCommand::Contact {
            user,
            handle,
            add: !remove,
        },
        CtlVerb::Crowd { user, count } => CtlCommand::Crowd { user, count },
        CtlVerb::CrowdPresence { count, status } => CtlCommand::CrowdPresence { count, status },
        CtlVerb::Calls => CtlCommand::Calls,
        CtlVerb::Status => CtlCommand::Status,
        CtlVerb::Balance { user, set } => CtlCommand::Balance { user, set },
        CtlVerb::Read { party } => CtlCommand::Read { party },
        CtlVerb::Fault { user, fault } => CtlCommand::Fault {
            user,
            fault: match fault {
                FaultArg::DropBegin { count } => Fault::DropBegin { count },
                FaultArg::AudioDelay { ms } => Fault::AudioDelay { ms },
                FaultArg::NoAudio { state } => Fault::NoAudio {
                    on: state == OnOff::On,
                },
                FaultArg::AnswerError { state } => Fault::AnswerError {
                    on: state == OnOff::On,
                },
                FaultArg::Offline { ms } => Fault::Offline { ms },
                FaultArg::Die => Fault::Die,
            },
        },
    };
    let (mut result, blob) = ctl::request(a.network, command).await?;
    if let (Some(path), Some(pcm)) = (wav_out, blob) {
        ctl::write_wav(&path, &pcm).with_context(|| format!("cannot write {}", path.display()))?;
        if let Some(obj) = result.as_object_mut() {
            obj.insert(
                "wav".into(),
                serde_json::Value::String(path.to_string_lossy().into_owned()),
            );
        }
    }
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}
