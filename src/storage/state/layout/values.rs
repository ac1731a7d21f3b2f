//! The value encodings of the state databases (the table is in the parent module).

use crate::protocol::{AGENT_ID_LEN, AgentId, Assertion, HASH_LEN, Lifecycle, TrustChange, Vote};

use super::super::tally::{EXACT_WEIGHT_BYTES, ExactWeight};
use super::super::{Rejection, StateError, StoredTrust, StoredVote, VoteTotals};
use super::{OFFSET_BYTES, PAIR_ID_BYTES, PairId, SUMMARY_FIXED_BYTES, Summary};


/// Encodes the record value of a record journaled at `offset`.
pub(in crate::storage::state) fn encode_record(offset: u64, record: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(OFFSET_BYTES + record.len());
    value.extend_from_slice(&offset.to_be_bytes());
    value.extend_from_slice(record);
    value
}

/// Splits a record value into its journal offset and record bytes; `what` names the
/// database in the error a value too short to hold an offset gives.
pub(in crate::storage::state) fn decode_record<'a>(what: &'static str, value: &'a [u8]) -> Result<(u64, &'a [u8]), StateError> {
    let (offset, record) = value
        .split_at_checked(OFFSET_BYTES)
        .ok_or_else(|| StateError::corrupt(what, "shorter than its offset"))?;
    Ok((decode_u64(what, offset)?, record))
}

/// Returns the `assertion_records` key of the record at journal `offset` (also the value of
/// its `assertion_hashes` entry).
pub(in crate::storage::state) fn offset_key(offset: u64) -> [u8; OFFSET_BYTES] {
    offset.to_be_bytes()
}

/// Encodes an `assertion_records` value: the pair, then the record.
pub(in crate::storage::state) fn encode_assertion(pair: &PairId, record: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(PAIR_ID_BYTES + record.len());
    value.extend_from_slice(pair.as_bytes());
    value.extend_from_slice(record);
    value
}

/// Splits an `assertion_records` value into pair and record bytes.
pub(in crate::storage::state) fn split_assertion(value: &[u8]) -> Result<(PairId, &[u8]), StateError> {
    let (pair, record) = value
        .split_first_chunk::<PAIR_ID_BYTES>()
        .ok_or_else(|| StateError::corrupt("assertion", "shorter than its pair"))?;
    Ok((PairId(*pair), record))
}

/// Reads the journal offset that leads a record value (`votes`, `trust` and their histories).
pub(in crate::storage::state) fn record_value_offset(value: &[u8]) -> Result<u64, StateError> {
    decode_record("record value", value).map(|(offset, _)| offset)
}

/// Decodes an `assertion_records` value.
pub(in crate::storage::state) fn decode_assertion(value: &[u8]) -> Result<Assertion, StateError> {
    let (_, record) = split_assertion(value)?;
    Assertion::from_record_bytes(record).map_err(|e| StateError::corrupt("assertion", e))
}

/// Reads the pair of an `assertion_records` value without decoding its record.
pub(in crate::storage::state) fn assertion_pair(value: &[u8]) -> Result<PairId, StateError> {
    split_assertion(value).map(|(pair, _)| pair)
}

/// Decodes an offset: an `assertion_hashes` value or an `assertion_records` key.
pub(in crate::storage::state) fn decode_offset(bytes: &[u8]) -> Result<u64, StateError> {
    decode_u64("assertion offset", bytes)
}

/// Encodes a `pairs` value.
pub(in crate::storage::state) fn encode_summary(summary: &Summary) -> Vec<u8> {
    let mut value = Vec::with_capacity(SUMMARY_FIXED_BYTES + summary.signers.len() * AGENT_ID_LEN);
    value.extend_from_slice(&summary.offset.to_be_bytes());
    value.extend_from_slice(&summary.confidence.to_bits().to_be_bytes());
    value.push(lifecycle_code(summary.lifecycle));
    // At most 16 signers (the validated limit is far below 256).
    value.push(u8::try_from(summary.signers.len()).unwrap_or(u8::MAX));
    for signer in &summary.signers {
        value.extend_from_slice(signer.as_bytes());
    }
    value
}

