//! Crash safety of vote counting under SIGKILL: a child process (this test binary, re-executed
//! into the ignored `child_entry` test) runs a [`Node`], submits assertions, then a storm of
//! concurrent voters casting singles and batches (weights from subnormal to the largest allowed;
//! new votes, identical re-casts, newer and older votes, timestamp ties, votes about unknown
//! assertions), and an administrator's signed trust changes (newer, tied, older, re-sent; a
//! non-admin's first, which must be refused), printing a line per durable acknowledgement;
//! the parent SIGKILLs it at once,
//! right after the node started, or after a random number of acknowledgements. Rounds share a
//! data directory; children share assertions and voters.
//!
//! After each round the parent restarts the node and proves, against its own replay of the
//! journal: every acknowledged record is the journal record at its offset; no acknowledged vote
//! is lost (it is live, or its voter's live vote on its assertion has a greater (timestamp,
//! hash)); no acknowledged trust change is lost (it is applied, or its agent's applied change
//! outranks it); only the administrator's changes are journaled; live votes, exact totals
//! (also a recount of the stored votes, and as `vote_totals` and `votes` read them), the trust
//! table (also as `trust` reads it), rejections and the ingest cursor are the replay's. Rounds:
//! `STEMEDB_VOTES_CRASH_ROUNDS` (default 4). Seed: `STEMEDB_VOTES_CRASH_SEED` (default: the
//! clock); printed, and repeated in every failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;
#[path = "votes_crash/trust.rs"]
mod trust;

use common::Rng;
use common::crash::{
    assert_same, config, env_u64, journal_state_digest, journal_tree, replay_journal_records,
};
use common::kill::{Kill, run_and_kill as run_and_kill_child};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stemedb::node::{Node, TreeHead};
use stemedb::protocol::{AgentId, AgentKey, Assertion, Hash, LogRecord, ObjectValue, Vote, now_ms};
use stemedb::storage::state::{
    LIST_LIMIT_MAX, RejectReason, Rejection, StateDigest, StateDump, StoredTrust, StoredVote, VoteTotals,
};
use tempfile::TempDir;

/// Environment variables that turn `child_entry` into the voting child.
const ENV_DIR: &str = "STEMEDB_VOTES_CRASH_CHILD_DIR";
const ENV_SEED: &str = "STEMEDB_VOTES_CRASH_CHILD_SEED";
/// The line the child prints once its node has started.
const STARTED: &str = "node started";
/// Assertions each child submits, in batches of `ASSERTION_BATCH_RECORDS`: the shared ones are
/// the same in every child (duplicates after the first).
const SHARED_ASSERTIONS: u64 = 12;
const OWN_ASSERTIONS: u64 = 8;
const ASSERTION_BATCH_RECORDS: usize = 5;
const AUTHOR_KEY: u8 = 200;
/// Voting tasks in the child (even ones cast batches of up to `BATCH_VOTES_MAX`, odd ones
/// singles), each with keys of its own: few voters, so each votes on each assertion often.
const VOTER_TASKS: u8 = 16;
const KEYS_PER_TASK: u8 = 3;
const BATCH_VOTES_MAX: u64 = 8;
/// Acknowledged votes a task remembers, to re-cast, tie, or undercut by up to `OLDER_MS_MAX` ms.
const HISTORY_MAX: usize = 64;
const OLDER_MS_MAX: u64 = 2000;
/// How far behind the clock a child's voters start, in ms, so their timestamps stay in the past.
const CLOCK_LAG_MS: u64 = 10 * 60 * 1000;
/// Most acknowledgements the parent waits for before a kill.
const KILL_ACKS_MAX: u64 = 5000;
/// Rounds that share one data directory before a fresh one starts (bounds its size).
const ROUNDS_PER_DIR: u32 = 5;
/// Longest the parent waits for the lines it kills after, and for a restart to catch up.
const WAIT_MAX: Duration = Duration::from_secs(30);
/// The child ends by itself after this long, should the parent never kill it.
const CHILD_RUN_MAX: Duration = Duration::from_secs(60);

