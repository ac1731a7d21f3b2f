//! The value encoding shared by the databases that store journal records: `assertions` (by
//! hash), `votes` (by assertion and voter) and `trust` (by agent).
//!
//! ```text
//! offset  size  field
//! 0       8     offset   the record's journal offset, u64 big-endian
//! 8       ..    record   the record's canonical bytes, exactly as journaled (no tag byte)
//! ```
//!
//! The record is stored as read from the journal, never re-encoded, so what a reader decodes
//! is byte for byte what was signed.

use super::{StateError, decode_u64};

/// Bytes of the offset that leads a value.
const OFFSET_BYTES: usize = size_of::<u64>();

/// Encodes the value of a record journaled at `offset`.
pub(super) fn encode(offset: u64, record: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(OFFSET_BYTES + record.len());
    value.extend_from_slice(&offset.to_be_bytes());
    value.extend_from_slice(record);
    value
}

/// Splits a value into its journal offset and record bytes; `what` names the database in
/// the error a value too short to hold an offset gives.
pub(super) fn decode<'a>(what: &'static str, value: &'a [u8]) -> Result<(u64, &'a [u8]), StateError> {
    let (offset, record) = value
        .split_at_checked(OFFSET_BYTES)
        .ok_or_else(|| StateError::corrupt(what, "shorter than its offset"))?;
    Ok((decode_u64(what, offset)?, record))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn values_round_trip_and_short_ones_are_corrupt() {
        let value = encode(0x0102_0304_0506_0708, b"record");
        assert_eq!(&value[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            decode("vote", &value).unwrap(),
            (0x0102_0304_0506_0708, &b"record"[..])
        );
        assert!(decode("vote", &value[..7]).is_err());
    }
}
