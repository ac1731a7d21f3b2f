//! Lenses on a real node: the built-ins' semantics on hand-built disagreements, ties included;
//! a host's own lens registered and used; unknown and duplicate names refused; troll
//! resistance (one voter's many votes count once; 500 voters with trust 0.01 do not outvote 5
//! with trust 1.0); lifecycle and supersession filters, and history.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Claim, NOW_MS, key, with_node};
use stemedb::Config;
use stemedb::lens::{Candidate, Evidence, Lens, Query, ResolveError, Score};
use stemedb::node::Node;
use stemedb::protocol::{AgentKey, Assertion, Hash, Lifecycle, ObjectValue, Vote};

const WAIT: Duration = Duration::from_secs(60);

fn claim(value: i64, confidence: f32, ts: u64, signer: u8) -> Assertion {
    let claim = Claim::new("city/paris", "mayor", ObjectValue::Integer(value));
    claim.confidence(confidence).at(ts).signed(&[signer])
}

async fn submit(node: &Node, assertions: &[Assertion]) -> Vec<Hash> {
    let mut hashes = Vec::new();
    let mut last = 0;
    for a in assertions {
        let receipt = node.submit(a.clone()).await.unwrap();
        hashes.push(receipt.hash);
        last = receipt.offset;
    }
    node.wait_indexed(last, Instant::now() + WAIT).await.unwrap();
    hashes
}

async fn vote_all(node: &Node, votes: Vec<Vote>) {
    let mut last = 0;
    for chunk in votes.chunks(1000) {
        for result in node.cast_votes(chunk.to_vec()).await.unwrap() {
            last = last.max(result.unwrap().offset);
        }
    }
    node.wait_indexed(last, Instant::now() + WAIT).await.unwrap();
}

fn query(lens: &str) -> Query {
    Query::new("city/paris", "mayor", lens)
}

#[test]
fn recency_and_confidence_rank_with_ties_broken_by_timestamp_then_hash() {
    with_node(Config::default(), |node| async move {
        // a: old, confident; b: newest, unsure; c and d: tied on confidence and timestamp.
        let claims = [
            claim(1, 0.9, 10, 1),
            claim(2, 0.2, 30, 2),
            claim(3, 0.5, 20, 3),
            claim(4, 0.5, 20, 4),
        ];
        let h = submit(&node, &claims).await;
        let recency = node.resolve(query("recency")).await.unwrap();
        assert_eq!(recency.winner, Some(h[1]));
        let (hi, lo) = if h[2] > h[3] { (h[2], h[3]) } else { (h[3], h[2]) };
        let order: Vec<Hash> = recency.ranked.iter().map(|s| s.candidate.hash).collect();
        assert_eq!(
            order,
            vec![h[1], hi, lo, h[0]],
            "equal timestamps: the greater hash first"
        );
        assert_eq!(
            recency.ranked[0].score.reason,
            format!("asserted at {} ms", NOW_MS + 30)
        );
        let confidence = node.resolve(query("confidence")).await.unwrap();
        let order: Vec<Hash> = confidence.ranked.iter().map(|s| s.candidate.hash).collect();
        assert_eq!(order, vec![h[0], hi, lo, h[1]]);
        assert_eq!(confidence.lens, "confidence");
        assert_eq!(confidence.offset, node.ingest_status().cursor);
        // A tie on confidence alone goes to the later timestamp.
        let later = claim(5, 0.9, 40, 5);
        let h5 = submit(&node, &[later]).await[0];
        assert_eq!(node.resolve(query("confidence")).await.unwrap().winner, Some(h5));
        node.shutdown().await.unwrap();
    });
}

#[test]
fn consensus_weighs_live_votes_by_trust_and_counts_each_voter_once() {
    let mut config = Config::default();
    config.votes.trust_default = 1.0;
    with_node(config, |node| async move {
        let h = submit(&node, &[claim(1, 0.5, 10, 1), claim(2, 0.5, 20, 2)]).await;
        // No votes: a tie at 0, so the later assertion wins.
        let empty = node.resolve(query("consensus")).await.unwrap();
        assert_eq!(empty.winner, Some(h[1]));
        assert_eq!(empty.ranked[0].score.value, 0.0);
        // One voter votes for h[0] forty times (each replaces the last; the newest has weight
        // 2), two voters give h[1] weight 1.5 each.
        let troll = key(40);
        let mut votes: Vec<Vote> = (0..40)
            .map(|i| Vote::sign(&troll, h[0], 100.0, NOW_MS + 100 + i))
            .collect();
        votes.push(Vote::sign(&troll, h[0], 2.0, NOW_MS + 200));
        votes.push(Vote::sign(&key(41), h[1], 1.5, NOW_MS + 100));
        votes.push(Vote::sign(&key(42), h[1], 1.5, NOW_MS + 100));
        vote_all(&node, votes).await;
        let resolution = node.resolve(query("consensus")).await.unwrap();
        assert_eq!(resolution.winner, Some(h[1]));
        let scores: Vec<f64> = resolution.ranked.iter().map(|s| s.score.value).collect();
        assert_eq!(scores, vec![3.0, 2.0], "one live vote per voter");
        assert!(
            resolution.ranked[1].score.reason.starts_with("1 live vote(s)"),
            "{:?}",
            resolution.ranked[1].score
        );
        node.shutdown().await.unwrap();
    });
}