/// An acknowledged record as the child prints it,
/// `ack <assertion|vote|stray|trust> <hash> <offset>`
/// (a stray vote is about an unknown assertion); the journal tells the parent what it is.
type Ack = (Hash, u64);

/// Entry point of the child process; does nothing unless spawned by the crash test.
#[test]
#[ignore = "the crash test's child process; runs only when spawned with its environment"]
fn child_entry() {
    let (Ok(dir), Some(seed)) = (std::env::var(ENV_DIR), env_u64(ENV_SEED)) else {
        return;
    };
    actix_rt::System::new().block_on(async move {
        let node = Node::start(config(), &dir).unwrap();
        // One whole line each (stdout flushes at a newline); a failed print panics the child.
        println!("{STARTED}");
        let assertions: Arc<[Hash]> = submit_assertions(&node, seed).await.into();
        let clock_ms = now_ms() - CLOCK_LAG_MS;
        let mut tasks = Vec::new();
        for task in 0..VOTER_TASKS {
            let keys = (0..KEYS_PER_TASK).map(|k| common::key(1 + task * KEYS_PER_TASK + k));
            let voter = Voter {
                keys: keys.collect(),
                rng: Rng::new(seed ^ (u64::from(task) << 48)),
                assertions: Arc::clone(&assertions),
                clock_ms,
                history: Vec::new(),
            };
            tasks.push(actix_rt::spawn(voter.run(node.clone(), task % 2 == 0)));
        }
        let admin = trust::Admin {
            rng: Rng::new(seed ^ (0xad << 48)),
            agents: (1..=VOTER_TASKS * KEYS_PER_TASK)
                .map(|n| common::key(n).agent_id())
                .collect(),
            clock_ms,
            history: Vec::new(),
        };
        tasks.push(actix_rt::spawn(admin.run(node.clone())));
        // Voters never stop: the parent kills the child first, or the child ends here.
        let voting = async move {
            for task in tasks {
                task.await.unwrap();
            }
        };
        let _ = actix_rt::time::timeout(CHILD_RUN_MAX, voting).await;
    });
}

/// Submits the shared assertions and this child's own (signed by key `AUTHOR_KEY`), printing
/// each acknowledgement; returns the acknowledged hashes.
async fn submit_assertions(node: &Node, seed: u64) -> Vec<Hash> {
    let signed = |i: u64| {
        let owner = if i < SHARED_ASSERTIONS { 0 } else { seed };
        let object = ObjectValue::Text(format!("{owner:016x}/{i}"));
        let mut assertion = Assertion::new("vote:storm", "claim", object, 0.5, common::NOW_MS);
        assertion.sign(&common::key(AUTHOR_KEY));
        assertion
    };
    let mut acked = Vec::new();
    let all: Vec<Assertion> = (0..SHARED_ASSERTIONS + OWN_ASSERTIONS).map(signed).collect();
    for assertions in all.chunks(ASSERTION_BATCH_RECORDS) {
        let results = node.submit_many(assertions.to_vec()).await.unwrap();
        for (assertion, result) in assertions.iter().zip(results) {
            let receipt = result.unwrap();
            assert_eq!(receipt.hash, assertion.content_hash(), "a wrong receipt");
            println!("ack assertion {} {}", receipt.hash, receipt.offset);
            acked.push(receipt.hash);
        }
    }
    acked
}

/// A planned vote: (index of its key, assertion, weight, timestamp in ms, whether it is stray).
type Choice = (usize, Hash, f32, u64, bool);

/// One voting task of the child.
struct Voter {
    keys: Vec<AgentKey>,
    rng: Rng,
    /// The assertions this child has seen acknowledged, hence stored before any of its votes.
    assertions: Arc<[Hash]>,
    /// The timestamp of this task's newest vote; it steps ahead with every new vote.
    clock_ms: u64,
    /// Acknowledged votes about known assertions, newest last.
    history: Vec<Choice>,
}

