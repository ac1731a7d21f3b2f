//! The JSON bodies of the HTTP API: what requests carry and responses answer. Requests refuse
//! unknown fields.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::keys::Role;
use stemedb::lens::{Resolution, Scored};
use stemedb::node::{AuditRecord, StoredAssertion, StoredVote, VoteTotals};
use stemedb::protocol::{AgentId, Assertion, Hash, Lifecycle, ObjectValue, Vote};

/// `?wait=`: when a write answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Once the record is durable in the journal (the default).
    #[default]
    Durable,
    /// Once it is also indexed: a read after the answer sees it (read-your-writes).
    Indexed,
}

/// Query parameters of the write endpoints.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WriteParams {
    /// `durable` (default) or `indexed`.
    #[param(inline)]
    pub wait: Option<Wait>,
}

/// A record made durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WriteReceipt {
    /// Its content hash.
    pub hash: Hash,
    /// Its journal offset.
    pub offset: u64,
    /// Whether the answer waited until it was indexed (always true for a duplicate).
    pub indexed: bool,
    /// True if and only if the record was stored already: it was not journaled again, and
    /// `offset` is the stored copy's.
    pub duplicate: bool,
}

/// One item of a batch answer: a receipt, or why the item was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    /// The receipt, if the item was made durable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<WriteReceipt>,
    /// The problem, if it was refused; nothing of it was journaled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<super::problem::Problem>,
}

/// The answer to a batch: one item per record, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchReceipt {
    /// Items durable.
    pub accepted: usize,
    /// Items refused.
    pub refused: usize,
    /// One per record, in order.
    pub items: Vec<BatchItem>,
}

/// A claim for the server to sign with a custodial agent's key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlainAssertion {
    /// What the claim is about; 1 to `subject_bytes_max` bytes, no control characters.
    #[schema(min_length = 1, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")]
    pub subject: String,
    /// Which property of the subject; 1 to `predicate_bytes_max` bytes, no control characters.
    #[schema(min_length = 1, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")]
    pub predicate: String,
    /// The claimed value.
    pub object: ObjectValue,
    /// How sure, in [0, 1].
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: f32,
    /// The custodial agent to sign as; the key's only agent when omitted.
    #[serde(default)]
    pub agent: Option<AgentId>,
    /// The assertion this one supersedes.
    #[serde(default)]
    pub parent: Option<Hash>,
    /// Where the claim stands (default `active`).
    #[serde(default)]
    pub lifecycle: Option<Lifecycle>,
}

/// A vote for the server to sign with a custodial agent's key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlainVote {
    /// The assertion voted for.
    pub assertion: Hash,
    /// How much the vote counts, in (0, `vote_weight_max`] (100 by default); the least
    /// positive normal `f32` at least, since a smaller number rounds to 0.
    #[schema(minimum = 1.175_494_4e-38, maximum = 100.0)]
    pub weight: f32,
    /// The custodial agent to vote as; the key's only agent when omitted.
    #[serde(default)]
    pub agent: Option<AgentId>,
}

/// A stored assertion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoredAssertionBody {
    /// Its content hash.
    pub hash: Hash,
    /// Its journal offset.
    pub offset: u64,
    /// The signed assertion.
    pub assertion: Assertion,
}

impl From<StoredAssertion> for StoredAssertionBody {
    fn from(stored: StoredAssertion) -> Self {
        Self {
            hash: stored.hash,
            offset: stored.offset,
            assertion: stored.assertion,
        }
    }
}

/// Query parameters of `GET /v1/assertions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// The subject.
    pub subject: String,
    /// Only this predicate of the subject.
    pub predicate: Option<String>,
    /// Superseded assertions too (default false: heads only).
    pub history: Option<bool>,
    /// Most assertions in the page (1..=1000, default 100); fewer if they would pass
    /// `http.response_bytes_max`, and then `next` says where the rest starts.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next` of the previous page; absent or empty for the first page. Opaque: only a
    /// `next` this listing gave is valid (400 otherwise).
    #[param(pattern = "^([0-9a-f]{2})*$")]
    pub after: Option<String>,
}

