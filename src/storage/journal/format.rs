//! Record format v3 of the journal.
//!
//! ```text
//! offset  size  field
//! 0       4     len      payload length in bytes, u32 little-endian; 0 = end of log
//! 4       4     crc      crc32c over (journal id, global offset u64 LE, len, kind, hash, payload)
//! 8       4     kind     1 = entry (a caller's payload), 2 = batch mark; u32 little-endian
//! 12      32    hash     blake3 of the payload
//! 44      len   payload
//! ```
//!
//! A batch mark closes every group-commit batch (one write, one fdatasync). Its payload says
//! where the batch began and how many entries it holds:
//!
//! ```text
//! offset  size  field
//! 0       8     start    global offset of the batch's first entry, u64 LE
//! 8       4     entries  entries in the batch, u32 LE
//! ```
//!
//! The CRC covers the length, so a torn or stale length cannot pass; it is seeded with the
//! journal's identity and the record's global offset, so a valid record copied from another
//! journal, or replayed or left stale at another position, fails. The blake3 hash makes an
//! accidental CRC match on garbage (one in 2^32) still fail.

use super::error::RecordDefect;

/// Bytes of the `len` field.
const LEN_BYTES: usize = size_of::<u32>();
/// Bytes of the `crc` field.
const CRC_BYTES: usize = size_of::<u32>();
/// Bytes of the `kind` field.
const KIND_BYTES: usize = size_of::<u32>();
/// Bytes of the `hash` field.
const HASH_BYTES: usize = blake3::OUT_LEN;
/// Offset of the `crc` field within a record.
const CRC_AT: usize = LEN_BYTES;
/// Offset of the `kind` field within a record.
const KIND_AT: usize = CRC_AT + CRC_BYTES;
/// Offset of the `hash` field within a record.
const HASH_AT: usize = KIND_AT + KIND_BYTES;
/// Bytes of the record header (everything before the payload).
pub const HEADER_BYTES: usize = HASH_AT + HASH_BYTES;

/// `kind` of an entry: a payload appended by a caller.
const KIND_ENTRY: u32 = 1;
/// `kind` of a batch mark.
const KIND_MARK: u32 = 2;
/// Bytes of a batch mark's payload: start (u64) and entries (u32).
pub const MARK_PAYLOAD_BYTES: usize = size_of::<u64>() + size_of::<u32>();
/// Bytes of a whole batch mark record.
pub const MARK_BYTES: usize = record_len(MARK_PAYLOAD_BYTES);

/// Version of the on-disk format this build reads and writes: v3 added the journal identity,
/// batch marks, segment headers and trailers. Earlier versions are refused.
pub const FORMAT_VERSION: u32 = 3;

/// Largest payload the format admits, in bytes: 1 GiB (the length field could say 4 GiB; the
/// ceiling bounds memory per record). The configured `record_bytes_max` only limits appends.
pub const PAYLOAD_BYTES_CEILING: usize = 1 << 30;

/// Returns the total size of a record with a payload of `payload_len` bytes.
pub const fn record_len(payload_len: usize) -> usize {
    HEADER_BYTES + payload_len
}

/// A journal's identity: random bytes made with the journal, mixed into every checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JournalId([u8; JournalId::BYTES]);

impl JournalId {
    /// Bytes of an identity.
    pub const BYTES: usize = 16;

    /// Wraps raw identity bytes.
    pub const fn from_bytes(bytes: [u8; Self::BYTES]) -> Self {
        Self(bytes)
    }

    /// Returns the raw bytes.
    pub const fn as_bytes(&self) -> &[u8; Self::BYTES] {
        &self.0
    }

    /// Returns the CRC state after the identity, from which every record's seed continues.
    pub fn seed(&self) -> Seed {
        Seed(crc32c::crc32c(&self.0))
    }
}

impl std::fmt::Display for JournalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The CRC state of a journal's identity: computed once, continued per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seed(u32);

impl Seed {
    /// Continues the seed with arbitrary bytes (segment headers and trailers use it).
    pub fn crc_of(self, bytes: &[u8]) -> u32 {
        crc32c::crc32c_append(self.0, bytes)
    }
}

fn crc_of(seed: Seed, global_offset: u64, header: &[u8], payload: &[u8]) -> u32 {
    let crc = crc32c::crc32c_append(seed.0, &global_offset.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &header[..LEN_BYTES]);
    let crc = crc32c::crc32c_append(crc, &header[KIND_AT..HEADER_BYTES]);
    crc32c::crc32c_append(crc, payload)
}

fn encode_kind(kind: u32, payload: &[u8], global_offset: u64, seed: Seed, out: &mut Vec<u8>) -> u32 {
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
    header[KIND_AT..HASH_AT].copy_from_slice(&kind.to_le_bytes());
    header[HASH_AT..].copy_from_slice(blake3::hash(payload).as_bytes());
    let crc = crc_of(seed, global_offset, &header, payload);
    header[CRC_AT..KIND_AT].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    crc
}

/// Appends the encoding of the entry `payload` at `global_offset` to `out`; returns its CRC.
///
/// The caller guarantees `0 < payload.len() <= u32::MAX` (the journal checks the configured
/// maximum first); a zero length would read back as end-of-log.
pub fn encode(payload: &[u8], global_offset: u64, seed: Seed, out: &mut Vec<u8>) -> u32 {
    encode_kind(KIND_ENTRY, payload, global_offset, seed, out)
}

/// Appends a batch mark at `global_offset` to `out`, closing a batch of `entries` entries that
/// began at `start`; returns its CRC.
pub fn encode_mark(start: u64, entries: u32, global_offset: u64, seed: Seed, out: &mut Vec<u8>) -> u32 {
    let mut payload = [0u8; MARK_PAYLOAD_BYTES];
    payload[..8].copy_from_slice(&start.to_le_bytes());
    payload[8..].copy_from_slice(&entries.to_le_bytes());
    encode_kind(KIND_MARK, &payload, global_offset, seed, out)
}

