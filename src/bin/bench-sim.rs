//! Benchmark: what the emulated Skype world costs. Starts N Xvfb displays, one
//! `skype-sim network` and N `skype-sim client`s, puts every client in a call (to
//! `instantecho` or `echo123`) with a tone streamed through its audio ports like a controller
//! does, and measures the CPU time of the network and the clients from /proc/<pid>/stat over
//! the measured window. Writes a Markdown report.

use anyhow::{bail, Context, Result};
use clap::Parser;
use skypopen::media::dsp;
use skypopen::skype::link::LinkEvent;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    about = "Measure the CPU cost of skype-sim network + clients with every client in a call"
)]
struct Args {
    /// Clients (each on its own Xvfb display, each in one call).
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Who every client calls.
    #[arg(long, default_value = "instantecho")]
    target: String,
    /// The skype-sim binary (default: next to this one).
    #[arg(long)]
    sim: Option<PathBuf>,
    #[arg(long, default_value = "target/bench/sim.md")]
    out: PathBuf,
}

/// Kills its children when dropped, so an early error leaves nothing running.
#[derive(Default)]
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        // Clients before their X servers, so they stop cleanly rather than lose their display.
        for c in self.0.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn start_xvfb(children: &mut Children, from: u32) -> Result<(u32, String)> {
    for n in from..from + 500 {
        if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            || Path::new(&format!("/tmp/.X{n}-lock")).exists()
        {
            continue;
        }
        let child = Command::new("Xvfb")
            .arg(format!(":{n}"))
            .args(["-nolisten", "tcp", "-screen", "0", "320x240x24"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run Xvfb")?;
        children.0.push(child);
        let display = format!(":{n}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            // Another process may have taken the number since the check: only a server that
            // is ours (our child still running) counts.
            let ours = children
                .0
                .last_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
            if !ours {
                break;
            }
            if x11rb::connect(Some(&display)).is_ok() {
                return Ok((n, display));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    bail!("no free X display")
}

async fn next_message(
    events: &mut tokio::sync::mpsc::Receiver<LinkEvent>,
    wait: Duration,
) -> Result<String> {
    loop {
        match tokio::time::timeout(wait, events.recv()).await {
            Ok(Some(LinkEvent::Message(m))) => return Ok(m),
            Ok(Some(_)) => continue,
            Ok(None) => bail!("link closed"),
            Err(_) => bail!("no message within {wait:?}"),
        }
    }
}

struct CallStats {
    frames_received: usize,
    echo_hz: Option<f64>,
}

async fn run_call(
    display: String,
    user: String,
    target: String,
    seconds: u64,
    stop: CancellationToken,
) -> Result<CallStats> {
    let call = setup_and_stream(&display, &user, &target, seconds, stop).await;
    call.with_context(|| format!("{user} on {display}"))
}

async fn setup_and_stream(
    display: &str,
    user: &str,
    target: &str,
    seconds: u64,
    stop: CancellationToken,
) -> Result<CallStats> {
    let mut link = skypopen::skype::x11::spawn_controller_link(display, stop.clone());
    let wait = Duration::from_secs(60);
    // Commands sent before the link has found the client are dropped: wait for it.
    loop {
        match tokio::time::timeout(wait, link.events.recv()).await {
            Ok(Some(LinkEvent::Attached { .. })) => break,
            Ok(Some(_)) => continue,
            Ok(None) => bail!("link closed"),
            Err(_) => bail!("no Skype client found within {wait:?}"),
        }
    }
    let send = link.outgoing.clone();
    send.send("NAME bench".into()).await?;
    send.send("PROTOCOL 8".into()).await?;
    loop {
        if next_message(&mut link.events, wait)
            .await?
            .starts_with("CURRENTUSERHANDLE")
        {
            break;
        }
    }
    send.send(format!("CALL {target}")).await?;
    let id = loop {
        let m = next_message(&mut link.events, wait)
            .await
            .context("waiting for CURRENTUSERHANDLE")?;
        if m.ends_with("STATUS UNPLACED") {
            break m.split(' ').nth(1).unwrap_or_default().to_string();
        }
        if m.starts_with("ERROR") {
            bail!("{user}: {m}");
        }
    };
    loop {
        let m = next_message(&mut link.events, wait)
            .await
            .context("waiting for UNPLACED")?;
        if m == format!("CALL {id} STATUS INPROGRESS") {
            break;
        }
        if m.starts_with(&format!("CALL {id} STATUS "))
            && !m.ends_with("ROUTING")
            && !m.ends_with("RINGING")
        {
            bail!("{user}: {m}");
        }
    }
    let input = TcpListener::bind("127.0.0.1:0").await?;
    let output = TcpListener::bind("127.0.0.1:0").await?;
    send.send(format!(
        "ALTER CALL {id} SET_INPUT PORT=\"{}\"",
        input.local_addr()?.port()
    ))
    .await?;
    send.send(format!(
        "#output ALTER CALL {id} SET_OUTPUT PORT=\"{}\"",
        output.local_addr()?.port()
    ))
    .await?;
    let (mut to_client, _) = tokio::time::timeout(wait, input.accept())
        .await
        .context("waiting for the input connection")??;
    let (mut from_client, _) = tokio::time::timeout(wait, output.accept())
        .await
        .context("waiting for the output connection")??;
    // Keep draining notifications (DURATION ticks) so the link never backs up.
    let drain = tokio::spawn(async move { while link.events.recv().await.is_some() {} });
    let frames = (seconds * 50) as usize;
    let play = async {
        let mut tone = dsp::Tone::new(1000.0, -10.0);
        let mut clock = tokio::time::interval(Duration::from_millis(20));
        for _ in 0..frames {
            clock.tick().await;
            let mut s = [0i16; dsp::SAMPLES_PER_FRAME];
            tone.mix_into(&mut s);
            let mut b = [0u8; dsp::BYTES_PER_FRAME];
            dsp::samples_to_le_bytes(&s, &mut b);
            to_client.write_all(&b).await?;
        }
        anyhow::Ok(())
    };
    let record = async {
        let mut tail = Vec::new();
        let mut buf = [0u8; dsp::BYTES_PER_FRAME];
        let mut received = 0usize;
        while received < frames {
            from_client.read_exact(&mut buf).await?;
            received += 1;
            if received + 50 > frames {
                dsp::samples_from_le_bytes(&buf, &mut tail);
            }
        }
        anyhow::Ok((received, tail))
    };
    let (played, recorded) = tokio::join!(play, record);
    played?;
    let (frames_received, tail) = recorded?;
    send.send(format!("ALTER CALL {id} HANGUP")).await?;
    stop.cancel();
    drain.abort();
    Ok(CallStats {
        frames_received,
        echo_hz: dsp::summarize(&tail).frequency_hz,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.clients == 0 || args.clients > 64 || args.seconds == 0 {
        bail!("--clients must be 1..64 and --seconds at least 1");
    }
    let sim = match &args.sim {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("skype-sim"),
    };
    if !sim.exists() {
        bail!(
            "{} not found: build it first (cargo build --release --bins)",
            sim.display()
        );
    }
    let mut children = Children::default();
    let mut displays = Vec::new();
    let mut next_display = 600;
    for _ in 0..args.clients {
        let (n, d) = start_xvfb(&mut children, next_display)?;
        next_display = n + 1;
        displays.push(d);
    }
    let xvfb_pids: Vec<u32> = children.0.iter().map(|c| c.id()).collect();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let network = Command::new(&sim)
        .args(["network", "--listen", &addr, "--bot-answer-ms", "200"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start skype-sim network")?;
    let network_pid = network.id();
    children.0.push(network);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        if Instant::now() > deadline {
            bail!("skype-sim network did not start");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut client_pids = Vec::new();
    for (i, d) in displays.iter().enumerate() {
        let user = format!("user{}", 1 + i % 7);
        let child = Command::new(&sim)
            .args([
                "client",
                "--display",
                d,
                "--user",
                &user,
                "--network",
                &addr,
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .context("cannot start skype-sim client")?;
        client_pids.push(child.id());
        children.0.push(child);
    }

    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for (i, d) in displays.iter().enumerate() {
        let user = format!("user{}", 1 + i % 7);
        tasks.push(tokio::spawn(run_call(
            d.clone(),
            user,
            args.target.clone(),
            args.seconds,
            stop.child_token(),
        )));
    }
    // Measure once every call is up: give setup a head start, then a fixed window.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sum = |pids: &[u32]| pids.iter().filter_map(|p| cpu_ticks(*p)).sum::<u64>();
    let t0 = Instant::now();
    let (n0, c0, x0) = (sum(&[network_pid]), sum(&client_pids), sum(&xvfb_pids));
    let window = args.seconds.saturating_sub(4).max(1);
    tokio::time::sleep(Duration::from_secs(window)).await;
    let (n1, c1, x1) = (sum(&[network_pid]), sum(&client_pids), sum(&xvfb_pids));
    let elapsed = t0.elapsed().as_secs_f64();
    let mut ok = 0usize;
    let mut failures = Vec::new();
    let mut frames = 0usize;
    let mut freqs = Vec::new();
    for t in tasks {
        match t.await? {
            Ok(s) => {
                ok += 1;
                frames += s.frames_received;
                if let Some(f) = s.echo_hz {
                    freqs.push(f);
                }
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    stop.cancel();
    let tck = clock_ticks_per_second();
    let pct = |ticks: u64| 100.0 * ticks as f64 / tck / elapsed;
    let (net_pct, cli_pct, x_pct) = (pct(n1 - n0), pct(c1 - c0), pct(x1 - x0));
    let echo_ok = freqs.iter().filter(|f| (**f - 1000.0).abs() < 10.0).count();
    let report = format!(
        "# skype-sim CPU benchmark\n\n\
         - clients: {clients} (each on its own Xvfb display, each in one call to `{target}`)\n\
         - measured window: {elapsed:.1} s of {seconds} s calls; 1 kHz tone streamed into every call\n\
         - calls completed: {ok}/{clients}; frames received by the controllers: {frames}\n\
         - echoes measured at 1 kHz (±1 %): {echo_ok}/{measured}\n\
         - failures: {failures:?}\n\n\
         | process | CPU (% of one core) |\n|---|---|\n\
         | skype-sim network | {net_pct:.2} |\n\
         | skype-sim clients (sum of {clients}) | {cli_pct:.2} |\n\
         | per client (mean) | {per:.2} |\n\
         | Xvfb servers (sum) | {x_pct:.2} |\n\n\
         Measured from utime+stime in /proc/<pid>/stat; clock ticks per second {tck}.\n",
        clients = args.clients,
        target = args.target,
        seconds = args.seconds,
        measured = freqs.len(),
        per = cli_pct / args.clients as f64,
    );
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &report)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("{report}");
    println!("report written to {}", args.out.display());
    drop(children);
    if ok < args.clients {
        bail!("{} of {} calls failed", args.clients - ok, args.clients);
    }
    Ok(())
}
