//! The one write path of the state: apply a batch of journal records and advance the ingest
//! cursor, in one LMDB transaction.
//!
//! Applying is two steps, so that votes can be counted by their shard in between:
//! [`State::plan`] decides every record against the committed state (read-only): store,
//! duplicate, reject, apply (a trust change that outranks its agent's), or — for a vote about a
//! known assertion — count; [`State::commit`] then writes the decisions, the shards' [`Tally`]s
//! and the cursor in one transaction. The ingestor
//! is the only writer, so nothing changes between the two; `commit` checks it.
//!
//! Records below the stored cursor are skipped, so replaying a batch that was already applied
//! changes nothing; a record whose assertion is already stored is a duplicate (content
//! addressing makes a resubmission the same assertion) and changes nothing either.
//!
//! A record this build cannot use is one of two things, and they are treated differently:
//! - a *tag* this build does not know ([`CodecError::UnknownLogRecordTag`]) is a record kind
//!   written by a newer build. Rejecting it would lose it for good, so the plan holds at it
//!   ([`Plan::unknown_tag`]): everything before it is applied, nothing at or after it, and a
//!   build that knows the tag resumes from that very record;
//! - a *known* tag whose body does not decode (or an empty record) cannot become valid under
//!   any build, since a new body format takes a new tag: it is rejected as `undecodable`, and
//!   ingestion moves on.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use heed::RoTxn;

use super::layout::{
    META_INGEST_CURSOR, PairId, decode_u64, encode_rejection, encode_trust, ingest_time_key,
    rejected_key, trust_history_key,
};
use super::rejection::{RejectReason, Rejection};
use super::trust::{StoredTrust, plan_trust};
mod answers;
mod evidence;
mod facts;
mod write;

use write::{store, write_tally};
use super::votes::{RoutedVote, Tally};
use super::map;
use super::learned;
use answers::answered;
use evidence::batch_evidence;
use facts::{ParentFacts, is_stored, stored_pair};
use super::tree::{self, Leaf};
use super::{Databases, State, StateError};
use crate::protocol::{AgentId, Assertion, CodecError, Hash, LogRecord, check_values};

/// One durable journal record, as the ingestor read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRecord {
    /// Its global offset.
    pub offset: u64,
    /// The offset of the record after it.
    pub next: u64,
    /// Its payload (a [`LogRecord`] encoding), shared with the log's read.
    pub payload: bytes::Bytes,
}

/// What applying one batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Assertions stored.
    pub applied: usize,
    /// Records whose assertion was already stored.
    pub duplicates: usize,
    /// Records below the cursor on entry, i.e. applied before (replays).
    pub skipped: usize,
    /// Votes that became live.
    pub votes_counted: usize,
    /// Votes that changed nothing (older than, or identical to, the live vote).
    pub votes_ignored: usize,
    /// Live votes that a newer vote of the same voter replaced.
    pub votes_replaced: usize,
    /// Trust changes that outranked their agent's applied change when planned.
    pub trust_applied: usize,
    /// Trust changes that changed nothing (older than, or identical to, the applied change).
    pub trust_ignored: usize,
    /// Records refused, with their reasons (also stored in the `rejected` database).
    pub rejected: Vec<Rejection>,
    /// The pairs whose heads, history or live votes the batch changed: every pair of a stored
    /// assertion, and every pair of an assertion whose live vote changed.
    pub touched: BTreeSet<PairId>,
    /// The agents whose trust the batch changed. A trust change moves every pair the agent
    /// voted on; consumers that know which voters a result counted use this set rather than a
    /// list of every such pair, which could be the whole store.
    pub trust_changed: BTreeSet<AgentId>,
    /// True if and only if the batch moved the learned trust model (an answer, or a
    /// re-estimation): every answer of the `learned` lens may have moved with it.
    pub learned_changed: bool,
    /// The ingest cursor after the batch.
    pub cursor: u64,
}

/// The decisions on one batch, made by [`State::plan`] and written by [`State::commit`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// The stored cursor the plan was made against.
    cursor: u64,
    /// The cursor after the batch.
    end: u64,
    steps: Vec<Step>,
    skipped: usize,
    duplicates: usize,
    /// The trust change each agent ends the batch with, where the batch changes it.
    trust: BTreeMap<AgentId, StoredTrust>,
    /// Applied trust changes the batch replaces, for the history.
    trust_replaced: Vec<StoredTrust>,
    trust_applied: usize,
    trust_ignored: usize,
    /// The record the plan holds at: its tag is unknown to this build.
    unknown_tag: Option<UnknownTag>,
    /// The votes to count, in journal order.
    pub votes: Vec<RoutedVote>,
    /// The pair of each voted assertion.
    vote_pairs: HashMap<Hash, PairId>,
    /// The Merkle tree leaves of the planned records, in log order.
    leaves: Vec<Leaf>,
}