#[test]
fn five_trusted_voters_are_not_outvoted_by_five_hundred_distrusted_ones() {
    let trusted: Vec<AgentKey> = (0..5u8).map(|i| key(100 + i)).collect();
    let trolls: Vec<AgentKey> = (0..500u32)
        .map(|i| {
            let mut secret = [7u8; 32];
            secret[..4].copy_from_slice(&i.to_le_bytes());
            AgentKey::from_secret_bytes(&secret)
        })
        .collect();
    let mut config = Config::default();
    config.votes.trust_default = 0.01;
    for k in &trusted {
        config.votes.trust.insert(k.agent_id().to_string(), 1.0);
    }
    with_node(config, |node| async move {
        let h = submit(&node, &[claim(1, 0.5, 10, 1), claim(2, 0.5, 20, 2)]).await;
        // The trolls back h[0], each with the most weight a vote may carry, and vote ten times
        // over; the trusted back h[1] with weight 1 each.
        let mut votes: Vec<Vote> = Vec::new();
        for round in 0..10 {
            votes.extend(
                trolls
                    .iter()
                    .map(|k| Vote::sign(k, h[0], 1.0, NOW_MS + 100 + round)),
            );
        }
        votes.extend(trusted.iter().map(|k| Vote::sign(k, h[1], 1.0, NOW_MS + 100)));
        vote_all(&node, votes).await;
        // By count, the trolls would win a hundred to one.
        assert_eq!(node.vote_totals(&h[0]).unwrap().count, 500);
        assert_eq!(node.vote_totals(&h[1]).unwrap().count, 5);
        let resolution = node.resolve(query("consensus")).await.unwrap();
        assert_eq!(resolution.winner, Some(h[1]), "{:#?}", resolution.ranked);
        let (trusted_score, troll_score) =
            (resolution.ranked[0].score.value, resolution.ranked[1].score.value);
        assert!((trusted_score - 5.0).abs() < 1e-9, "{trusted_score}");
        // 500 x 1.0 x 0.01: at most a tie in exact arithmetic, never more.
        assert!(
            troll_score <= trusted_score && (troll_score - 5.0).abs() < 1e-3,
            "{troll_score}"
        );
        node.shutdown().await.unwrap();
    });
}

/// The host's own lens: fewer signers win (a contrived rule, to see it applied).
struct FewestSigners;

impl Lens for FewestSigners {
    fn name(&self) -> &str {
        "fewest-signers"
    }

    fn score(&self, candidates: &[Candidate], evidence: &Evidence<'_>) -> Result<Vec<Score>, ResolveError> {
        assert!(evidence.offset() > 0);
        Ok(candidates
            .iter()
            .map(|c| Score {
                value: -(c.signers.len() as f64),
                reason: format!("{} signer(s)", c.signers.len()),
            })
            .collect())
    }
}

/// A broken lens: one score too few.
struct Broken;

impl Lens for Broken {
    fn name(&self) -> &str {
        "broken"
    }

    fn score(&self, _candidates: &[Candidate], _evidence: &Evidence<'_>) -> Result<Vec<Score>, ResolveError> {
        Ok(Vec::new())
    }
}

#[test]
fn a_host_lens_is_registered_and_used_and_names_are_checked() {
    with_node(Config::default(), |node| async move {
        let mut cosigned = claim(1, 0.9, 30, 1);
        cosigned.sign(&key(2));
        let h = submit(&node, &[cosigned, claim(2, 0.1, 10, 3)]).await;
        node.register_lens(Arc::new(FewestSigners)).unwrap();
        let resolution = node.resolve(query("fewest-signers")).await.unwrap();
        assert_eq!(resolution.winner, Some(h[1]));
        assert_eq!(resolution.ranked[1].score.reason, "2 signer(s)");
        assert!(matches!(
            node.register_lens(Arc::new(FewestSigners)),
            Err(ResolveError::LensExists { .. })
        ));
        assert!(matches!(
            node.resolve(query("no-such-lens")).await,
            Err(ResolveError::UnknownLens { .. })
        ));
        node.register_lens(Arc::new(Broken)).unwrap();
        assert!(matches!(
            node.resolve(query("broken")).await,
            Err(ResolveError::Lens { .. })
        ));
        assert_eq!(
            node.lenses(),
            vec![
                "broken",
                "confidence",
                "consensus",
                "fewest-signers",
                "learned",
                "recency"
            ]
        );
        node.shutdown().await.unwrap();
        assert!(matches!(
            node.resolve(query("recency")).await,
            Err(ResolveError::Closed)
        ));
    });
}