impl Voter {
    /// Casts votes (in batches if `batches`), and prints each acknowledgement once the node has
    /// reported it durable.
    async fn run(mut self, node: Node, batches: bool) {
        loop {
            let count = 1 + self.rng.below(if batches { BATCH_VOTES_MAX } else { 1 });
            let chosen: Vec<Choice> = (0..count).map(|_| self.choose()).collect();
            let sign = |c: &Choice| Vote::sign(&self.keys[c.0], c.1, c.2, c.3);
            let votes: Vec<Vote> = chosen.iter().map(sign).collect();
            let results = match batches {
                true => node.cast_votes(votes.clone()).await.unwrap(),
                false => vec![node.cast_vote(votes[0].clone()).await],
            };
            for ((choice, vote), result) in chosen.into_iter().zip(&votes).zip(results) {
                let receipt = result.unwrap();
                assert_eq!(receipt.hash, vote.content_hash(), "a wrong receipt");
                let what = if choice.4 { "stray" } else { "vote" };
                println!("ack {what} {} {}", receipt.hash, receipt.offset);
                if !choice.4 {
                    let excess = (self.history.len() + 1).saturating_sub(HISTORY_MAX);
                    self.history.drain(..excess);
                    self.history.push(choice);
                }
            }
        }
    }

    /// Chooses the next vote: a stray one, an identical re-cast (signing is deterministic), an
    /// older one, a timestamp tie, or (most often) a newer one, on a random assertion.
    fn choose(&mut self) -> Choice {
        let roll = self.rng.below(100);
        // Mostly thousandths, sometimes subnormal or the largest allowed: inexact sums would show.
        let weight = match self.rng.below(10) {
            0 => f32::from_bits(1 + self.rng.below(1 << 23) as u32),
            1 => 100.0,
            _ => (1 + self.rng.below(100_000)) as f32 / 1000.0,
        };
        let key = self.rng.below(u64::from(KEYS_PER_TASK)) as usize;
        if roll < 4 {
            let stray = Hash::of(&self.rng.next().to_le_bytes());
            return (key, stray, weight, self.clock_ms, true);
        }
        // The more votes remembered, the likelier a vote again on one of their (voter, assertion).
        let earlier = self.rng.below(HISTORY_MAX as u64) as usize;
        if let (4..40, Some(&earlier)) = (roll, self.history.get(earlier)) {
            let (key, assertion, earlier_weight, earlier_ms, _) = earlier;
            let (weight, timestamp_ms) = match roll {
                4..16 => (earlier_weight, earlier_ms),
                16..30 => (weight, earlier_ms - 1 - self.rng.below(OLDER_MS_MAX)),
                _ => (weight, earlier_ms),
            };
            return (key, assertion, weight, timestamp_ms, false);
        }
        self.clock_ms += 1 + self.rng.below(3);
        let assertion = self.assertions[self.rng.below(self.assertions.len() as u64) as usize];
        (key, assertion, weight, self.clock_ms, false)
    }
}

/// Parses an acknowledgement line, skipping anything the test harness printed before it.
fn parse_ack(line: &str) -> Option<Ack> {
    let mut words = line.get(line.find("ack ")?..)?.split_whitespace().skip(1);
    Some((words.nth(1)?.parse().ok()?, words.next()?.parse().ok()?))
}

/// Runs one child on `dir` and kills it with SIGKILL once it has printed its start line and
/// `kill_after` acknowledgements (at once if `None`); returns every acknowledgement it printed
/// in full.
fn run_and_kill(dir: &Path, seed: u64, kill_after: Option<u64>, ctx: &str) -> Vec<Ack> {
    let kill = Kill {
        env: vec![(ENV_DIR, dir.display().to_string()), (ENV_SEED, seed.to_string())],
        parse: Arc::new(parse_ack),
        counts_too: Some(STARTED),
        lines: kill_after.map_or(0, |n| 1 + n),
        jitter: 0,
        wait_max: WAIT_MAX,
    };
    run_and_kill_child(kill, ctx).acks
}

