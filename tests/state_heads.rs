//! The heads index against heads computed from scratch. Random histories of assertions over a
//! few subjects and predicates, successors (by an author of their parent, or by a foreign agent,
//! which is rejected), retractions, votes and trust changes are applied to the LMDB state in
//! random batches (so a parent and its successor often share a batch). After every batch:
//! - each pair's heads (`heads`, and `list` without history, by pair and by subject) are
//!   exactly the accepted assertions that no accepted assertion supersedes, with summaries
//!   equal to the assertions' own fields; history lists every accepted assertion of the pair;
//! - the `pairs` index holds each stored assertion once, in the section the supersession
//!   edges give it;
//! - the batch reports as touched exactly the pairs of the assertions it stored and of the
//!   assertions whose live votes it changed, and the agents whose trust it changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::collections::{BTreeMap, BTreeSet};

use common::{NOW_MS, Rng, key};
use proptest::prelude::*;
use stemedb::protocol::{AgentId, Assertion, Hash, Lifecycle, LogRecord, ObjectValue, TrustChange, Vote};
use stemedb::storage::state::{IngestRecord, ListQuery, PairId, Section, State, StateConfig, Summary};
use tempfile::TempDir;

const SUBJECTS: [&str; 3] = ["city/paris", "city/lyon", "city/nice"];
const PREDICATES: [&str; 2] = ["population", "mayor"];
const ADMIN: u8 = 60;

/// One generated record, with what the model expects of it.
enum Op {
    /// An assertion; `accepted` if it has no parent, or its parent is accepted and shares a
    /// signer with it.
    Assert { assertion: Assertion, accepted: bool },
    /// A vote; it becomes live if and only if its target is accepted (timestamps only grow).
    Vote { vote: Vote, live: bool },
    /// A trust change; it always applies (timestamps only grow).
    Trust(TrustChange),
}

/// The model: a random history, and what it must leave in the state.
struct History {
    ops: Vec<Op>,
    /// Accepted assertions by hash.
    accepted: BTreeMap<Hash, Assertion>,
    /// Accepted assertions that an accepted successor supersedes.
    superseded: BTreeSet<Hash>,
    /// Journal offset of each accepted assertion.
    offsets: BTreeMap<Hash, u64>,
}

fn generate(seed: u64, len: usize) -> History {
    let mut rng = Rng::new(seed);
    let mut history = History {
        ops: Vec::new(),
        accepted: BTreeMap::new(),
        superseded: BTreeSet::new(),
        offsets: BTreeMap::new(),
    };
    let mut all: Vec<Assertion> = Vec::new();
    for step in 0..len as u64 {
        let ts = NOW_MS + step;
        match rng.below(10) {
            0..=4 => {
                let subject = SUBJECTS[rng.index(SUBJECTS.len())];
                let predicate = PREDICATES[rng.index(PREDICATES.len())];
                let value = ObjectValue::Integer(rng.below(1000) as i64);
                let mut a = Assertion::new(subject, predicate, value, rng.below(101) as f32 / 100.0, ts);
                a.sign(&key(1 + rng.below(3) as u8));
                if rng.below(4) == 0 {
                    a.sign(&key(1 + rng.below(3) as u8));
                }
                history.ops.push(Op::Assert {
                    assertion: a.clone(),
                    accepted: true,
                });
                history.accepted.insert(a.content_hash(), a.clone());
                all.push(a);
            }
            5..=7 if !all.is_empty() => {
                let parent = all[rng.index(all.len())].clone();
                let parent_hash = parent.content_hash();
                let mut child = Assertion::new(
                    parent.subject.clone(),
                    parent.predicate.clone(),
                    ObjectValue::Text(format!("v{step}")),
                    0.5,
                    ts,
                );
                child.parent = Some(parent_hash);
                if rng.below(5) == 0 {
                    child.lifecycle = Lifecycle::Retracted;
                }
                // An author of the parent, or (one time in four) a foreign agent.
                let foreign = rng.below(4) == 0;
                let signer = if foreign {
                    key(20)
                } else {
                    let agents: Vec<AgentId> = parent.signatures.iter().map(|s| s.agent).collect();
                    let agent = agents[rng.index(agents.len())];
                    [1, 2, 3, 20]
                        .into_iter()
                        .map(key)
                        .find(|k| k.agent_id() == agent)
                        .unwrap()
                };
                child.sign(&signer);
                let accepted = !foreign && history.accepted.contains_key(&parent_hash);
                if accepted {
                    history.accepted.insert(child.content_hash(), child.clone());
                    history.superseded.insert(parent_hash);
                }
                history.ops.push(Op::Assert {
                    assertion: child.clone(),
                    accepted,
                });
                all.push(child);
            }
            8 if !all.is_empty() => {
                let target = all[rng.index(all.len())].content_hash();
                let vote = Vote::sign(
                    &key(30 + rng.below(3) as u8),
                    target,
                    1.0 + rng.below(9) as f32,
                    ts,
                );
                let live = history.accepted.contains_key(&target);
                history.ops.push(Op::Vote { vote, live });
            }
            _ => {
                let agent = key(30 + rng.below(3) as u8).agent_id();
                let change = TrustChange::sign(&key(ADMIN), agent, rng.below(10) as f32, ts);
                history.ops.push(Op::Trust(change));
            }
        }
    }
    history
}

fn pair_of(a: &Assertion) -> PairId {
    PairId::of(&a.subject, &a.predicate)
}

