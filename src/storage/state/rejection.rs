//! [`Rejection`]: a journal record the ingestor refused, kept with its reason.
//!
//! Records reach the local journal only after their shape, limits and signatures were checked,
//! so there a rejection is a check that depends on state (an unknown parent) or a record this
//! build cannot read. A log others can write (a shared stream) is checked again at ingest, and
//! its records can also be refused as invalid, as a trust change by a non-administrator, or as
//! an unknown tag no administrator signed. Rejections are stored under their journal offset,
//! never dropped.

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
    /// The record fails a check admission makes (a signature, a limit, a value out of range):
    /// it reached a log that others can write without passing admission.
    #[error("record is invalid: {detail}")]
    Invalid {
        /// What the check found.
        detail: String,
    },
    /// The trust change is signed by an agent that is not one of the node's administrators.
    #[error("trust change signed by {admin}, who is not an administrator")]
    NotAdmin {
        /// The signer.
        admin: crate::protocol::AgentId,
    },
    /// The record's tag is unknown to this build, and it is not an extension record signed
    /// by an administrator (which would hold ingestion until an upgrade).
    #[error("record tag {tag} is unknown, and no administrator signed the record")]
    UnknownTag {
        /// The tag (first payload byte).
        tag: u8,
    },
}

impl RejectReason {
    /// Every [`code`](Self::code).
    pub const CODES: &'static [&'static str] =
        &[
            "unknown_parent",
            "parent_mismatch",
            "not_parent_author",
            "unknown_assertion",
            "undecodable",
            "invalid",
            "not_admin",
            "unknown_tag",
        ];

    /// Returns a short, stable name for the reason (used as a metric label).
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownParent { .. } => "unknown_parent",
            Self::ParentMismatch { .. } => "parent_mismatch",
            Self::NotParentAuthor { .. } => "not_parent_author",
            Self::UnknownAssertion { .. } => "unknown_assertion",
            Self::Undecodable { .. } => "undecodable",
            Self::Invalid { .. } => "invalid",
            Self::NotAdmin { .. } => "not_admin",
            Self::UnknownTag { .. } => "unknown_tag",
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
