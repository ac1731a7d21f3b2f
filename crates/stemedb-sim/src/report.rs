//! What a simulation run reports: per arena, its counts, throughput, latencies, the faults
//! injected and survived, and its failure with the command that repeats it; for the run, the
//! peak RSS. Human-readable through `Display`, and JSON through serde.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::{SimConfig, Target};

/// Latency percentiles of acknowledged writes, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latencies {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Samples.
    pub samples: usize,
}

impl Latencies {
    /// The percentiles of `samples` (microseconds; sorted in place).
    pub fn of(samples: &mut [u64]) -> Self {
        samples.sort_unstable();
        let at = |pct: f64| {
            if samples.is_empty() {
                0
            } else {
                let index = ((samples.len() as f64 * pct).ceil() as usize).clamp(1, samples.len()) - 1;
                samples[index]
            }
        };
        Self {
            p50_us: at(0.50),
            p99_us: at(0.99),
            p999_us: at(0.999),
            samples: samples.len(),
        }
    }
}

/// A fault an arena injected, and whether the node came through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// What was done (`sigkill`, `corruption`, `disk_full`, `fsync_error`).
    pub kind: String,
    /// What exactly, and what was observed.
    pub detail: String,
    /// Whether everything acknowledged survived it, as expected.
    pub survived: bool,
}

/// One arena's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArenaReport {
    /// Its number, 0 to 5.
    pub arena: u8,
    /// Its name.
    pub name: String,
    /// Whether every write was verified and every invariant held.
    pub passed: bool,
    /// Why not, if it failed.
    pub failure: Option<String>,
    /// The command that repeats it.
    pub command: String,
    /// Writes acknowledged (assertions, votes, trust changes).
    pub written: u64,
    /// Acknowledged writes found afterwards.
    pub verified: u64,
    /// Writes refused as the arena expected (a stranger's supersession, a full disk, a
    /// poisoned journal).
    pub refused_expected: u64,
    /// Acknowledged writes the arena itself destroyed (records in bytes it corrupted), and so
    /// excused from verification.
    pub destroyed: u64,
    /// Acknowledged votes that a newer vote of the same voter on the same assertion replaced:
    /// accounted for by that newer vote, which was found live.
    pub replaced: u64,
    /// The invariants it checked, each once it held.
    pub checks: Vec<String>,
    /// The faults it injected.
    pub faults: Vec<Fault>,
    /// Wall-clock time, in seconds.
    pub elapsed_s: f64,
    /// Acknowledged writes per second of the arena's load phases.
    pub writes_per_s: f64,
    /// Latencies of the acknowledged writes.
    pub latency: Latencies,
}

/// A run's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// Agents per arena.
    pub agents: usize,
    /// Rounds per agent.
    pub ticks: usize,
    /// `embedded`, or the HTTP base URL.
    pub target: String,
    /// Each arena run.
    pub arenas: Vec<ArenaReport>,
    /// Whether every arena passed.
    pub passed: bool,
    /// The process's peak resident set, in bytes (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// Wall-clock time, in seconds.
    pub elapsed_s: f64,
}

impl Report {
    pub(crate) fn new(config: &SimConfig, arenas: Vec<ArenaReport>, elapsed: Duration) -> Self {
        Self {
            seed: config.seed,
            agents: config.agents,
            ticks: config.ticks,
            target: match &config.target {
                Target::Embedded => "embedded".to_owned(),
                Target::Http { base, .. } => base.clone(),
            },
            passed: arenas.iter().all(|a| a.passed),
            arenas,
            peak_rss_bytes: peak_rss_bytes(),
            elapsed_s: elapsed.as_secs_f64(),
        }
    }
}

/// The process's peak RSS from `/proc/self/status`, or 0 where there is none.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "stemedb sim: seed {}, {} agents, {} ticks, target {}",
            self.seed, self.agents, self.ticks, self.target
        )?;
        writeln!(
            f,
            "{:<12} {:>6} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>8} {:>8} {:>8}  result",
            "arena",
            "secs",
            "written",
            "verified",
            "replaced",
            "refused",
            "destroyed",
            "writes/s",
            "p50 us",
            "p99 us",
            "p99.9 us"
        )?;
        for a in &self.arenas {
            writeln!(
                f,
                "{:<12} {:>6.1} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10.0} {:>8} {:>8} {:>8}  {}",
                format!("{} {}", a.arena, a.name),
                a.elapsed_s,
                a.written,
                a.verified,
                a.replaced,
                a.refused_expected,
                a.destroyed,
                a.writes_per_s,
                a.latency.p50_us,
                a.latency.p99_us,
                a.latency.p999_us,
                if a.passed { "pass" } else { "FAIL" }
            )?;
            for check in &a.checks {
                writeln!(f, "    checked: {check}")?;
            }
            for fault in &a.faults {
                let outcome = if fault.survived {
                    "survived"
                } else {
                    "NOT SURVIVED"
                };
                writeln!(f, "    fault {}: {} ({outcome})", fault.kind, fault.detail)?;
            }
            if let Some(failure) = &a.failure {
                writeln!(f, "    FAILED: {failure}")?;
                writeln!(f, "    repeat with: {}", a.command)?;
            }
        }
        write!(
            f,
            "peak RSS {:.1} MiB; {:.1} s; {}",
            self.peak_rss_bytes as f64 / (1024.0 * 1024.0),
            self.elapsed_s,
            if self.passed {
                "all arenas passed"
            } else {
                "FAILED"
            }
        )
    }
}
