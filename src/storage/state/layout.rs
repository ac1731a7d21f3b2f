//! The LMDB layout of the state: every database, its keys and its values, described and
//! encoded here and nowhere else. The other files of `state` call these functions; none of them
//! builds a key or a value by hand.
//!
//! ```text
//! database              key                                       value
//! assertions            hash[32]                                  record value (below)
//! by_subject            subject_digest[32] ts u64 BE hash[32]     empty
//! by_subject_predicate  pair_digest[32]    ts u64 BE hash[32]     empty
//! supersession          parent[32] child[32]                      empty
//! votes                 assertion[32] voter[32]                   record value: the live vote
//! vote_totals           assertion[32]                             count u64 BE, weight[48]
//! trust                 agent[32]                                 record value: the applied change
//! rejected              offset u64 BE                             Rejection, MessagePack (named)
//! meta                  "ingest_cursor"                           u64 BE: next offset to apply
//!                       "schema_version"                          u32 BE: SCHEMA_VERSION
//! ```
//!
//! - **Record value**: `offset u64 BE` (where the record is in the journal), then the record's
//!   canonical bytes exactly as journaled, without the tag byte. The record is never
//!   re-encoded, so what a reader decodes is byte for byte what was signed.
//! - **Weight** is an [`ExactWeight`]: the exact sum of the live votes' `f32` weights, in
//!   [`EXACT_WEIGHT_BYTES`](super::EXACT_WEIGHT_BYTES) bytes, so totals never drift.
//! - **Names in keys.** A subject or predicate may be 1024 bytes, more than an LMDB key holds,
//!   so index keys carry a fixed-width blake3 digest of the name instead: fixed width keeps
//!   the key unambiguous, and a digest over length-prefixed parts keeps `("a:b", "c")` and
//!   `("a", "b:c")` apart. Reads compare the stored names too, so even a digest collision
//!   could not return a wrong assertion. Within one name, keys sort by timestamp, then hash.
//! - Keys are built with the composite-key codec ([`crate::storage::keys`]); every integer is
//!   big-endian, so LMDB's bytewise order is numeric order.

use crate::protocol::{AGENT_ID_LEN, AgentId, Assertion, HASH_LEN, Hash, TrustChange, Vote};
use crate::storage::keys::{KeyBuilder, KeyError, KeyReader};

use super::tally::{EXACT_WEIGHT_BYTES, ExactWeight};
use super::{Rejection, StateError, StoredTrust, StoredVote, VoteTotals};

/// Names of the LMDB databases.
pub(super) const DB_ASSERTIONS: &str = "assertions";
pub(super) const DB_BY_SUBJECT: &str = "by_subject";
pub(super) const DB_BY_SUBJECT_PREDICATE: &str = "by_subject_predicate";
pub(super) const DB_SUPERSESSION: &str = "supersession";
pub(super) const DB_REJECTED: &str = "rejected";
pub(super) const DB_META: &str = "meta";
pub(super) const DB_VOTES: &str = "votes";
pub(super) const DB_VOTE_TOTALS: &str = "vote_totals";
pub(super) const DB_TRUST: &str = "trust";
/// Most named databases: those above, with room for the audit trail and views to come.
pub(super) const DATABASES_MAX: u32 = 16;

/// `meta` key of the ingest cursor.
pub(super) const META_INGEST_CURSOR: &[u8] = b"ingest_cursor";
/// `meta` key of the schema version.
pub(super) const META_SCHEMA_VERSION: &[u8] = b"schema_version";

/// Bytes of a name digest.
pub const DIGEST_BYTES: usize = 32;
/// Bytes of an index key: digest, timestamp, hash.
pub const INDEX_KEY_BYTES: usize = DIGEST_BYTES + size_of::<u64>() + HASH_LEN;
/// Bytes of a `votes` key: assertion, voter.
pub const VOTE_KEY_BYTES: usize = HASH_LEN + AGENT_ID_LEN;

/// blake3 key-derivation contexts: each digest kind has its own, so they never coincide.
const SUBJECT_CONTEXT: &str = "stemedb 2026-11 index subject";
const PAIR_CONTEXT: &str = "stemedb 2026-11 index subject+predicate";

