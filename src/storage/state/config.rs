//! [`StateConfig`]: sizing of the LMDB environment.

use serde::{Deserialize, Serialize};

/// Granularity of map sizes, in bytes: 64 KiB is a multiple of every page size Linux uses
/// (4 KiB on x86-64, up to 64 KiB on arm64), and LMDB requires a page-size multiple.
pub const MAP_SIZE_GRANULE_BYTES: usize = 64 * 1024;

/// Sizing of the LMDB environment (`[state]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Map size the environment opens with, in bytes (default 1 GiB). LMDB reserves this much
    /// address space, not disk: the file grows with the data. When a write finds the map full,
    /// the map doubles and the write is retried.
    pub map_size_bytes_initial: usize,
    /// Largest map size growth may reach, in bytes (default 1 TiB, far below the 128 TiB of
    /// address space a 64-bit process has). A write that needs more fails with
    /// [`StateError::MapSizeLimit`](super::StateError::MapSizeLimit).
    pub map_size_bytes_max: usize,
    /// Most concurrent LMDB read transactions (default 126, LMDB's own default); reads are
    /// short, so this bounds concurrent readers, not reading threads.
    pub readers_max: u32,
    /// Longest a [`Snapshot`](super::Snapshot) may be read from, in milliseconds (default 30 s).
    /// An older one answers [`StateError::SnapshotExpired`](super::StateError::SnapshotExpired)
    /// and lets go of its read transaction, so that a forgotten snapshot neither pins old pages
    /// (the file would grow) nor delays a map resize for long.
    pub snapshot_lifetime_ms_max: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            map_size_bytes_initial: 1 << 30,
            map_size_bytes_max: 1 << 40,
            readers_max: 126,
            snapshot_lifetime_ms_max: 30_000,
        }
    }
}

impl StateConfig {
    /// Checks the fields; returns a message naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("map_size_bytes_initial", self.map_size_bytes_initial),
            ("map_size_bytes_max", self.map_size_bytes_max),
        ] {
            if value == 0 || !value.is_multiple_of(MAP_SIZE_GRANULE_BYTES) {
                return Err(format!(
                    "state.{name} = {value}: must be a positive multiple of {MAP_SIZE_GRANULE_BYTES} bytes"
                ));
            }
        }
        if self.map_size_bytes_initial > self.map_size_bytes_max {
            return Err(format!(
                "state.map_size_bytes_initial ({}) exceeds state.map_size_bytes_max ({})",
                self.map_size_bytes_initial, self.map_size_bytes_max
            ));
        }
        if self.snapshot_lifetime_ms_max == 0 {
            return Err("state.snapshot_lifetime_ms_max must be at least 1".to_owned());
        }
        if self.readers_max == 0 {
            return Err("state.readers_max must be at least 1".to_owned());
        }
        Ok(())
    }
}
