//! The markdown report: two tables, the original module's figures, and how each is measured.

use crate::figures::{percentile, Figures};
use crate::support::bench_args::git_commit;
use crate::support::probe::CHIRP_EVERY;
use crate::{Transport, IDLE_SPAN, WINDOW};
use std::fmt::Write as _;

pub const ORIGINAL_ROUND_TRIP_MS: f64 = 35.0;
pub const ORIGINAL_FS_TO_PROCESS_MS: f64 = 20.0;
pub const ORIGINAL_PROCESS_TO_FS_MS: f64 = 13.5;
/// FreeSWITCH CPU per call at 30 calls, % (the table): the original module, and the
/// switch's own cost of each path the sidecar uses.
pub const ORIGINAL_FS_CPU_PCT: f64 = 1.19;
pub const ORIGINAL_FS_CPU_FORK_PCT: f64 = 0.95;
pub const ORIGINAL_FS_CPU_UNICAST_PCT: f64 = 0.56;

pub fn q(v: &[f64], p: f64) -> String {
    if v.is_empty() {
        "–".into()
    } else {
        format!("{:.1}", percentile(v, p))
    }
}

/// Min / p50 of frames per second, one figure per call.
fn fps(v: &[f64]) -> String {
    if v.is_empty() {
        "–".into()
    } else {
        format!("{:.1} / {:.1}", v[0], percentile(v, 0.5))
    }
}

pub fn latency_row(f: &Figures) -> String {
    let sidecar_share = if f.fs_to_skype_ms.is_empty() {
        "–".to_string()
    } else {
        format!(
            "{:.1}",
            percentile(&f.fs_to_skype_ms, 0.5) + percentile(&f.skype_to_fs_ms, 0.5)
        )
    };
    let untraced = if f.untraced_calls > 0 {
        format!(" ({} calls untraced)", f.untraced_calls)
    } else {
        String::new()
    };
    format!(
        "| {} | {} | {} | {} / {} / {} / {} | {} / {} | {} / {} | {} / {} | {} / {}{} | {} |",
        f.path,
        f.transport.label(),
        f.calls,
        q(&f.rtt_ms, 0.5),
        q(&f.rtt_ms, 0.9),
        q(&f.rtt_ms, 0.99),
        q(&f.rtt_ms, 1.0),
        f.chirps_lost,
        f.chirps_sent,
        q(&f.fs_to_skype_ms, 0.5),
        q(&f.fs_to_skype_ms, 0.99),
        q(&f.emulator_ms, 0.5),
        q(&f.emulator_ms, 0.99),
        q(&f.skype_to_fs_ms, 0.5),
        q(&f.skype_to_fs_ms, 0.99),
        untraced,
        sidecar_share,
    )
}

pub fn cpu_row(f: &Figures) -> String {
    let over = |limit: f64| f.gaps_ms.iter().filter(|&&g| g > limit).count();
    format!(
        "| {} | {} | {} | {:.1} | {:.2} | {} | {:.0} | {:.0} | {} | {} | {} / {} | {} / {} / {} / {} | {} / {} |",
        f.path,
        f.transport.label(),
        f.calls,
        f.idle_cpu_pct,
        f.cpu_pct_per_call,
        f.emulator_cpu_pct
            .map(|c| format!("{c:.0}"))
            .unwrap_or_else(|| "–".into()),
        f.stack_cpu_pct,
        f.machine_busy_pct,
        fps(&f.client_in_fps),
        fps(&f.client_out_fps),
        q(&f.answer_to_audio_ms, 0.5),
        q(&f.answer_to_audio_ms, 1.0),
        q(&f.gaps_ms, 0.01),
        q(&f.gaps_ms, 0.5),
        q(&f.gaps_ms, 0.99),
        q(&f.gaps_ms, 1.0),
        over(30.0),
        over(60.0),
    )
}

