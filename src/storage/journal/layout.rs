//! The journal's files: the identity file, and each segment's header and trailer.
//!
//! ```text
//! <dir>/identity                     made with the journal, fsynced, checked at every open
//! offset  size  field
//! 0       16    magic      "stemedb-journal\0"
//! 16      4     version    format version (3), u32 LE
//! 20      16    id         random journal identity
//! 36      4     crc        crc32c of bytes 0..36
//!
//! <dir>/<base:020>.wal               a segment: header, records, then (once sealed) a trailer
//! offset  size  field
//! 0       8     magic      "stmdbseg"
//! 8       4     version    format version (3), u32 LE
//! 12      16    id         the journal identity
//! 28      8     base       global offset of the first record, u64 LE (also the file name)
//! 36      4     crc        crc32c of bytes 0..36, seeded with the identity
//! 40      ..    records    format::encode; global offset = base + (position - 40)
//!
//! trailer, the last 40 bytes of a sealed (rolled) segment
//! offset  size  field
//! 0       8     magic      "stmdbend"
//! 8       8     entries    entries in the segment, u64 LE
//! 16      8     end        global offset just past its last record, u64 LE
//! 24      8     sealed_ms  when it was sealed, ms since the Unix epoch, u64 LE
//! 32      4     chain      crc32c over the CRCs (u32 LE) of all its records, in order
//! 36      4     crc        crc32c of bytes 0..36, seeded with the identity
//! ```
//!
//! A sealed segment's size is exactly header + records + trailer, so its global span follows
//! from its file size alone; the last segment has no trailer, and its records are followed
//! by preallocated zeros (a zero length ends the log).

use std::io::Write;
use std::path::Path;

use super::error::JournalError;
use super::format::{FORMAT_VERSION, JournalId, Seed};
use super::segment::sync_dir;

/// Name of the identity file in a journal directory.
pub const IDENTITY_FILE: &str = "identity";
const IDENTITY_MAGIC: &[u8; 16] = b"stemedb-journal\0";
/// Bytes of the identity file.
const IDENTITY_BYTES: usize = IDENTITY_MAGIC.len() + 4 + JournalId::BYTES + 4;

const SEGMENT_MAGIC: &[u8; 8] = b"stmdbseg";
/// Bytes of a segment header.
pub const SEGMENT_HEADER_BYTES: usize = SEGMENT_MAGIC.len() + 4 + JournalId::BYTES + 8 + 4;
const TRAILER_MAGIC: &[u8; 8] = b"stmdbend";
/// Bytes of a segment trailer.
pub const SEGMENT_TRAILER_BYTES: usize = TRAILER_MAGIC.len() + 8 + 8 + 8 + 4 + 4;

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut field = [0u8; 4];
    field.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(field)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(field)
}

