//! CPU time from `/proc`: of a process or thread, of a set of processes, of the machine.

use crate::IDLE_SPAN;
use std::time::{Duration, Instant};

/// CPU ticks (user + system) of a `/proc/.../stat` file.
pub fn cpu_ticks(stat_path: &str) -> u64 {
    let text = std::fs::read_to_string(stat_path).unwrap_or_default();
    let rest = text.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15.
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

pub fn pids_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|p| cpu_ticks(&format!("/proc/{p}/stat")))
        .sum()
}

/// (busy, total) ticks of the whole machine, from `/proc/stat`.
pub fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    // idle and iowait
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

pub fn pct_of_core(ticks: u64, span: Duration) -> f64 {
    ticks as f64 / ticks_per_second() / span.as_secs_f64() * 100.0
}

/// CPU of the measured process (or thread) over a few seconds, % of a core.
pub async fn idle_cpu(stat_path: &str) -> f64 {
    let before = cpu_ticks(stat_path);
    tokio::time::sleep(IDLE_SPAN).await;
    pct_of_core(cpu_ticks(stat_path).saturating_sub(before), IDLE_SPAN)
}

pub struct CpuSnapshot {
    pub measured: u64,
    pub emulator: u64,
    /// This process: the probes and the FreeSWITCH double.
    pub harness: u64,
    pub machine: (u64, u64),
    pub at: Instant,
}

pub fn snapshot(stat_path: &str, emulator: &[u32]) -> CpuSnapshot {
    CpuSnapshot {
        measured: cpu_ticks(stat_path),
        emulator: pids_ticks(emulator),
        harness: cpu_ticks("/proc/self/stat"),
        machine: machine_ticks(),
        at: Instant::now(),
    }
}

/// Resident memory of `pid` in KiB (`VmRSS` of `/proc/<pid>/status`), 0 if it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `MemAvailable` of the machine in KiB.
pub fn mem_available_kib() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
