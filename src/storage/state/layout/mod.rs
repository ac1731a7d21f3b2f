//! The LMDB layout of the state (schema 3): every database, its keys and its values, described
//! and encoded here and nowhere else. The other files of `state` call these functions; none of
//! them builds a key or a value by hand.
//!
//! ```text
//! database           key                                             value
//! assertion_records  offset u64                                      pair[64], record
//! assertion_hashes   hash[32]                                        offset u64
//! pairs              pair[64] section u8 ts u64 hash[32]             summary
//! supersession       parent[32] child[32]                            empty
//! votes              assertion[32] voter[32]                         offset u64, record: the live vote
//! vote_totals        assertion[32]                                   count u64, weight[48]
//! trust              agent[32]                                       offset u64, record: the applied change
//! vote_history       assertion[32] voter[32] offset u64              offset u64, record: a replaced live vote
//! trust_history      agent[32] offset u64                            offset u64, record: a replaced change
//! ingest_times       commit ms u64, cursor u64                       empty
//! rejected           offset u64                                      Rejection, MessagePack (named)
//! tree, leaf_index: the Merkle tree over the log, drawn in `tree`
//! map_leaves, map_nodes, evidence: the authenticated map over the evidence, drawn in `map`
//! checkpoints        tree size u64                                   a signed checkpoint note (this node's)
//! meta               "ingest_cursor"                                 u64: next offset to apply
//!                    "schema_version"                                u32: SCHEMA_VERSION
//!                    "tree"                                          cursor u64, size u64
//!                    "map"                                           cursor u64
//!
//! pair     = subject_digest[32] predicate_digest[32]                 (a PairId)
//! section  = 0: a head (nothing supersedes it) | 1: superseded
//! summary  = offset u64, confidence f32 (bits), lifecycle u8, signer count u8, signers[32 × count]
//! record   = the record's canonical bytes exactly as journaled, without the tag byte
//! ```
//!
//! Integers are big-endian, so LMDB's bytewise order is numeric order.
//!
//! - **Records are appended.** `assertion_records` is keyed by journal offset, which only grows:
//!   each batch appends at the right edge of the tree (`MDB_APPEND`), dirtying a few pages for a
//!   whole batch, and its pages are full. Finding a record by hash is one more lookup, in
//!   `assertion_hashes`, whose entries are small (40 bytes), so its random inserts dirty far
//!   fewer pages than records keyed by hash would. The state's fdatasync writes every dirtied
//!   page, on the disk the journal fsyncs to: pages written per assertion is what ingest pays.
//! - **One index for subjects, pairs, heads and history.** `pairs` orders every stored
//!   assertion by subject, predicate, section, timestamp and hash. The assertions of a subject
//!   are one prefix range (32 bytes), those of a pair another (64 bytes), and its heads a third
//!   (65 bytes), newest last. Superseding moves the parent's entry from section 0 to section 1
//!   of the same pair, next to the child's, so it dirties pages the child's write already
//!   dirtied. An assertion thus costs two random B-tree inserts (`assertion_hashes`, `pairs`)
//!   and an append; schema 2 made three random inserts (record by hash, two indexes).
//! - **Summaries.** A `pairs` value carries what a lens needs without decoding the record: the
//!   offset, confidence, lifecycle and signers (timestamp and hash are in the key). The live vote
//!   count and exact weight are one `vote_totals` read by the hash in the key.
//! - **The pair of an assertion** leads its record value, so a vote reaches the pair it touches
//!   without decoding the record.
//! - **Record values** are never re-encoded, so what a reader decodes is byte for byte what
//!   was signed.
//! - **History for as-of reads.** A live vote or applied trust change that a newer one replaces
//!   moves to `vote_history` or `trust_history`, keyed by the journal offset of its record. A
//!   vote the ingest ignored (older than the live one) was never live as of any point after its
//!   own offset, so nothing else is kept: as of offset X, a voter's live vote is its live row
//!   if that was journaled below X, else its last history entry below X. `ingest_times` maps
//!   each commit's wall-clock time to the cursor it reached, for as-of by time.
//! - **Weight** is an [`ExactWeight`](super::ExactWeight): the exact sum of the live votes' `f32` weights, in
//!   [`EXACT_WEIGHT_BYTES`](super::EXACT_WEIGHT_BYTES) bytes, so totals never drift.
//! - **Names in keys.** A subject or predicate may be 1024 bytes, more than an LMDB key holds,
//!   so keys carry fixed-width blake3 digests of the names instead, each kind with its own
//!   derivation context. Reads compare the stored names too, so even a digest collision could
//!   not return a wrong assertion.

