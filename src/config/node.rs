//! [`NodeConfig`]: the submission and ingest pipeline (`[node]` in the config file).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::protocol::{AgentId, TRUST_FACTOR_MAX};

/// Bytes one record's struct occupies in a submission, counted against
/// `node.verify_queue_bytes_max` with the lengths of its text fields and signatures.
pub const RECORD_STRUCT_BYTES: usize = size_of::<crate::protocol::LogRecord>();

/// Ceiling of `verify_threads`: more threads than this only contend.
pub const VERIFY_THREADS_CEILING: usize = 256;
/// Ceiling of `submit_batch_records_max`, `verify_batch_records_max` and
/// `ingest_batch_records_max`.
pub const BATCH_RECORDS_CEILING: usize = 1 << 20;
/// Ceiling of `watch_buffer`: each watched view allocates its ring when its first watcher
/// subscribes.
pub const WATCH_BUFFER_CEILING: usize = 1 << 16;
/// How many times the audit map must be larger than `audit_bytes_max`. LMDB stores more than
/// the records' bytes (branch and leaf pages, overflow pages rounded up to whole pages, the
/// pair index), and copy-on-write needs free pages for every page a commit touches and for
/// the pages that open readers still see: a quarter of the map for records leaves the rest
/// for those.
pub const AUDIT_MAP_HEADROOM_FACTOR: u64 = 4;
/// Smallest `audit_bytes_max`: one honest audit of 1,000 candidates is about 45 KB, and it
/// must fit.
pub const AUDIT_BYTES_MIN: u64 = 64 * 1024;

/// Tuning of the submission and ingest pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Submissions (single or batch) queued for, or in, signature verification before
    /// submitters are told the node is busy (default 1024).
    pub submit_queue_depth_max: usize,
    /// Bytes that submissions queued for, or in, signature verification may hold before
    /// submitters are told the node is busy (default 64 MiB). A record counts its struct and
    /// the lengths of its text fields and signatures. 64 MiB is 512 records at the default
    /// 128 KiB size limit: far more than the verification threads drain between two journal
    /// writes, and, with `journal.group_commit_queue_bytes_max`, a fixed bound on the memory
    /// pending submissions hold, whatever the load. At least `limits.record_bytes_max` plus
    /// one record's struct, so that every valid record fits.
    pub verify_queue_bytes_max: usize,
    /// Most assertions in one submitted batch (default 10,000); larger batches are refused.
    pub submit_batch_records_max: usize,
    /// Signature-verification threads; 0 means one per CPU core (the default).
    pub verify_threads: usize,
    /// Most assertions verified in one batch-verification call, gathered across submitters
    /// (default 256: past a few hundred, batch verification gains nothing more).
    pub verify_batch_records_max: usize,
    /// Most journal records the ingestor applies in one LMDB transaction (default 4096).
    pub ingest_batch_records_max: usize,
    /// Most payload bytes the ingestor reads for one transaction (default 8 MiB).
    pub ingest_batch_bytes_max: usize,
    /// Longest wait before the ingestor retries after a transient error, in milliseconds
    /// (default 1000); waits start at 1 ms and double.
    pub ingest_retry_backoff_ms_max: u64,
    /// Most of the time, in percent, that the ingestor's LMDB commits may take while records
    /// trickle in (default 50). Each commit ends with an fdatasync of the state, on the disk
    /// the journal fsyncs to; committing every small batch would halve the journal's
    /// durable-ack rate. After a commit that took `t`, a batch that is not full waits until
    /// `t × (100 − duty) / duty` has passed (at most 10 ms); a full batch, or an ingestor more
    /// than 64 KiB of journal behind, never waits. 100 disables the pacing.
    pub ingest_commit_duty_percent: u8,
    /// Resolver threads (0: one per core, the default).
    pub lens_threads: usize,
    /// Most materialized views (default 10,000); each holds one resolution. Past it, the
    /// least recently used view that nobody watches is evicted; if every view is watched, a
    /// new one is refused.
    pub views_max: usize,
    /// Most bytes the materialized views may hold, by estimate (their keys, resolutions and
    /// watcher rings), in bytes (default 64 MiB: 10,000 views of a few candidates each, or a
    /// few hundred of 1,000 candidates). Evicts like `views_max`; a single view larger than it
    /// is not kept (the query is answered without one).
    pub views_bytes_max: usize,
    /// Winner changes a watcher may fall behind by before it is told it lagged (default 256).
    /// Each watched view keeps this many changes in a ring shared by its watchers, allocated
    /// when its first watcher subscribes.
    pub watch_buffer: usize,
    /// Which resolutions write an audit record: `"requested"` (queries with `audit` set, the
    /// default) or `"all"`.
    pub audit: AuditMode,
    /// Most audit records kept (default 100,000); past it the oldest are deleted.
    pub audit_records_max: u64,
    /// Most bytes of audit records kept (encoded records and their keys), in bytes (default
    /// 256 MiB, about 6,000 audits of 1,000 candidates, or 100,000 of a few); past it the
    /// oldest are deleted. Both this and `audit_records_max` apply. At least 64 KiB, and at
    /// most a quarter of `audit_map_bytes` (LMDB needs free pages for copy-on-write).
    pub audit_bytes_max: u64,
    /// Size of the audit trail's LMDB map, in bytes (default 1 GiB): the most disk and address
    /// space the audit trail takes. A multiple of 64 KiB, and at least four times
    /// `audit_bytes_max`.
    pub audit_map_bytes: usize,
}

