//! [`Rejection`]: a journal record the ingestor refused, kept with its reason.
//!
//! Records reach the journal only after their shape, limits and signatures were checked, so a
//! rejection is always a check that depends on state (an unknown parent) or a record this
//! build cannot read. Rejections are stored under their journal offset, never dropped.

use serde::{Deserialize, Serialize};

use crate::protocol::Hash;

/// Why the ingestor refused a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The assertion names a parent that is not stored.
    #[error("parent {parent} is unknown")]
    UnknownParent {
        /// The missing parent.
        parent: Hash,
    },
    /// The assertion supersedes a parent about a different subject or predicate.
    #[error("parent {parent} is about a different subject or predicate")]
    ParentMismatch {
        /// The parent.
        parent: Hash,
    },
    /// The assertion supersedes a parent none of whose signers signed it: only an author may
    /// supersede (or retract) an assertion.
    #[error("parent {parent} was signed by none of this assertion's signers")]
    NotParentAuthor {
        /// The parent.
        parent: Hash,
    },
    /// The vote is about an assertion that is not stored.
    #[error("voted assertion {assertion} is unknown")]
    UnknownAssertion {
        /// The missing assertion.
        assertion: Hash,
    },
    /// The journal record does not decode as a record this build knows.
    #[error("record does not decode: {detail}")]
    Undecodable {
        /// The decoder's message.
        detail: String,
    },
}

impl RejectReason {
    /// Every [`code`](Self::code).
    pub const CODES: &'static [&'static str] =
        &["unknown_parent", "parent_mismatch", "not_parent_author", "unknown_assertion", "undecodable"];

    /// Returns a short, stable name for the reason (used as a metric label).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownParent { .. } => "unknown_parent",
            Self::ParentMismatch { .. } => "parent_mismatch",
            Self::NotParentAuthor { .. } => "not_parent_author",
            Self::UnknownAssertion { .. } => "unknown_assertion",
            Self::Undecodable { .. } => "undecodable",
        }
    }
}

/// A refused record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The record's journal offset.
    pub offset: u64,
    /// The record's content hash, when it decoded.
    pub hash: Option<Hash>,
    /// Why it was refused.
    pub reason: RejectReason,
}
