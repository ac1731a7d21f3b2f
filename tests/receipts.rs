//! Verifiable resolutions (issue 25): a scripted history of competing assertions, a
//! supersession, votes that replace votes, and trust changes; after every record, the answer
//! of each built-in lens is recorded. Then, for every offset of that history, a receipt of the
//! answer as of that offset verifies offline (with only the node's verifier key) and its
//! verified winner and scores equal those recorded then. And every tamper is caught with its
//! named reason: a flipped byte in a record, a proof, a checkpoint or anywhere in the receipt;
//! a vote or a candidate left out; a trust change hidden; a voter's chain dropped; the lens run
//! on other parameters; a receipt checked with another node's key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::{NOW_MS, deadline, key};
use stemedb::Config;
use stemedb::lens::{AsOf, Candidate, Evidence, Lens, Query, ResolveError, Score};
use stemedb::node::Node;
use stemedb::protocol::{Assertion, Hash, LogRecord, ObjectValue, TrustChange, Vote};
use stemedb::receipt::{Receipt, ReceiptError, verify};
use tempfile::TempDir;

const SUBJECT: &str = "city:paris";
const PREDICATE: &str = "population";
const LENSES: [&str; 3] = ["consensus", "recency", "confidence"];
const ADMIN: u8 = 90;

fn config() -> Config {
    let mut config = Config::default();
    config.votes.admins = vec![key(ADMIN).agent_id().to_string()];
    // One configured factor: the receipt must carry it for the replay to agree.
    config.votes.trust.insert(key(23).agent_id().to_string(), 0.25);
    config
}

fn claim(author: u8, value: i64, at: u64, confidence: f32, parent: Option<Hash>) -> Assertion {
    let mut a = Assertion::new(
        SUBJECT,
        PREDICATE,
        ObjectValue::Integer(value),
        confidence,
        NOW_MS + at,
    );
    a.parent = parent;
    a.sign(&key(author));
    a
}

/// One step of the script.
enum Step {
    Claim(u8, i64, u64, f32, Option<usize>),
    Vote(u8, usize, f32, u64),
    Trust(u8, f32, u64),
    Noise(u64),
}

fn script() -> Vec<Step> {
    use Step::*;
    vec![
        Claim(1, 2_100_000, 1, 0.6, None),
        Vote(20, 0, 2.0, 10),
        Claim(2, 2_150_000, 2, 0.9, None),
        Vote(21, 1, 1.0, 11),
        Vote(22, 1, 1.5, 12),
        Noise(1),
        Trust(21, 0.1, 13),
        Claim(3, 2_050_000, 3, 0.3, None),
        Vote(23, 2, 9.0, 14),
        Vote(20, 1, 3.0, 15),
        Vote(20, 1, 0.5, 5), // older than 20's live vote on 1: ignored, never counts
        Claim(1, 2_110_000, 4, 0.7, Some(0)), // author 1 supersedes its first claim
        Vote(24, 3, 4.0, 16),
        Trust(22, 3.0, 17),
        Noise(2),
        Trust(21, 2.0, 18),
        Vote(21, 1, 2.5, 19), // replaces 21's vote
        Trust(22, 0.5, 9),    // older than 22's applied change: ignored
        Vote(25, 2, 1.0, 20),
    ]
}

/// A lens's answer: the winner, and the (hash, score) ranking.
type Answer = (Option<Hash>, Vec<(Hash, f64)>);

struct Recorded {
    offset: u64,
    /// Per lens, as the node answered right after.
    answers: Vec<Answer>,
}

async fn run_script(node: &Node) -> Vec<Recorded> {
    let mut claims: Vec<Hash> = Vec::new();
    let mut recorded = Vec::new();
    for step in script() {
        let receipt = match step {
            Step::Claim(author, value, at, confidence, parent) => {
                let a = claim(author, value, at, confidence, parent.map(|i| claims[i]));
                let r = node.submit(a).await.unwrap();
                claims.push(r.hash);
                r
            }
            Step::Vote(voter, on, weight, at) => node
                .cast_vote(Vote::sign(&key(voter), claims[on], weight, NOW_MS + at))
                .await
                .unwrap(),
            Step::Trust(agent, factor, at) => node
                .submit_trust(TrustChange::sign(
                    &key(ADMIN),
                    key(agent).agent_id(),
                    factor,
                    NOW_MS + at,
                ))
                .await
                .unwrap(),
            Step::Noise(i) => {
                let mut a = Assertion::new(
                    "city:lyon",
                    PREDICATE,
                    ObjectValue::Integer(i as i64),
                    0.5,
                    NOW_MS + i,
                );
                a.sign(&key(5));
                node.submit(a).await.unwrap()
            }
        };
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        let mut answers = Vec::new();
        for lens in LENSES {
            let r = node.resolve(Query::new(SUBJECT, PREDICATE, lens)).await.unwrap();
            answers.push((
                r.winner,
                r.ranked
                    .iter()
                    .map(|s| (s.candidate.hash, s.score.value))
                    .collect(),
            ));
        }
        recorded.push(Recorded {
            offset: receipt.offset,
            answers,
        });
    }
    recorded
}