/// A page of assertions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ListBody {
    /// The assertions, in key order.
    pub assertions: Vec<StoredAssertionBody>,
    /// Pass as `after` for the next page; absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Vote totals of an assertion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TotalsBody {
    /// Live votes.
    pub count: u64,
    /// Their summed weight.
    pub weight: f64,
}

impl From<VoteTotals> for TotalsBody {
    fn from(totals: VoteTotals) -> Self {
        Self {
            count: totals.count,
            weight: totals.weight_f64(),
        }
    }
}

/// A live vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoredVoteBody {
    /// Its content hash.
    pub hash: Hash,
    /// Its journal offset.
    pub offset: u64,
    /// The signed vote.
    pub vote: Vote,
}

impl From<StoredVote> for StoredVoteBody {
    fn from(stored: StoredVote) -> Self {
        Self {
            hash: stored.hash,
            offset: stored.offset,
            vote: stored.vote,
        }
    }
}

/// The votes of an assertion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VotesBody {
    /// The totals.
    pub totals: TotalsBody,
    /// The live votes (up to `limit`).
    pub votes: Vec<StoredVoteBody>,
}

/// Query parameters of `GET /v1/assertions/{hash}/votes`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VotesParams {
    /// Most votes listed (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Query parameters of `GET /v1/resolve`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ResolveParams {
    /// The subject.
    pub subject: String,
    /// The predicate.
    pub predicate: String,
    /// The lens (default `consensus`).
    pub lens: Option<String>,
    /// Resolve as of this journal offset (with `as_of_ms` too: as of the earlier of the two).
    pub as_of_offset: Option<u64>,
    /// Resolve as of this time (ms since the epoch; with `as_of_offset` too: as of the earlier
    /// of the two).
    pub as_of_ms: Option<u64>,
    /// Accept a view at most this many journal bytes behind the ingest (with `max_stale_ms`
    /// too: within both bounds).
    pub max_stale_offsets: Option<u64>,
    /// Accept a view stale for at most this many milliseconds (with `max_stale_offsets` too:
    /// within both bounds).
    pub max_stale_ms: Option<u64>,
    /// Include superseded assertions (the chain).
    pub history: Option<bool>,
    /// Most candidates ranked (1..=1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Write an audit record of this resolution.
    pub audit: Option<bool>,
    /// Prove the answer: the body carries a `receipt` that `stemedb proof verify` (or
    /// `stemedb::receipt::verify`) checks offline with the node's checkpoint key. Always
    /// computed, never from a view; built-in lenses only.
    pub proof: Option<bool>,
}

/// One ranked candidate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScoredBody {
    /// The candidate's hash.
    pub hash: Hash,
    /// Its timestamp.
    pub timestamp_ms: u64,
    /// Its lifecycle.
    pub lifecycle: Lifecycle,
    /// Its live votes.
    pub votes: TotalsBody,
    /// Its score under the lens.
    pub score: f64,
    /// Why.
    pub reason: String,
}

impl From<&Scored> for ScoredBody {
    fn from(scored: &Scored) -> Self {
        Self {
            hash: scored.candidate.hash,
            timestamp_ms: scored.candidate.timestamp_ms,
            lifecycle: scored.candidate.lifecycle,
            votes: scored.candidate.votes.into(),
            score: scored.score.value,
            reason: scored.score.reason.clone(),
        }
    }
}

/// A resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResolutionBody {
    /// The winner, if any candidate is left.
    pub winner: Option<Hash>,
    /// The candidates, best first.
    pub ranked: Vec<ScoredBody>,
    /// The lens.
    pub lens: String,
    /// The journal offset the resolution reflects.
    pub offset: u64,
    /// Its audit record, if one was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<u64>,
    /// With `proof=true`: the receipt that proves the answer (see `stemedb::receipt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub receipt: Option<stemedb::receipt::Receipt>,
}

impl From<&Resolution> for ResolutionBody {
    fn from(resolution: &Resolution) -> Self {
        Self {
            winner: resolution.winner,
            ranked: resolution.ranked.iter().map(ScoredBody::from).collect(),
            lens: resolution.lens.clone(),
            offset: resolution.offset,
            audit_id: resolution.audit_id,
            receipt: None,
        }
    }
}

