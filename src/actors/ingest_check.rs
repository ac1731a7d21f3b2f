//! The ingest's checks of a log that others can write (a shared stream): every record is
//! checked as admission checks it — decoding, limits, signatures (verified in batches), and
//! the administrators of trust changes — on check threads of their own (`node.verify_threads`
//! of them, beside admission's), before the ingestor plans it. They live as long as the
//! ingestor: a node shutting down still checks what it ingests until it has caught up. A record that fails is rejected with its reason and passed; it is never
//! applied, and it never holds ingestion.
//!
//! The checks need no clock, so that every node decides alike whenever it ingests: a
//! timestamp's distance into the future is admission's concern (the record's author could not
//! have known the ingesting node's clock). Limits and administrators are the node's
//! configuration: the nodes of one stream must share `[limits]` and `votes.admins`, or their
//! states part (the state digest shows it).
//!
//! Records move to the check threads and back: no payload is copied between the log's
//! read and the checks.
//!
//! A node need not check again what its own admission verified: admission notes the blake3
//! hash of every payload it publishes ([`Published`], bounded), and a record read back whose
//! payload hash is noted passes without being decoded or verified again. The hash covers the
//! exact bytes, signatures included, so no other record can pass for it.

use std::collections::HashSet;
use std::sync::Arc;

use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use tokio::sync::oneshot;

use crate::protocol::{AgentId, CodecError, Extension, Limits, LogRecord, validate_records};
use crate::storage::state::{IngestRecord, Refused, RejectReason};

/// Records fewer than this are checked as one job: splitting them saves less than it costs.
const CHUNK_RECORDS_MIN: usize = 64;

/// Payload hashes of this node's own verified publishes remembered, at most: 2 MiB or so. A
/// record read back after more than this many newer publishes is checked again (correct, only
/// slower).
pub(crate) const PUBLISHED_MAX: usize = 1 << 16;

/// The payload hashes of records this node's admission verified and handed to a log others
/// can write, oldest first, bounded by [`PUBLISHED_MAX`]; see the module docs.
#[derive(Default)]
pub(crate) struct Published {
    inner: parking_lot::Mutex<PublishedInner>,
}

#[derive(Default)]
struct PublishedInner {
    hashes: HashSet<[u8; 32]>,
    order: std::collections::VecDeque<[u8; 32]>,
}

impl Published {
    /// Notes `payload`, which admission verified.
    pub(crate) fn note(&self, payload: &[u8]) {
        let hash = *blake3::hash(payload).as_bytes();
        let mut inner = self.inner.lock();
        if !inner.hashes.insert(hash) {
            return;
        }
        inner.order.push_back(hash);
        while inner.order.len() > PUBLISHED_MAX {
            if let Some(oldest) = inner.order.pop_front() {
                inner.hashes.remove(&oldest);
            }
        }
    }

    /// Returns true if and only if `payload` was noted (it stays noted until it ages out: a
    /// batch read again after a failed step passes again).
    fn contains(&self, payload: &[u8]) -> bool {
        let hash = *blake3::hash(payload).as_bytes();
        self.inner.lock().hashes.contains(&hash)
    }
}

/// A part of one ingest batch, sent to a check thread.
pub(crate) struct CheckJob {
    records: Vec<IngestRecord>,
    reply: oneshot::Sender<Checked>,
}

/// Records and their verdicts (one each, in order).
pub(crate) struct Checked {
    /// The records, as read.
    pub records: Vec<IngestRecord>,
    /// Their verdicts.
    pub refused: Vec<Refused>,
}

/// The check threads stopped (the node is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the check threads stopped")]
pub(crate) struct CheckerGone;

/// What the ingestor holds to have a batch checked on the check threads.
#[derive(Clone)]
pub(crate) struct Checker {
    sender: Sender<CheckJob>,
    published: Arc<Published>,
    /// Parts a batch is split into: one per check thread.
    parts: usize,
}

impl Checker {
    /// Starts `threads` check threads, checking against `limits` and `admins`; records whose
    /// payload `published` holds pass unchecked. Returns the checker (for the ingestor; the
    /// threads end once it and its clones are dropped) and the threads, to join then.
    pub(crate) fn start(
        limits: &Limits,
        admins: HashSet<AgentId>,
        published: Arc<Published>,
        threads: usize,
    ) -> std::io::Result<(Self, Vec<JoinHandle<()>>)> {
        let (sender, receiver) = crossbeam_channel::unbounded::<CheckJob>();
        let admins = Arc::new(admins);
        let mut handles = Vec::with_capacity(threads.max(1));
        for index in 0..threads.max(1) {
            let (receiver, limits, admins) = (receiver.clone(), limits.clone(), Arc::clone(&admins));
            let handle = std::thread::Builder::new()
                .name(format!("stemedb-check-{index}"))
                .spawn(move || {
                    while let Ok(job) = receiver.recv() {
                        job.run(&limits, &admins);
                    }
                })?;
            handles.push(handle);
        }
        let checker = Self {
            sender,
            published,
            parts: threads.max(1),
        };
        Ok((checker, handles))
    }