/// Which resolutions are audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditMode {
    /// Those whose query asks (`Query::audit`).
    #[default]
    Requested,
    /// Every one.
    All,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            submit_queue_depth_max: 1024,
            verify_queue_bytes_max: 64 << 20,
            submit_batch_records_max: 10_000,
            verify_threads: 0,
            verify_batch_records_max: 256,
            ingest_batch_records_max: 4096,
            ingest_batch_bytes_max: 8 << 20,
            ingest_retry_backoff_ms_max: 1000,
            ingest_commit_duty_percent: 50,
            lens_threads: 0,
            views_max: 10_000,
            views_bytes_max: 64 << 20,
            watch_buffer: 256,
            audit: AuditMode::Requested,
            audit_records_max: 100_000,
            audit_bytes_max: 256 << 20,
            audit_map_bytes: 1 << 30,
        }
    }
}

impl NodeConfig {
    /// Checks the fields; returns a message naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        let counts = [
            ("submit_queue_depth_max", self.submit_queue_depth_max),
            ("submit_batch_records_max", self.submit_batch_records_max),
            ("verify_batch_records_max", self.verify_batch_records_max),
            ("ingest_batch_records_max", self.ingest_batch_records_max),
        ];
        for (name, value) in counts {
            if value == 0 || value > BATCH_RECORDS_CEILING {
                return Err(format!(
                    "node.{name} = {value}: must be in 1..={BATCH_RECORDS_CEILING}"
                ));
            }
        }
        if self.verify_threads > VERIFY_THREADS_CEILING {
            return Err(format!(
                "node.verify_threads = {}: at most {VERIFY_THREADS_CEILING}",
                self.verify_threads
            ));
        }
        if self.verify_queue_bytes_max == 0 {
            return Err("node.verify_queue_bytes_max must be positive".to_owned());
        }
        if self.ingest_batch_bytes_max == 0 {
            return Err("node.ingest_batch_bytes_max must be positive".to_owned());
        }
        if !(1..=WATCH_BUFFER_CEILING).contains(&self.watch_buffer) {
            return Err(format!(
                "node.watch_buffer = {}: must be in 1..={WATCH_BUFFER_CEILING}",
                self.watch_buffer
            ));
        }
        if self.audit_records_max == 0 {
            return Err("node.audit_records_max must be at least 1".to_owned());
        }
        self.validate_audit_bytes()?;
        if self.views_max == 0 || self.views_bytes_max == 0 {
            return Err("node.views_max and node.views_bytes_max must be positive".to_owned());
        }
        if !(1..=100).contains(&self.ingest_commit_duty_percent) {
            return Err("node.ingest_commit_duty_percent must be in 1..=100".to_owned());
        }
        if !(1..=60_000).contains(&self.ingest_retry_backoff_ms_max) {
            return Err("node.ingest_retry_backoff_ms_max must be in 1..=60000".to_owned());
        }
        Ok(())
    }

    /// Checks `audit_bytes_max` and `audit_map_bytes` (see their docs).
    fn validate_audit_bytes(&self) -> Result<(), String> {
        use crate::storage::state::MAP_SIZE_GRANULE_BYTES;
        if self.audit_map_bytes == 0 || !self.audit_map_bytes.is_multiple_of(MAP_SIZE_GRANULE_BYTES) {
            return Err(format!(
                "node.audit_map_bytes = {}: must be a positive multiple of {MAP_SIZE_GRANULE_BYTES}",
                self.audit_map_bytes
            ));
        }
        if self.audit_bytes_max < AUDIT_BYTES_MIN {
            return Err(format!(
                "node.audit_bytes_max = {}: must be at least {AUDIT_BYTES_MIN}",
                self.audit_bytes_max
            ));
        }
        let headroom = self.audit_bytes_max.saturating_mul(AUDIT_MAP_HEADROOM_FACTOR);
        if headroom > self.audit_map_bytes as u64 {
            return Err(format!(
                "node.audit_bytes_max = {} leaves too little headroom in node.audit_map_bytes = {}: \
                 the map must be at least {AUDIT_MAP_HEADROOM_FACTOR} times larger",
                self.audit_bytes_max, self.audit_map_bytes
            ));
        }
        Ok(())
    }

    /// Returns the number of resolver threads (`lens_threads`, or one per core).
    pub fn lens_threads(&self) -> usize {
        match self.lens_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n.min(VERIFY_THREADS_CEILING),
        }
    }

    /// Returns the number of verification threads (`verify_threads`, or one per core).
    pub fn verify_threads(&self) -> usize {
        match self.verify_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

/// Ceiling of `votes.shards`.
pub const VOTE_SHARDS_CEILING: usize = 256;

/// Vote counting and voter trust (`[votes]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VotesConfig {
    /// VoteCounter actors; each owns the totals of the assertions whose hash maps to it
    /// (default 4).
    pub shards: usize,
    /// Trust factor of an agent nobody rated (default 1.0).
    pub trust_default: f32,
    /// Trust factors by agent id (64 hex digits), e.g. `[votes.trust]` with
    /// `"3b6a27bc…" = 0.5`. Defaults only: an applied trust change overrides them.
    pub trust: BTreeMap<String, f32>,
    /// Agent ids (64 hex digits) whose signed trust changes the node admits (default none,
    /// so trust stays as configured). Checked at submission only: a change already in the
    /// journal stays applied when this list changes, so a replay is deterministic.
    pub admins: Vec<String>,
}