/// A candidate's hash and score in an audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditCandidate {
    /// The candidate.
    pub hash: Hash,
    /// Its score.
    pub score: f64,
}

/// An audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditBody {
    /// Its id.
    pub id: u64,
    /// When it was written (ms since the epoch).
    pub at_ms: u64,
    /// Who asked: `api-key:<id>` over HTTP, shown to that key and to admins; other keys see
    /// `(another API key)`.
    pub requester: Option<String>,
    /// The subject.
    pub subject: String,
    /// The predicate.
    pub predicate: String,
    /// The lens.
    pub lens: String,
    /// Whether superseded assertions were candidates.
    pub history: bool,
    /// The as-of point, if any.
    pub as_of: Option<String>,
    /// The candidates and their scores, best first.
    pub candidates: Vec<AuditCandidate>,
    /// The winner.
    pub winner: Option<Hash>,
    /// The journal offset the resolution reflected.
    pub offset: u64,
}

impl From<AuditRecord> for AuditBody {
    fn from(record: AuditRecord) -> Self {
        Self {
            id: record.id,
            at_ms: record.at_ms,
            requester: record.requester,
            subject: record.subject,
            predicate: record.predicate,
            lens: record.lens,
            history: record.history,
            as_of: record.as_of,
            candidates: record
                .candidates
                .into_iter()
                .map(|(hash, score)| AuditCandidate { hash, score })
                .collect(),
            winner: record.winner,
            offset: record.offset,
        }
    }
}

/// Query parameters of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// The subject.
    pub subject: String,
    /// The predicate.
    pub predicate: String,
    /// Most records, newest first (1..=1000, default 100); fewer if they would pass
    /// `http.response_bytes_max`, and then `next` says where the rest starts.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only records with ids below this: the `next` of the previous page.
    pub before: Option<u64>,
}

/// A list of audit records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    /// Newest first.
    pub records: Vec<AuditBody>,
    /// Pass as `before` for the next page; absent when this page holds the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// Query parameters of `GET /v1/watch`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WatchParams {
    /// The subject.
    pub subject: String,
    /// The predicate.
    pub predicate: String,
    /// The lens (default `consensus`).
    pub lens: Option<String>,
}

/// A winner change, as sent in a `winner` event of the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WinnerChangeBody {
    /// The winner before.
    pub old: Option<Hash>,
    /// The winner now.
    pub new: Option<Hash>,
    /// The ingest cursor of the resolution that found it.
    pub offset: u64,
}

/// The client of the winner feed fell behind, as sent in a `lagged` event: changes were
/// dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LaggedBody {
    /// How many changes were dropped.
    pub missed: u64,
}

/// Liveness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HealthBody {
    /// `ok`.
    pub status: String,
}

/// Readiness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReadyBody {
    /// Whether the node is caught up and not stalled.
    pub ready: bool,
    /// The ingest cursor.
    pub cursor: u64,
    /// The journal's durable end.
    pub durable_end: u64,
    /// Why ingestion is held, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled: Option<String>,
}

/// A new API key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// A name for people, at most [`KEY_LABEL_BYTES_MAX`](crate::keys::KEY_LABEL_BYTES_MAX)
    /// bytes.
    pub label: String,
    /// What it may do: at least one role, none twice (else 422 naming `roles`).
    pub roles: Vec<Role>,
    /// The agents it may submit as: at most [`KEY_AGENTS_MAX`](crate::keys::KEY_AGENTS_MAX),
    /// none twice (else 422 naming `agents`).
    #[serde(default)]
    pub agents: Vec<AgentId>,
}

/// A key just made: its token is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    /// The token to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// What is stored of it.
    pub key: super::keys::KeyInfo,
}

/// Every key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyList {
    /// In id order.
    pub keys: Vec<super::keys::KeyInfo>,
}

/// A custodial agent just made.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedAgent {
    /// Its id (public key).
    pub agent: AgentId,
}