/// The ingest's verdict on one record of a log others can write: `None` if it passed the
/// checks admission makes, or its hash (if it decoded) and why it is refused.
pub type Refused = Option<(Option<Hash>, RejectReason)>;

/// A journal record whose tag this build does not know; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownTag {
    /// The record's journal offset.
    pub offset: u64,
    /// Its tag (first payload byte).
    pub tag: u8,
}

impl Plan {
    /// Returns the record this plan holds at, if its tag is unknown to this build; the plan
    /// covers the records before it only.
    pub fn unknown_tag(&self) -> Option<UnknownTag> {
        self.unknown_tag
    }

    /// Returns the ingest cursor after the batch: the records below it are the plan's.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Returns true if and only if committing the plan advances the ingest cursor.
    pub fn advances(&self) -> bool {
        self.end > self.cursor
    }
}

/// What planning one record decided about the batch.
enum Planned {
    /// The record is planned, with its content hash if it decoded; go on with the next.
    Next(Option<Hash>),
    /// The record's tag is unknown: the batch ends before it.
    Hold(u8),
}

#[derive(Debug, Clone)]
enum Step {
    Store(Box<Store>),
    Reject(Rejection),
}

/// An assertion to store.
#[derive(Debug, Clone)]
struct Store {
    offset: u64,
    hash: Hash,
    assertion: Assertion,
    /// Its canonical record, as journaled.
    body: Vec<u8>,
    pair: PairId,
    /// The timestamp of the parent it supersedes, if any.
    parent_timestamp_ms: Option<u64>,
}

impl State {
    /// Returns the ingest cursor: the journal offset of the next record to apply.
    pub fn ingest_cursor(&self) -> Result<u64, StateError> {
        self.read(read_cursor)
    }

    /// Applies `records` (consecutive, ascending), votes included, and advances the cursor
    /// past the last one, all in one transaction: [`plan`](Self::plan), [`tally`](Self::tally)
    /// of all its votes, [`commit`](Self::commit). A record with a tag this build does not
    /// know fails the whole call with [`StateError::UnknownRecordTag`], applying nothing.
    #[cfg_attr(not(feature = "test-kit"), allow(dead_code, reason = "the ingestor plans and commits apart"))]
    pub fn apply(&self, records: &[IngestRecord]) -> Result<ApplyOutcome, StateError> {
        let plan = self.plan(records)?;
        if let Some(UnknownTag { offset, tag }) = plan.unknown_tag {
            return Err(StateError::UnknownRecordTag { offset, tag });
        }
        let tally = self.tally(&plan.votes)?;
        self.commit(&plan, &[tally])
    }

    /// Decides every record of `records` against the committed state; see the module docs.
    pub(crate) fn plan(&self, records: &[IngestRecord]) -> Result<Plan, StateError> {
        self.plan_treating(records, &[], &[])
    }

    /// [`plan`](Self::plan), with the verdicts of the ingest's own checks of a log others can
    /// write (one per record, in order; empty if the log needs none): a refused record is
    /// rejected with its reason, never applied.
    #[cfg_attr(feature = "test-kit", allow(dead_code, reason = "the test kit's hooks plan through plan_with"))]
    pub(crate) fn plan_checked(&self, records: &[IngestRecord], refused: &[Refused]) -> Result<Plan, StateError> {
        self.plan_treating(records, &[], refused)
    }

    /// [`plan`](Self::plan), treating records with a tag in `noop_tags` as known records that
    /// change nothing. Test-only: it stands in for a build that knows those tags.
    #[cfg(feature = "test-kit")]
    pub(crate) fn plan_with(
        &self,
        records: &[IngestRecord],
        noop_tags: &[u8],
        refused: &[Refused],
    ) -> Result<Plan, StateError> {
        self.plan_treating(records, noop_tags, refused)
    }