    /// Checks `records`: those this node published pass at once (on the caller's thread, a
    /// hash each), the others are checked on the check threads. Resolves to the
    /// records and their verdicts, in order.
    pub(crate) fn check(
        &self,
        records: Vec<IngestRecord>,
    ) -> impl std::future::Future<Output = Result<Checked, CheckerGone>> + 'static {
        let mut slots: Vec<Option<IngestRecord>> = Vec::with_capacity(records.len());
        let mut foreign = Vec::new();
        for (i, record) in records.into_iter().enumerate() {
            if self.published.contains(&record.payload) {
                slots.push(Some(record));
            } else {
                slots.push(None);
                foreign.push((i, record));
            }
        }
        let per_part = foreign.len().div_ceil(self.parts).max(CHUNK_RECORDS_MIN);
        let mut parts = Vec::new();
        while !foreign.is_empty() {
            let rest = foreign.split_off(per_part.min(foreign.len()));
            parts.push(std::mem::replace(&mut foreign, rest));
        }
        let replies: Vec<_> = parts
            .into_iter()
            .map(|part| {
                let (indices, records): (Vec<usize>, Vec<IngestRecord>) = part.into_iter().unzip();
                let (reply, receiver) = oneshot::channel();
                self.sender
                    .send(CheckJob { records, reply })
                    .map(|()| (indices, receiver))
                    .map_err(|_| CheckerGone)
            })
            .collect();
        async move {
            let mut refused: Vec<Refused> = vec![None; slots.len()];
            for reply in replies {
                let (indices, receiver) = reply?;
                let part = receiver.await.map_err(|_| CheckerGone)?;
                for ((i, record), verdict) in indices.into_iter().zip(part.records).zip(part.refused) {
                    slots[i] = Some(record);
                    refused[i] = verdict;
                }
            }
            // Every record comes back from its job; one missing would be a lost record.
            let records = slots.into_iter().collect::<Option<Vec<_>>>().ok_or(CheckerGone)?;
            Ok(Checked { records, refused })
        }
    }
}

impl CheckJob {
    /// Checks the job's records and answers; run on a check thread.
    fn run(self, limits: &Limits, admins: &HashSet<AgentId>) {
        let _busy = tracing::debug_span!("ingest.check", records = self.records.len()).entered();
        let refused = check_records(&self.records, limits, admins);
        // An ingestor that stopped waiting has dropped its receiver; nothing to do.
        let _ = self.reply.send(Checked {
            records: self.records,
            refused,
        });
    }
}

/// Checks `records` as admission would, signatures in one batch; returns a verdict per record.
///
/// A record that does not decode is left to the plan, which rejects it as `undecodable`
/// (every build agrees on that); a tag this build does not know is refused as `unknown_tag`,
/// unless the record is an extension record an administrator signed (see
/// [`Extension`]): that one passes, and the plan holds before it ("upgrade needed").
pub(crate) fn check_records(
    records: &[IngestRecord],
    limits: &Limits,
    admins: &HashSet<AgentId>,
) -> Vec<Refused> {
    let mut refused: Vec<Refused> = vec![None; records.len()];
    let mut decoded = Vec::with_capacity(records.len());
    let mut at = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        match LogRecord::decode(&record.payload) {
            Ok(one) => {
                decoded.push(one);
                at.push(i);
            }
            Err(CodecError::UnknownLogRecordTag { tag }) => {
                // A newer kind, signed by an administrator, holds ingestion until an upgrade;
                // anything else with an unknown tag is refused.
                let genuine = Extension::parse(&record.payload)
                    .is_some_and(|extension| admins.contains(&extension.signer) && extension.verify());
                if !genuine {
                    refused[i] = Some((None, RejectReason::UnknownTag { tag }));
                }
            }
            Err(_) => {}
        }
    }
    // No clock: a timestamp's distance into the future is never held against a stored record.
    let verdicts = validate_records(&decoded, limits, u64::MAX);
    for ((record, verdict), i) in decoded.iter().zip(verdicts).zip(at) {
        refused[i] = match verdict {
            Err(error) => Some((
                Some(record.content_hash()),
                RejectReason::Invalid {
                    detail: error.to_string(),
                },
            )),
            Ok(hash) => match record {
                LogRecord::Trust(change) if !admins.contains(&change.admin) => {
                    Some((Some(hash), RejectReason::NotAdmin { admin: change.admin }))
                }
                _ => None,
            },
        };
    }
    refused
}