/// Reads the identity of the journal in `dir`; `None` if it has none yet.
pub fn read_identity(dir: &Path) -> Result<Option<JournalId>, JournalError> {
    let path = dir.join(IDENTITY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(JournalError::io("read identity", &path, e)),
    };
    let bad = |reason: &str| JournalError::BadIdentity {
        path: path.clone(),
        reason: reason.to_owned(),
    };
    if bytes.len() != IDENTITY_BYTES || &bytes[..16] != IDENTITY_MAGIC {
        return Err(bad("not a StemeDB journal identity file"));
    }
    if crc32c::crc32c(&bytes[..IDENTITY_BYTES - 4]) != u32_at(&bytes, IDENTITY_BYTES - 4) {
        return Err(bad("checksum mismatch"));
    }
    let version = u32_at(&bytes, 16);
    if version != FORMAT_VERSION {
        return Err(JournalError::FormatVersion {
            dir: dir.to_owned(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let mut id = [0u8; JournalId::BYTES];
    id.copy_from_slice(&bytes[20..36]);
    Ok(Some(JournalId::from_bytes(id)))
}

/// Creates the identity of a new journal in `dir` with a random id, durably (temporary file,
/// fsync, rename, directory fsync), and returns it.
pub fn create_identity(dir: &Path) -> Result<JournalId, JournalError> {
    let mut id = [0u8; JournalId::BYTES];
    getrandom::fill(&mut id)
        .map_err(|e| JournalError::io("draw a journal id", dir, std::io::Error::other(e)))?;
    let mut bytes = Vec::with_capacity(IDENTITY_BYTES);
    bytes.extend_from_slice(IDENTITY_MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&id);
    bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_le_bytes());
    let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
    let path = dir.join(IDENTITY_FILE);
    let mut file = std::fs::File::create(&tmp).map_err(|e| JournalError::io("create", &tmp, e))?;
    file.write_all(&bytes)
        .map_err(|e| JournalError::io("write", &tmp, e))?;
    file.sync_all().map_err(|e| JournalError::io("fsync", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| JournalError::io("rename", &path, e))?;
    sync_dir(dir)?;
    Ok(JournalId::from_bytes(id))
}

/// Encodes the header of the segment starting at `base`.
pub fn encode_header(id: JournalId, base: u64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut out = [0u8; SEGMENT_HEADER_BYTES];
    out[..8].copy_from_slice(SEGMENT_MAGIC);
    out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[12..28].copy_from_slice(id.as_bytes());
    out[28..36].copy_from_slice(&base.to_le_bytes());
    let crc = id.seed().crc_of(&out[..36]);
    out[36..].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Why a segment header is not this journal's header for its base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// All zeros: a segment whose creation a crash interrupted.
    Blank,
    /// Not a segment header, or damaged.
    Damaged(&'static str),
    /// A segment of another format version.
    Version(u32),
    /// A valid header of another journal.
    Foreign(JournalId),
    /// This journal's header, but for another base offset (a renamed segment).
    Base(u64),
}

/// Checks the header `bytes` of the segment named for `base` in the journal `id`.
pub fn check_header(bytes: &[u8], id: JournalId, base: u64) -> Result<(), HeaderProblem> {
    let Some(bytes) = bytes.get(..SEGMENT_HEADER_BYTES) else {
        return Err(if bytes.iter().all(|&b| b == 0) {
            HeaderProblem::Blank
        } else {
            HeaderProblem::Damaged("shorter than a header")
        });
    };
    if bytes.iter().all(|&b| b == 0) {
        return Err(HeaderProblem::Blank);
    }
    if &bytes[..8] != SEGMENT_MAGIC {
        return Err(HeaderProblem::Damaged("bad magic"));
    }
    let version = u32_at(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(HeaderProblem::Version(version));
    }
    let mut found = [0u8; JournalId::BYTES];
    found.copy_from_slice(&bytes[12..28]);
    let found = JournalId::from_bytes(found);
    if id.seed().crc_of(&bytes[..36]) != u32_at(bytes, 36) {
        // A header that is intact under its own identity belongs to another journal.
        if found != id && found.seed().crc_of(&bytes[..36]) == u32_at(bytes, 36) {
            return Err(HeaderProblem::Foreign(found));
        }
        return Err(HeaderProblem::Damaged("checksum mismatch"));
    }
    let stored_base = u64_at(bytes, 28);
    if stored_base != base {
        return Err(HeaderProblem::Base(stored_base));
    }
    Ok(())
}

/// What a sealed segment's trailer records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Entries (not batch marks) in the segment.
    pub entries: u64,
    /// Global offset just past its last record.
    pub end: u64,
    /// When it was sealed, in ms since the Unix epoch.
    pub sealed_ms: u64,
    /// crc32c over the CRCs of all its records, in order.
    pub chain: u32,
}

impl Trailer {
    /// Encodes the trailer.
    pub fn encode(&self, seed: Seed) -> [u8; SEGMENT_TRAILER_BYTES] {
        let mut out = [0u8; SEGMENT_TRAILER_BYTES];
        out[..8].copy_from_slice(TRAILER_MAGIC);
        out[8..16].copy_from_slice(&self.entries.to_le_bytes());
        out[16..24].copy_from_slice(&self.end.to_le_bytes());
        out[24..32].copy_from_slice(&self.sealed_ms.to_le_bytes());
        out[32..36].copy_from_slice(&self.chain.to_le_bytes());
        let crc = seed.crc_of(&out[..36]);
        out[36..].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a trailer; `None` unless the bytes are an intact trailer of this journal.
    pub fn decode(bytes: &[u8], seed: Seed) -> Option<Self> {
        let bytes = bytes.get(..SEGMENT_TRAILER_BYTES)?;
        if &bytes[..8] != TRAILER_MAGIC || seed.crc_of(&bytes[..36]) != u32_at(bytes, 36) {
            return None;
        }
        Some(Self {
            entries: u64_at(bytes, 8),
            end: u64_at(bytes, 16),
            sealed_ms: u64_at(bytes, 24),
            chain: u32_at(bytes, 32),
        })
    }
}

/// Folds one record's CRC into a segment's chain.
pub fn chain(chain: u32, record_crc: u32) -> u32 {
    crc32c::crc32c_append(chain, &record_crc.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_trailers_round_trip_and_tell_foreign_ones() {
        let id = JournalId::from_bytes([5; 16]);
        let other = JournalId::from_bytes([6; 16]);
        let header = encode_header(id, 4096);
        assert_eq!(check_header(&header, id, 4096), Ok(()));
        assert_eq!(check_header(&header, id, 0), Err(HeaderProblem::Base(4096)));
        assert_eq!(
            check_header(&header, other, 4096),
            Err(HeaderProblem::Foreign(id))
        );
        assert_eq!(check_header(&[0; 40], id, 0), Err(HeaderProblem::Blank));
        let trailer = Trailer {
            entries: 3,
            end: 999,
            sealed_ms: 1,
            chain: 42,
        };
        let bytes = trailer.encode(id.seed());
        assert_eq!(Trailer::decode(&bytes, id.seed()), Some(trailer));
        assert_eq!(Trailer::decode(&bytes, other.seed()), None);
    }
}