/// Bytes of the journal offset that leads a record value.
const OFFSET_BYTES: usize = size_of::<u64>();

// ---- keys ----

/// Returns the digest under which `subject` is indexed.
pub fn subject_digest(subject: &str) -> [u8; DIGEST_BYTES] {
    blake3::derive_key(SUBJECT_CONTEXT, subject.as_bytes())
}

/// Returns the digest under which the pair (`subject`, `predicate`) is indexed.
pub fn pair_digest(subject: &str, predicate: &str) -> [u8; DIGEST_BYTES] {
    let mut hasher = blake3::Hasher::new_derive_key(PAIR_CONTEXT);
    // Length-prefixed parts: no split of the same bytes between the two names hashes alike.
    hasher.update(&(subject.len() as u64).to_le_bytes());
    hasher.update(subject.as_bytes());
    hasher.update(&(predicate.len() as u64).to_le_bytes());
    hasher.update(predicate.as_bytes());
    *hasher.finalize().as_bytes()
}

/// Returns an index key: `digest`, then the timestamp, then the hash.
pub fn index_key(digest: &[u8; DIGEST_BYTES], timestamp_ms: u64, hash: &Hash) -> Result<Vec<u8>, KeyError> {
    KeyBuilder::new()
        .fixed(digest)
        .u64(timestamp_ms)
        .fixed(hash.as_bytes())
        .finish()
}

/// Returns the `by_subject` key of an assertion.
pub fn subject_key(assertion: &Assertion, hash: &Hash) -> Result<Vec<u8>, KeyError> {
    index_key(&subject_digest(&assertion.subject), assertion.timestamp_ms, hash)
}

/// Returns the `by_subject_predicate` key of an assertion.
pub fn pair_key(assertion: &Assertion, hash: &Hash) -> Result<Vec<u8>, KeyError> {
    let digest = pair_digest(&assertion.subject, &assertion.predicate);
    index_key(&digest, assertion.timestamp_ms, hash)
}

/// Returns the `supersession` key: `child` supersedes `parent`.
pub fn supersession_key(parent: &Hash, child: &Hash) -> Result<Vec<u8>, KeyError> {
    KeyBuilder::new()
        .fixed(parent.as_bytes())
        .fixed(child.as_bytes())
        .finish()
}

/// Splits an index key into (timestamp, hash); `None` if it is not one.
pub(crate) fn split_index_key(key: &[u8]) -> Option<(u64, Hash)> {
    if key.len() != INDEX_KEY_BYTES {
        return None;
    }
    let mut reader = KeyReader::new(key);
    let _digest: [u8; DIGEST_BYTES] = reader.fixed().ok()?;
    let timestamp_ms = reader.u64().ok()?;
    let hash: [u8; HASH_LEN] = reader.fixed().ok()?;
    reader.finish().ok()?;
    Some((timestamp_ms, Hash::from_bytes(hash)))
}

/// Returns the `votes` key of `voter`'s live vote on `assertion`: assertion first, so the votes
/// of one assertion are one prefix range.
pub fn vote_key(assertion: &Hash, voter: &AgentId) -> [u8; VOTE_KEY_BYTES] {
    let mut key = [0u8; VOTE_KEY_BYTES];
    key[..HASH_LEN].copy_from_slice(assertion.as_bytes());
    key[HASH_LEN..].copy_from_slice(voter.as_bytes());
    key
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

// ---- values ----

/// Encodes the record value of a record journaled at `offset`.
pub(super) fn encode_record(offset: u64, record: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(OFFSET_BYTES + record.len());
    value.extend_from_slice(&offset.to_be_bytes());
    value.extend_from_slice(record);
    value
}

/// Splits a record value into its journal offset and record bytes; `what` names the
/// database in the error a value too short to hold an offset gives.
fn decode_record<'a>(what: &'static str, value: &'a [u8]) -> Result<(u64, &'a [u8]), StateError> {
    let (offset, record) = value
        .split_at_checked(OFFSET_BYTES)
        .ok_or_else(|| StateError::corrupt(what, "shorter than its offset"))?;
    Ok((decode_u64(what, offset)?, record))
}