/// Restarts the node on `dir`, waits until it has caught up, checks that `vote_totals` and
/// `votes` agree with its dump, and shuts it down; returns the dump and the journal's end.
fn restart_and_dump(dir: &Path, ctx: &str) -> (StateDump, u64, TreeHead, StateDigest) {
    actix_rt::System::new().block_on(async {
        let node = Node::start(config(), dir).unwrap_or_else(|e| panic!("{ctx}: restart failed: {e}"));
        let caught_up = node.wait_caught_up(Instant::now() + WAIT_MAX).await;
        caught_up.unwrap_or_else(|e| panic!("{ctx}: catch-up failed: {e}"));
        let (end, dump) = (node.durable_end().unwrap(), node.dump().unwrap());
        for (assertion, totals) in &dump.vote_totals {
            let votes = node.votes(assertion, LIST_LIMIT_MAX).unwrap();
            let dumped = dump.votes.iter().filter(|v| v.vote.assertion == *assertion);
            let same = node.vote_totals(assertion).unwrap() == *totals && votes.iter().eq(dumped);
            assert!(same, "{ctx}: the reads of {assertion} differ from the dump");
        }
        for applied in &dump.trust {
            let read = node.trust(&applied.change.agent).unwrap();
            assert_eq!(
                read, applied.change.factor,
                "{ctx}: trust() differs from the dump"
            );
        }
        let tree = node
            .tree_head()
            .unwrap_or_else(|e| panic!("{ctx}: tree head: {e}"));
        let digest = node.state_digest().unwrap();
        let shut = node.shutdown().await;
        shut.unwrap_or_else(|e| panic!("{ctx}: shutdown failed: {e}"));
        (dump, end, tree, digest)
    })
}

/// The state as computed from the journal alone: stored assertions (hash -> first offset), live
/// votes by (assertion, voter), rejections by offset, the record at each offset, the end.
#[derive(Default)]
struct Replay {
    stored: BTreeMap<Hash, u64>,
    live: BTreeMap<(Hash, AgentId), StoredVote>,
    trust: BTreeMap<AgentId, StoredTrust>,
    rejected: BTreeMap<u64, Rejection>,
    at: HashMap<u64, LogRecord>,
    end: u64,
}

/// A vote's rank among the votes of its voter on its assertion: the greatest is live.
fn rank(vote: &StoredVote) -> (u64, Hash) {
    (vote.vote.timestamp_ms, vote.hash)
}

/// Where a live vote is kept: one per (assertion, voter).
fn slot(vote: &StoredVote) -> (Hash, AgentId) {
    (vote.vote.assertion, vote.vote.voter)
}

impl Replay {
    /// Applies the record at `offset`: an assertion is stored unless it already is; a vote about
    /// a stored assertion becomes live if it outranks the live one, else it changes nothing; a
    /// vote about any other assertion is rejected; a trust change applies if it outranks its
    /// agent's.
    fn apply(&mut self, offset: u64, payload: &[u8], ctx: &str) {
        let Ok(record) = LogRecord::decode(payload) else {
            panic!("{ctx}: the journal record at {offset} does not decode");
        };
        match &record {
            LogRecord::Assertion(assertion) => {
                assert_eq!(assertion.parent, None, "{ctx}: this test submits no children");
                self.stored.entry(assertion.content_hash()).or_insert(offset);
            }
            LogRecord::Vote(vote) if !self.stored.contains_key(&vote.assertion) => {
                let (hash, assertion) = (Some(vote.content_hash()), vote.assertion);
                let reason = RejectReason::UnknownAssertion { assertion };
                self.rejected.insert(offset, Rejection { offset, hash, reason });
            }
            LogRecord::Vote(vote) => {
                let (hash, vote) = (vote.content_hash(), vote.clone());
                let new = StoredVote { hash, offset, vote };
                let live = self.live.entry(slot(&new)).or_insert_with(|| new.clone());
                if rank(&new) > rank(live) {
                    *live = new;
                }
            }
            LogRecord::Trust(change) => trust::replay(&mut self.trust, offset, change, ctx),
        }
        self.at.insert(offset, record);
    }
}