use std::fmt;
use std::sync::LazyLock;

use crate::protocol::{AGENT_ID_LEN, AgentId, Assertion, HASH_LEN, Hash, Lifecycle};

use super::StateError;

/// Names of the LMDB databases.
pub(super) const DB_ASSERTION_RECORDS: &str = "assertion_records";
pub(super) const DB_ASSERTION_HASHES: &str = "assertion_hashes";
pub(super) const DB_PAIRS: &str = "pairs";
pub(super) const DB_SUPERSESSION: &str = "supersession";
pub(super) const DB_REJECTED: &str = "rejected";
pub(super) const DB_META: &str = "meta";
pub(super) const DB_VOTES: &str = "votes";
pub(super) const DB_VOTE_TOTALS: &str = "vote_totals";
pub(super) const DB_TRUST: &str = "trust";
pub(super) const DB_VOTE_HISTORY: &str = "vote_history";
pub(super) const DB_TRUST_HISTORY: &str = "trust_history";
pub(super) const DB_INGEST_TIMES: &str = "ingest_times";
/// The Merkle tree over the log; see `tree`.
pub(super) const DB_TREE: &str = "tree";
/// Each record's first leaf, by content hash; see `tree`.
pub(super) const DB_LEAF_INDEX: &str = "leaf_index";
/// The node's signed checkpoints, by tree size; see `checkpoints`.
pub(super) const DB_CHECKPOINTS: &str = "checkpoints";
/// The authenticated map: each key's value; see `map`.
pub(super) const DB_MAP_LEAVES: &str = "map_leaves";
/// The authenticated map's interior nodes; see `map`.
pub(super) const DB_MAP_NODES: &str = "map_nodes";
/// The records of each map key's chain; see `map`.
pub(super) const DB_EVIDENCE: &str = "evidence";
/// The learned trust model; see `learned`.
pub(super) const DB_LEARNED: &str = "learned";
/// The schema 2 database of records by hash; the conversion moves them out and empties it.
pub(super) const DB_V2_ASSERTIONS: &str = "assertions";
/// The schema 2 indexes, which `pairs` replaced; emptied by the conversion.
pub(super) const DB_V2_INDEXES: [&str; 2] = ["by_subject", "by_subject_predicate"];
/// Most named databases: those above, with room for the audit trail and views to come.
pub(super) const DATABASES_MAX: u32 = 24;

/// `meta` key of the ingest cursor.
pub(super) const META_INGEST_CURSOR: &[u8] = b"ingest_cursor";
/// `meta` key of the schema version.
pub(super) const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// `meta` key of the Merkle tree's extent: cursor u64, size u64 (see `tree`).
pub(super) const META_TREE: &[u8] = b"tree";
/// `meta` key of the log position the authenticated map covers (see `map`).
pub(super) const META_MAP: &[u8] = b"map";

/// Bytes of a name digest.
pub const DIGEST_BYTES: usize = 32;
/// Bytes of a [`PairId`]: the subject digest, then the predicate digest.
pub const PAIR_ID_BYTES: usize = 2 * DIGEST_BYTES;
/// Bytes of a `pairs` key: pair, section, timestamp, hash.
pub const PAIR_KEY_BYTES: usize = PAIR_ID_BYTES + 1 + size_of::<u64>() + HASH_LEN;
/// Bytes of a `votes` key: assertion, voter.
pub const VOTE_KEY_BYTES: usize = HASH_LEN + AGENT_ID_LEN;

/// blake3 key-derivation contexts: each digest kind has its own, so they never coincide.
const SUBJECT_CONTEXT: &str = "stemedb 2026-11 index subject";
const PREDICATE_CONTEXT: &str = "stemedb 2026-11 index predicate";
/// The hashers of the two contexts, keyed once: a digest is then one compression for a short
/// name instead of two (deriving the context key costs as much as hashing the name).
static SUBJECT_HASHER: LazyLock<blake3::Hasher> = LazyLock::new(|| blake3::Hasher::new_derive_key(SUBJECT_CONTEXT));
static PREDICATE_HASHER: LazyLock<blake3::Hasher> =
    LazyLock::new(|| blake3::Hasher::new_derive_key(PREDICATE_CONTEXT));