fn check_heads(state: &State, history: &History, applied: &BTreeSet<Hash>) -> Result<(), TestCaseError> {
    let stored: BTreeMap<Hash, &Assertion> = history
        .accepted
        .iter()
        .filter(|(h, _)| applied.contains(h))
        .map(|(h, a)| (*h, a))
        .collect();
    let superseded: BTreeSet<Hash> = stored
        .values()
        .filter_map(|a| a.parent)
        .filter(|p| stored.contains_key(p))
        .collect();
    prop_assert!(superseded.iter().all(|h| history.superseded.contains(h)));
    let dump = state.dump().unwrap();
    prop_assert_eq!(
        dump.pairs.len(),
        stored.len(),
        "one pairs entry per stored assertion"
    );
    for (key, summary) in &dump.pairs {
        let a = stored.get(&key.hash);
        prop_assert!(a.is_some(), "pairs entry for an assertion not stored");
        let a = a.unwrap();
        let section = if superseded.contains(&key.hash) {
            Section::Superseded
        } else {
            Section::Head
        };
        prop_assert_eq!(key.section, section, "section of {}", key.hash);
        prop_assert_eq!(key.pair, pair_of(a));
        prop_assert_eq!(key.timestamp_ms, a.timestamp_ms);
        prop_assert_eq!(summary, &Summary::of(a, history.offsets[&key.hash]));
    }
    for subject in SUBJECTS {
        let mut subject_heads = BTreeSet::new();
        for predicate in PREDICATES {
            let expected: BTreeSet<Hash> = stored
                .iter()
                .filter(|(h, a)| a.subject == subject && a.predicate == predicate && !superseded.contains(h))
                .map(|(h, _)| *h)
                .collect();
            let heads = state.heads(subject, predicate, 10_000).unwrap();
            let found: BTreeSet<Hash> = heads.iter().map(|h| h.hash).collect();
            prop_assert_eq!(&found, &expected, "heads of ({}, {})", subject, predicate);
            prop_assert!(
                heads
                    .windows(2)
                    .all(|w| (w[0].timestamp_ms, w[0].hash) < (w[1].timestamp_ms, w[1].hash))
            );
            let listed = state.list(&ListQuery::pair(subject, predicate)).unwrap();
            let listed: BTreeSet<Hash> = listed.assertions.iter().map(|s| s.hash).collect();
            prop_assert_eq!(&listed, &expected, "listed heads of ({}, {})", subject, predicate);
            let mut query = ListQuery::pair(subject, predicate);
            query.history = true;
            let all: BTreeSet<Hash> = state
                .list(&query)
                .unwrap()
                .assertions
                .iter()
                .map(|s| s.hash)
                .collect();
            let expected_all: BTreeSet<Hash> = stored
                .iter()
                .filter(|(_, a)| a.subject == subject && a.predicate == predicate)
                .map(|(h, _)| *h)
                .collect();
            prop_assert_eq!(all, expected_all, "history of ({}, {})", subject, predicate);
            subject_heads.extend(expected);
        }
        // A subject's heads, paged two at a time.
        let mut query = ListQuery::subject(subject);
        query.limit = 2;
        let mut paged = BTreeSet::new();
        loop {
            let page = state.list(&query).unwrap();
            for s in &page.assertions {
                prop_assert!(paged.insert(s.hash), "{} listed twice", s.hash);
            }
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        prop_assert_eq!(paged, subject_heads, "heads of subject {}", subject);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn heads_index_equals_heads_computed_from_scratch(seed in any::<u64>(), len in 1usize..120) {
        let mut history = generate(seed, len);
        let dir = TempDir::new().unwrap();
        let state = State::open(dir.path(), StateConfig::default()).unwrap();
        let mut rng = Rng::new(seed ^ 0x5eed);
        let mut offset = 0u64;
        let mut applied = BTreeSet::new();
        let mut ops = std::mem::take(&mut history.ops).into_iter().peekable();
        while ops.peek().is_some() {
            let size = 1 + rng.index(12);
            let mut records = Vec::new();
            let mut stored_pairs = BTreeSet::new();
            let mut voted_pairs = BTreeSet::new();
            let mut trusted = BTreeSet::new();
            for op in ops.by_ref().take(size) {
                let payload = match &op {
                    Op::Assert { assertion, accepted } => {
                        if *accepted {
                            history.offsets.insert(assertion.content_hash(), offset);
                            applied.insert(assertion.content_hash());
                            stored_pairs.insert(pair_of(assertion));
                        }
                        LogRecord::Assertion(assertion.clone()).encode()
                    }
                    Op::Vote { vote, live } => {
                        if *live && applied.contains(&vote.assertion) {
                            voted_pairs.insert(pair_of(&history.accepted[&vote.assertion]));
                        }
                        LogRecord::Vote(vote.clone()).encode()
                    }
                    Op::Trust(change) => {
                        trusted.insert(change.agent);
                        LogRecord::Trust(change.clone()).encode()
                    }
                };
                let next = offset + 64 + payload.len() as u64;
                records.push(IngestRecord { offset, next, payload: payload.into() });
                offset = next;
            }
            let outcome = state.apply(&records).unwrap();
            let touched: BTreeSet<PairId> = stored_pairs.union(&voted_pairs).copied().collect();
            prop_assert_eq!(&outcome.touched, &touched, "seed {}: touched pairs", seed);
            prop_assert_eq!(&outcome.trust_changed, &trusted, "seed {}: trust changed", seed);
            check_heads(&state, &history, &applied)?;
        }
    }
}
