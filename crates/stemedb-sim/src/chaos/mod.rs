//! Arena 3, chaos: four faults, each injected once per run, and nothing acknowledged lost.
//!
//! 1. **SIGKILL**: a child `stemedb serve` is killed with SIGKILL while agents write to it over
//!    HTTP, then restarted on the same directory; every write it had acknowledged is there.
//! 2. **Corruption**: with the child stopped, random bytes of records in sealed journal
//!    segments are flipped and the state is deleted, so that a node rebuilds it from the
//!    journal. The rebuild must quarantine the damage (reports in `journal/quarantine/`), and
//!    every acknowledged record outside the quarantined regions must be present.
//! 3. **Disk full**: a node on a small tmpfs (when running as root; a fault-injecting layer
//!    that fails writes with ENOSPC otherwise) writes until the disk is full. Writes are then
//!    refused, not acknowledged; once space returns they succeed again.
//! 4. **fsync error**: the journal's fdatasync fails (injected). The journal poisons: that
//!    batch and every later write are refused. After a restart every write acknowledged before
//!    is present.

mod child;
mod corrupt;
mod io;
mod kill;
mod tmpfs;

pub use tmpfs::Tmpfs;

use super::arenas::{Ledger, agents, node_dir, timestamp};
use super::{SimConfig, SimError};
use stemedb::Config;
use stemedb::protocol::{AgentKey, Assertion, ObjectValue};

pub(super) const ARENA: u8 = 3;
/// Segment size of the chaos nodes: small, so that a short run seals several segments.
pub(super) const SEGMENT_BYTES: u64 = 16 << 10;
/// Concurrent writers against the child.
pub(super) const WRITERS: usize = 16;

pub(crate) async fn run(config: &SimConfig, ledger: &mut Ledger) -> Result<(), SimError> {
    let keys = agents(config, ARENA, WRITERS);
    let dir = node_dir(config, ARENA, "child");
    let acked = kill::sigkill(config, ledger, &keys, &dir).await?;
    corrupt::corruption(config, ledger, &dir, &acked).await?;
    io::disk_full(config, ledger, &keys).await?;
    io::fsync_error(config, ledger, &keys).await?;
    Ok(())
}

pub(super) fn node_config() -> Config {
    let mut config = Config::default();
    config.journal.segment_size_bytes = SEGMENT_BYTES;
    config
}

pub(super) fn claim(config: &SimConfig, key: &AgentKey, writer: usize, n: usize, base: u64) -> Assertion {
    let mut claim = Assertion::new(
        super::arenas::subject(config, ARENA, format!("w{writer}")),
        format!("p{}", n % 8),
        ObjectValue::Text(format!(
            "record {n} of writer {writer}, padded to a realistic size: {}",
            "x".repeat(64)
        )),
        0.5,
        timestamp(base, n, writer, WRITERS),
    );
    claim.sign(key);
    claim
}
