//! Resolution as of a past point in the log.
//! - A property test: over random histories of assertions, successors, votes (some replacing,
//!   some older and ignored) and trust changes, applied in random batches, resolving as of
//!   offset X on the full state equals resolving now on a fresh state fed only the journal up
//!   to X, for every lens, heads and history.
//! - A scripted history on a real node: resolving as of each acknowledged offset reproduces the
//!   winner and scores that were current right after it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::time::{Duration, Instant};

use common::{Claim, NOW_MS, Rng, key, with_node};
use proptest::prelude::*;
use stemedb::Config;
use stemedb::lens::{AsOf, LensRegistry, Query, Resolution, TrustBook, resolve};
use stemedb::protocol::{Assertion, LogRecord, ObjectValue, TrustChange, Vote};
use stemedb::storage::state::{IngestRecord, State, StateConfig};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(60);
const LENSES: [&str; 4] = ["recency", "confidence", "consensus", "learned"];

/// A random history as journal records laid end to end from offset 0.
fn history(seed: u64, len: usize) -> Vec<IngestRecord> {
    let mut rng = Rng::new(seed);
    let mut claims: Vec<Assertion> = Vec::new();
    let mut offset = 0;
    let mut records = Vec::new();
    for step in 0..len as u64 {
        let ts = NOW_MS + step;
        let payload = match rng.below(10) {
            0..=3 => {
                let mut a = Assertion::new(
                    "s",
                    "p",
                    ObjectValue::Integer(step as i64),
                    rng.below(101) as f32 / 100.0,
                    ts,
                );
                a.sign(&key(1 + rng.below(2) as u8));
                claims.push(a.clone());
                LogRecord::Assertion(a).encode()
            }
            4 if !claims.is_empty() => {
                let parent = claims[rng.index(claims.len())].clone();
                let mut child = Assertion::new("s", "p", ObjectValue::Integer(-(step as i64)), 0.5, ts);
                child.parent = Some(parent.content_hash());
                let signer = parent.signatures[0].agent;
                child.sign(
                    &[key(1), key(2)]
                        .into_iter()
                        .find(|k| k.agent_id() == signer)
                        .unwrap(),
                );
                claims.push(child.clone());
                LogRecord::Assertion(child).encode()
            }
            5..=7 if !claims.is_empty() => {
                let target = claims[rng.index(claims.len())].content_hash();
                // Sometimes an older timestamp: ignored if the voter voted later already.
                let at = if rng.below(4) == 0 {
                    ts.saturating_sub(20)
                } else {
                    ts
                };
                let vote = Vote::sign(
                    &key(30 + rng.below(3) as u8),
                    target,
                    1.0 + rng.below(9) as f32,
                    at,
                );
                LogRecord::Vote(vote).encode()
            }
            _ => {
                let agent = key(30 + rng.below(3) as u8).agent_id();
                let at = if rng.below(4) == 0 {
                    ts.saturating_sub(20)
                } else {
                    ts
                };
                let change = TrustChange::sign(&key(60), agent, rng.below(5) as f32, at);
                LogRecord::Trust(change).encode()
            }
        };
        let next = offset + 64 + payload.len() as u64;
        records.push(IngestRecord {
            offset,
            next,
            payload: payload.into(),
        });
        offset = next;
    }
    records
}

