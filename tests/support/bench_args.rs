//! What the benchmarks share: the transports, lists read from the environment
//! (`BENCH_CALLS=1,10`, `BENCH_TRANSPORTS=unicast,audio_fork`), percentiles, and the commit a
//! report names.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    AudioFork,
    Unicast16k,
    Unicast8k,
}

impl Transport {
    pub fn parse(name: &str) -> Option<Transport> {
        match name.trim() {
            "audio_fork" | "fork" => Some(Transport::AudioFork),
            "unicast" | "unicast16" => Some(Transport::Unicast16k),
            "unicast8" => Some(Transport::Unicast8k),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Transport::AudioFork => "audio_fork",
            Transport::Unicast16k => "unicast 16 kHz",
            Transport::Unicast8k => "unicast 8 kHz",
        }
    }

    /// The rate of the FreeSWITCH side's leg (the audio fork always streams 16 kHz).
    pub fn rate(self) -> u32 {
        match self {
            Transport::Unicast8k => 8000,
            _ => 16_000,
        }
    }

    pub fn is_unicast(self) -> bool {
        self != Transport::AudioFork
    }
}

/// The comma-separated list in the environment variable `name`, or `default`.
pub fn env_list<T>(name: &str, default: &str, parse: impl Fn(&str) -> Option<T>) -> Vec<T> {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| parse(s).unwrap_or_else(|| panic!("{name}: cannot read {s:?}")))
        .collect()
}

/// The `p` quantile (0..=1) of `sorted`, nearest rank; NaN when there is nothing.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The commit a report was measured at: `BENCH_COMMIT` when set (a benchmark run from a copy
/// of the tree, away from its git folder), else `git describe`, else `unknown`.
pub fn git_commit() -> String {
    if let Some(commit) = std::env::var("BENCH_COMMIT").ok().filter(|c| !c.is_empty()) {
        return commit;
    }
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=10"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}
