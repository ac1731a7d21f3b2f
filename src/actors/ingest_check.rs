//! The ingest's checks of a log that others can write (a shared stream): every record is
//! checked as admission checks it — decoding, limits, signatures (verified in batches), and
//! the administrators of trust changes — on the node's verification threads, before the
//! ingestor plans it. A record that fails is rejected with its reason and passed; it is never
//! applied, and it never holds ingestion.
//!
//! The checks need no clock, so that every node decides alike whenever it ingests: a
//! timestamp's distance into the future is admission's concern (the record's author could not
//! have known the ingesting node's clock). Limits and administrators are the node's
//! configuration: the nodes of one stream must share `[limits]` and `votes.admins`, or their
//! states part (the state digest shows it).
//!
//! Records move to the verification threads and back: no payload is copied between the log's
//! read and the checks.

use std::collections::HashSet;

use crossbeam_channel::Sender;
use tokio::sync::oneshot;

use crate::protocol::{AgentId, CodecError, Extension, Limits, LogRecord, validate_records};
use crate::storage::state::{IngestRecord, Refused, RejectReason};

/// Records fewer than this are checked as one job: splitting them saves less than it costs.
const CHUNK_RECORDS_MIN: usize = 64;

/// A part of one ingest batch, sent to a verification thread.
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

/// The verification threads stopped (the node is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the verification threads stopped")]
pub(crate) struct CheckerGone;

/// What the ingestor holds to have a batch checked on the verification threads.
#[derive(Clone)]
pub(crate) struct Checker {
    sender: Sender<CheckJob>,
    /// Parts a batch is split into: one per verification thread.
    parts: usize,
}

impl Checker {
    /// A checker whose jobs go to `sender`, split into `parts` parts.
    pub(crate) fn new(sender: Sender<CheckJob>, parts: usize) -> Self {
        Self {
            sender,
            parts: parts.max(1),
        }
    }

    /// Checks `records` on the verification threads; resolves to the records and their
    /// verdicts, in order.
    pub(crate) fn check(
        &self,
        mut records: Vec<IngestRecord>,
    ) -> impl std::future::Future<Output = Result<Checked, CheckerGone>> + 'static {
        let per_part = records.len().div_ceil(self.parts).max(CHUNK_RECORDS_MIN);
        let mut parts = Vec::new();
        while !records.is_empty() {
            let rest = records.split_off(per_part.min(records.len()));
            parts.push(std::mem::replace(&mut records, rest));
        }
        let replies: Vec<_> = parts
            .into_iter()
            .map(|records| {
                let (reply, receiver) = oneshot::channel();
                self.sender
                    .send(CheckJob { records, reply })
                    .map(|()| receiver)
                    .map_err(|_| CheckerGone)
            })
            .collect();
        async move {
            let mut all = Checked {
                records: Vec::new(),
                refused: Vec::new(),
            };
            for reply in replies {
                let part = reply?.await.map_err(|_| CheckerGone)?;
                all.records.extend(part.records);
                all.refused.extend(part.refused);
            }
            Ok(all)
        }
    }
}

impl CheckJob {
    /// Checks the job's records and answers; run on a verification thread.
    pub(crate) fn run(self, limits: &Limits, admins: &HashSet<AgentId>) {
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
