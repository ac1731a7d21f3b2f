//! Readers: positional reads of durable records, independent of the writer.
//!
//! A reader keeps its own snapshot of the segment list; when an offset lies past it, it
//! refreshes the list before answering, so a segment rolled since is found. Outcomes are
//! distinct: a record, end of log, not yet durable, corruption, or an I/O error.

use std::sync::Arc;

use super::error::{ReadError, RecordDefect};
use super::format::{self, Decoded, HEADER_BYTES, Seed};
use super::segment::SegmentHandle;
use super::shared::Shared;

/// What a read found at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// A durable record.
    Record {
        /// Its global offset (past any quarantined bytes skipped).
        offset: u64,
        /// Its payload.
        payload: Vec<u8>,
        /// The offset of the next record.
        next: u64,
    },
    /// Bytes are written there but not yet durable; wait for the group commit.
    NotYetDurable,
    /// Nothing is written there yet.
    EndOfLog,
}

/// The outcome of [`JournalReader::read_range`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeRead {
    /// The records read, as (offset, payload). A payload is shared, not copied, on its way to
    /// the checks and the plan.
    pub records: Vec<(u64, bytes::Bytes)>,
    /// Where the next read should start.
    pub next: u64,
    /// True if and only if the read stopped at the durable end of the log.
    pub at_end: bool,
}

/// Bytes [`JournalReader::read_range`] reads at once: large enough that one `pread` serves
/// hundreds of small records, small enough to stay in cache.
pub const RANGE_CHUNK_BYTES: usize = 256 * 1024;

/// Bytes of the log read ahead, starting at global offset `start`.
#[derive(Default)]
struct Chunk {
    start: u64,
    bytes: Vec<u8>,
}

impl Chunk {
    /// Returns the whole, intact record at `offset` and its end, if the chunk holds one.
    fn record_at(&self, offset: u64, seed: Seed) -> Option<(Decoded<'_>, u64)> {
        let at = usize::try_from(offset.checked_sub(self.start)?).ok()?;
        let rest = self.bytes.get(at..)?;
        let header: &[u8; HEADER_BYTES] = rest.get(..HEADER_BYTES)?.try_into().ok()?;
        let len = format::payload_len(header);
        let record = rest.get(..format::record_len(len))?;
        match format::decode(record, offset, seed, format::PAYLOAD_BYTES_CEILING) {
            Ok(decoded @ (Decoded::Entry { .. } | Decoded::Mark { .. })) => {
                Some((decoded, offset + record.len() as u64))
            }
            _ => None,
        }
    }
}

/// What one position of the log holds, marks included.
enum Step {
    /// An outcome for the caller.
    Outcome(ReadOutcome),
    /// A batch mark; the log goes on at `next`.
    Mark { next: u64 },
}

/// A reader of the journal. Cheap to create; each holds open segment handles, so garbage
/// collection never removes a segment under it.
#[derive(Debug)]
pub struct JournalReader {
    shared: Arc<Shared>,
    segments: Vec<Arc<SegmentHandle>>,
}