/// The totals of one assertion, comparable: (assertion, count, exact weight sum in hex).
type TotalsRow = (Hash, u64, String);

fn totals_row((assertion, totals): (&Hash, &VoteTotals)) -> TotalsRow {
    (*assertion, totals.count, hex::encode(totals.weight.to_bytes()))
}

/// Counts `votes` per assertion: how many, and the exact sum of their weights.
fn recount<'a>(votes: impl IntoIterator<Item = &'a StoredVote>) -> BTreeSet<TotalsRow> {
    let mut totals: BTreeMap<Hash, VoteTotals> = BTreeMap::new();
    for stored in votes {
        let total = totals.entry(stored.vote.assertion).or_default();
        total.count += 1;
        total.weight.add(stored.vote.weight);
    }
    totals.iter().map(totals_row).collect()
}

/// Replays the journal of `dir` (once the node is shut down) from offset 0.
fn replay_journal(dir: &Path, ctx: &str) -> Replay {
    let mut replay = Replay::default();
    replay.end = replay_journal_records(dir, ctx, |offset, payload| replay.apply(offset, payload, ctx));
    replay
}

/// Checks every acknowledgement: it is the journal record at its offset; an assertion is stored
/// (at its offset or before); a vote is about an assertion stored before it, and is live in the
/// dump (at its offset, or at an identical vote's before), or the live vote of its voter on its
/// assertion outranks it; a stray vote is rejected as about an unknown assertion; a trust
/// change is applied, or its agent's applied change outranks it.
fn check_acks(acked: &[Ack], dump: &StateDump, replay: &Replay, ctx: &str) {
    let live: HashMap<(Hash, AgentId), &StoredVote> = dump.votes.iter().map(|v| (slot(v), v)).collect();
    for &(hash, offset) in acked {
        let record = replay.at.get(&offset);
        let stored_before = |h: &Hash| replay.stored.get(h).is_some_and(|&first| first <= offset);
        let live = match record {
            Some(LogRecord::Vote(vote)) => live.get(&(vote.assertion, vote.voter)).copied(),
            _ => None,
        };
        let kept = |vote: &Vote| {
            let me = |l: &StoredVote| l.hash == hash && l.offset <= offset;
            live.is_some_and(|l| me(l) || rank(l) > (vote.timestamp_ms, hash))
        };
        let rejected = replay.rejected.get(&offset).map(|r| &r.reason);
        let fine = match record {
            Some(record) if record.content_hash() != hash => false,
            Some(LogRecord::Assertion(_)) => stored_before(&hash),
            Some(LogRecord::Vote(vote)) if stored_before(&vote.assertion) => kept(vote),
            Some(LogRecord::Vote(_)) => matches!(rejected, Some(RejectReason::UnknownAssertion { .. })),
            Some(LogRecord::Trust(change)) => trust::kept(dump, change, hash, offset),
            None => false,
        };
        let found = format!("{hash} at {offset}; journal: {record:?}; live: {live:?}");
        assert!(fine, "{ctx}: an acknowledged record is lost: {found}");
    }
}

/// Checks that the dumped state equals the replay: assertions, live votes, totals (also
/// against a recount of the dumped votes), the trust table, rejections and the cursor.
fn check_state_equals_replay(dump: &StateDump, end: u64, replay: &Replay, ctx: &str) {
    let stored: BTreeSet<(Hash, u64)> = dump.assertions.iter().map(|s| (s.hash, s.offset)).collect();
    let expected = replay.stored.iter().map(|(h, o)| (*h, *o)).collect();
    assert_same("stored (hash, offset)", &stored, &expected, ctx);
    let row = |v: &StoredVote| (v.vote.assertion, v.vote.voter, v.hash, v.offset);
    let votes = dump.votes.iter().map(row).collect();
    let live = replay.live.values().map(row).collect();
    assert_same("live votes", &votes, &live, ctx);
    let totals = dump.vote_totals.iter().map(|(h, t)| totals_row((h, t))).collect();
    let (replayed, recounted) = (recount(replay.live.values()), recount(&dump.votes));
    assert_same("totals vs replay", &totals, &replayed, ctx);
    assert_same("totals vs recount", &totals, &recounted, ctx);
    let applied = trust::rows(&dump.trust);
    assert_same("trust table", &applied, &trust::rows(replay.trust.values()), ctx);
    let rejection = |r: &Rejection| (r.offset, r.hash, r.reason.to_string());
    let rejected = dump.rejected.iter().map(rejection).collect();
    let expected = replay.rejected.values().map(rejection).collect();
    assert_same("rejections", &rejected, &expected, ctx);
    assert_eq!(dump.ingest_cursor, replay.end, "{ctx}: the ingest cursor");
    assert_eq!(end, replay.end, "{ctx}: the node's durable end");
}