    fn plan_treating(
        &self,
        records: &[IngestRecord],
        noop_tags: &[u8],
        refused: &[Refused],
    ) -> Result<Plan, StateError> {
        self.read(|txn, dbs| {
            let cursor = read_cursor(txn, dbs)?;
            let mut plan = Plan {
                cursor,
                end: cursor,
                ..Plan::default()
            };
            // Assertions stored earlier in this batch, by hash: what a successor is checked against.
            let mut batch: HashMap<Hash, ParentFacts> = HashMap::new();
            // Leaves are hashed only for a state that keeps the tree (`checkpoint.enabled`).
            let verifiable = self.verifiable();
            for (i, record) in records.iter().enumerate() {
                assert!(
                    record.next > record.offset,
                    "journal record ends before it starts"
                );
                if record.offset < plan.cursor {
                    plan.skipped += 1;
                    continue;
                }
                if let Some(Some((hash, reason))) = refused.get(i) {
                    plan.steps.push(Step::Reject(Rejection {
                        offset: record.offset,
                        hash: *hash,
                        reason: reason.clone(),
                    }));
                    if verifiable {
                        plan.leaves.push(Leaf::of(record.offset, &record.payload, tree::content_of(&record.payload), false));
                    }
                    plan.end = record.next;
                    continue;
                }
                match plan_one(txn, dbs, record, noop_tags, &mut batch, &mut plan)? {
                    Planned::Hold(tag) => {
                        plan.unknown_tag = Some(UnknownTag {
                            offset: record.offset,
                            tag,
                        });
                        break;
                    }
                    Planned::Next(content) => {
                        let stored = matches!(plan.steps.last(), Some(Step::Store(s)) if s.offset == record.offset);
                        if verifiable {
                            plan.leaves.push(Leaf::of(record.offset, &record.payload, content, stored));
                        }
                    }
                }
                plan.end = record.next;
            }
            Ok(plan)
        })
    }

    /// Writes `plan` and the shards' `tallies` (together covering `plan.votes`) and advances
    /// the cursor, in one transaction.
    pub(crate) fn commit(&self, plan: &Plan, tallies: &[Tally]) -> Result<ApplyOutcome, StateError> {
        self.write(|txn, dbs| {
            let cursor = read_cursor(txn, dbs)?;
            assert_eq!(cursor, plan.cursor, "the state changed between plan and commit");
            let mut outcome = ApplyOutcome {
                skipped: plan.skipped,
                duplicates: plan.duplicates,
                trust_applied: plan.trust_applied,
                trust_ignored: plan.trust_ignored,
                cursor: plan.end,
                ..ApplyOutcome::default()
            };
            for step in &plan.steps {
                match step {
                    Step::Store(stored) => {
                        store(txn, dbs, stored)?;
                        outcome.touched.insert(stored.pair);
                        outcome.applied += 1;
                    }
                    Step::Reject(rejection) => {
                        dbs.rejected
                            .put(txn, &rejected_key(rejection.offset), &encode_rejection(rejection)?)
                            .map_err(StateError::lmdb("store rejection"))?;
                        outcome.rejected.push(rejection.clone());
                    }
                }
            }
            for row in &plan.trust_replaced {
                dbs.trust_history
                    .put(txn, &trust_history_key(&row.change.agent, row.offset), &encode_trust(row))
                    .map_err(StateError::lmdb("store trust history"))?;
            }
            for (agent, row) in &plan.trust {
                outcome.trust_changed.insert(*agent);
                dbs.trust
                    .put(txn, agent.as_bytes(), &encode_trust(row))
                    .map_err(StateError::lmdb("store trust"))?;
            }
            for tally in tallies {
                write_tally(txn, dbs, tally)?;
                for row in &tally.rows {
                    let pair = plan.vote_pairs.get(&row.vote.assertion).ok_or_else(|| {
                        StateError::corrupt("vote tally", format!("no pair for assertion {}", row.vote.assertion))
                    })?;
                    outcome.touched.insert(*pair);
                }
                outcome.votes_counted += tally.counted;
                outcome.votes_ignored += tally.ignored;
                outcome.votes_replaced += tally.replaced.len();
            }
            dbs.meta
                .put(txn, META_INGEST_CURSOR, &plan.end.to_be_bytes())
                .map_err(StateError::lmdb("store ingest cursor"))?;
            // The tree and the map grow with the cursor; one left behind (see `tree`, `map`)
            // stays behind.
            let tree = tree::extent(txn, dbs)?;
            if self.verifiable() && tree.cursor == plan.cursor && plan.end > plan.cursor {
                tree::append(txn, dbs, tree, &plan.leaves, plan.end)?;
                if map::cursor(txn, dbs)? == plan.cursor {
                    let mut evidence = batch_evidence(plan, tallies, tree.size)?;
                    map::extend(txn, dbs, &mut evidence, plan.end)?;
                }
            }
            if let Some(settings) = self.learned()
                && plan.end > plan.cursor
            {
                let started = std::time::Instant::now();
                let before = learned::answers_and_epochs(txn, dbs)?;
                let meta = learned::extend(txn, dbs, &settings, answered(plan, tallies), plan.cursor, plan.end)?;
                self.learned_spent(started.elapsed(), meta);
                outcome.learned_changed = meta.is_some_and(|m| (m.answers, m.epochs) != before);
            }
            if plan.end > plan.cursor {
                dbs.ingest_times
                    .put(txn, &ingest_time_key(crate::protocol::now_ms(), plan.end), &[])
                    .map_err(StateError::lmdb("store ingest time"))?;
            }
            Ok(outcome)
        })
    }
}