#[test]
fn lifecycle_and_supersession_filter_candidates_and_history_brings_back_the_chain() {
    with_node(Config::default(), |node| async move {
        let base = claim(1, 0.5, 10, 1);
        let mut successor = claim(2, 0.5, 20, 1);
        successor.parent = Some(base.content_hash());
        successor.signatures.clear();
        successor.sign(&key(1));
        let mut deprecated = claim(3, 0.5, 30, 2);
        deprecated.lifecycle = Lifecycle::Deprecated;
        deprecated.signatures.clear();
        deprecated.sign(&key(2));
        let mut proposed = claim(4, 0.5, 5, 3);
        proposed.lifecycle = Lifecycle::Proposed;
        proposed.signatures.clear();
        proposed.sign(&key(3));
        let h = submit(&node, &[base, successor, deprecated, proposed]).await;
        let heads = node.resolve(query("recency")).await.unwrap();
        let mut found: Vec<Hash> = heads.ranked.iter().map(|s| s.candidate.hash).collect();
        found.sort();
        let mut expected = vec![h[1], h[3]];
        expected.sort();
        assert_eq!(found, expected, "the superseded and the deprecated are left out");
        assert_eq!(heads.winner, Some(h[1]));
        let mut all = query("recency");
        all.lifecycles = Lifecycle::ALL.to_vec();
        assert_eq!(
            node.resolve(all.clone()).await.unwrap().winner,
            Some(h[2]),
            "deprecated counts when asked"
        );
        all.history = true;
        let history = node.resolve(all).await.unwrap();
        assert_eq!(history.ranked.len(), 4, "history brings back the superseded base");
        assert!(history.ranked.iter().any(|s| s.candidate.hash == h[0]));
        node.shutdown().await.unwrap();
    });
}

#[test]
fn queries_during_ingestion_and_voting_see_journal_prefixes_and_winners_among_their_candidates() {
    with_node(Config::default(), |node| async move {
        let writer = {
            let node = node.clone();
            actix::spawn(async move {
                // (hash, offset) of every claim, in order.
                let mut acked: Vec<(Hash, u64)> = Vec::new();
                for round in 0..20u64 {
                    // Each round: three claims about the pair, and votes on the latest ones.
                    let claims: Vec<Assertion> = (0..3)
                        .map(|i| claim((round * 3 + i) as i64, 0.5, 1000 + round * 3 + i, 1 + (i as u8)))
                        .collect();
                    for result in node.submit_many(claims).await.unwrap() {
                        let receipt = result.unwrap();
                        acked.push((receipt.hash, receipt.offset));
                    }
                    let votes: Vec<Vote> = acked
                        .iter()
                        .rev()
                        .take(4)
                        .enumerate()
                        .map(|(i, (h, _))| {
                            Vote::sign(&key(50 + i as u8), *h, 1.0 + round as f32, NOW_MS + 5000 + round)
                        })
                        .collect();
                    for result in node.cast_votes(votes).await.unwrap() {
                        result.unwrap();
                    }
                }
                acked
            })
        };
        let lenses = ["recency", "confidence", "consensus"];
        let mut seen: Vec<(u64, Vec<Hash>)> = Vec::new();
        for queries in 0..100 {
            let lens = lenses[queries % lenses.len()];
            let resolution = node.resolve(query(lens)).await.unwrap();
            let candidates: Vec<Hash> = resolution.ranked.iter().map(|s| s.candidate.hash).collect();
            if let Some(winner) = resolution.winner {
                assert!(
                    candidates.contains(&winner),
                    "{lens}: winner outside its candidates"
                );
                assert_eq!(candidates[0], winner);
            }
            for scored in &resolution.ranked {
                let totals = scored.candidate.votes;
                assert!(totals.count <= 4, "{totals:?}");
            }
            seen.push((resolution.offset, candidates));
        }
        let acked = writer.await.unwrap();
        // Each resolution saw exactly the claims journaled below the offset it reflects: a
        // prefix of the journal, never part of an ingest batch.
        for (offset, candidates) in &seen {
            let mut expected: Vec<Hash> = acked
                .iter()
                .filter(|(_, at)| at < offset)
                .map(|(h, _)| *h)
                .collect();
            let mut found = candidates.clone();
            expected.sort();
            found.sort();
            assert_eq!(found, expected, "resolution at offset {offset}");
        }
        let last = node.durable_end().unwrap();
        node.wait_caught_up(Instant::now() + WAIT).await.unwrap();
        let final_resolution = node.resolve(query("recency")).await.unwrap();
        assert_eq!(final_resolution.ranked.len(), acked.len());
        assert!(final_resolution.offset >= last);
        node.shutdown().await.unwrap();
    });
}