fn run<F: std::future::Future<Output = ()>>(f: impl FnOnce() -> F) {
    actix::System::new().block_on(f());
}

#[test]
fn every_past_answer_of_a_scripted_history_is_proven_and_every_tamper_is_named() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().to_owned();
    run(|| async move {
        let node = Node::start(config(), &path).unwrap();
        let recorded = run_script(&node).await;
        let verifier = node.checkpoint_verifier();
        // As-of receipts: each offset's answer, proven against a past checkpoint.
        for (step, at) in recorded.iter().enumerate() {
            for (l, lens) in LENSES.iter().enumerate() {
                let mut query = Query::new(SUBJECT, PREDICATE, *lens);
                query.as_of = Some(AsOf::Offset(at.offset));
                let (resolution, receipt) = node.resolve_verifiable(query).await.unwrap();
                let verified =
                    verify(&receipt, &verifier).unwrap_or_else(|e| panic!("step {step} {lens}: {e}"));
                let (winner, ranked) = &at.answers[l];
                assert_eq!(
                    verified.winner, *winner,
                    "step {step} {lens}: the verified winner"
                );
                assert_eq!(
                    &verified.ranked, ranked,
                    "step {step} {lens}: the verified scores"
                );
                assert_eq!(resolution.winner, *winner, "step {step} {lens}");
                let last = step + 1 == recorded.len();
                assert_eq!(
                    receipt.past_checkpoint.is_some(),
                    !last,
                    "step {step}: a past answer has its past checkpoint"
                );
            }
        }
        // The current answer, and every tamper.
        let (_, receipt) = node
            .resolve_verifiable(Query::new(SUBJECT, PREDICATE, "consensus"))
            .await
            .unwrap();
        let verified = verify(&receipt, &verifier).unwrap();
        assert_eq!(verified.winner, recorded.last().unwrap().answers[0].0);
        assert!(receipt.past_checkpoint.is_none() && receipt.consistency.is_empty());
        tamper(&receipt, &verifier);
        // Another node's key: the checkpoint is not its.
        let other = TempDir::new().unwrap();
        let stranger = Node::start(config(), other.path()).unwrap();
        let refused = verify(&receipt, &stranger.checkpoint_verifier()).unwrap_err();
        assert!(
            matches!(refused, ReceiptError::Checkpoint { which: "current", .. }),
            "{refused}"
        );
        stranger.shutdown().await.unwrap();
        // An unknown lens is refused as such; a host's own lens, which no verifier can replay,
        // is refused as unprovable.
        let refused = node
            .resolve_verifiable(Query::new(SUBJECT, PREDICATE, "nope"))
            .await
            .unwrap_err();
        assert!(matches!(refused, ResolveError::UnknownLens { .. }), "{refused}");
        node.register_lens(std::sync::Arc::new(Oldest)).unwrap();
        let refused = node
            .resolve_verifiable(Query::new(SUBJECT, PREDICATE, "oldest"))
            .await
            .unwrap_err();
        assert!(matches!(refused, ResolveError::Unprovable(_)), "{refused}");
        node.shutdown().await.unwrap();
    });
}

/// A host's own lens: the earliest timestamp wins.
struct Oldest;

impl Lens for Oldest {
    fn name(&self) -> &str {
        "oldest"
    }

    fn score(&self, candidates: &[Candidate], _: &Evidence<'_>) -> Result<Vec<Score>, ResolveError> {
        Ok(candidates
            .iter()
            .map(|c| Score {
                value: -(c.timestamp_ms as f64),
                reason: "older is better".to_owned(),
            })
            .collect())
    }
}

fn decode(receipt: &Receipt, i: usize) -> LogRecord {
    LogRecord::decode(&receipt.records[i].bytes).unwrap()
}