/// The sidecar's figures against the original module's, for the largest call count measured.
/// Whether the emulator (and the rest of the stack) left the sidecar room, at each
/// transport's largest call count.
fn stack_load(all: &[Figures], cores: f64) -> String {
    let mut out = String::new();
    for f in all.iter().filter(|f| f.path.starts_with("sidecar")) {
        let most = all
            .iter()
            .filter(|g| g.path == f.path && g.transport == f.transport)
            .map(|g| g.calls)
            .max();
        if most != Some(f.calls) {
            continue;
        }
        let share = f.stack_cpu_pct / cores;
        let _ = write!(
            out,
            "- {} × {}: the emulator took {:.0} % of a core, the whole stack (sidecar, \
             emulator, probes and double) {:.0} % of a core, {:.0} % of the machine's {} cores \
             ({}).",
            f.transport.label(),
            f.calls,
            f.emulator_cpu_pct.unwrap_or(0.0),
            f.stack_cpu_pct,
            share,
            cores,
            if share > 80.0 {
                "saturated: these figures are the machine's, not the sidecar's"
            } else {
                "not saturated by the emulator"
            },
        );
        if let Some(m) = &f.memory {
            let _ = write!(
                out,
                " Resident memory: sidecar {:.0} MiB, emulator (network, {} clients, {} Xvfb) \
                 {:.0} MiB; the machine still had {:.0} MiB available.",
                m.sidecar_mib, f.calls, f.calls, m.emulator_mib, m.machine_available_mib
            );
        }
        out.push('\n');
    }
    out
}

pub fn standing(all: &[Figures]) -> String {
    let mut out = String::new();
    for transport in [
        Transport::Unicast16k,
        Transport::Unicast8k,
        Transport::AudioFork,
    ] {
        let Some(f) = all
            .iter()
            .filter(|f| f.path.starts_with("sidecar") && f.transport == transport)
            .max_by_key(|f| f.calls)
        else {
            continue;
        };
        let (inbound, outbound) = (
            percentile(&f.fs_to_skype_ms, 0.5),
            percentile(&f.skype_to_fs_ms, 0.5),
        );
        let share = inbound + outbound;
        let fs_cost = match transport {
            Transport::AudioFork => ORIGINAL_FS_CPU_FORK_PCT,
            _ => ORIGINAL_FS_CPU_UNICAST_PCT,
        };
        let budget = ORIGINAL_FS_CPU_PCT - fs_cost;
        let verdict = |ok: bool| if ok { "below" } else { "not below" };
        let _ = writeln!(
            out,
            "- {} at {} calls: the sidecar's share of the round trip p50 {:.1} ms (FS → Skype \
             {:.1} ms against the original's {:.0} ms, Skype → FS {:.1} ms against {:.1} ms): \
             {} the original's {:.0} ms; with the emulator's own {:.1} ms the whole round trip \
             p50 is {:.1} ms. Sidecar CPU per call {:.2} % of a core against the {:.2} % the \
             original spent beyond this path's own FreeSWITCH cost ({:.2} − {:.2}): {}.",
            transport.label(),
            f.calls,
            share,
            inbound,
            ORIGINAL_FS_TO_PROCESS_MS,
            outbound,
            ORIGINAL_PROCESS_TO_FS_MS,
            verdict(share < ORIGINAL_ROUND_TRIP_MS),
            ORIGINAL_ROUND_TRIP_MS,
            percentile(&f.emulator_ms, 0.5),
            percentile(&f.rtt_ms, 0.5),
            f.cpu_pct_per_call,
            budget,
            ORIGINAL_FS_CPU_PCT,
            fs_cost,
            if f.cpu_pct_per_call < budget / 2.0 {
                "well under (below half)"
            } else if f.cpu_pct_per_call < budget {
                "under, but not by half"
            } else {
                "not under"
            },
        );
    }
    out
}

/// Rows of one scenario sort sidecar first, then the floors.
pub fn path_rank(path: &str) -> u8 {
    match path {
        "sidecar + skype-sim" => 0,
        "four-socket relay" => 1,
        _ => 2,
    }
}

/// Goals for the sidecar against the four-socket floor (measured in the same run).
pub const GOAL_CPU_PER_CALL_PCT: f64 = 0.15;
pub const GOAL_DIRECTION_P99_MS: f64 = 2.0;
pub const GOAL_FLOOR_RATIO: f64 = 2.0;

