//! Votes through the embedded node: one live vote per (voter, assertion), the newest by
//! (timestamp, hash); totals always equal an exact recount of the stored live votes, whatever
//! the concurrency, repetition or order; bad votes are refused before the journal; votes on
//! unknown assertions are rejected with their reason; trust factors default to the config
//! (trust changes are in `tests/trust.rs`). An exhaustive check over every order of a set of competing votes shows
//! the counting rule is order-independent, the property that makes replay after a crash safe.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::deadline;

use std::collections::HashMap;

use common::{NOW_MS, key};
use stemedb::Config;
use stemedb::node::{Node, SubmitError};
use stemedb::protocol::{AgentKey, Assertion, Hash, ObjectValue, ValidationError, Vote};
use stemedb::storage::state::{ExactWeight, RejectReason, VoteTotals};
use tempfile::TempDir;

fn voter(n: u32) -> AgentKey {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&n.to_le_bytes());
    seed[31] = 0xa5;
    AgentKey::from_secret_bytes(&seed)
}

async fn assertions(node: &Node, count: i64) -> Vec<Hash> {
    let claims: Vec<Assertion> = (0..count)
        .map(|i| {
            let mut a = Assertion::new(
                format!("topic/{i}"),
                "claim",
                ObjectValue::Integer(i),
                0.5,
                NOW_MS,
            );
            a.sign(&key(9));
            a
        })
        .collect();
    let receipts: Vec<_> = node
        .submit_many(claims)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    node.wait_indexed(receipts.last().unwrap().offset, deadline())
        .await
        .unwrap();
    receipts.iter().map(|r| r.hash).collect()
}

/// The expected live votes: the greatest by (timestamp, hash) per (assertion, voter).
fn live_votes(votes: &[Vote]) -> HashMap<(Hash, [u8; 32]), Vote> {
    let mut live: HashMap<(Hash, [u8; 32]), Vote> = HashMap::new();
    for vote in votes {
        let slot = live
            .entry((vote.assertion, *vote.voter.as_bytes()))
            .or_insert_with(|| vote.clone());
        if (vote.timestamp_ms, vote.content_hash()) > (slot.timestamp_ms, slot.content_hash()) {
            *slot = vote.clone();
        }
    }
    live
}

fn recount<'a>(weights: impl Iterator<Item = &'a f32>) -> VoteTotals {
    let mut totals = VoteTotals::default();
    for &w in weights {
        totals.count += 1;
        totals.weight.add(w);
    }
    totals
}

/// Checks node totals against the expected live votes and against the stored votes.
fn check_totals(node: &Node, assertions: &[Hash], expected: &HashMap<(Hash, [u8; 32]), Vote>) {
    for hash in assertions {
        let stored = node.votes(hash, 10_000).unwrap();
        let totals = node.vote_totals(hash).unwrap();
        assert_eq!(
            totals,
            recount(stored.iter().map(|s| &s.vote.weight)),
            "stored recount of {hash}"
        );
        let mine: Vec<&Vote> = expected
            .iter()
            .filter(|((a, _), _)| a == hash)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            totals,
            recount(mine.iter().map(|v| &v.weight)),
            "expected recount of {hash}"
        );
        let mut stored_hashes: Vec<Hash> = stored.iter().map(|s| s.hash).collect();
        let mut expected_hashes: Vec<Hash> = mine.iter().map(|v| v.content_hash()).collect();
        stored_hashes.sort();
        expected_hashes.sort();
        assert_eq!(stored_hashes, expected_hashes, "live votes of {hash}");
    }
}

#[test]
fn thousand_voters_on_ten_assertions_total_exactly() {
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(Config::default(), dir.path()).unwrap();
        let targets = assertions(&node, 10).await;
        let mut all = Vec::new();
        let tasks: Vec<_> = (0..1000u32)
            .map(|v| {
                let votes: Vec<Vote> = targets
                    .iter()
                    .enumerate()
                    .map(|(i, h)| Vote::sign(&voter(v), *h, 0.1 + (v % 97) as f32 * 0.37 + i as f32, NOW_MS))
                    .collect();
                all.extend(votes.clone());
                let node = node.clone();
                actix::spawn(async move {
                    let mut last = 0;
                    for vote in votes {
                        last = last.max(node.cast_vote(vote).await.unwrap().offset);
                    }
                    last
                })
            })
            .collect();
        let mut last = 0;
        for task in tasks {
            last = last.max(task.await.unwrap());
        }
        assert_eq!(all.len(), 10_000);
        node.wait_indexed(last, deadline()).await.unwrap();
        let expected = live_votes(&all);
        check_totals(&node, &targets, &expected);
        for hash in &targets {
            assert_eq!(node.vote_totals(hash).unwrap().count, 1000);
        }
        node.shutdown().await.unwrap();
    });
}