/// Bytes of the journal offset that leads a record value.
const OFFSET_BYTES: usize = size_of::<u64>();
/// Bytes of a summary before its signers.
const SUMMARY_FIXED_BYTES: usize = OFFSET_BYTES + size_of::<f32>() + 2;

/// Which part of a pair's range an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    /// Nothing supersedes it.
    Head = 0,
    /// At least one stored assertion supersedes it.
    Superseded = 1,
}

/// A (subject, predicate) pair as the state keys it: the blake3 digests of the two names.
/// Equal names give equal ids; the ids of two pairs that differ collide only with a blake3
/// collision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PairId([u8; PAIR_ID_BYTES]);

impl PairId {
    /// Returns the id of (`subject`, `predicate`).
    pub fn of(subject: &str, predicate: &str) -> Self {
        let mut id = [0u8; PAIR_ID_BYTES];
        id[..DIGEST_BYTES].copy_from_slice(&subject_digest(subject));
        id[DIGEST_BYTES..].copy_from_slice(PREDICATE_HASHER.clone().update(predicate.as_bytes()).finalize().as_bytes());
        Self(id)
    }

    /// Returns the id of the pair of `assertion`.
    pub fn of_assertion(assertion: &Assertion) -> Self {
        Self::of(&assertion.subject, &assertion.predicate)
    }

    /// An id read back from the state.
    pub(crate) const fn from_stored_bytes(bytes: [u8; PAIR_ID_BYTES]) -> Self {
        Self(bytes)
    }

    /// Returns its bytes.
    pub const fn as_bytes(&self) -> &[u8; PAIR_ID_BYTES] {
        &self.0
    }

    /// Returns the subject digest it starts with.
    pub fn subject_digest(&self) -> &[u8] {
        &self.0[..DIGEST_BYTES]
    }
}

impl fmt::Debug for PairId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairId({self})")
    }
}

impl fmt::Display for PairId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A decoded `pairs` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairKey {
    /// The pair.
    pub pair: PairId,
    /// Head or superseded.
    pub section: Section,
    /// The assertion's timestamp.
    pub timestamp_ms: u64,
    /// The assertion's content hash.
    pub hash: Hash,
}

/// What a `pairs` value says of an assertion: enough for a lens, without its record.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The journal offset of its record.
    pub offset: u64,
    /// Its confidence.
    pub confidence: f32,
    /// Its lifecycle.
    pub lifecycle: Lifecycle,
    /// Its signers, in signature order.
    pub signers: Vec<AgentId>,
}

impl Summary {
    /// Returns the summary of `assertion`, journaled at `offset`.
    pub fn of(assertion: &Assertion, offset: u64) -> Self {
        Self {
            offset,
            confidence: assertion.confidence,
            lifecycle: assertion.lifecycle,
            signers: assertion.signatures.iter().map(|s| s.agent).collect(),
        }
    }
}

// ---- keys ----

/// Returns the digest under which `subject` is indexed.
pub fn subject_digest(subject: &str) -> [u8; DIGEST_BYTES] {
    *SUBJECT_HASHER.clone().update(subject.as_bytes()).finalize().as_bytes()
}

/// Returns a `pairs` key.
pub fn pair_key(pair: &PairId, section: Section, timestamp_ms: u64, hash: &Hash) -> [u8; PAIR_KEY_BYTES] {
    let mut key = [0u8; PAIR_KEY_BYTES];
    key[..PAIR_ID_BYTES].copy_from_slice(pair.as_bytes());
    key[PAIR_ID_BYTES] = section as u8;
    key[PAIR_ID_BYTES + 1..PAIR_ID_BYTES + 9].copy_from_slice(&timestamp_ms.to_be_bytes());
    key[PAIR_ID_BYTES + 9..].copy_from_slice(hash.as_bytes());
    key
}

/// Returns the `pairs` key of `assertion` (content hash `hash`) in `section`.
pub fn pair_key_of(assertion: &Assertion, hash: &Hash, section: Section) -> [u8; PAIR_KEY_BYTES] {
    pair_key(&PairId::of_assertion(assertion), section, assertion.timestamp_ms, hash)
}

/// Returns the prefix of the `pairs` keys of `pair` in `section`.
pub fn section_prefix(pair: &PairId, section: Section) -> [u8; PAIR_ID_BYTES + 1] {
    let mut prefix = [0u8; PAIR_ID_BYTES + 1];
    prefix[..PAIR_ID_BYTES].copy_from_slice(pair.as_bytes());
    prefix[PAIR_ID_BYTES] = section as u8;
    prefix
}

