//! Simulation arenas: seeded, deterministic agents attack a real node and account for every
//! write (`stemedb sim`).
//!
//! - **0, spine**: agents write; every acknowledged write is read back; the node restarts and
//!   they are read back again, and a state rebuilt from the journal alone equals the live one.
//! - **1, cortex**: supersession chains, lifecycles and history; a stranger's supersession is
//!   refused.
//! - **2, voting**: consensus under journaled trust; re-votes count once; a swarm of distrusted
//!   trolls cannot outvote a few trusted voters; vote totals equal a recount; and resolving as
//!   of each recorded offset gives the winner of that moment.
//! - **3, chaos**: SIGKILL of a child node under load, byte corruption of sealed segments, a
//!   full disk, and an fsync that fails.
//! - **4, swarm**: a thousand and more concurrent agents write, vote, resolve and watch; every
//!   watcher's last winner agrees with a fresh resolution.
//!
//! Every wait is on an offset (or a feed) with a deadline; a deadline passed is reported as a
//! timeout, never slept through. An arena passes only if every write it had acknowledged is
//! found (written == verified) and every invariant it checks holds. Agents drive the embedded
//! API by default, or the HTTP API of a running `stemedb serve` ([`Target::Http`]).

pub(crate) mod arenas;
pub mod bench;
mod chaos;
pub mod driver;
mod nats;
mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use thiserror::Error;

pub use chaos::Tmpfs;
pub use nats::{NATS_START_TIMEOUT, NatsCluster, NatsOptions, NatsTls, NatsUser, nats_server_binary};
pub use report::{ArenaReport, Fault, Latencies, Report};

use stemedb::protocol::AgentKey;

/// Which node the agents drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A node started in this process for each arena, in a directory of its own.
    Embedded,
    /// The HTTP API of a running `stemedb serve`.
    Http {
        /// Its base URL (`http://127.0.0.1:7410`).
        base: String,
        /// An admin token: the run creates a key bound to its agents with it.
        admin_token: String,
    },
}

/// A simulation run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The arenas to run, in order (0 to 5).
    pub arenas: Vec<u8>,
    /// The seed of every random choice.
    pub seed: u64,
    /// Agents per arena (the swarm runs at least 1,000).
    pub agents: usize,
    /// Rounds of work per agent.
    pub ticks: usize,
    /// Which node.
    pub target: Target,
    /// Where embedded nodes keep their data (a directory of their own under it per arena).
    pub work_dir: PathBuf,
    /// The longest any one wait may take.
    pub deadline: Duration,
    /// The `stemedb` binary that chaos starts as a child process.
    pub binary: PathBuf,
    /// Test-only hooks for the embedded nodes: a deliberately broken build, to show that an
    /// arena fails.
    #[cfg(feature = "test-kit")]
    pub hooks: stemedb::actors::Hooks,
}

impl SimConfig {
    /// A run of `arenas` with `seed`, `agents` and `ticks` on embedded nodes under `work_dir`.
    pub fn new(arenas: Vec<u8>, seed: u64, agents: usize, ticks: usize, work_dir: PathBuf) -> Self {
        Self {
            arenas,
            seed,
            agents,
            ticks,
            target: Target::Embedded,
            work_dir,
            deadline: Duration::from_secs(60),
            binary: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("stemedb")),
            #[cfg(feature = "test-kit")]
            hooks: stemedb::actors::Hooks::default(),
        }
    }

    /// The command line that repeats this run of `arena`.
    pub fn command(&self, arena: u8) -> String {
        let mut command = format!(
            "stemedb sim --arena {arena} --seed {} --agents {} --ticks {}",
            self.seed, self.agents, self.ticks
        );
        if let Target::Http { base, .. } = &self.target {
            command.push_str(&format!(" --http {base} --token <admin token>"));
        }
        command
    }

    /// The deadline of a wait that starts now.
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.deadline
    }
}

/// Why an arena failed.
#[derive(Debug, Error)]
pub enum SimError {
    /// An invariant did not hold.
    #[error("invariant violated: {0}")]
    Invariant(String),
    /// A wait passed its deadline.
    #[error("timeout: {0}")]
    Timeout(String),
    /// The node failed in a way the arena did not provoke.
    #[error("node error: {0}")]
    Node(String),
    /// The HTTP API failed or answered something unexpected.
    #[error("HTTP error: {0}")]
    Http(String),
    /// The arena could not set itself up (files, processes, mounts).
    #[error("setup: {0}")]
    Setup(String),
}

/// The key of agent `index` of `arena` in a run seeded with `seed`.
pub(crate) fn agent_key(seed: u64, arena: u8, index: usize) -> AgentKey {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"stemedb sim agent");
    hasher.update(&seed.to_le_bytes());
    hasher.update(&[arena]);
    hasher.update(&(index as u64).to_le_bytes());
    AgentKey::from_secret_bytes(hasher.finalize().as_bytes())
}

/// Runs the arenas of `config`, in order; every arena runs even if an earlier one failed.
pub async fn run(config: &SimConfig) -> Report {
    let started = Instant::now();
    let mut arenas = Vec::new();
    for &arena in &config.arenas {
        arenas.push(arenas::run(config, arena).await);
    }
    Report::new(config, arenas, started.elapsed())
}
