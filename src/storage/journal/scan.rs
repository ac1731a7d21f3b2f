//! Scanning the records of one segment, and telling a torn last batch from damage to
//! acknowledged data.
//!
//! A scan walks the record area from the segment's base. After a defect it resynchronizes at
//! the next position where a valid record starts; the identity- and offset-seeded CRC plus the
//! blake3 hash make a false resynchronization practically impossible.
//!
//! Only the last batch written can be torn, since the writer writes batch k+1 only after batch
//! k is durable, and only batches whose mark is durable were acknowledged. A crash loses whole
//! sectors of that batch (they read as zeros: the space was zero-filled and fsynced before,
//! or lies past the end of the file), in any order. So a defect is a *torn tail* if and only
//! if
//! - no complete batch (a mark whose batch, from its recorded start, holds no defect) starts
//!   after it, and
//! - it looks like lost sectors: a sector of its extent reads all zeros, or the extent runs
//!   past the end of the file, and no single flipped bit (in its length or anywhere else)
//!   explains it. A record may hold zeros of its own where a sector starts or ends, so zeros
//!   alone do not prove a tear; when in doubt the defect is kept as damage, since cutting
//!   would lose acknowledged records while keeping loses nothing.
//!
//! Recovery then cuts from the start of that defect's batch (the end of the mark before it).
//! Valid entries after the last mark with nothing after them are an unfinished batch too, and
//! are cut. Every other defect is damage to acknowledged data (bit rot, a zeroed sector in
//! the middle of the log): never cut, only quarantined or, by policy, refused.

use super::format::{self, Decoded, Seed};
use super::layout::{self, SEGMENT_HEADER_BYTES};

/// Sector size assumed for torn writes: the smallest unit a disk writes atomically. Anything a
/// crash loses, it loses in whole sectors (Linux also stops a killed write at a page boundary).
pub const SECTOR_BYTES: usize = 512;

/// A defect found by a scan, before recovery decides what it is.
#[derive(Debug, Clone)]
pub struct RawDefect {
    /// Global offset of the first bad byte.
    pub offset: u64,
    /// Length of the bad region, in bytes.
    pub length: u64,
    /// What is wrong at `offset`.
    pub reason: String,
    /// Where the defect's batch began: the end of the last valid mark before it.
    pub batch_start: u64,
    /// Whether lost sectors explain it.
    pub tear_like: bool,
}

/// One valid entry found by a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedRecord {
    /// Global offset of the entry.
    pub offset: u64,
    /// Payload length, in bytes.
    pub payload_len: usize,
}

/// What a scan of one segment's record area found.
#[derive(Debug, Clone, Default)]
pub struct SegmentScan {
    /// Valid entries (not marks).
    pub entries: u64,
    /// The CRC chain over every valid record (entries and marks), as a trailer records it.
    pub chain: u32,
    /// The entries, when asked for.
    pub records: Vec<ScannedRecord>,
    /// Every defect, in order.
    pub defects: Vec<RawDefect>,
    /// Global offset just past the last valid record (or the base).
    pub records_end: u64,
    /// Global offset just past the last valid mark (or the base).
    pub marks_end: u64,
    /// Start of the latest complete batch, if any.
    pub complete_start: Option<u64>,
}

impl SegmentScan {
    /// Returns where recovery must cut this (last) segment, if anything there is a torn tail.
    pub fn torn_from(&self) -> Option<u64> {
        let torn = self.defects.iter().find(|d| {
            let followed_by_complete = self.complete_start.is_some_and(|c| c >= d.offset + d.length);
            d.tear_like && !followed_by_complete
        });
        if let Some(defect) = torn {
            return Some(defect.batch_start);
        }
        // Entries after the last mark, with no defect after them: an unfinished batch.
        let last_defect_end = self.defects.last().map_or(0, |d| d.offset + d.length);
        let unmarked_from = self.marks_end.max(last_defect_end);
        (self.records_end > unmarked_from).then_some(unmarked_from)
    }

    /// Returns the end of the log in this (last) segment when nothing is cut: past the last
    /// valid record and past any damaged bytes (which stay, quarantined).
    pub fn end(&self) -> u64 {
        let last_defect_end = self.defects.last().map_or(0, |d| d.offset + d.length);
        self.records_end.max(last_defect_end)
    }
}