impl Default for VotesConfig {
    fn default() -> Self {
        Self {
            shards: 4,
            trust_default: 1.0,
            trust: BTreeMap::new(),
            admins: Vec::new(),
        }
    }
}

impl VotesConfig {
    /// Checks the fields; returns a message naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=VOTE_SHARDS_CEILING).contains(&self.shards) {
            return Err(format!(
                "votes.shards = {}: must be in 1..={VOTE_SHARDS_CEILING}",
                self.shards
            ));
        }
        self.trust_map()?;
        self.admin_set().map(|_| ())
    }

    /// Returns the configured trust factors, parsed; an error names the bad entry.
    pub fn trust_map(&self) -> Result<HashMap<AgentId, f32>, String> {
        let check = |name: &str, factor: f32| {
            if factor.is_finite() && (0.0..=TRUST_FACTOR_MAX).contains(&factor) {
                Ok(())
            } else {
                Err(format!(
                    "votes.{name} = {factor}: must be finite, in 0..={TRUST_FACTOR_MAX}"
                ))
            }
        };
        check("trust_default", self.trust_default)?;
        let mut map = HashMap::new();
        for (agent, &factor) in &self.trust {
            let id: AgentId = agent
                .parse()
                .map_err(|e| format!("votes.trust key {agent:?}: {e}"))?;
            check(&format!("trust.{agent}"), factor)?;
            map.insert(id, factor);
        }
        Ok(map)
    }

    /// Returns the administrators, parsed; an error names the bad entry.
    pub fn admin_set(&self) -> Result<HashSet<AgentId>, String> {
        self.admins
            .iter()
            .map(|admin| {
                admin
                    .parse()
                    .map_err(|e| format!("votes.admins entry {admin:?}: {e}"))
            })
            .collect()
    }
}
