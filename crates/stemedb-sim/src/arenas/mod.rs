//! The arenas, and what they share: starting a node, the agents, the ledger of acknowledged
//! writes and its verification.

mod cortex;
mod spine;
mod swarm;
mod trust;
mod voting;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::driver::{Ack, Driver, Refusal};
use super::{ArenaReport, Fault, Latencies, SimConfig, SimError, Target, agent_key};
use stemedb::Config;
use stemedb::node::Node;
use stemedb::protocol::{AgentKey, Assertion, Hash, now_ms};

/// How long a write refused as busy is retried before the arena gives up on it.
const BUSY_DEADLINE: Duration = Duration::from_secs(60);
/// The longest pause between two tries of a busy write.
const BUSY_BACKOFF_MAX: Duration = Duration::from_millis(50);

/// What an arena counts while it runs.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) written: u64,
    pub(crate) verified: u64,
    pub(crate) refused_expected: u64,
    pub(crate) destroyed: u64,
    /// Acknowledged votes replaced by a newer vote of the same voter on the same assertion:
    /// accounted for by the newer vote, which was found.
    pub(crate) replaced: u64,
    pub(crate) checks: Vec<String>,
    pub(crate) faults: Vec<Fault>,
    pub(crate) latencies_us: Vec<u64>,
    /// Time spent in load phases.
    pub(crate) load: Duration,
}

impl Ledger {
    /// Records that `check` held.
    pub(crate) fn held(&mut self, check: impl Into<String>) {
        self.checks.push(check.into());
    }

    /// Fails unless `condition`, with `what` as the violated invariant.
    pub(crate) fn require(&mut self, condition: bool, what: impl FnOnce() -> String) -> Result<(), SimError> {
        if condition {
            Ok(())
        } else {
            Err(SimError::Invariant(what()))
        }
    }

    /// Records a write's latency.
    pub(crate) fn acked(&mut self, started: Instant) {
        self.written += 1;
        self.latencies_us.push(started.elapsed().as_micros() as u64);
    }
}

/// Runs arena `arena` and reports it.
pub(crate) async fn run(config: &SimConfig, arena: u8) -> ArenaReport {
    let started = Instant::now();
    let mut ledger = Ledger::default();
    // A reused work directory must not hand an arena the data (or the quarantine reports) of
    // an earlier run.
    let prefix = format!("arena-{arena}-{}-", config.seed);
    if let Ok(entries) = std::fs::read_dir(&config.work_dir) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let path = entry.path();
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
    }
    let (name, outcome) = match arena {
        0 => ("spine", spine::run(config, &mut ledger).await),
        1 => ("cortex", cortex::run(config, &mut ledger).await),
        2 => ("voting", voting::run(config, &mut ledger).await),
        3 => ("chaos", super::chaos::run(config, &mut ledger).await),
        4 => ("swarm", swarm::run(config, &mut ledger).await),
        5 => ("trust", trust::run(config, &mut ledger).await),
        _ => (
            "unknown",
            Err(SimError::Setup(format!("there is no arena {arena} (0 to 5)"))),
        ),
    };
    // Written == verified, always: a check of its own, whatever the arena returned.
    let outcome = outcome.and_then(|()| {
        if ledger.written == ledger.verified + ledger.replaced + ledger.destroyed {
            Ok(())
        } else {
            Err(SimError::Invariant(format!(
                "{} writes were acknowledged but {} were found ({} replaced by a newer vote, {} destroyed by injected corruption)",
                ledger.written, ledger.verified, ledger.replaced, ledger.destroyed
            )))
        }
    });
    let load = ledger.load.as_secs_f64();
    ArenaReport {
        arena,
        name: name.to_owned(),
        passed: outcome.is_ok(),
        failure: outcome.err().map(|e| e.to_string()),
        command: config.command(arena),
        written: ledger.written,
        verified: ledger.verified,
        refused_expected: ledger.refused_expected,
        destroyed: ledger.destroyed,
        replaced: ledger.replaced,
        checks: ledger.checks,
        faults: ledger.faults,
        elapsed_s: started.elapsed().as_secs_f64(),
        writes_per_s: if load > 0.0 {
            ledger.written as f64 / load
        } else {
            0.0
        },
        latency: Latencies::of(&mut ledger.latencies_us),
    }
}

/// The data directory of an embedded node of `arena`.
pub(crate) fn node_dir(config: &SimConfig, arena: u8, name: &str) -> PathBuf {
    config
        .work_dir
        .join(format!("arena-{arena}-{}-{name}", config.seed))
}