/// Decodes an `assertions` value: the offset, then the assertion.
pub(super) fn decode_assertion(value: &[u8]) -> Result<(u64, Assertion), StateError> {
    let (offset, record) = decode_record("assertion", value)?;
    let assertion = Assertion::from_record_bytes(record).map_err(|e| StateError::corrupt("assertion", e))?;
    Ok((offset, assertion))
}

/// Encodes a `votes` value.
pub(super) fn encode_vote(row: &StoredVote) -> Vec<u8> {
    encode_record(row.offset, &row.vote.to_record_bytes())
}

/// Decodes a `votes` value.
pub(super) fn decode_vote(value: &[u8]) -> Result<StoredVote, StateError> {
    let (offset, record) = decode_record("vote", value)?;
    let vote = Vote::from_record_bytes(record).map_err(|e| StateError::corrupt("vote", e))?;
    Ok(StoredVote {
        hash: vote.content_hash(),
        offset,
        vote,
    })
}

/// Encodes a `trust` value.
pub(super) fn encode_trust(row: &StoredTrust) -> Vec<u8> {
    encode_record(row.offset, &row.change.to_record_bytes())
}

/// Decodes a `trust` value.
pub(super) fn decode_trust(value: &[u8]) -> Result<StoredTrust, StateError> {
    let (offset, record) = decode_record("trust change", value)?;
    let change =
        TrustChange::from_record_bytes(record).map_err(|e| StateError::corrupt("trust change", e))?;
    Ok(StoredTrust {
        hash: change.content_hash(),
        offset,
        change,
    })
}

/// Encodes a `vote_totals` value.
pub(super) fn encode_totals(totals: &VoteTotals) -> Vec<u8> {
    let mut value = Vec::with_capacity(size_of::<u64>() + EXACT_WEIGHT_BYTES);
    value.extend_from_slice(&totals.count.to_be_bytes());
    value.extend_from_slice(&totals.weight.to_bytes());
    value
}

/// Decodes a `vote_totals` value.
pub(super) fn decode_totals(value: &[u8]) -> Result<VoteTotals, StateError> {
    let (count, weight) = value
        .split_at_checked(size_of::<u64>())
        .ok_or_else(|| StateError::corrupt("vote totals", "too short"))?;
    Ok(VoteTotals {
        count: decode_u64("vote count", count)?,
        weight: ExactWeight::from_bytes(weight)
            .ok_or_else(|| StateError::corrupt("vote weight", "not 48 bytes"))?,
    })
}

/// Encodes a `rejected` value.
pub(super) fn encode_rejection(rejection: &Rejection) -> Result<Vec<u8>, StateError> {
    rmp_serde::to_vec_named(rejection).map_err(|e| StateError::corrupt("rejection", e))
}

/// Decodes a `rejected` value.
pub(super) fn decode_rejection(value: &[u8]) -> Result<Rejection, StateError> {
    rmp_serde::from_slice(value).map_err(|e| StateError::corrupt("rejection", e))
}

/// Reads a big-endian u64 value (`meta` ingest cursor, counts).
pub(super) fn decode_u64(what: &'static str, bytes: &[u8]) -> Result<u64, StateError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StateError::corrupt(what, format!("{} bytes, expected 8", bytes.len())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn record_values_round_trip_and_short_ones_are_corrupt() {
        let value = encode_record(0x0102_0304_0506_0708, b"record");
        assert_eq!(&value[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            decode_record("vote", &value).unwrap(),
            (0x0102_0304_0506_0708, &b"record"[..])
        );
        assert!(decode_record("vote", &value[..7]).is_err());
    }

    #[test]
    fn totals_round_trip_and_short_ones_are_corrupt() {
        let mut weight = ExactWeight::ZERO;
        weight.add(2.5);
        let totals = VoteTotals { count: 3, weight };
        let value = encode_totals(&totals);
        assert_eq!(value.len(), 8 + EXACT_WEIGHT_BYTES);
        assert_eq!(decode_totals(&value).unwrap(), totals);
        assert!(decode_totals(&value[..value.len() - 1]).is_err());
        assert!(decode_totals(&value[..4]).is_err());
    }
}