/// The sidecar's unicast 16 kHz figures against the four-socket floor at each call count.
pub fn against_floor(all: &[Figures]) -> String {
    let mut out = String::new();
    let met = |ok: bool| if ok { "met" } else { "not met" };
    for f in all
        .iter()
        .filter(|f| f.path.starts_with("sidecar") && f.transport == Transport::Unicast16k)
    {
        let Some(floor) = all
            .iter()
            .find(|g| g.path == "four-socket relay" && g.calls == f.calls)
        else {
            continue;
        };
        let ratio = f.cpu_pct_per_call / floor.cpu_pct_per_call.max(1e-6);
        let p99_in = percentile(&f.fs_to_skype_ms, 0.99);
        let p99_out = percentile(&f.skype_to_fs_ms, 0.99);
        let _ = writeln!(
            out,
            "- {} calls: sidecar CPU per call {:.3} % of a core, floor {:.3} %: {:.1}× the floor (goal ≤ {:.0}×: {}); goal ≤ {:.2} %: {}. Per direction p50 / p99: FS → Skype {:.2} / {:.2} ms (floor {:.2} / {:.2}), Skype → FS {:.2} / {:.2} ms (floor {:.2} / {:.2}); goal p99 < {:.0} ms: {}.",
            f.calls,
            f.cpu_pct_per_call,
            floor.cpu_pct_per_call,
            ratio,
            GOAL_FLOOR_RATIO,
            met(ratio <= GOAL_FLOOR_RATIO),
            GOAL_CPU_PER_CALL_PCT,
            met(f.cpu_pct_per_call <= GOAL_CPU_PER_CALL_PCT),
            percentile(&f.fs_to_skype_ms, 0.5),
            p99_in,
            percentile(&floor.fs_to_skype_ms, 0.5),
            percentile(&floor.fs_to_skype_ms, 0.99),
            percentile(&f.skype_to_fs_ms, 0.5),
            p99_out,
            percentile(&floor.skype_to_fs_ms, 0.5),
            percentile(&floor.skype_to_fs_ms, 0.99),
            GOAL_DIRECTION_P99_MS,
            met(p99_in < GOAL_DIRECTION_P99_MS && p99_out < GOAL_DIRECTION_P99_MS),
        );
    }
    out
}