/// A small seeded generator for shuffles.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

#[test]
fn resent_shuffled_and_changed_votes_count_once_with_the_latest_weight() {
    let seed = std::env::var("STEMEDB_VOTES_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    println!("seed={seed}");
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async move {
        let node = Node::start(Config::default(), dir.path()).unwrap();
        let targets = assertions(&node, 3).await;
        let mut votes = Vec::new();
        for v in 0..200u32 {
            for (i, h) in targets.iter().enumerate() {
                let base = NOW_MS + 1000;
                votes.push(Vote::sign(&voter(v), *h, 1.0 + i as f32, base));
                if v % 2 == 0 {
                    // A change: newer, with another weight.
                    votes.push(Vote::sign(&voter(v), *h, 2.5 + v as f32 / 7.0, base + 10));
                }
                if v % 3 == 0 {
                    // An older vote, which must change nothing.
                    votes.push(Vote::sign(&voter(v), *h, 99.0, base - 10));
                }
                if v % 5 == 0 {
                    // Same timestamp, different weight: the greater hash wins, in any order.
                    votes.push(Vote::sign(&voter(v), *h, 0.75, base));
                }
            }
        }
        let mut sends: Vec<Vote> = votes.iter().chain(&votes).chain(&votes).cloned().collect();
        shuffle(&mut sends, seed);
        let mut last = 0;
        for chunk in sends.chunks(97) {
            for result in node.cast_votes(chunk.to_vec()).await.unwrap() {
                last = last.max(result.unwrap().offset);
            }
        }
        node.wait_indexed(last, deadline()).await.unwrap();
        let expected = live_votes(&votes);
        assert_eq!(expected.len(), 600, "seed={seed}");
        check_totals(&node, &targets, &expected);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn bad_votes_are_refused_and_unknown_assertions_rejected() {
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(Config::default(), dir.path()).unwrap();
        let target = assertions(&node, 1).await[0];
        let end_before = node.durable_end().unwrap();
        let mut forged = Vote::sign(&voter(1), target, 1.0, NOW_MS);
        forged.weight = 2.0;
        let heavy = Vote::sign(&voter(2), target, 100.5, NOW_MS);
        let zero = Vote::sign(&voter(3), target, 0.0, NOW_MS);
        let nan = Vote::sign(&voter(4), target, f32::NAN, NOW_MS);
        let results = node.cast_votes(vec![forged, heavy, zero, nan]).await.unwrap();
        assert!(matches!(
            results[0],
            Err(SubmitError::Invalid(ValidationError::BadSignature { .. }))
        ));
        for result in &results[1..] {
            assert!(matches!(result, Err(SubmitError::Invalid(_))), "{result:?}");
        }
        assert_eq!(
            node.durable_end().unwrap(),
            end_before,
            "nothing refused reaches the journal"
        );

        let nowhere = Hash::of(b"no such assertion");
        let stray = node
            .cast_vote(Vote::sign(&voter(5), nowhere, 1.0, NOW_MS))
            .await
            .unwrap();
        let good = node
            .cast_vote(Vote::sign(&voter(5), target, 1.0, NOW_MS))
            .await
            .unwrap();
        node.wait_indexed(good.offset, deadline()).await.unwrap();
        let rejections = node.rejections(stray.offset, 10).unwrap();
        assert_eq!(
            rejections[0].reason,
            RejectReason::UnknownAssertion { assertion: nowhere }
        );
        assert_eq!(node.vote_totals(&nowhere).unwrap(), VoteTotals::default());
        assert_eq!(node.vote_totals(&target).unwrap().count, 1);
        node.shutdown().await.unwrap();
    });
}

#[test]
fn trust_comes_from_config_until_a_trust_change_applies() {
    let dir = TempDir::new().unwrap();
    let rated = voter(1).agent_id();
    let unrated = voter(2).agent_id();
    let mut config = Config::default();
    config.votes.trust.insert(rated.to_string(), 0.25);
    config.votes.trust_default = 0.5;
    actix::System::new().block_on(async {
        let node = Node::start(config, dir.path()).unwrap();
        assert_eq!(node.trust(&rated).unwrap(), 0.25);
        assert_eq!(node.trust(&unrated).unwrap(), 0.5);
        node.shutdown().await.unwrap();
    });
    let mut bad = Config::default();
    bad.votes.trust.insert("not-an-agent".into(), 1.0);
    assert!(bad.validate().is_err());
}

#[test]
fn every_order_of_competing_votes_counts_the_same() {
    use stemedb::storage::state::{IngestRecord, State, StateConfig};
    let target_assertion = {
        let mut a = Assertion::new("t", "p", ObjectValue::Bool(true), 1.0, NOW_MS);
        a.sign(&key(9));
        a
    };
    let target = target_assertion.content_hash();
    // Two voters, three votes each: newer, older, and equal-timestamp rivals.
    let votes: Vec<Vote> = [
        (1, 1.0, 10),
        (1, 2.0, 20),
        (1, 3.0, 20),
        (2, 4.0, 5),
        (2, 0.5, 30),
        (2, 4.0, 5),
    ]
    .iter()
    .map(|&(v, w, t)| Vote::sign(&voter(v), target, w, NOW_MS + t))
    .collect();
    let payload = |record: stemedb::protocol::LogRecord| record.encode();
    let mut outcomes = std::collections::HashSet::new();
    let mut order: Vec<usize> = (0..votes.len()).collect();
    let mut permutations = 0;
    let dir = TempDir::new().unwrap();
    let state = State::open(dir.path(), StateConfig::default()).unwrap();
    let assertion_record = IngestRecord {
        offset: 0,
        next: 1,
        payload: payload(stemedb::protocol::LogRecord::Assertion(target_assertion.clone())).into(),
    };
    state.apply(&[assertion_record]).unwrap();
    // Heap's algorithm: every permutation of the six votes, each tallied against the same state.
    let mut c = vec![0usize; order.len()];
    let mut i = 0;
    let mut visit = |order: &[usize]| {
        let routed: Vec<_> = order
            .iter()
            .map(|&k| stemedb::storage::state::RoutedVote {
                offset: 1 + k as u64,
                hash: votes[k].content_hash(),
                vote: votes[k].clone(),
            })
            .collect();
        let tally = state.tally_for_tests(&routed).unwrap();
        let mut rows: Vec<Hash> = tally.rows.iter().map(|r| r.hash).collect();
        rows.sort();
        let totals = tally.totals[0].1;
        outcomes.insert((rows, totals.count, totals.weight.to_bytes()));
    };
    visit(&order);
    permutations += 1;
    while i < order.len() {
        if c[i] < i {
            if i % 2 == 0 {
                order.swap(0, i)
            } else {
                order.swap(c[i], i)
            }
            visit(&order);
            permutations += 1;
            c[i] += 1;
            i = 0;
        } else {
            c[i] = 0;
            i += 1;
        }
    }
    assert_eq!(permutations, 720);
    assert_eq!(
        outcomes.len(),
        1,
        "every order must give the same live votes and totals"
    );
    let (rows, count, weight) = outcomes.into_iter().next().unwrap();
    let expected = live_votes(&votes);
    let mut expected_rows: Vec<Hash> = expected.values().map(Vote::content_hash).collect();
    expected_rows.sort();
    assert_eq!(rows, expected_rows);
    assert_eq!(count, 2);
    let mut sum = ExactWeight::ZERO;
    expected.values().for_each(|v| sum.add(v.weight));
    assert_eq!(weight, sum.to_bytes());
}

#[test]
fn votes_of_one_assertion_always_reach_one_shard() {
    use stemedb::actors::shard_of;
    let mut per_shard = [0usize; 4];
    for i in 0..4000u32 {
        let hash = Hash::of(&i.to_le_bytes());
        let shard = shard_of(&hash, 4);
        assert_eq!(shard, shard_of(&hash, 4));
        per_shard[shard] += 1;
    }
    // blake3 spreads assertions evenly: every shard gets its share, give or take.
    assert!(
        per_shard.iter().all(|&n| (800..1200).contains(&n)),
        "{per_shard:?}"
    );
    assert_eq!(shard_of(&Hash::of(b"x"), 1), 0);
}