fn tamper(receipt: &Receipt, verifier: &stemedb::protocol::note::NoteVerifier) {
    let refused = |r: &Receipt| verify(r, verifier).unwrap_err();
    // One byte flipped in a record: its signature (or decoding) fails, by leaf.
    for i in 0..receipt.records.len() {
        let mut r = receipt.clone();
        let len = r.records[i].bytes.len();
        r.records[i].bytes[len / 2] ^= 0x01;
        let e = refused(&r);
        assert!(
            matches!(e, ReceiptError::Record { index, .. } if index == receipt.records[i].index),
            "record {i}: {e}"
        );
    }
    // ...in the inclusion proof.
    for i in 0..receipt.inclusion.len() {
        let mut r = receipt.clone();
        r.inclusion[i][7] ^= 0x80;
        assert!(
            matches!(refused(&r), ReceiptError::Inclusion { .. }),
            "inclusion hash {i}"
        );
    }
    // ...in a map proof.
    let mut r = receipt.clone();
    r.pair.map.siblings[0][0] ^= 1;
    assert!(matches!(refused(&r), ReceiptError::Chain { ref chain, .. } if chain == "pair"));
    // ...in the checkpoint.
    let mut r = receipt.clone();
    r.checkpoint = r
        .checkpoint
        .replacen(&receipt.size.to_string(), &(receipt.size + 1).to_string(), 1);
    assert!(matches!(refused(&r), ReceiptError::Checkpoint { .. }));
    // ...anywhere in the receipt's JSON: it no longer parses, or no longer verifies.
    let json = serde_json::to_vec(receipt).unwrap();
    let mut passed = Vec::new();
    for at in (0..json.len()).step_by(7) {
        let mut bytes = json.clone();
        bytes[at] ^= 0x01;
        let Ok(r) = serde_json::from_slice::<Receipt>(&bytes) else {
            continue;
        };
        if r != *receipt && verify(&r, verifier).is_ok() {
            passed.push(at);
        }
    }
    let context: Vec<String> = passed
        .iter()
        .map(|&at| {
            String::from_utf8_lossy(&json[at.saturating_sub(30)..(at + 10).min(json.len())]).into_owned()
        })
        .collect();
    assert!(
        passed.is_empty(),
        "flips at JSON bytes {passed:?} passed: {context:?}"
    );
    // A vote left out: the pair's chain no longer matches the map.
    let vote = (0..receipt.records.len())
        .find(|&i| matches!(decode(receipt, i), LogRecord::Vote(_)))
        .unwrap();
    let mut r = receipt.clone();
    r.records.remove(vote);
    let e = refused(&r);
    assert!(
        matches!(e, ReceiptError::Chain { ref chain, .. } if chain == "pair"),
        "vote left out: {e}"
    );
    // A candidate left out (the newest, so no vote names it): the same.
    let candidate = (0..receipt.records.len())
        .rev()
        .find(|&i| matches!(decode(receipt, i), LogRecord::Assertion(_)))
        .unwrap();
    let named = receipt.records.iter().enumerate().any(|(i, _)| {
        matches!(decode(receipt, i), LogRecord::Vote(v) if LogRecord::decode(&receipt.records[candidate].bytes).unwrap().content_hash() == v.assertion)
    });
    let mut r = receipt.clone();
    r.records.remove(candidate);
    let e = refused(&r);
    let expected = match named {
        true => matches!(e, ReceiptError::Record { .. }),
        false => matches!(e, ReceiptError::Chain { ref chain, .. } if chain == "pair"),
    };
    assert!(expected, "candidate left out: {e}");
    // A trust change hidden: the voter's chain no longer matches the map.
    let trust = (0..receipt.records.len())
        .find(|&i| matches!(decode(receipt, i), LogRecord::Trust(_)))
        .unwrap();
    let mut r = receipt.clone();
    r.records.remove(trust);
    let e = refused(&r);
    assert!(
        matches!(e, ReceiptError::Chain { ref chain, .. } if chain.starts_with("agent")),
        "trust hidden: {e}"
    );
    // A voter's chain dropped.
    let mut r = receipt.clone();
    r.agents.remove(0);
    let e = refused(&r);
    assert!(
        matches!(e, ReceiptError::MissingAgent { .. } | ReceiptError::Record { .. }),
        "chain dropped: {e}"
    );
    // The lens on other parameters: another default trust, another configured factor, another
    // lens, history on.
    let mut r = receipt.clone();
    r.trust.configured.clear();
    assert!(
        matches!(refused(&r), ReceiptError::Answer(_)),
        "configured trust dropped"
    );
    let mut r = receipt.clone();
    r.query.lens = "recency".to_owned();
    assert!(matches!(refused(&r), ReceiptError::Answer(_)), "another lens");
    let mut r = receipt.clone();
    r.query.history = true;
    assert!(matches!(refused(&r), ReceiptError::Answer(_)), "history on");
    // Another answer for the same evidence.
    let mut r = receipt.clone();
    r.result.ranked[0].score += 1.0;
    assert!(matches!(refused(&r), ReceiptError::Answer(_)), "a score changed");
    let mut r = receipt.clone();
    r.result.ranked.swap(0, 1);
    r.result.winner = Some(r.result.ranked[0].hash);
    assert!(
        matches!(refused(&r), ReceiptError::Answer(_)),
        "the winner changed"
    );
}