/// Decodes a `pairs` key; `None` if it is not one.
pub fn split_pair_key(key: &[u8]) -> Option<PairKey> {
    let key: &[u8; PAIR_KEY_BYTES] = key.try_into().ok()?;
    let section = match key[PAIR_ID_BYTES] {
        0 => Section::Head,
        1 => Section::Superseded,
        _ => return None,
    };
    let mut pair = [0u8; PAIR_ID_BYTES];
    pair.copy_from_slice(&key[..PAIR_ID_BYTES]);
    let mut timestamp = [0u8; 8];
    timestamp.copy_from_slice(&key[PAIR_ID_BYTES + 1..PAIR_ID_BYTES + 9]);
    let mut hash = [0u8; HASH_LEN];
    hash.copy_from_slice(&key[PAIR_ID_BYTES + 9..]);
    Some(PairKey {
        pair: PairId(pair),
        section,
        timestamp_ms: u64::from_be_bytes(timestamp),
        hash: Hash::from_bytes(hash),
    })
}

/// Returns the `supersession` key: `child` supersedes `parent`.
pub fn supersession_key(parent: &Hash, child: &Hash) -> [u8; 2 * HASH_LEN] {
    let mut key = [0u8; 2 * HASH_LEN];
    key[..HASH_LEN].copy_from_slice(parent.as_bytes());
    key[HASH_LEN..].copy_from_slice(child.as_bytes());
    key
}

/// Returns the `votes` key of `voter`'s live vote on `assertion`: assertion first, so the votes
/// of one assertion are one prefix range.
pub fn vote_key(assertion: &Hash, voter: &AgentId) -> [u8; VOTE_KEY_BYTES] {
    let mut key = [0u8; VOTE_KEY_BYTES];
    key[..HASH_LEN].copy_from_slice(assertion.as_bytes());
    key[HASH_LEN..].copy_from_slice(voter.as_bytes());
    key
}

/// Returns the `vote_history` key of a replaced vote of `voter` on `assertion`, journaled at
/// `offset`.
pub(super) fn vote_history_key(assertion: &Hash, voter: &AgentId, offset: u64) -> [u8; VOTE_KEY_BYTES + 8] {
    let mut key = [0u8; VOTE_KEY_BYTES + 8];
    key[..VOTE_KEY_BYTES].copy_from_slice(&vote_key(assertion, voter));
    key[VOTE_KEY_BYTES..].copy_from_slice(&offset.to_be_bytes());
    key
}

/// Returns the `trust_history` key of a replaced trust change of `agent`, journaled at
/// `offset`.
pub(super) fn trust_history_key(agent: &AgentId, offset: u64) -> [u8; AGENT_ID_LEN + 8] {
    let mut key = [0u8; AGENT_ID_LEN + 8];
    key[..AGENT_ID_LEN].copy_from_slice(agent.as_bytes());
    key[AGENT_ID_LEN..].copy_from_slice(&offset.to_be_bytes());
    key
}

/// Returns the `ingest_times` key of a commit at wall-clock `ms` that reached `cursor`.
pub(super) fn ingest_time_key(ms: u64, cursor: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&ms.to_be_bytes());
    key[8..].copy_from_slice(&cursor.to_be_bytes());
    key
}

/// Reads the trailing offset of a history key (its last 8 bytes).
pub(super) fn history_key_offset(key: &[u8]) -> Result<u64, StateError> {
    let at = key
        .len()
        .checked_sub(8)
        .ok_or_else(|| StateError::corrupt("history key", "too short"))?;
    decode_u64("history key", &key[at..])
}

/// Returns the `rejected` key of the record at journal `offset`.
pub(super) fn rejected_key(offset: u64) -> [u8; 8] {
    offset.to_be_bytes()
}

/// Reads a hash at byte `at` of a key.
pub(super) fn hash_at(key: &[u8], at: usize, what: &'static str) -> Result<Hash, StateError> {
    key.get(at..at + HASH_LEN)
        .and_then(|bytes| <[u8; HASH_LEN]>::try_from(bytes).ok())
        .map(Hash::from_bytes)
        .ok_or_else(|| StateError::corrupt(what, "key too short"))
}

mod values;
#[cfg(test)]
mod tests;

pub(super) use values::*;
