//! [`CheckpointConfig`]: the node's signed checkpoints (`[checkpoint]`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Signed checkpoints of the Merkle tree over the log (`[checkpoint]`); see `node::checkpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Keep the Merkle tree over the log and the authenticated map, and sign checkpoints
    /// (default true). Off, ingest skips them (proofs and receipts are refused); turned on
    /// again, the node fills the tree from the log and rebuilds the map at its next start, if
    /// the log still holds every record.
    pub enabled: bool,
    /// The origin (the log's name, and the key's name) a new key is made for: no whitespace or
    /// `+`. Empty: `stemedb-` and 8 random hex digits. An existing key keeps its name; a
    /// configured origin that differs from it is refused.
    pub origin: String,
    /// The node's checkpoint key (C2SP signer key text, mode 0600), made at first start.
    /// Empty: `checkpoint.key` in the data directory. Put it outside the data directory to
    /// have the node refuse to sign after the data directory is replaced by an older copy: the
    /// latest checkpoint it signed is kept next to the key (`<key file>.latest`).
    pub key_file: Option<PathBuf>,
    /// A checkpoint is signed this often (milliseconds) if the tree grew.
    pub interval_ms: u64,
    /// ...or as soon as the tree grew by this many leaves.
    pub records: u64,
    /// Signed checkpoints kept (the oldest go first); at least 1.
    pub keep: usize,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            origin: String::new(),
            key_file: None,
            interval_ms: 1000,
            records: 10_000,
            keep: 1024,
        }
    }
}

impl CheckpointConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        if self.origin.contains('+') || self.origin.chars().any(char::is_whitespace) {
            return Err(format!(
                "checkpoint.origin = {:?} may hold no whitespace or '+'",
                self.origin
            ));
        }
        if !(10..=86_400_000).contains(&self.interval_ms) {
            return Err(format!(
                "checkpoint.interval_ms = {} must be from 10 to 86400000",
                self.interval_ms
            ));
        }
        if self.records == 0 {
            return Err("checkpoint.records must be at least 1".to_owned());
        }
        if !(1..=1_000_000).contains(&self.keep) {
            return Err(format!(
                "checkpoint.keep = {} must be from 1 to 1000000",
                self.keep
            ));
        }
        Ok(())
    }
}