/// Every lens's ranking, as (hash, score) pairs, heads and history.
fn rankings(state: &State, as_of: Option<AsOf>) -> Vec<Vec<(String, f64)>> {
    let registry = LensRegistry::with_builtins();
    let trust = TrustBook {
        default: 0.5,
        ..TrustBook::default()
    };
    let snapshot = state.snapshot().unwrap();
    let mut out = Vec::new();
    for lens in LENSES {
        for history in [false, true] {
            let mut query = Query::new("s", "p", lens);
            query.history = history;
            query.as_of = as_of;
            let resolution =
                resolve(&snapshot, &query, registry.get(lens).unwrap().as_ref(), &trust).unwrap();
            out.push(
                resolution
                    .ranked
                    .iter()
                    .map(|s| (s.candidate.hash.to_string(), s.score.value))
                    .collect(),
            );
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn as_of_x_equals_a_fresh_state_fed_the_journal_up_to_x(seed in any::<u64>(), len in 1usize..60) {
        let records = history(seed, len);
        let dir = TempDir::new().unwrap();
        let full = State::open(dir.path(), StateConfig::default()).unwrap();
        let mut rng = Rng::new(seed ^ 0xa5);
        let mut at = 0;
        while at < records.len() {
            let size = 1 + rng.index(8);
            full.apply(&records[at..(at + size).min(records.len())]).unwrap();
            at += size;
        }
        for _ in 0..6 {
            let x = rng.index(records.len());
            let fresh_dir = TempDir::new().unwrap();
            let fresh = State::open(fresh_dir.path(), StateConfig::default()).unwrap();
            fresh.apply(&records[..=x]).unwrap();
            let expected = rankings(&fresh, None);
            let found = rankings(&full, Some(AsOf::Offset(records[x].offset)));
            prop_assert_eq!(found, expected, "seed {}, as of record {} (offset {})", seed, x, records[x].offset);
        }
    }
}

#[test]
fn resolving_as_of_each_acknowledged_offset_reproduces_the_winner_of_that_moment() {
    let mut config = Config::default();
    config.votes.admins = vec![key(60).agent_id().to_string()];
    config.votes.trust_default = 1.0;
    with_node(config, |node| async move {
        let deadline = || Instant::now() + WAIT;
        let claim = |value: i64, confidence: f32, ts: u64, signer: u8| {
            let claim = Claim::new("city/paris", "mayor", ObjectValue::Integer(value));
            claim.confidence(confidence).at(ts).signed(&[signer])
        };
        let a = claim(1, 0.9, 10, 1);
        let b = claim(2, 0.4, 20, 2);
        let mut c = claim(3, 0.6, 30, 1);
        c.parent = Some(a.content_hash());
        c.signatures.clear();
        c.sign(&key(1));
        // Each step, then what every lens answers right after it.
        let mut moments: Vec<(u64, Vec<Resolution>)> = Vec::new();
        let steps: Vec<LogRecord> = vec![
            LogRecord::Assertion(a.clone()),
            LogRecord::Vote(Vote::sign(&key(40), a.content_hash(), 3.0, NOW_MS + 100)),
            LogRecord::Assertion(b.clone()),
            LogRecord::Vote(Vote::sign(&key(41), b.content_hash(), 2.0, NOW_MS + 101)),
            LogRecord::Vote(Vote::sign(&key(42), b.content_hash(), 2.0, NOW_MS + 102)),
            LogRecord::Trust(TrustChange::sign(&key(60), key(41).agent_id(), 0.1, NOW_MS + 103)),
            LogRecord::Vote(Vote::sign(&key(40), a.content_hash(), 9.0, NOW_MS + 104)),
            LogRecord::Assertion(c.clone()),
            LogRecord::Vote(Vote::sign(&key(40), c.content_hash(), 1.0, NOW_MS + 105)),
            LogRecord::Trust(TrustChange::sign(&key(60), key(41).agent_id(), 5.0, NOW_MS + 106)),
        ];
        for step in steps {
            let receipt = match step {
                LogRecord::Assertion(a) => node.submit(a).await.unwrap(),
                LogRecord::Vote(v) => node.cast_vote(v).await.unwrap(),
                LogRecord::Trust(t) => node.submit_trust(t).await.unwrap(),
            };
            node.wait_indexed(receipt.offset, deadline()).await.unwrap();
            let mut now = Vec::new();
            for lens in LENSES {
                let mut query = Query::new("city/paris", "mayor", lens);
                query.history = true;
                now.push(node.resolve(query).await.unwrap());
            }
            moments.push((receipt.offset, now));
        }
        // The consensus winner changed along the way (a test that could not fail otherwise).
        let winners: Vec<_> = moments.iter().map(|(_, r)| r[2].winner).collect();
        assert!(winners.windows(2).any(|w| w[0] != w[1]), "{winners:?}");
        for (offset, then) in &moments {
            for (lens, expected) in LENSES.iter().zip(then) {
                let mut query = Query::new("city/paris", "mayor", *lens);
                query.history = true;
                query.as_of = Some(AsOf::Offset(*offset));
                let past = node.resolve(query).await.unwrap();
                let scores = |r: &Resolution| -> Vec<(String, f64)> {
                    r.ranked
                        .iter()
                        .map(|s| (s.candidate.hash.to_string(), s.score.value))
                        .collect()
                };
                assert_eq!(past.winner, expected.winner, "{lens} as of {offset}");
                assert_eq!(scores(&past), scores(expected), "{lens} as of {offset}");
            }
        }
        node.shutdown().await.unwrap();
    });
}