/// Scans `data`, the record area of the segment at `base` (everything after its header;
/// for a sealed segment, up to its trailer). In the last segment (`last`), zeros to the end
/// are preallocated space; in a sealed one they are damage.
pub fn scan_records(data: &[u8], base: u64, seed: Seed, last: bool, collect: bool) -> SegmentScan {
    let mut scan = SegmentScan {
        records_end: base,
        marks_end: base,
        ..SegmentScan::default()
    };
    let mut last_defect_end = base;
    let mut pos = 0usize;
    while pos < data.len() {
        let offset = base + pos as u64;
        let defect = match format::decode(&data[pos..], offset, seed, format::PAYLOAD_BYTES_CEILING) {
            Ok(record @ (Decoded::Entry { .. } | Decoded::Mark { .. })) => {
                let len = record.len();
                if let Some(crc) = record.crc() {
                    scan.chain = layout::chain(scan.chain, crc);
                }
                match record {
                    Decoded::Entry { payload, .. } => {
                        scan.entries += 1;
                        if collect {
                            scan.records.push(ScannedRecord {
                                offset,
                                payload_len: payload.len(),
                            });
                        }
                    }
                    Decoded::Mark { start, .. } => {
                        if start >= last_defect_end && start >= base && start <= offset {
                            scan.complete_start = Some(start);
                        }
                        scan.marks_end = offset + len as u64;
                    }
                    Decoded::End => {}
                }
                pos += len;
                scan.records_end = base + pos as u64;
                continue;
            }
            // Zeros to the end of the last segment: preallocated space, the common case.
            Ok(Decoded::End) if last && data[pos..].iter().all(|&b| b == 0) => break,
            Ok(Decoded::End) => None,
            Err(defect) => Some(defect),
        };
        let next = find_next_record(data, base, seed, pos + 1);
        let stop = next.unwrap_or(data.len());
        // A defect with nothing valid after it ends at its last non-zero byte: zeros after it
        // are preallocated space.
        let end = match next {
            Some(next) => next,
            None => data[pos..stop]
                .iter()
                .rposition(|&b| b != 0)
                .map_or(stop, |i| pos + i + 1),
        };
        let reason = defect
            .as_ref()
            .map_or_else(|| "zeroed bytes (zero length)".to_owned(), ToString::to_string);
        scan.defects.push(RawDefect {
            offset,
            length: (end - pos) as u64,
            reason,
            batch_start: scan.marks_end,
            tear_like: tear_like(data, pos, next, base, seed),
        });
        last_defect_end = base + end as u64;
        pos = stop;
    }
    scan
}