/// Starts an embedded node on `dir` with `node_config` (and the test hooks, if any).
pub(crate) fn start_node(config: &SimConfig, node_config: Config, dir: &Path) -> Result<Node, SimError> {
    #[cfg(feature = "test-kit")]
    let started = Node::start_with_hooks(node_config, dir, config.hooks.clone());
    #[cfg(not(feature = "test-kit"))]
    let started = {
        let _ = config;
        Node::start(node_config, dir)
    };
    started.map_err(|e| SimError::Node(format!("cannot start a node on {}: {e}", dir.display())))
}

/// The arena's agents' keys.
pub(crate) fn agents(config: &SimConfig, arena: u8, count: usize) -> Vec<AgentKey> {
    (0..count).map(|i| agent_key(config.seed, arena, i)).collect()
}

/// The driver for `arena`: the embedded `node`, or the HTTP target with a key bound to
/// `agents`.
pub(crate) async fn driver(
    config: &SimConfig,
    node: Option<&Node>,
    agents: &[AgentKey],
) -> Result<Driver, SimError> {
    match (&config.target, node) {
        (Target::Http { base, admin_token }, _) => {
            let ids: Vec<_> = agents.iter().map(AgentKey::agent_id).collect();
            Driver::http(base, admin_token, &ids).await
        }
        (Target::Embedded, Some(node)) => Ok(Driver::Embedded(node.clone())),
        (Target::Embedded, None) => Err(SimError::Setup("an embedded arena needs a node".into())),
    }
}

/// A subject unique to this run and arena, so runs against one HTTP server never collide.
pub(crate) fn subject(config: &SimConfig, arena: u8, name: impl std::fmt::Display) -> String {
    format!("sim/{}/{arena}/{name}", config.seed)
}

/// A timestamp for round `tick`, agent `agent`: an hour in the past plus a millisecond
/// step per (tick, agent), so that recency has a strict order and no timestamp is ahead of
/// the clock.
pub(crate) fn timestamp(base_ms: u64, tick: usize, agent: usize, agents: usize) -> u64 {
    base_ms + (tick * agents.max(1) + agent) as u64
}

/// The base of [`timestamp`] for a run of `slots` (ticks × agents) timestamps: an hour and
/// `slots` milliseconds before now, so that the last of them is still an hour in the past,
/// however large the run.
pub(crate) fn base_ms(slots: usize) -> u64 {
    now_ms().saturating_sub(3_600_000 + slots as u64)
}

/// Submits `assertion`, retrying while the node answers busy; counts the acknowledgement.
pub(crate) async fn write(
    driver: &Driver,
    ledger: &mut Ledger,
    assertion: &Assertion,
) -> Result<Ack, SimError> {
    let started = Instant::now();
    let ack = retry(|| driver.submit(assertion)).await?;
    ledger.acked(started);
    Ok(ack)
}

/// Runs `attempt` until it is not refused as busy, backing off from 1 ms up to
/// [`BUSY_BACKOFF_MAX`] (the pause a busy answer asks for, not a wait for an outcome), for
/// at most [`BUSY_DEADLINE`]; any other refusal is an error.
pub(crate) async fn retry<F, Fut>(attempt: F) -> Result<Ack, SimError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<Ack, Refusal>, SimError>>,
{
    match retry_busy(attempt).await? {
        Ok(ack) => Ok(ack),
        Err(other) => Err(SimError::Node(format!("a write was refused: {other:?}"))),
    }
}

/// As [`retry`], but a refusal other than busy is the caller's to judge.
pub(crate) async fn retry_busy<F, Fut>(mut attempt: F) -> Result<Result<Ack, Refusal>, SimError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<Ack, Refusal>, SimError>>,
{
    let deadline = Instant::now() + BUSY_DEADLINE;
    let mut backoff = Duration::from_millis(1);
    loop {
        match attempt().await? {
            Ok(ack) => return Ok(Ok(ack)),
            Err(Refusal::Busy) if Instant::now() < deadline => {
                actix_rt::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BUSY_BACKOFF_MAX);
            }
            Err(Refusal::Busy) => {
                return Err(SimError::Timeout(format!(
                    "a write was refused as busy for {BUSY_DEADLINE:?}"
                )));
            }
            Err(other) => return Ok(Err(other)),
        }
    }
}

/// Returns how many of the assertions `hashes` the node has (read back by hash, and equal to
/// what was written).
pub(crate) async fn present(driver: &Driver, hashes: &[Hash]) -> Result<u64, SimError> {
    let mut found = 0;
    for hash in hashes {
        if driver
            .get(hash)
            .await?
            .is_some_and(|assertion| assertion.content_hash() == *hash)
        {
            found += 1;
        }
    }
    Ok(found)
}
