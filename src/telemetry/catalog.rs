//! Every metric the node records: its name, type, labels, meaning, histogram buckets and the
//! dashboard panel that shows it. The descriptions registered with the recorder, the
//! exporter's buckets, `docs/metrics.md` and the dashboard's coverage are all checked against
//! this one table.

/// What kind of metric a [`MetricSpec`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic count (`_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution with explicit buckets.
    Histogram,
}

impl Kind {
    /// Its Prometheus type name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One metric of the catalog.
#[derive(Debug, Clone, Copy)]
pub struct MetricSpec {
    /// Its name, `stemedb_*`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Its labels; each has a small, fixed set of values.
    pub labels: &'static [&'static str],
    /// What it measures (the `# HELP` text).
    pub help: &'static str,
    /// A histogram's upper bucket bounds; empty for the others.
    pub buckets: &'static [f64],
    /// The title of the dashboard panel that shows it.
    pub panel: &'static str,
}

/// Latencies from 10 µs to 10 s: fsyncs on fast NVMe take tens of microseconds, on a loaded
/// VM disk tens of milliseconds, and a stuck device seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Counts of records in a batch, 1 to 16,384 in powers of two.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
];

const fn counter(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    panel: &'static str,
) -> MetricSpec {
    MetricSpec {
        name,
        kind: Kind::Counter,
        labels,
        help,
        buckets: &[],
        panel,
    }
}

const fn gauge(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    panel: &'static str,
) -> MetricSpec {
    MetricSpec {
        name,
        kind: Kind::Gauge,
        labels,
        help,
        buckets: &[],
        panel,
    }
}

const fn histogram(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
    buckets: &'static [f64],
    panel: &'static str,
) -> MetricSpec {
    MetricSpec {
        name,
        kind: Kind::Histogram,
        labels,
        help,
        buckets,
        panel,
    }
}