pub(super) fn read_cursor(txn: &RoTxn<'_>, dbs: &Databases) -> Result<u64, StateError> {
    match dbs
        .meta
        .get(txn, META_INGEST_CURSOR)
        .map_err(StateError::lmdb("read ingest cursor"))?
    {
        Some(bytes) => decode_u64("ingest cursor", bytes),
        None => Ok(0),
    }
}

fn plan_one(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    record: &IngestRecord,
    noop_tags: &[u8],
    batch: &mut HashMap<Hash, ParentFacts>,
    plan: &mut Plan,
) -> Result<Planned, StateError> {
    let reject = |plan: &mut Plan, hash, reason| {
        plan.steps.push(Step::Reject(Rejection {
            offset: record.offset,
            hash,
            reason,
        }));
    };
    let decoded = match LogRecord::decode(&record.payload) {
        Ok(decoded) => decoded,
        Err(CodecError::UnknownLogRecordTag { tag }) if noop_tags.contains(&tag) => return Ok(Planned::Next(None)),
        Err(CodecError::UnknownLogRecordTag { tag }) => return Ok(Planned::Hold(tag)),
        Err(error) => {
            let detail = error.to_string();
            reject(plan, None, RejectReason::Undecodable { detail });
            return Ok(Planned::Next(None));
        }
    };
    let content = decoded.content_hash();
    // Values that reach the tallies and the lenses are checked in every build, whatever
    // checked the record before (a debug assertion is not a guard).
    if let Err(error) = check_values(&decoded) {
        let detail = error.to_string();
        reject(plan, Some(content), RejectReason::Invalid { detail });
        return Ok(Planned::Next(Some(content)));
    }
    let assertion = match decoded {
        LogRecord::Assertion(assertion) => assertion,
        LogRecord::Vote(vote) => {
            let hash = content;
            let pair = match batch.get(&vote.assertion) {
                Some(facts) => Some(facts.pair),
                None => stored_pair(txn, dbs, &vote.assertion)?,
            };
            if let Some(pair) = pair {
                plan.vote_pairs.insert(vote.assertion, pair);
                plan.votes.push(RoutedVote {
                    offset: record.offset,
                    hash,
                    vote,
                });
            } else {
                reject(
                    plan,
                    Some(hash),
                    RejectReason::UnknownAssertion {
                        assertion: vote.assertion,
                    },
                );
            }
            return Ok(Planned::Next(Some(content)));
        }
        LogRecord::Trust(change) => {
            let (hash, offset) = (content, record.offset);
            let row = StoredTrust { hash, offset, change };
            match plan_trust(txn, dbs, &mut plan.trust, &mut plan.trust_replaced, row)? {
                true => plan.trust_applied += 1,
                false => plan.trust_ignored += 1,
            }
            return Ok(Planned::Next(Some(content)));
        }
    };
    let hash = content;
    if batch.contains_key(&hash) || is_stored(txn, dbs, &hash)? {
        plan.duplicates += 1;
        return Ok(Planned::Next(Some(content)));
    }
    let mut parent_timestamp_ms = None;
    if let Some(parent) = assertion.parent {
        let facts = match batch.get(&parent) {
            Some(facts) => Some(facts.clone()),
            None => super::read::get_in(txn, dbs, &parent)?.map(|stored| ParentFacts::of(&stored.assertion)),
        };
        let Some(facts) = facts else {
            reject(plan, Some(hash), RejectReason::UnknownParent { parent });
            return Ok(Planned::Next(Some(content)));
        };
        if facts.subject != assertion.subject || facts.predicate != assertion.predicate {
            reject(plan, Some(hash), RejectReason::ParentMismatch { parent });
            return Ok(Planned::Next(Some(content)));
        }
        // Only an author may supersede: agents who disagree make competing assertions.
        let shares_a_signer = assertion
            .signatures
            .iter()
            .any(|s| facts.signers.contains(&s.agent));
        if !shares_a_signer {
            reject(plan, Some(hash), RejectReason::NotParentAuthor { parent });
            return Ok(Planned::Next(Some(content)));
        }
        parent_timestamp_ms = Some(facts.timestamp_ms);
    }
    let facts = ParentFacts::of(&assertion);
    let pair = facts.pair;
    batch.insert(hash, facts);
    // The payload after its tag byte is the canonical record: stored as read, not re-encoded.
    let body = record.payload.get(1..).unwrap_or_default().to_vec();
    plan.steps.push(Step::Store(Box::new(Store {
        offset: record.offset,
        hash,
        assertion,
        body,
        pair,
        parent_timestamp_ms,
    })));
    Ok(Planned::Next(Some(content)))
}
