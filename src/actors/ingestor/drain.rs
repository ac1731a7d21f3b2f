//! One drain step of the ingestor: read a batch from the log, have it checked if others can
//! write the log, plan it, count its votes, commit it.

use actix::prelude::*;

use super::IngestorActor;
use super::error::{IngestError, guarded};
use crate::actors::ingest_check::Checked;
use crate::storage::state::{IngestRecord, Plan, Refused};

impl IngestorActor {
    /// Reads one batch; `None` at the end of the log. The flag is true if and only if more
    /// records may be waiting.
    fn read(&mut self) -> Result<Option<(Vec<IngestRecord>, bool)>, IngestError> {
        let range = self.reader.read_range(
            self.cursor,
            self.config.batch_records_max,
            self.config.batch_bytes_max,
        )?;
        if range.records.is_empty() {
            return Ok(None);
        }
        // A record ends where the next begins (past any quarantined bytes between them).
        let starts: Vec<u64> = range.records.iter().map(|(offset, _)| *offset).collect();
        let records: Vec<IngestRecord> = range
            .records
            .into_iter()
            .enumerate()
            .map(|(i, (offset, payload))| IngestRecord {
                offset,
                next: starts.get(i + 1).copied().unwrap_or(range.next),
                payload,
            })
            .collect();
        Ok(Some((records, !range.at_end)))
    }

    /// Plans a batch read, with the verdicts of its checks (empty if the log needs none);
    /// returns the plan and how many of its records lie at or past the journal's end at start.
    fn plan(&mut self, records: Vec<IngestRecord>, refused: &[Refused]) -> Result<(Plan, u64), IngestError> {
        let starts: Vec<u64> = records.iter().map(|record| record.offset).collect();
        let plan = self.hooks.plan(&self.state, records, refused)?;
        // Only the records the plan covers: one held at an unknown tag is not applied.
        let since_start = starts
            .iter()
            .filter(|&&offset| offset >= self.start_end && offset < plan.end())
            .count() as u64;
        Ok((plan, since_start))
    }

}

/// Continue draining the journal (sent by the actor to itself).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(super) struct Drain;

impl Handler<Drain> for IngestorActor {
    type Result = ();

    fn handle(&mut self, _message: Drain, ctx: &mut Self::Context) {
        self.drain_pending = false;
        if self.halted {
            return;
        }
        let (records, more) = match guarded(|| self.read()) {
            Ok(Some(read)) => read,
            Ok(None) => return self.succeeded(false, ctx),
            Err(error) => return self.failed(error, ctx),
        };
        let Some(checker) = &self.checker else {
            return self.apply(records, &[], more, ctx);
        };
        // A log that others can write: the batch is checked on the check threads first, the
        // ingestor handling nothing else meanwhile.
        let checked = checker.check(records).into_actor(self).map(move |checked, actor, ctx| match checked {
            Ok(Checked { records, refused }) => actor.apply(records, &refused, more, ctx),
            Err(gone) => actor.failed(IngestError::CheckerGone(gone), ctx),
        });
        ctx.wait(checked);
    }
}

impl IngestorActor {
    /// Plans a batch read (with its checks' verdicts), counts its votes and commits it.
    fn apply(&mut self, records: Vec<IngestRecord>, refused: &[Refused], more: bool, ctx: &mut Context<Self>) {
        let (mut plan, since_start) = match guarded(|| self.plan(records, refused)) {
            Ok(planned) => planned,
            Err(error) => return self.failed(error, ctx),
        };
        // A plan held at an unknown tag covers the records before it; once they are applied,
        // the next step finds the unknown record first and reports the stall.
        let more = match plan.unknown_tag() {
            Some(held) if !plan.advances() => return self.failed(IngestError::UnknownTag(held), ctx),
            Some(_) => true,
            None => more,
        };
        let votes = std::mem::take(&mut plan.votes);
        if votes.is_empty() {
            return match guarded(|| self.finish(&plan, &[], since_start)) {
                Ok(()) => self.succeeded(more, ctx),
                Err(error) => self.failed(error, ctx),
            };
        }
        // Each shard counts its own votes; the ingestor waits for all (handling nothing else
        // meanwhile), then commits every tally with the batch and the cursor.
        let counted = self.count_votes(votes);
        let commit = counted.into_actor(self).map(move |tallies, actor, ctx| {
            match tallies.and_then(|tallies| guarded(|| actor.finish(&plan, &tallies, since_start))) {
                Ok(()) => actor.succeeded(more, ctx),
                Err(error) => actor.failed(error, ctx),
            }
        });
        ctx.wait(commit);
    }
}
