//! Record format v2 of the journal.
//!
//! ```text
//! offset  size  field
//! 0       4     len      payload length in bytes, u32 little-endian; 0 = end of log
//! 4       4     crc      crc32c over (global offset u64 LE, len, hash, payload)
//! 8       32    hash     blake3 of the payload
//! 40      len   payload
//! ```
//!
//! The CRC covers the length, so a torn or stale length cannot pass; it is seeded with the
//! record's global offset, so a valid record copied, replayed or left stale at another
//! position fails. The blake3 hash makes an accidental CRC match on garbage (one in 2^32)
//! still fail.

use super::error::RecordDefect;

/// Bytes of the `len` field.
const LEN_BYTES: usize = size_of::<u32>();
/// Bytes of the `crc` field.
const CRC_BYTES: usize = size_of::<u32>();
/// Bytes of the `hash` field.
const HASH_BYTES: usize = blake3::OUT_LEN;
/// Offset of the `crc` field within a record.
const CRC_AT: usize = LEN_BYTES;
/// Offset of the `hash` field within a record.
const HASH_AT: usize = CRC_AT + CRC_BYTES;
/// Bytes of the record header (everything before the payload).
pub const HEADER_BYTES: usize = HASH_AT + HASH_BYTES;

/// Largest payload the format admits, in bytes: 1 GiB (the length field could say 4 GiB; the
/// ceiling bounds memory per record). The configured `record_bytes_max` only limits appends.
pub const PAYLOAD_BYTES_CEILING: usize = 1 << 30;

/// Returns the total size of a record with a payload of `payload_len` bytes.
pub const fn record_len(payload_len: usize) -> usize {
    HEADER_BYTES + payload_len
}

fn crc_of(global_offset: u64, len_and_hash: &[u8], payload: &[u8]) -> u32 {
    let seed = crc32c::crc32c(&global_offset.to_le_bytes());
    let crc = crc32c::crc32c_append(seed, &len_and_hash[..LEN_BYTES]);
    let crc = crc32c::crc32c_append(crc, &len_and_hash[HASH_AT..HEADER_BYTES]);
    crc32c::crc32c_append(crc, payload)
}

/// Appends the encoding of `payload` at `global_offset` to `out`.
///
/// The caller guarantees `0 < payload.len() <= u32::MAX` (the writer checks the configured
/// maximum first); a zero length would read back as end-of-log.
pub fn encode(payload: &[u8], global_offset: u64, out: &mut Vec<u8>) {
    assert!(
        !payload.is_empty(),
        "an empty payload would encode the end-of-log marker"
    );
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    assert_eq!(
        len as usize,
        payload.len(),
        "payload larger than the format allows"
    );
    let mut header = [0u8; HEADER_BYTES];
    header[..LEN_BYTES].copy_from_slice(&len.to_le_bytes());
    header[HASH_AT..].copy_from_slice(blake3::hash(payload).as_bytes());
    let crc = crc_of(global_offset, &header, payload);
    header[CRC_AT..HASH_AT].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
}

/// Returns the payload length a header declares (0 = end of log).
pub fn payload_len(header: &[u8; HEADER_BYTES]) -> usize {
    let mut len = [0u8; LEN_BYTES];
    len.copy_from_slice(&header[..LEN_BYTES]);
    u32::from_le_bytes(len) as usize
}

/// What the bytes at a position hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record; its total length is `record_len(payload.len())`.
    Record(&'a [u8]),
    /// A zero length: the end of the log (or preallocated space).
    End,
}

/// Decodes the record that `bytes` (which start at `global_offset`) begin with.
///
/// `payload_max` bounds the length field; a larger one is a defect, not an allocation.
pub fn decode(bytes: &[u8], global_offset: u64, payload_max: usize) -> Result<Decoded<'_>, RecordDefect> {
    if bytes.len() < LEN_BYTES {
        return if bytes.iter().all(|&b| b == 0) {
            Ok(Decoded::End)
        } else {
            Err(RecordDefect::TruncatedHeader {
                available: bytes.len(),
            })
        };
    }
    let mut len_bytes = [0u8; LEN_BYTES];
    len_bytes.copy_from_slice(&bytes[..LEN_BYTES]);
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len == 0 {
        return Ok(Decoded::End);
    }
    if len > payload_max {
        return Err(RecordDefect::LengthTooLarge {
            len,
            max: payload_max,
        });
    }
    if bytes.len() < HEADER_BYTES {
        return Err(RecordDefect::TruncatedHeader {
            available: bytes.len(),
        });
    }
    let available = bytes.len() - HEADER_BYTES;
    if available < len {
        return Err(RecordDefect::TruncatedPayload { len, available });
    }
    let header = &bytes[..HEADER_BYTES];
    let payload = &bytes[HEADER_BYTES..HEADER_BYTES + len];
    let mut crc_bytes = [0u8; CRC_BYTES];
    crc_bytes.copy_from_slice(&header[CRC_AT..HASH_AT]);
    if u32::from_le_bytes(crc_bytes) != crc_of(global_offset, header, payload) {
        return Err(RecordDefect::CrcMismatch);
    }
    if blake3::hash(payload).as_bytes() != &header[HASH_AT..HEADER_BYTES] {
        return Err(RecordDefect::HashMismatch);
    }
    Ok(Decoded::Record(payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_offset_seeding() {
        let mut buf = Vec::new();
        encode(b"hello", 4096, &mut buf);
        assert_eq!(buf.len(), record_len(5));
        assert_eq!(decode(&buf, 4096, 64), Ok(Decoded::Record(&b"hello"[..])));
        assert_eq!(decode(&buf, 4097, 64), Err(RecordDefect::CrcMismatch));
        assert_eq!(decode(&[0; 8], 0, 64), Ok(Decoded::End));
        assert_eq!(
            decode(&buf[..20], 4096, 64),
            Err(RecordDefect::TruncatedHeader { available: 20 })
        );
        assert!(matches!(
            decode(&buf, 4096, 4),
            Err(RecordDefect::LengthTooLarge { len: 5, max: 4 })
        ));
    }
}