// Names, so that the code that records a metric and this table cannot disagree.
/// Records appended durably to the journal.
pub const JOURNAL_APPENDS: &str = "stemedb_journal_appends_total";
/// Encoded bytes appended durably (headers and batch marks included).
pub const JOURNAL_APPEND_BYTES: &str = "stemedb_journal_append_bytes_total";
/// Batches that failed, by kind.
pub const JOURNAL_APPEND_ERRORS: &str = "stemedb_journal_append_errors_total";
/// fdatasync latency.
pub const JOURNAL_FSYNC_SECONDS: &str = "stemedb_journal_fsync_seconds";
/// Records per group-commit batch.
pub const JOURNAL_BATCH_RECORDS: &str = "stemedb_journal_batch_records";
/// Segment files.
pub const JOURNAL_SEGMENTS: &str = "stemedb_journal_segments";
/// Bytes the segment files take.
pub const JOURNAL_DISK_BYTES: &str = "stemedb_journal_disk_bytes";
/// Quarantined regions.
pub const JOURNAL_QUARANTINED_REGIONS: &str = "stemedb_journal_quarantined_regions";
/// 1 while the journal is poisoned.
pub const JOURNAL_POISONED: &str = "stemedb_journal_poisoned";
/// How long the last open took.
pub const JOURNAL_OPEN_SECONDS: &str = "stemedb_journal_open_seconds";
/// Assertions stored by the ingest.
pub const INGEST_APPLIED: &str = "stemedb_ingest_applied_total";
/// Records the ingest passed (applied, duplicate or rejected), all kinds.
pub const INGEST_RECORDS: &str = "stemedb_ingest_records_total";
/// Assertions already stored.
pub const INGEST_DUPLICATES: &str = "stemedb_ingest_duplicates_total";
/// Records refused, by reason.
pub const INGEST_REJECTED: &str = "stemedb_ingest_rejected_total";
/// Durable bytes not yet applied.
pub const INGEST_LAG_BYTES: &str = "stemedb_ingest_lag_bytes";
/// Durable records not yet applied.
pub const INGEST_LAG_RECORDS: &str = "stemedb_ingest_lag_records";
/// Age of the oldest durable record not yet applied.
pub const INGEST_LAG_SECONDS: &str = "stemedb_ingest_lag_seconds";
/// LMDB commit latency of one ingest batch.
pub const INGEST_COMMIT_SECONDS: &str = "stemedb_ingest_commit_seconds";
/// 1 while ingestion is stalled.
pub const INGEST_STALLED: &str = "stemedb_ingest_stalled";
/// Times ingestion became stalled.
pub const INGEST_STALLS: &str = "stemedb_ingest_stalls_total";
/// Failed ingest steps retried.
pub const INGEST_RETRIES: &str = "stemedb_ingest_retries_total";
/// Stream publishes retried (replication.mode = jetstream).
pub const REPLICATION_PUBLISH_RETRIES: &str = "stemedb_replication_publish_retries_total";
/// Times ingestion halted until restart.
pub const INGEST_HALTED: &str = "stemedb_ingest_halted_total";
/// Votes that became live.
pub const VOTES_APPLIED: &str = "stemedb_votes_applied_total";
/// Live votes a newer vote of the same voter replaced.
pub const VOTES_REPLACED: &str = "stemedb_votes_replaced_total";
/// Votes that changed nothing.
pub const VOTES_IGNORED: &str = "stemedb_votes_ignored_total";
/// Trust changes applied.
pub const TRUST_APPLIED: &str = "stemedb_trust_changes_applied_total";
/// Trust changes that changed nothing.
pub const TRUST_IGNORED: &str = "stemedb_trust_changes_ignored_total";
/// Resolutions, by lens and by where the answer came from.
pub const RESOLVES: &str = "stemedb_resolves_total";
/// Resolve latency, by lens.
pub const RESOLVE_SECONDS: &str = "stemedb_resolve_seconds";
/// Resolves that failed, by reason.
pub const RESOLVE_ERRORS: &str = "stemedb_resolve_errors_total";
/// Fresh views used.
pub const VIEW_HITS: &str = "stemedb_view_hits_total";
/// Queries that found no fresh view.
pub const VIEW_MISSES: &str = "stemedb_view_misses_total";
/// Views passed over because they were dated in the future.
pub const VIEW_SKEW_BYPASSES: &str = "stemedb_view_skew_bypasses_total";
/// Materialized views held.
pub const VIEWS: &str = "stemedb_views";
/// Audit records written.
pub const AUDIT_RECORDS: &str = "stemedb_audit_records_total";
/// Bytes the audit trail stores.
pub const AUDIT_STORED_BYTES: &str = "stemedb_audit_stored_bytes";
/// Audit records deleted by retention.
pub const AUDIT_EVICTED: &str = "stemedb_audit_evicted_total";
/// Audit records that could not be written.
pub const AUDIT_WRITE_FAILURES: &str = "stemedb_audit_write_failures_total";
/// Estimated bytes the materialized views hold.
pub const VIEWS_BYTES: &str = "stemedb_views_bytes";
/// Views evicted to stay within the caps.
pub const VIEW_EVICTIONS: &str = "stemedb_view_evictions_total";
/// Open winner-change feeds.
pub const WATCHERS: &str = "stemedb_watchers";
/// Winner changes watchers missed because they lagged.
pub const WATCH_MISSED: &str = "stemedb_watch_missed_total";
/// HTTP requests, by route, method and status.
pub const HTTP_REQUESTS: &str = "stemedb_http_requests_total";
/// HTTP latency to the response head, by route and method.
pub const HTTP_REQUEST_SECONDS: &str = "stemedb_http_request_seconds";
/// Requests refused by a limit, by reason.
pub const HTTP_REJECTIONS: &str = "stemedb_http_rejections_total";
/// Bounded queues' current use and bounds.
pub const QUEUE_BYTES: &str = "stemedb_queue_bytes";
/// A bounded queue's byte bound.
pub const QUEUE_BYTES_MAX: &str = "stemedb_queue_bytes_max";
/// Entries in a bounded queue.
pub const QUEUE_ENTRIES: &str = "stemedb_queue_entries";
/// Items a bounded queue refused because it was full.
pub const BUSY_REJECTIONS: &str = "stemedb_busy_rejections_total";
/// Messages waiting in an actor's mailbox.
pub const MAILBOX_DEPTH: &str = "stemedb_mailbox_depth";
/// LMDB map pages in use, in bytes.
pub const STATE_MAP_USED_BYTES: &str = "stemedb_state_map_used_bytes";
/// LMDB map size.
pub const STATE_MAP_SIZE_BYTES: &str = "stemedb_state_map_size_bytes";
/// Times the LMDB map was grown.
pub const STATE_MAP_GROWS: &str = "stemedb_state_map_grows_total";
/// Leaves of the Merkle tree over the log.
pub const TREE_LEAVES: &str = "stemedb_tree_leaves";
/// Checkpoints signed, by kind.
pub const CHECKPOINTS_SIGNED: &str = "stemedb_checkpoints_signed_total";
/// The `kind` values of [`CHECKPOINTS_SIGNED`].
pub const CHECKPOINT_KINDS: &[&str] = &["kept", "receipt"];
/// Checkpoints the node refused to sign: its tree does not extend the latest it signed.
pub const CHECKPOINT_REFUSALS: &str = "stemedb_checkpoint_refusals_total";
/// Receipts of resolutions built.
pub const RECEIPTS: &str = "stemedb_receipts_total";
/// Build information.
pub const BUILD_INFO: &str = "stemedb_build_info";
/// Answers the learned trust model holds.
pub const LEARNED_ANSWERS: &str = "stemedb_learned_answers";
/// Re-estimations of the learned trust model.
pub const LEARNED_EPOCHS: &str = "stemedb_learned_epochs_total";
/// Time the learned trust model takes in one ingest batch.
pub const LEARNED_BATCH_SECONDS: &str = "stemedb_learned_batch_seconds";