/// Picks the children of a round as the acknowledgements each prints before its kill (`None`:
/// killed right after the spawn): one, or (always in the second round of a directory) a second
/// one killed right after it started, while its node catches up with the first one's journal.
fn plan_kills(rng: &mut Rng, round: u32) -> Vec<Option<u64>> {
    let kill_after = match rng.below(8) {
        0 => None,
        1 => Some(0),
        2 => Some(1 + rng.below(SHARED_ASSERTIONS + OWN_ASSERTIONS)),
        _ => Some(1 + rng.below(KILL_ACKS_MAX)),
    };
    match round % ROUNDS_PER_DIR == 1 || rng.below(4) == 0 {
        true => vec![kill_after, Some(0)],
        false => vec![kill_after],
    }
}

#[test]
fn acknowledged_votes_survive_sigkill_and_totals_equal_the_recount() {
    let seed =
        env_u64("STEMEDB_VOTES_CRASH_SEED").unwrap_or_else(|| now_ms() ^ u64::from(std::process::id()));
    let rounds = u32::try_from(env_u64("STEMEDB_VOTES_CRASH_ROUNDS").unwrap_or(4)).unwrap();
    eprintln!("votes crash test: seed {seed}, {rounds} rounds (STEMEDB_VOTES_CRASH_SEED={seed})");
    let (started, mut rng) = (Instant::now(), Rng::new(seed));
    let (mut dir, mut acked) = (TempDir::new().unwrap(), Vec::new());
    let (mut kills, mut acks, mut records, mut live, mut trusted) = (0, 0, 0, 0, 0);
    for round in 0..rounds {
        if round > 0 && round % ROUNDS_PER_DIR == 0 {
            (dir, acked) = (TempDir::new().unwrap(), Vec::new());
        }
        let plan = plan_kills(&mut rng, round);
        let ctx = format!("seed {seed} round {round} (kills after acks: {plan:?})");
        for &kill_after in &plan {
            let new = run_and_kill(dir.path(), rng.next(), kill_after, &ctx);
            (kills, acks) = (kills + 1, acks + new.len());
            acked.extend(new);
        }
        let (dump, end, tree, digest) = restart_and_dump(dir.path(), &ctx);
        // The whole state, the learned trust model with it, equals a fresh state fed the
        // journal.
        assert_eq!(
            digest,
            journal_state_digest(dir.path(), &ctx),
            "{ctx}: the state digest"
        );
        let replay = replay_journal(dir.path(), &ctx);
        // The tree root at the cursor equals a tree rebuilt from the journal.
        let (size, root) = journal_tree(dir.path(), &ctx);
        assert_eq!(
            (tree.size, tree.root, tree.cursor),
            (size, root, end),
            "{ctx}: the Merkle tree"
        );
        check_acks(&acked, &dump, &replay, &ctx);
        check_state_equals_replay(&dump, end, &replay, &ctx);
        (records, live) = (records + replay.at.len(), live + replay.live.len());
        trusted += replay.trust.len();
    }
    eprintln!(
        "votes crash test: {rounds} rounds, {kills} kills, {acks} acknowledgements checked, \
         {records} journal records replayed, {live} live votes and {trusted} trust rows compared \
         with the state, {:.1?}",
        started.elapsed()
    );
}