pub fn render(all: &[Figures]) -> String {
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mut out = String::new();
    let _ = writeln!(out, "# Call benchmark\n");
    let _ = writeln!(
        out,
        "`cargo test --release --test bench_calls -- --ignored --nocapture` ({build} build, \
         commit `{}`; `BENCH_CALLS=1,10` and `BENCH_TRANSPORTS=audio_fork,unicast,unicast8` \
         pick a subset). FreeSWITCH double → `skype/instantecho` (the emulator's remote party \
         that returns each frame at once) through the real `skypopen` and `skype-sim` on Xvfb, \
         one interface per call, against a bare relay that sends each frame straight back \
         (a websocket server for `audio_fork`, a UDP socket for `unicast`). The FreeSWITCH \
         side sends a 20 ms linear chirp 300–3400 Hz every {} ms, silence between, one frame \
         every 20 ms on an absolute schedule; {} s measuring window per scenario. Machine: {} \
         cores.\n",
        git_commit(),
        CHIRP_EVERY * 20,
        WINDOW.as_secs(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
    );
    let _ = writeln!(out, "## Latency (ms)\n");
    let _ = writeln!(
        out,
        "| path | transport | calls | round trip p50 / p90 / p99 / max | chirps lost / sent | \
         FS → Skype p50 / p99 | emulator (hop + output clock) p50 / p99 | Skype → FS p50 / p99 | \
         sidecar share p50 (FS → Skype + Skype → FS) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for f in all {
        let _ = writeln!(out, "{}", latency_row(f));
    }
    let _ = writeln!(out, "\n## CPU and stream\n");
    let _ = writeln!(
        out,
        "| path | transport | calls | idle CPU % of a core | added CPU % of a core per call | \
         emulator CPU % of a core | whole stack CPU % of a core | machine busy % of all cores | client reads frames/s min / p50 | client writes frames/s min / p50 | answer → first audio ms p50 / max | \
         inter-frame gap ms p1 / p50 / p99 / max | gaps > 30 / > 60 ms |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for f in all {
        let _ = writeln!(out, "{}", cpu_row(f));
    }
    let _ = writeln!(
        out,
        "\n## Against the original mod_skypopen\n\n\
         The original module's figures (from the issue): round trip 35 ms, FreeSWITCH → \
         process 20 ms, process → FreeSWITCH 13.5 ms; FreeSWITCH CPU per call at 30 calls \
         1.19 % (original), 0.95 % (audio fork), 0.56 % (unicast). Goals: a round trip \
         through the sidecar on `unicast` below 35 ms, and sidecar CPU per call well under \
         the original's 1.19 % minus the path's own FreeSWITCH cost (0.63 % for unicast, \
         0.24 % for the audio fork). The original's CPU figures are taken as % of one core.\n"
    );
    out.push_str(&standing(all));
    let floor = against_floor(all);
    if !floor.is_empty() {
        let _ = writeln!(
            out,
            "\n## Against the fair floor\n\n\
             The four-socket relay moves the same frames between the same four sockets per \
             call (the switch side's UDP in and out, the client's input and output TCP ports) \
             on a 20 ms clock per call with the pump's slot rule (a frame leaves on arrival \
             unless its direction already sent one in the slot), on one thread, and does \
             nothing else; its client is a stand-in on another thread that echoes at once. \
             Its per-direction columns are probe → stand-in and stand-in → probe.\n"
        );
        out.push_str(&floor);
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let _ = writeln!(out, "\n## Load of the stack itself\n");
    out.push_str(&stack_load(all, cores));
    let scenario = |f: &Figures| format!("{} {} × {}", f.path, f.transport.label(), f.calls);
    let saturated: Vec<String> = all
        .iter()
        .filter(|f| f.stack_cpu_pct > 80.0 * cores)
        .map(scenario)
        .collect();
    if !saturated.is_empty() {
        let _ = writeln!(
            out,
            "\n**Saturated by the stack:** the sidecar, the emulator (its network, a client and \
             an X server per call) and the probes together took more than 80 % of the machine \
             during {}: there the figures say how the machine copes with the whole stack, not \
             what the sidecar costs or adds.",
            saturated.join(", ")
        );
    }
    let busy: Vec<String> = all
        .iter()
        .filter(|f| f.machine_busy_pct > 90.0 && f.stack_cpu_pct <= 80.0 * cores)
        .map(scenario)
        .collect();
    if !busy.is_empty() {
        let _ = writeln!(
            out,
            "\n**Busy machine:** other work kept the machine more than 90 % busy during {}; \
             latency and gap figures there carry scheduling delays that are not the path's.",
            busy.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\n## How each figure is measured\n\n\
         - Times are CLOCK_MONOTONIC, one clock for every process: the probes take it when \
         they hand a frame to the socket and when a frame arrives; `skype-sim client \
         --audio-trace` when it has read a whole frame from its input socket and just before \
         it writes a frame to its output socket. A chirp's time in a stream is its frame's \
         time plus its offset in the frame (found by cross-correlating the template around \
         the first loud frame), i.e. the audio time of its first sample.\n\
         - Round trip: from sending a chirp to its echo at the probe; a chirp with no echo \
         within the {} ms before the next one is lost.\n\
         - FS → Skype: chirp sent by the probe → read by the client from its input socket \
         (the sidecar's share of the way in, with the kernel's loopback hops). Skype → FS: \
         written by the client to its output socket → received by the probe (the sidecar's \
         share of the way out). Emulator: read from the input socket → written to the \
         output socket (the client → network → `instantecho` → client hop and the client's \
         20 ms output clock, which alone adds 0–20 ms, plus any backlog standing in its \
         output queue: up to 6 frames, and one that forms when frames arrive in a burst never \
         drains while the clock matches the arrival rate, so this column moves in 20 ms \
         steps between calls and runs; the client frames/s columns show whether its clock \
         kept up). The round trip is the sum of the \
         three; the sidecar's added latency per direction is its column here, and the bare \
         relay's round trip is the floor of both directions together.\n\
         - CPU: utime + stime from `/proc/<pid>/stat` of the `skypopen` process (the relay: \
         its thread) over the window, as % of one core; idle is {} s with no call (the \
         stack's interfaces logged in), per call is (with calls − idle) / calls. Emulator: \
         `skype-sim network` + every `skype-sim client` + every Xvfb over the window. Whole \
         stack: the sidecar (or relay) + the emulator + the benchmark process (probes and the \
         FreeSWITCH double). Machine busy: `/proc/stat`, all cores, everything running on the \
         machine, this benchmark's work included.\n\
         - Answer → first audio: from the channel's answer (the relay: the probe's start) to \
         the first loud frame the probe receives, i.e. media setup plus one round trip.\n\
         - Gaps: between consecutive frames the probe receives, all calls pooled.",
        CHIRP_EVERY * 20,
        IDLE_SPAN.as_secs(),
    );
    out
}