/// Returns the payload length a header declares (0 = end of log).
pub fn payload_len(header: &[u8; HEADER_BYTES]) -> usize {
    let mut len = [0u8; LEN_BYTES];
    len.copy_from_slice(&header[..LEN_BYTES]);
    u32::from_le_bytes(len) as usize
}

/// The declared payload length of the bytes at a position, if at least a length field is there.
pub fn declared_len(bytes: &[u8]) -> Option<usize> {
    let len: [u8; LEN_BYTES] = bytes.get(..LEN_BYTES)?.try_into().ok()?;
    Some(u32::from_le_bytes(len) as usize)
}

/// Returns the blake3 hash a header carries, if the bytes hold a whole header.
pub fn declared_hash(bytes: &[u8]) -> Option<&[u8]> {
    bytes.get(HASH_AT..HEADER_BYTES)
}

/// What the bytes at a position hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid entry; its total length is `record_len(payload.len())`.
    Entry {
        /// The payload.
        payload: &'a [u8],
        /// The record's CRC (segment trailers chain them).
        crc: u32,
    },
    /// A valid batch mark; its total length is [`MARK_BYTES`].
    Mark {
        /// Global offset of the batch's first entry.
        start: u64,
        /// Entries in the batch.
        entries: u32,
        /// The record's CRC.
        crc: u32,
    },
    /// A zero length: the end of the log (or preallocated space).
    End,
}

impl Decoded<'_> {
    /// Returns the record's total length in bytes (0 for [`Decoded::End`]).
    pub fn len(&self) -> usize {
        match self {
            Self::Entry { payload, .. } => record_len(payload.len()),
            Self::Mark { .. } => MARK_BYTES,
            Self::End => 0,
        }
    }

    /// Returns true if and only if this is [`Decoded::End`].
    #[cfg_attr(not(feature = "test-kit"), allow(dead_code, reason = "pairs with len"))]
    pub fn is_empty(&self) -> bool {
        matches!(self, Self::End)
    }

    /// Returns the record's CRC, if it is a record.
    pub fn crc(&self) -> Option<u32> {
        match self {
            Self::Entry { crc, .. } | Self::Mark { crc, .. } => Some(*crc),
            Self::End => None,
        }
    }
}

/// Decodes the record that `bytes` (which start at `global_offset`) begin with.
///
/// `payload_max` bounds the length field; a larger one is a defect, not an allocation.
pub fn decode(
    bytes: &[u8],
    global_offset: u64,
    seed: Seed,
    payload_max: usize,
) -> Result<Decoded<'_>, RecordDefect> {
    let Some(len) = declared_len(bytes) else {
        return if bytes.iter().all(|&b| b == 0) {
            Ok(Decoded::End)
        } else {
            Err(RecordDefect::TruncatedHeader {
                available: bytes.len(),
            })
        };
    };
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
    let mut field = [0u8; 4];
    field.copy_from_slice(&header[CRC_AT..KIND_AT]);
    let crc = u32::from_le_bytes(field);
    if crc != crc_of(seed, global_offset, header, payload) {
        return Err(RecordDefect::CrcMismatch);
    }
    if blake3::hash(payload).as_bytes() != &header[HASH_AT..HEADER_BYTES] {
        return Err(RecordDefect::HashMismatch);
    }
    field.copy_from_slice(&header[KIND_AT..HASH_AT]);
    match u32::from_le_bytes(field) {
        KIND_ENTRY => Ok(Decoded::Entry { payload, crc }),
        KIND_MARK if len == MARK_PAYLOAD_BYTES => {
            let mut start = [0u8; 8];
            start.copy_from_slice(&payload[..8]);
            field.copy_from_slice(&payload[8..]);
            Ok(Decoded::Mark {
                start: u64::from_le_bytes(start),
                entries: u32::from_le_bytes(field),
                crc,
            })
        }
        kind => Err(RecordDefect::UnknownKind { kind }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_offset_and_identity_seeding() {
        let seed = JournalId::from_bytes([1; 16]).seed();
        let other = JournalId::from_bytes([2; 16]).seed();
        let mut buf = Vec::new();
        let crc = encode(b"hello", 4096, seed, &mut buf);
        assert_eq!(buf.len(), record_len(5));
        assert_eq!(
            decode(&buf, 4096, seed, 64),
            Ok(Decoded::Entry {
                payload: &b"hello"[..],
                crc
            })
        );
        assert_eq!(decode(&buf, 4097, seed, 64), Err(RecordDefect::CrcMismatch));
        assert_eq!(decode(&buf, 4096, other, 64), Err(RecordDefect::CrcMismatch));
        assert_eq!(decode(&[0; 8], 0, seed, 64), Ok(Decoded::End));
        assert_eq!(
            decode(&buf[..20], 4096, seed, 64),
            Err(RecordDefect::TruncatedHeader { available: 20 })
        );
        assert!(matches!(
            decode(&buf, 4096, seed, 4),
            Err(RecordDefect::LengthTooLarge { len: 5, max: 4 })
        ));
    }

    #[test]
    fn batch_marks_round_trip() {
        let seed = JournalId::from_bytes([3; 16]).seed();
        let mut buf = Vec::new();
        let crc = encode_mark(100, 7, 200, seed, &mut buf);
        assert_eq!(buf.len(), MARK_BYTES);
        assert_eq!(
            decode(&buf, 200, seed, 64),
            Ok(Decoded::Mark {
                start: 100,
                entries: 7,
                crc
            })
        );
    }
}
