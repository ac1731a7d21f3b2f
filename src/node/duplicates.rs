//! Resends: a record whose content is stored already is answered with the stored receipt and
//! not journaled again, so a client that retries after a lost answer does not grow the log.
//!
//! Assertions are found by content hash; a trust change is found when it is its agent's
//! applied change. A record that reached the log but is not yet indexed is not found here:
//! it is journaled again and the ingest counts the copy as a duplicate, as before. The check
//! reads the state and nothing else, so it never refuses a record: a failed read answers
//! "not found" and the record takes the normal path, where the ingest deduplicates it.

use super::{Node, Receipt};
use crate::protocol::LogRecord;

impl Node {
    /// Returns, for each of `records`, its stored receipt (marked duplicate) if it is stored
    /// already.
    pub(super) fn stored_receipts(&self, records: &[LogRecord]) -> Vec<Option<Receipt>> {
        let Ok(state) = self.with_running(|running| Ok(running.state.clone())) else {
            return vec![None; records.len()];
        };
        records
            .iter()
            .map(|record| {
                let (hash, offset) = match record {
                    LogRecord::Assertion(assertion) => {
                        let hash = assertion.content_hash();
                        let stored = state.get(&hash).ok().flatten()?;
                        (hash, stored.offset)
                    }
                    LogRecord::Trust(change) => {
                        let hash = change.content_hash();
                        let stored = state.trust_change(&change.agent).ok().flatten()?;
                        (stored.hash == hash).then_some((hash, stored.offset))?
                    }
                    // A vote is stored under its (assertion, voter): the ingest keeps one per
                    // voter and counts a resend once.
                    LogRecord::Vote(_) => return None,
                };
                Some(Receipt {
                    hash,
                    offset,
                    duplicate: true,
                })
            })
            .collect()
    }
}
