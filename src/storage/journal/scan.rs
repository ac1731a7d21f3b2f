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
//!   past the end of the file, and a single flipped bit in its length does not explain it.
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
            None => data[pos..stop].iter().rposition(|&b| b != 0).map_or(stop, |i| pos + i + 1),
        };
        let reason = defect
            .as_ref()
            .map_or_else(|| "zeroed bytes (zero length)".to_owned(), ToString::to_string);
        scan.defects.push(RawDefect {
            offset,
            length: (end - pos) as u64,
            reason,
            batch_start: scan.marks_end,
            tear_like: tear_like(data, pos, next),
        });
        last_defect_end = base + end as u64;
        pos = stop;
    }
    scan
}

/// Returns the first position at or after `from` where a valid record starts.
fn find_next_record(data: &[u8], base: u64, seed: Seed, from: usize) -> Option<usize> {
    (from..data.len()).find(|&pos| {
        matches!(
            format::decode(&data[pos..], base + pos as u64, seed, format::PAYLOAD_BYTES_CEILING),
            Ok(Decoded::Entry { .. } | Decoded::Mark { .. })
        )
    })
}

/// Returns true if and only if lost sectors explain the bad record at `pos` (see the module
/// docs). `next` is where the next valid record starts, if one does.
fn tear_like(data: &[u8], pos: usize, next: Option<usize>) -> bool {
    let rest = &data[pos..];
    let declared = format::declared_len(rest).filter(|&len| (1..=format::PAYLOAD_BYTES_CEILING).contains(&len));
    if let Some(len) = declared {
        if length_bit_flip_explains(rest, len) {
            return false;
        }
    }
    let region_end = next.unwrap_or(data.len());
    let extent_end = match declared {
        Some(len) => pos.saturating_add(format::record_len(len)),
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
            && blake3::hash(&rest[format::HEADER_BYTES..format::HEADER_BYTES + candidate]).as_bytes()[..] == *hash
    })
}

/// Counts the valid records (entries and marks) in `data`, the bytes from global offset
/// `start` to a cut's end: what a copied-aside tail held.
pub fn count_valid(data: &[u8], start: u64, seed: Seed) -> u64 {
    let scan = scan_records(data, start, seed, true, false);
    scan.entries
}
