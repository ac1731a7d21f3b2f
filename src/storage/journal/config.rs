//! [`JournalConfig`]: segment size, record bound, group-commit batching, corruption policy and
//! retention.

use serde::{Deserialize, Serialize};

/// What recovery does on mid-log corruption (bad bytes followed by valid records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorruptionPolicy {
    /// Copy the bad bytes aside with a report, skip them, and go on (the default).
    #[default]
    Quarantine,
    /// Refuse to open the journal.
    Stop,
}

/// How much of the log the node keeps once every consumer has applied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "keep", rename_all = "snake_case", deny_unknown_fields)]
pub enum Retention {
    /// Keep every segment (the default): the journal is the history that rebuilds, audits
    /// and as-of reads rely on.
    #[default]
    All,
    /// Keep at least the newest `bytes_min` bytes of the log.
    Bytes {
        /// Bytes of the newest log always kept.
        bytes_min: u64,
    },
    /// Keep every segment sealed less than `days_min` days ago.
    Age {
        /// Days a sealed segment is kept.
        days_min: u32,
    },
}

/// Journal settings. Field names carry their unit; defaults are stated per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Size at which a segment rolls to a new file, in bytes. Default 64 MiB: few files, and
    /// retention frees space in useful steps. A segment may exceed it by one batch.
    pub segment_size_bytes: u64,
    /// Largest record payload, in bytes. Default 4 MiB: above the largest valid record
    /// (`limits.record_bytes_max`), and it bounds what recovery will believe a length field.
    pub record_bytes_max: usize,
    /// Most bytes (encoded records, headers included) in one group-commit batch: one write, one
    /// fdatasync. Default 4 MiB.
    pub group_commit_batch_bytes_max: usize,
    /// Longest a batch waits for more appenders once several are already queued, in
    /// microseconds. Default 0: the fsync in progress is itself the batching window; a lone
    /// appender never waits.
    pub group_commit_wait_us_max: u64,
    /// Appends queued for the group-commit thread (or in the batch it is writing) before
    /// `try_append` reports busy and `append` waits. Default 16384.
    pub group_commit_queue_depth_max: usize,
    /// Payload bytes queued for the group-commit thread (or in the batch it is writing) before
    /// `try_append` reports busy and `append` waits. Default 64 MiB: sixteen full batches of
    /// `group_commit_batch_bytes_max` behind the one being written keep the disk busy, while
    /// the memory that pending appends may hold stays a fixed, affordable amount. At least
    /// `record_bytes_max`, so that every valid record fits.
    pub group_commit_queue_bytes_max: usize,
    /// What to do on mid-log corruption. Default `quarantine`.
    pub corruption_policy: CorruptionPolicy,
    /// Which segments garbage collection may remove once every cursor has passed them.
    /// Default [`Retention::All`]: none.
    pub retention: Retention,
}

impl Default for JournalConfig {
    fn default() -> Self {
        Self {
            segment_size_bytes: 64 * 1024 * 1024,
            record_bytes_max: 4 * 1024 * 1024,
            group_commit_batch_bytes_max: 4 * 1024 * 1024,
            group_commit_wait_us_max: 0,
            group_commit_queue_depth_max: 16 * 1024,
            group_commit_queue_bytes_max: 64 * 1024 * 1024,
            corruption_policy: CorruptionPolicy::Quarantine,
            retention: Retention::All,
        }
    }
}

/// Longest accepted `group_commit_wait_us_max`: 100 ms; longer waits only add latency.
const GROUP_COMMIT_WAIT_US_CEILING: u64 = 100_000;
/// Largest record payload the format supports.
const RECORD_BYTES_CEILING: usize = super::format::PAYLOAD_BYTES_CEILING;

impl JournalConfig {
    /// Checks every value against its range.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_size_bytes < 4096 {
            return Err(format!(
                "segment_size_bytes = {} is below 4096",
                self.segment_size_bytes
            ));
        }
        if !(1..=RECORD_BYTES_CEILING).contains(&self.record_bytes_max) {
            return Err(format!(
                "record_bytes_max = {} is outside 1..={RECORD_BYTES_CEILING}",
                self.record_bytes_max
            ));
        }
        if self.group_commit_batch_bytes_max < self.record_bytes_max {
            return Err(format!(
                "group_commit_batch_bytes_max = {} is below record_bytes_max = {}",
                self.group_commit_batch_bytes_max, self.record_bytes_max
            ));
        }
        if self.group_commit_wait_us_max > GROUP_COMMIT_WAIT_US_CEILING {
            return Err(format!(
                "group_commit_wait_us_max = {} exceeds {GROUP_COMMIT_WAIT_US_CEILING}",
                self.group_commit_wait_us_max
            ));
        }
        if self.group_commit_queue_depth_max == 0 {
            return Err("group_commit_queue_depth_max must be at least 1".to_owned());
        }
        if self.group_commit_queue_bytes_max < self.record_bytes_max {
            return Err(format!(
                "group_commit_queue_bytes_max = {} is below record_bytes_max = {}: a record at the limit could never be queued",
                self.group_commit_queue_bytes_max, self.record_bytes_max
            ));
        }
        Ok(())
    }
}