/// Queue names of the `queue` label.
pub const QUEUES: &[&str] = &["verify", "group_commit", "http", "http_out"];
/// Kinds of the `kind` label of [`JOURNAL_APPEND_ERRORS`].
pub const APPEND_ERROR_KINDS: &[&str] = &["storage_full", "io", "poisoned"];
/// Reasons of the `reason` label of [`HTTP_REJECTIONS`].
pub const HTTP_REJECTION_REASONS: &[&str] = &[
    "rate_limited",
    "quota",
    "body_too_large",
    "batch_too_large",
    "busy",
    "timeout",
    "watchers",
    "unauthenticated",
    "body_timeout",
    "outbound",
    "send_timeout",
];
/// Actors of the `actor` label of [`MAILBOX_DEPTH`].
pub const MAILBOX_ACTORS: &[&str] = &["ingestor", "vote_counter", "lens"];
/// Reasons of the `reason` label of [`RESOLVE_ERRORS`].
pub const RESOLVE_ERROR_REASONS: &[&str] = &[
    "unknown_lens",
    "invalid",
    "unavailable",
    "lens_failed",
    "storage",
    "closed",
    "views_full",
];

/// The catalog.
#[rustfmt::skip]
pub const METRICS: &[MetricSpec] = &[
    counter(JOURNAL_APPENDS, &[], "Records appended to the journal and made durable (acknowledged).", "Writes acknowledged"),
    counter(JOURNAL_APPEND_BYTES, &[], "Encoded bytes appended durably, record headers and batch marks included.", "Journal bytes written"),
    counter(JOURNAL_APPEND_ERRORS, &["kind"], "Journal batches that failed: storage_full (retry when space returns), io, or poisoned (refused after a failed fsync).", "Journal append errors"),
    histogram(JOURNAL_FSYNC_SECONDS, &[], "Latency of the fdatasync that makes one batch durable.", LATENCY_BUCKETS, "fsync latency"),
    histogram(JOURNAL_BATCH_RECORDS, &[], "Records per journal batch (one write and one fdatasync each).", BATCH_BUCKETS, "Group-commit batch size"),
    gauge(JOURNAL_SEGMENTS, &[], "Segment files the journal holds.", "Journal on disk"),
    gauge(JOURNAL_DISK_BYTES, &[], "Bytes the journal's segment files take, the active segment's preallocation included.", "Journal on disk"),
    gauge(JOURNAL_QUARANTINED_REGIONS, &[], "Damaged regions of sealed segments copied aside and skipped.", "Quarantine and poisoning"),
    gauge(JOURNAL_POISONED, &[], "1 while the journal is poisoned (an fsync failed; nothing more is acknowledged until reopened), else 0.", "Quarantine and poisoning"),
    gauge(JOURNAL_OPEN_SECONDS, &[], "How long the last journal open (recovery included) took.", "Journal open time"),
    counter(INGEST_APPLIED, &[], "Assertions the ingest stored in the state.", "Ingest applied"),
    counter(INGEST_RECORDS, &[], "Journal records the ingest passed: applied, duplicate, ignored or rejected.", "Ingest applied"),
    counter(INGEST_DUPLICATES, &[], "Assertion records whose assertion was already stored.", "Ingest applied"),
    counter(INGEST_REJECTED, &["reason"], "Records the ingest refused, by reason (unknown_parent, parent_mismatch, not_parent_author, unknown_assertion, undecodable, invalid, not_admin, unknown_tag).", "Rejected records by reason"),
    gauge(INGEST_LAG_BYTES, &[], "Journal bytes that are durable but not yet applied to the state (with replication.mode = jetstream: stream records fetched and not yet applied).", "Ingest lag"),
    gauge(INGEST_LAG_RECORDS, &[], "Records acknowledged since the node started that are not yet applied (a backlog inherited at start shows in the bytes).", "Ingest lag"),
    gauge(INGEST_LAG_SECONDS, &[], "Age of the oldest durable record not yet applied; 0 when caught up.", "Ingest lag seconds"),
    histogram(INGEST_COMMIT_SECONDS, &[], "Latency of the LMDB write transaction that applies one ingest batch.", LATENCY_BUCKETS, "LMDB commit latency"),
    gauge(INGEST_STALLED, &[], "1 while ingestion is stalled (corruption, an unknown record, a recurring error or a halt), else 0.", "Ingest stalls and retries"),
    counter(INGEST_STALLS, &[], "Times ingestion became stalled.", "Ingest stalls and retries"),
    counter(INGEST_RETRIES, &[], "Failed ingest steps that were retried after a backoff.", "Ingest stalls and retries"),
    counter(INGEST_HALTED, &[], "Times ingestion halted until the node restarts (a panic or a lost vote shard).", "Ingest stalls and retries"),
    counter(REPLICATION_PUBLISH_RETRIES, &[], "Stream publishes not acknowledged in time (or refused during an election) and sent again with the same Nats-Msg-Id (replication.mode = jetstream).", "Journal append errors"),
    counter(VOTES_APPLIED, &[], "Votes that became their voter's live vote on an assertion.", "Votes"),
    counter(VOTES_REPLACED, &[], "Live votes that a newer vote of the same voter replaced.", "Votes"),
    counter(VOTES_IGNORED, &[], "Votes that changed nothing (older than, or the same as, the live vote).", "Votes"),
    counter(TRUST_APPLIED, &[], "Trust changes applied.", "Trust changes"),
    counter(TRUST_IGNORED, &[], "Trust changes that changed nothing (older than the applied one).", "Trust changes"),
    counter(RESOLVES, &["lens", "source"], "Resolutions answered, by lens and by source (view: a fresh materialized view; computed: a snapshot read).", "Resolutions by lens"),
    histogram(RESOLVE_SECONDS, &["lens"], "Resolve latency from the query to the answer, by lens.", LATENCY_BUCKETS, "Resolve latency"),
    counter(RESOLVE_ERRORS, &["reason"], "Resolves that failed: unknown_lens, invalid, unavailable (not kept for a past point), lens_failed, storage (state or audit), closed, views_full.", "Resolve errors"),
    counter(VIEW_HITS, &[], "Queries answered from a fresh materialized view.", "View hits, misses and skew"),
    counter(VIEW_MISSES, &[], "Queries that allowed a view but found none fresh enough.", "View hits, misses and skew"),
    counter(VIEW_SKEW_BYPASSES, &[], "Views passed over because they were dated in the future (clock skew).", "View hits, misses and skew"),
    gauge(VIEWS, &[], "Materialized views held.", "Watchers and views"),
    counter(AUDIT_RECORDS, &[], "Audit records written for resolutions.", "Resolutions by lens"),
    gauge(AUDIT_STORED_BYTES, &[], "Bytes the audit trail stores (encoded records and their keys), kept within node.audit_bytes_max.", "Audit trail"),
    counter(AUDIT_EVICTED, &[], "Audit records deleted, oldest first, to stay within node.audit_records_max and node.audit_bytes_max (or to make room in a full map).", "Audit trail"),
    counter(AUDIT_WRITE_FAILURES, &[], "Audit records not written (too large, storage failing, writer stopped); a resolution that asked for audit failed, one audited only by node.audit = all was answered without an audit id.", "Audit trail"),
    gauge(VIEWS_BYTES, &[], "Estimated bytes the materialized views hold (keys, resolutions, watcher rings), kept within node.views_bytes_max unless watched views exceed it.", "View memory and evictions"),
    counter(VIEW_EVICTIONS, &[], "Views nobody watched that were evicted, least recently used first, to stay within node.views_max and node.views_bytes_max.", "View memory and evictions"),
    gauge(WATCHERS, &[], "Open winner-change feeds (embedded and SSE).", "Watchers and views"),
    counter(WATCH_MISSED, &[], "Winner changes that watchers missed because they fell behind their buffer.", "Watcher lag"),
    counter(HTTP_REQUESTS, &["route", "method", "status"], "HTTP requests answered, by route pattern, method and status code.", "HTTP requests by route and status"),
    histogram(HTTP_REQUEST_SECONDS, &["route", "method"], "HTTP latency from the request to the response head, by route pattern and method.", LATENCY_BUCKETS, "HTTP latency"),
    counter(HTTP_REJECTIONS, &["reason"], "HTTP requests refused by a limit: rate_limited (429), quota (429), body_too_large (413), batch_too_large (422), busy (503), timeout (503), watchers (503, or 429 past a key's share), unauthenticated (429: requests without a valid key, per peer address), body_timeout (408), outbound (503: answers not yet read past a budget), send_timeout (an answer not read in time; its connection closed).", "HTTP rejections by reason"),
    gauge(QUEUE_BYTES, &["queue"], "Bytes held by a bounded queue (verify, group_commit, http: request bodies, http_out: answers not yet sent).", "Queue bytes against budgets"),
    gauge(QUEUE_BYTES_MAX, &["queue"], "A bounded queue's byte budget.", "Queue bytes against budgets"),
    gauge(QUEUE_ENTRIES, &["queue"], "Entries held by a bounded queue.", "Queue entries"),
    counter(BUSY_REJECTIONS, &["queue"], "Items a bounded queue refused because it was full (answered 503 Busy).", "Busy rejections"),
    gauge(MAILBOX_DEPTH, &["actor"], "Messages sent to an actor kind and not yet handled (vote_counter, lens); for the ingestor, 1 while a new durable end waits for it (ends coalesce).", "Mailbox depths"),
    gauge(STATE_MAP_USED_BYTES, &[], "Bytes of LMDB map pages in use.", "LMDB map used against size"),
    gauge(STATE_MAP_SIZE_BYTES, &[], "The LMDB map size; it grows by itself when nearly full.", "LMDB map used against size"),
    counter(STATE_MAP_GROWS, &[], "Times the LMDB map was grown.", "LMDB map used against size"),
    gauge(BUILD_INFO, &["version", "profile"], "Always 1; the labels say which build runs.", "Build"),
    gauge(TREE_LEAVES, &[], "Leaves of the Merkle tree over the log (records, rejected ones included), as the checkpointer last saw it.", "Tree leaves"),
    counter(CHECKPOINTS_SIGNED, &["kind"], "Checkpoints signed: kept (periodic or on demand, stored and served), receipt (for a receipt, current or past size).", "Checkpoints and receipts"),
    counter(CHECKPOINT_REFUSALS, &[], "Checkpoints the node refused to sign because its tree does not extend the latest it signed (a data directory replaced by an older copy, or fed another log).", "Checkpoints and receipts"),
    counter(RECEIPTS, &[], "Receipts of resolutions built (GET /v1/resolve?proof=true, Node::resolve_verifiable).", "Checkpoints and receipts"),
    gauge(LEARNED_ANSWERS, &[], "Answers (live votes and signatures, one per agent and assertion) the learned trust model holds.", "Learned trust"),
    counter(LEARNED_EPOCHS, &[], "Re-estimations of the learned trust model by EM over every answer.", "Learned trust"),
    histogram(LEARNED_BATCH_SECONDS, &[], "Time the learned trust model takes in one ingest batch: its online steps, and any re-estimation the batch triggers.", LATENCY_BUCKETS, "Learned trust time per batch"),
];

/// Returns the catalog entry named `name`.
pub fn spec(name: &str) -> Option<&'static MetricSpec> {
    METRICS.iter().find(|spec| spec.name == name)
}