/// Decodes a `pairs` value.
pub(in crate::storage::state) fn decode_summary(value: &[u8]) -> Result<Summary, StateError> {
    let corrupt = |detail: &str| StateError::corrupt("pairs summary", detail.to_owned());
    let (fixed, signers) = value
        .split_at_checked(SUMMARY_FIXED_BYTES)
        .ok_or_else(|| corrupt("too short"))?;
    let offset = decode_u64("pairs summary", &fixed[..OFFSET_BYTES])?;
    let mut confidence = [0u8; 4];
    confidence.copy_from_slice(&fixed[OFFSET_BYTES..OFFSET_BYTES + 4]);
    let lifecycle = *Lifecycle::ALL
        .get(usize::from(fixed[OFFSET_BYTES + 4]))
        .ok_or_else(|| corrupt("unknown lifecycle"))?;
    let count = usize::from(fixed[OFFSET_BYTES + 5]);
    if signers.len() != count * AGENT_ID_LEN {
        return Err(corrupt("signer count disagrees with its length"));
    }
    let signers = signers
        .chunks_exact(AGENT_ID_LEN)
        .map(|bytes| {
            let bytes: &[u8; AGENT_ID_LEN] = bytes.try_into().map_err(|_| corrupt("short signer"))?;
            AgentId::from_bytes(bytes).map_err(|e| StateError::corrupt("pairs summary", e))
        })
        .collect::<Result<_, _>>()?;
    Ok(Summary {
        offset,
        confidence: f32::from_bits(u32::from_be_bytes(confidence)),
        lifecycle,
        signers,
    })
}

/// The byte a lifecycle is stored as: its index in [`Lifecycle::ALL`].
pub(super) fn lifecycle_code(lifecycle: Lifecycle) -> u8 {
    Lifecycle::ALL
        .iter()
        .position(|l| *l == lifecycle)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(u8::MAX)
}

/// Encodes a `votes` value.
pub(in crate::storage::state) fn encode_vote(row: &StoredVote) -> Vec<u8> {
    encode_record(row.offset, &row.vote.to_record_bytes())
}

/// Decodes a `votes` value.
pub(in crate::storage::state) fn decode_vote(value: &[u8]) -> Result<StoredVote, StateError> {
    let (offset, record) = decode_record("vote", value)?;
    let vote = Vote::from_record_bytes(record).map_err(|e| StateError::corrupt("vote", e))?;
    Ok(StoredVote {
        hash: vote.content_hash(),
        offset,
        vote,
    })
}

/// Reads the voter (from a `votes` key) and the weight (from its value) of a live vote,
/// without the canonical checks and content hash of [`decode_vote`]: what a lens needs.
pub(in crate::storage::state) fn decode_vote_weight(key: &[u8], value: &[u8]) -> Result<(AgentId, f32), StateError> {
    let voter: [u8; AGENT_ID_LEN] = key
        .get(HASH_LEN..)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| StateError::corrupt("vote key", "not assertion and voter"))?;
    let (_, record) = decode_record("vote", value)?;
    let vote = Vote::from_stored_record_bytes(record).map_err(|e| StateError::corrupt("vote", e))?;
    Ok((AgentId::from_stored_bytes(voter), vote.weight))
}

/// Encodes a `trust` value.
pub(in crate::storage::state) fn encode_trust(row: &StoredTrust) -> Vec<u8> {
    encode_record(row.offset, &row.change.to_record_bytes())
}

/// Decodes a `trust` value.
pub(in crate::storage::state) fn decode_trust(value: &[u8]) -> Result<StoredTrust, StateError> {
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
pub(in crate::storage::state) fn encode_totals(totals: &VoteTotals) -> Vec<u8> {
    let mut value = Vec::with_capacity(size_of::<u64>() + EXACT_WEIGHT_BYTES);
    value.extend_from_slice(&totals.count.to_be_bytes());
    value.extend_from_slice(&totals.weight.to_bytes());
    value
}

/// Decodes a `vote_totals` value.
pub(in crate::storage::state) fn decode_totals(value: &[u8]) -> Result<VoteTotals, StateError> {
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
pub(in crate::storage::state) fn encode_rejection(rejection: &Rejection) -> Result<Vec<u8>, StateError> {
    rmp_serde::to_vec_named(rejection).map_err(|e| StateError::corrupt("rejection", e))
}

/// Decodes a `rejected` value.
pub(in crate::storage::state) fn decode_rejection(value: &[u8]) -> Result<Rejection, StateError> {
    rmp_serde::from_slice(value).map_err(|e| StateError::corrupt("rejection", e))
}

/// Reads a big-endian u64 value (`meta` ingest cursor, counts).
pub(in crate::storage::state) fn decode_u64(what: &'static str, bytes: &[u8]) -> Result<u64, StateError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StateError::corrupt(what, format!("{} bytes, expected 8", bytes.len())))
}
