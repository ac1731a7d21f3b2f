//! What planning reads of the stored state: a parent's facts, whether an assertion is stored,
//! and the pair of a voted assertion.

use heed::RoTxn;

use crate::protocol::{AgentId, Assertion, Hash};
use crate::storage::state::layout::{PairId, assertion_pair};
use crate::storage::state::read::{offset_of, record_at};
use crate::storage::state::{Databases, StateError};

/// What a successor is checked against: its parent's subject, predicate, signers and
/// timestamp (which places the parent's `pairs` entry); and the pair votes on it touch.
#[derive(Debug, Clone)]
pub(super) struct ParentFacts {
    pub(super) subject: String,
    pub(super) predicate: String,
    pub(super) signers: Vec<AgentId>,
    pub(super) timestamp_ms: u64,
    pub(super) pair: PairId,
}

impl ParentFacts {
    pub(super) fn of(assertion: &Assertion) -> Self {
        Self {
            subject: assertion.subject.clone(),
            predicate: assertion.predicate.clone(),
            signers: assertion.signatures.iter().map(|s| s.agent).collect(),
            timestamp_ms: assertion.timestamp_ms,
            pair: PairId::of_assertion(assertion),
        }
    }
}

/// Returns true if and only if an assertion with content hash `hash` is stored; reads the key
/// only, since duplicate and vote checks need no more.
pub(super) fn is_stored(txn: &RoTxn<'_>, dbs: &Databases, hash: &Hash) -> Result<bool, StateError> {
    Ok(offset_of(txn, dbs, hash)?.is_some())
}

/// Returns the pair of the stored assertion `hash`, or `None` if it is not stored.
pub(super) fn stored_pair(txn: &RoTxn<'_>, dbs: &Databases, hash: &Hash) -> Result<Option<PairId>, StateError> {
    let Some(offset) = offset_of(txn, dbs, hash)? else {
        return Ok(None);
    };
    assertion_pair(record_at(txn, dbs, hash, offset)?).map(Some)
}