impl JournalReader {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        // The snapshot is taken at the first read, from that offset on: a reader holds (and so
        // keeps from garbage collection) only segments it may still read.
        Self {
            shared,
            segments: Vec::new(),
        }
    }

    /// Reads the entry at `offset` (skipping quarantined bytes and batch marks that start there).
    pub fn read(&mut self, offset: u64) -> Result<ReadOutcome, ReadError> {
        let mut offset = offset;
        loop {
            match self.step(offset)? {
                Step::Outcome(outcome) => return Ok(outcome),
                Step::Mark { next } => offset = next,
            }
        }
    }

    /// Reads the one record (entry or mark) at `offset`, past quarantined bytes there. Damage
    /// met in a sealed segment (which opening does not read) is quarantined there and then,
    /// with a report, and the read goes on past it; under the `stop` policy it is reported.
    fn step(&mut self, offset: u64) -> Result<Step, ReadError> {
        match self.step_once(offset) {
            Err(ReadError::Corrupt { offset: at, defect }) => {
                let sealed = self.find(at).filter(|segment| {
                    self.shared
                        .segments
                        .read()
                        .last()
                        .is_some_and(|last| last.base > segment.base)
                });
                match sealed {
                    Some(segment) if self.shared.quarantine_sealed(&segment, at)? => self.step_once(offset),
                    _ => Err(ReadError::Corrupt { offset: at, defect }),
                }
            }
            other => other,
        }
    }

    fn step_once(&mut self, offset: u64) -> Result<Step, ReadError> {
        let offset = self.skip_quarantined(offset);
        if offset >= self.shared.durable_end() {
            return Ok(Step::Outcome(if offset < self.shared.written_end() {
                ReadOutcome::NotYetDurable
            } else {
                ReadOutcome::EndOfLog
            }));
        }
        let segment = match self.find(offset) {
            Some(segment) => segment,
            None => {
                self.refresh(offset);
                self.find(offset).ok_or(ReadError::BadOffset {
                    offset,
                    reason: "below the oldest retained segment",
                })?
            }
        };
        let position = offset - segment.base;
        let mut header = [0u8; HEADER_BYTES];
        let got = segment.read_at(position, &mut header)?;
        if got < HEADER_BYTES {
            let defect = RecordDefect::TruncatedHeader { available: got };
            return Err(ReadError::Corrupt { offset, defect });
        }
        let len = format::payload_len(&header);
        // Bound the allocation by what can really be there: the durable bytes after `offset`.
        let durable_left = self.shared.durable_end().saturating_sub(offset);
        if len > format::PAYLOAD_BYTES_CEILING || format::record_len(len) as u64 > durable_left {
            let defect = RecordDefect::LengthTooLarge {
                len,
                max: format::PAYLOAD_BYTES_CEILING,
            };
            return Err(ReadError::Corrupt { offset, defect });
        }
        let mut record = vec![0u8; format::record_len(len)];
        let got = segment.read_at(position, &mut record)?;
        let next = offset + format::record_len(len) as u64;
        match format::decode(
            &record[..got],
            offset,
            self.shared.seed,
            format::PAYLOAD_BYTES_CEILING,
        ) {
            Ok(Decoded::Entry { payload, .. }) => Ok(Step::Outcome(ReadOutcome::Record {
                offset,
                payload: payload.to_vec(),
                next,
            })),
            Ok(Decoded::Mark { .. }) => Ok(Step::Mark { next }),
            // A zero length below the durable end is damage (e.g. a zeroed sector).
            Ok(Decoded::End) => Err(ReadError::Corrupt {
                offset,
                defect: RecordDefect::TruncatedHeader { available: 0 },
            }),
            Err(defect) => Err(ReadError::Corrupt { offset, defect }),
        }
    }

    /// Reads consecutive records from `from`: at most `max_records` of them, stopping after the
    /// record that brings the payload total to `max_bytes` or more, or at the durable end.
    ///
    /// Reads the log in chunks of up to `RANGE_CHUNK_BYTES`, one `pread` for many records;
    /// any record the chunk cannot settle (damaged, straddling the chunk's end, at a segment
    /// boundary) goes through [`read`](Self::read), so outcomes are exactly those of `read`.
    /// An error is returned only when no record precedes it.
    pub fn read_range(
        &mut self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<RangeRead, ReadError> {
        let mut range = RangeRead {
            next: from,
            ..RangeRead::default()
        };
        let mut chunk = Chunk::default();
        let mut bytes = 0usize;
        while range.records.len() < max_records && bytes < max_bytes {
            let offset = self.skip_quarantined(range.next);
            let outcome = match self.read_chunked(offset, &mut chunk) {
                Ok(Some(step)) => Ok(step),
                Ok(None) => self.step(offset),
                Err(error) => Err(error),
            };
            // An error after some records returns those; the next call, starting at the
            // failed offset, reports it.
            let outcome = match outcome {
                Err(_) if !range.records.is_empty() => break,
                other => other?,
            };
            let outcome = match outcome {
                // A mark is not a record for the caller, but the position moves past it, so a
                // consumer that has read everything stands at the durable end.
                Step::Mark { next } => {
                    range.next = next;
                    continue;
                }
                Step::Outcome(outcome) => outcome,
            };
            match outcome {
                ReadOutcome::Record {
                    offset,
                    payload,
                    next,
                } => {
                    bytes += payload.len();
                    range.records.push((offset, payload.into()));
                    range.next = next;
                }
                ReadOutcome::EndOfLog | ReadOutcome::NotYetDurable => {
                    range.at_end = true;
                    break;
                }
            }
        }
        if !range.at_end {
            self.pass_marks(&mut range, &mut chunk);
        }
        Ok(range)
    }

    /// Moves `range.next` past the batch marks that follow its last record. A range that
    /// stopped at its limit would otherwise end just before a batch's mark, and a consumer
    /// that has read every record would stand short of the durable end, since the next read
    /// finds no record to return past it.
    fn pass_marks(&mut self, range: &mut RangeRead, chunk: &mut Chunk) {
        loop {
            let offset = self.skip_quarantined(range.next);
            let step = match self.read_chunked(offset, chunk) {
                Ok(Some(step)) => step,
                Ok(None) => match self.step(offset) {
                    Ok(step) => step,
                    Err(_) => return,
                },
                Err(_) => return,
            };
            match step {
                Step::Mark { next } => range.next = next,
                Step::Outcome(ReadOutcome::EndOfLog | ReadOutcome::NotYetDurable) => {
                    range.at_end = true;
                    return;
                }
                Step::Outcome(ReadOutcome::Record { .. }) => return,
            }
        }
    }

    /// Decodes the record at `offset` from `chunk`, refilling it from the log if it does not
    /// hold the whole record; `None` when the chunk path cannot settle it.
    fn read_chunked(&mut self, offset: u64, chunk: &mut Chunk) -> Result<Option<Step>, ReadError> {
        let durable_end = self.shared.durable_end();
        if offset >= durable_end {
            return Ok(None);
        }
        let seed = self.shared.seed;
        if chunk.record_at(offset, seed).is_none() {
            let Some(segment) = self.find(offset).or_else(|| {
                self.refresh(offset);
                self.find(offset)
            }) else {
                return Ok(None);
            };
            let want = RANGE_CHUNK_BYTES.min(usize::try_from(durable_end - offset).unwrap_or(usize::MAX));
            chunk.bytes.resize(want, 0);
            let got = segment.read_at(offset - segment.base, &mut chunk.bytes)?;
            chunk.bytes.truncate(got);
            chunk.start = offset;
        }
        // A record ends at or before the durable end; one that seems not to is left to
        // `step`, which reports it precisely.
        Ok(match chunk.record_at(offset, seed) {
            Some((Decoded::Entry { payload, .. }, next)) if next <= durable_end => {
                Some(Step::Outcome(ReadOutcome::Record {
                    offset,
                    payload: payload.to_vec(),
                    next,
                }))
            }
            Some((Decoded::Mark { .. }, next)) if next <= durable_end => Some(Step::Mark { next }),
            _ => None,
        })
    }

    fn skip_quarantined(&self, mut offset: u64) -> u64 {
        // An offset anywhere inside a quarantined region (say, a consumer's cursor at a record
        // that was damaged along with its predecessor) skips to the region's end.
        let quarantined = self.shared.quarantined.read();
        while let Some((_, &end)) = quarantined
            .range(..=offset)
            .next_back()
            .filter(|(_, end)| offset < **end)
        {
            offset = end;
        }
        offset
    }

    fn find(&self, offset: u64) -> Option<Arc<SegmentHandle>> {
        let index = self.segments.partition_point(|s| s.base <= offset);
        let segment = self.segments.get(index.checked_sub(1)?)?;
        // In the last segment of the snapshot: a segment rolled since may hold it instead.
        if index == self.segments.len() {
            let newest_base = self.shared.segments.read().last().map(|s| s.base);
            if newest_base.is_some_and(|base| base > segment.base) {
                return None;
            }
        }
        Some(Arc::clone(segment))
    }

    /// Refreshes the segment snapshot, dropping segments wholly below `offset` so that they can
    /// be collected.
    fn refresh(&mut self, offset: u64) {
        let all = self.shared.segments.read().clone();
        let first_needed = all.partition_point(|s| s.base <= offset).saturating_sub(1);
        self.segments = all[first_needed..].to_vec();
    }
}