/// Returns the first position at or after `from` where a valid record starts.
fn find_next_record(data: &[u8], base: u64, seed: Seed, from: usize) -> Option<usize> {
    let mut pos = from;
    while pos < data.len() {
        // A record begins with its length, which is never zero, so it starts at most three
        // bytes before the next non-zero byte: a run of zeros (the preallocated rest of the
        // last segment, after a torn tail) is skipped at once, not decoded byte by byte.
        let non_zero = pos + data[pos..].iter().position(|&b| b != 0)?;
        pos = pos.max(non_zero.saturating_sub(size_of::<u32>() - 1));
        let decoded = format::decode(
            &data[pos..],
            base + pos as u64,
            seed,
            format::PAYLOAD_BYTES_CEILING,
        );
        if matches!(decoded, Ok(Decoded::Entry { .. } | Decoded::Mark { .. })) {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

/// Returns true if and only if lost sectors explain the bad record at `pos` (see the module
/// docs). `next` is where the next valid record starts, if one does; `base` is the global
/// offset of `data`.
fn tear_like(data: &[u8], pos: usize, next: Option<usize>, base: u64, seed: Seed) -> bool {
    let rest = &data[pos..];
    let declared =
        format::declared_len(rest).filter(|&len| (1..=format::PAYLOAD_BYTES_CEILING).contains(&len));
    if let Some(len) = declared
        && (length_bit_flip_explains(rest, len) || bit_flip_explains(rest, len, base + pos as u64, seed))
    {
        return false;
    }
    let region_end = next.unwrap_or(data.len());
    let extent_end = match declared {
        Some(len) => pos.saturating_add(format::record_len(len)),
        // Fewer bytes than a length field before the end of the file: a header cut by the end
        // of a torn write, whose record runs past the end.
        None if format::declared_len(rest).is_none() => data.len() + 1,
        None => region_end,
    };
    if extent_end > data.len() && next.is_none() {
        return true;
    }
    let extent_end = extent_end.min(region_end).max(pos + 1);
    // Sector boundaries fall on file positions; the record area starts after the header.
    let mut at = pos;
    while at < extent_end {
        let file_pos = SEGMENT_HEADER_BYTES + at;
        let sector_end = (file_pos / SECTOR_BYTES + 1) * SECTOR_BYTES - SEGMENT_HEADER_BYTES;
        let until = sector_end.min(extent_end);
        if data[at..until].iter().all(|&b| b == 0) {
            return true;
        }
        at = until;
    }
    false
}

/// Returns true if and only if flipping one bit of the declared length `len` gives a length
/// whose payload matches the header's blake3 hash: bit rot in the length field, not a tear.
fn length_bit_flip_explains(rest: &[u8], len: usize) -> bool {
    let Some(hash) = format::declared_hash(rest) else {
        return false;
    };
    let available = rest.len() - format::HEADER_BYTES;
    (0..u32::BITS).any(|bit| {
        let candidate = len ^ (1usize << bit);
        candidate > 0
            && candidate <= available.min(format::PAYLOAD_BYTES_CEILING)
            && blake3::hash(&rest[format::HEADER_BYTES..format::HEADER_BYTES + candidate]).as_bytes()[..]
                == *hash
    })
}

/// The reflected CRC-32C polynomial.
const CRC32C_POLY: u32 = 0x82F6_3B78;

/// Returns true if and only if flipping one bit of the CRC, kind, hash or payload of the
/// whole record at the start of `rest` (of declared payload length `len`, at global offset
/// `offset`) makes it valid: bit rot, not a tear.
///
/// Needed because the zeros a sector check sees are not always lost bytes: a record may hold
/// zeros where a sector starts or ends (a batch mark ends in the zero high bytes of its entry
/// count, a length such as 1024 starts with a zero byte), and a flipped bit elsewhere in the
/// record would then look like a lost sector and cut an acknowledged batch.
///
/// Costs one pass over the record, not one decode per bit: the CRC is linear, so a flipped
/// bit changes it by a value that depends only on the bit's distance from the end of what the
/// CRC covers; the one candidate whose change matches is then checked by a full decode.
fn bit_flip_explains(rest: &[u8], len: usize, offset: u64, seed: Seed) -> bool {
    const CRC_AT: usize = 4;
    const KIND_AT: usize = 8;
    let Some(record) = rest.get(..format::record_len(len)) else {
        return false;
    };
    let valid_with = |at: usize, mask: u8| {
        let mut fixed = record.to_vec();
        fixed[at] ^= mask;
        matches!(
            format::decode(&fixed, offset, seed, format::PAYLOAD_BYTES_CEILING),
            Ok(Decoded::Entry { .. } | Decoded::Mark { .. })
        )
    };
    // What the CRC covers (see `format`): the offset, the length, then kind, hash and payload.
    let mut covered = Vec::with_capacity(size_of::<u64>() + record.len());
    covered.extend_from_slice(&offset.to_le_bytes());
    covered.extend_from_slice(&record[..CRC_AT]);
    covered.extend_from_slice(&record[KIND_AT..]);
    let mut stored = [0u8; 4];
    stored.copy_from_slice(&record[CRC_AT..KIND_AT]);
    let syndrome = seed.crc_of(&covered) ^ u32::from_le_bytes(stored);
    if syndrome == 0 {
        return false;
    }
    // A flip in the stored CRC itself.
    let bit = syndrome.trailing_zeros() as usize;
    if syndrome.count_ones() == 1 && valid_with(CRC_AT + bit / 8, 1 << (bit % 8)) {
        return true;
    }
    // The change made by flipping the last bit the CRC takes in (bit 7 of its last byte), then
    // of each bit before it: one more zero bit after a bit shifts its change by one step.
    let mut change = crc32c::crc32c(&[0x80]) ^ crc32c::crc32c(&[0]);
    let kind_and_after = record.len() - KIND_AT;
    for k in 0..kind_and_after * 8 {
        if change == syndrome && valid_with(record.len() - 1 - k / 8, 0x80 >> (k % 8)) {
            return true;
        }
        change = (change >> 1) ^ (CRC32C_POLY & (change & 1).wrapping_neg());
    }
    false
}

/// Counts the valid records (entries and marks) in `data`, the bytes from global offset
/// `start` to a cut's end: what a copied-aside tail held.
pub fn count_valid(data: &[u8], start: u64, seed: Seed) -> u64 {
    let scan = scan_records(data, start, seed, true, false);
    scan.entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::journal::format::JournalId;

    #[test]
    fn one_flipped_bit_outside_the_length_is_told_from_lost_bytes() {
        let seed = JournalId::from_bytes([7; 16]).seed();
        let payload: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut record = Vec::new();
        format::encode(&payload, 4096, seed, &mut record);
        let len = payload.len();
        assert!(!bit_flip_explains(&record, len, 4096, seed), "an intact record");
        // Every bit of the CRC, kind, hash and payload (the length has its own check).
        for at in 4..record.len() {
            for bit in 0..8 {
                let mut damaged = record.clone();
                damaged[at] ^= 1 << bit;
                assert!(
                    bit_flip_explains(&damaged, len, 4096, seed),
                    "byte {at} bit {bit}"
                );
            }
        }
        let mut zeroed = record.clone();
        zeroed[100..140].fill(0);
        assert!(!bit_flip_explains(&zeroed, len, 4096, seed), "lost bytes");
        let mut two = record.clone();
        two[50] ^= 1;
        two[60] ^= 1;
        assert!(!bit_flip_explains(&two, len, 4096, seed), "two flipped bits");
    }

    #[test]
    fn a_header_cut_by_the_end_of_the_file_is_torn() {
        let seed = JournalId::from_bytes([7; 16]).seed();
        let mut data = Vec::new();
        format::encode(b"first", 0, seed, &mut data);
        let end = data.len();
        format::encode(b"second", end as u64, seed, &mut data);
        for cut in end + 1..end + 4 {
            let scan = scan_records(&data[..cut], 0, seed, true, false);
            assert_eq!(scan.defects.len(), 1, "cut at {cut}");
            assert!(scan.defects[0].tear_like, "cut at {cut}");
        }
    }
}
