//! The learned trust model (issue 26) in the state:
//! - two states fed the same log in different batches have the same digest, the model with
//!   it, across many re-estimations;
//! - the `learned` lens as of X on the full state equals the lens on a fresh state fed the
//!   log up to X, through re-estimations and trust changes (bans included);
//! - the model survives a reopen, a ban (trust 0) silences an agent, other `[learned]`
//!   settings are refused, and a state without the model refuses the lens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::{NOW_MS, Rng, key};
use stemedb::lens::{AsOf, LensRegistry, Query, ResolveError, TrustBook, resolve};
use stemedb::protocol::{AgentKey, Assertion, Hash, LogRecord, ObjectValue, TrustChange, Vote};
use stemedb::storage::state::{IngestRecord, LearnedSettings, State, StateConfig};
use tempfile::TempDir;

/// Settings that re-estimate often, so that a short log crosses many re-estimations.
fn settings() -> LearnedSettings {
    LearnedSettings {
        epoch_answers_min: 8,
        epoch_growth: 0.1,
        rounds_max: 20,
        ..LearnedSettings::default()
    }
}

fn open(dir: &TempDir) -> State {
    let state = State::open(dir.path(), StateConfig::default()).unwrap();
    state.set_learned(Some(settings())).unwrap();
    state
}

const SUBJECTS: u64 = 6;
const VALUES: u64 = 3;

/// A random log: claims of 3 values about 6 subjects by 4 authors, votes by 12 voters
/// (some honest, some not, some voting again), trust changes (bans among them).
fn history(seed: u64, len: usize) -> Vec<IngestRecord> {
    let mut rng = Rng::new(seed);
    let mut claims: Vec<(u64, Assertion)> = Vec::new();
    let mut records = Vec::new();
    for step in 0..len as u64 {
        let ts = NOW_MS + step;
        let subject = rng.below(SUBJECTS);
        let record = match rng.below(10) {
            0..=2 => {
                let value = rng.below(VALUES);
                let mut a = Assertion::new(
                    format!("s{subject}"),
                    "p",
                    ObjectValue::Integer(value as i64),
                    0.5,
                    ts,
                );
                a.sign(&key(1 + rng.below(4) as u8));
                claims.push((subject, a.clone()));
                LogRecord::Assertion(a)
            }
            3..=8 if !claims.is_empty() => {
                let voter = rng.below(12);
                let (s, target) = &claims[rng.index(claims.len())];
                // Voters 0..6 vote for the value their subject's truth is (s % 3) when they can.
                let honest = claims
                    .iter()
                    .find(|(t, a)| t == s && a.object == ObjectValue::Integer((s % VALUES) as i64))
                    .map(|(_, a)| a);
                let target = if voter < 6 {
                    honest.unwrap_or(target)
                } else {
                    target
                };
                LogRecord::Vote(Vote::sign(&key(20 + voter as u8), target.content_hash(), 1.0, ts))
            }
            _ => {
                let agent = key(20 + rng.below(12) as u8).agent_id();
                LogRecord::Trust(TrustChange::sign(&key(60), agent, rng.below(3) as f32, ts))
            }
        };
        records.push(record);
    }
    laid(records)
}

fn feed(state: &State, records: &[IngestRecord], rng: &mut Rng) {
    let mut at = 0;
    while at < records.len() {
        let size = 1 + rng.index(40);
        state.apply(&records[at..(at + size).min(records.len())]).unwrap();
        at += size;
    }
}

/// The learned lens's ranking of every subject: (hash, score, reason).
fn rankings(state: &State, as_of: Option<AsOf>) -> Vec<Vec<(Hash, f64, String)>> {
    let lens = LensRegistry::with_builtins().get("learned").unwrap();
    let snapshot = state.snapshot().unwrap();
    (0..SUBJECTS)
        .map(|s| {
            let mut query = Query::new(format!("s{s}"), "p", "learned");
            query.as_of = as_of;
            let resolution = resolve(&snapshot, &query, lens.as_ref(), &TrustBook::default()).unwrap();
            resolution
                .ranked
                .iter()
                .map(|r| (r.candidate.hash, r.score.value, r.score.reason.clone()))
                .collect()
        })
        .collect()
}

#[test]
fn the_model_is_a_function_of_the_log_however_it_was_batched_and_as_of_x_is_the_log_up_to_x() {
    for seed in [1u64, 7, 42] {
        let records = history(seed, 900);
        let (a_dir, b_dir) = (TempDir::new().unwrap(), TempDir::new().unwrap());
        let (a, b) = (open(&a_dir), open(&b_dir));
        let mut rng = Rng::new(seed ^ 0x5a);
        feed(&a, &records, &mut rng);
        feed(&b, &records, &mut rng);
        let meta = a.learned_meta().unwrap();
        assert!(
            meta.epochs >= 10,
            "seed {seed}: only {} re-estimations",
            meta.epochs
        );
        assert_eq!(meta.cursor, records.last().unwrap().next);
        assert_eq!(
            a.digest().unwrap(),
            b.digest().unwrap(),
            "seed {seed}: two batchings"
        );
        // Someone won somewhere, with reasons that name agents.
        let now = rankings(&a, None);
        assert!(
            now.iter().any(|r| r.len() > 1 && r[0].2.contains("reliability")),
            "{now:?}"
        );
        for x in [
            records.len() / 7,
            records.len() / 3,
            records.len() / 2,
            records.len() - 2,
        ] {
            let fresh_dir = TempDir::new().unwrap();
            let fresh = open(&fresh_dir);
            feed(&fresh, &records[..=x], &mut rng);
            assert_eq!(
                rankings(&a, Some(AsOf::Offset(records[x].offset))),
                rankings(&fresh, None),
                "seed {seed}: as of record {x}"
            );
        }
        // Reopened, the same model.
        let digest = a.digest().unwrap();
        drop(a);
        let again = open(&a_dir);
        assert_eq!(again.digest().unwrap(), digest, "seed {seed}: reopened");
        assert_eq!(rankings(&again, None), now);
    }
}

/// Records laid end to end from `offset`, each taking 64 bytes beyond its payload.
fn laid_from(records: Vec<LogRecord>, offset: u64) -> Vec<IngestRecord> {
    common::journal::laid_end_to_end(records.iter().map(LogRecord::encode), offset, 64).0
}

fn laid(records: Vec<LogRecord>) -> Vec<IngestRecord> {
    laid_from(records, 0)
}

#[test]
fn the_learned_lens_follows_proven_agents_against_new_keys_and_a_ban_silences_an_agent() {
    // On 40 subjects, agent 1 claims value 1 and agent 2 value 0; four voters back value 1
    // everywhere; then ten new keys all vote value 0 on subject s0.
    let mut records = Vec::new();
    let mut claims = Vec::new();
    for s in 0..40 {
        let mut right = Assertion::new(format!("s{s}"), "p", ObjectValue::Integer(1), 0.5, NOW_MS + s);
        right.sign(&key(1));
        let mut wrong = Assertion::new(format!("s{s}"), "p", ObjectValue::Integer(0), 0.5, NOW_MS + s);
        wrong.sign(&key(2));
        claims.push((right.content_hash(), wrong.content_hash()));
        records.push(LogRecord::Assertion(right));
        records.push(LogRecord::Assertion(wrong));
    }
    for (s, (right, _)) in claims.iter().enumerate() {
        for voter in 20..24 {
            records.push(LogRecord::Vote(Vote::sign(
                &key(voter),
                *right,
                1.0,
                NOW_MS + 100 + s as u64,
            )));
        }
    }
    for sybil in 100..110 {
        records.push(LogRecord::Vote(Vote::sign(
            &key(sybil),
            claims[0].1,
            1.0,
            NOW_MS + 500,
        )));
    }
    let dir = TempDir::new().unwrap();
    let state = open(&dir);
    let records = laid(records);
    state.apply(&records).unwrap();
    let lens = LensRegistry::with_builtins();
    let winner = |state: &State, name: &str| {
        let snapshot = state.snapshot().unwrap();
        let query = Query::new("s0", "p", name);
        let trust = TrustBook {
            default: 1.0,
            ..TrustBook::default()
        };
        resolve(&snapshot, &query, lens.get(name).unwrap().as_ref(), &trust).unwrap()
    };
    assert_eq!(
        winner(&state, "consensus").winner,
        Some(claims[0].1),
        "ten new keys carry consensus"
    );
    let learned = winner(&state, "learned");
    assert_eq!(learned.winner, Some(claims[0].0), "{:?}", learned.ranked);
    assert!(
        learned.ranked[0].score.value > 0.9,
        "{:?}",
        learned.ranked[0].score
    );
    let liar = key(2).agent_id().to_string();
    assert!(
        learned.ranked[0].score.reason.contains("16 agent(s) answered"),
        "{:?}",
        learned.ranked[0]
    );
    // Ban the author of the wrong claims: its answers no longer count, in the model or the lens.
    let more = vec![LogRecord::Trust(TrustChange::sign(
        &key(60),
        key(2).agent_id(),
        0.0,
        NOW_MS + 600,
    ))];
    let more = laid_from(more, records.last().unwrap().next);
    state.apply(&more).unwrap();
    let learned = winner(&state, "learned");
    assert_eq!(learned.winner, Some(claims[0].0), "{:?}", learned.ranked);
    let reason = &learned.ranked[0].score.reason;
    assert!(
        reason.contains("15 agent(s) answered") && !reason.contains(&liar),
        "{reason}"
    );
}

#[test]
fn other_settings_are_refused_and_a_state_without_the_model_refuses_the_lens() {
    let dir = TempDir::new().unwrap();
    let state = open(&dir);
    let mut a = Assertion::new("s", "p", ObjectValue::Bool(true), 0.5, NOW_MS);
    a.sign(&key(1));
    state.apply(&laid(vec![LogRecord::Assertion(a.clone())])).unwrap();
    let other = LearnedSettings {
        classes_max: 4,
        ..settings()
    };
    assert!(state.set_learned(Some(other)).is_err(), "other settings");
    state.set_learned(Some(settings())).unwrap();

    let off_dir = TempDir::new().unwrap();
    let off = State::open(off_dir.path(), StateConfig::default()).unwrap();
    off.set_learned(None).unwrap();
    off.apply(&laid(vec![LogRecord::Assertion(a)])).unwrap();
    let snapshot = off.snapshot().unwrap();
    let lens = LensRegistry::with_builtins().get("learned").unwrap();
    let error = resolve(
        &snapshot,
        &Query::new("s", "p", "learned"),
        lens.as_ref(),
        &TrustBook::default(),
    );
    assert!(
        matches!(error, Err(ResolveError::ModelUnavailable(_))),
        "{error:?}"
    );
}

#[test]
fn random_spammers_from_the_first_answer_do_not_turn_the_values_around() {
    for seed in 1..=8 {
        spammers(seed);
    }
}

/// 10 agents right 75% of the time and 40 answering at random among 3 values, on 60
/// subjects, from the first record on (no history to start from).
fn spammers(seed: u64) {
    let mut rng = Rng::new(seed);
    let mut records = Vec::new();
    let mut truths = Vec::new();
    // Another predicate first, with answers enough for re-estimations of its own.
    for s in 0..60u64 {
        let mut a = Assertion::new(format!("o{s}"), "other", ObjectValue::Bool(true), 0.5, NOW_MS);
        a.sign(&key(200));
        let hash = a.content_hash();
        records.push(LogRecord::Assertion(a));
        for agent in 0..20u8 {
            records.push(LogRecord::Vote(Vote::sign(
                &key(210 + agent),
                hash,
                1.0,
                NOW_MS + s,
            )));
        }
    }
    for s in 0..60u64 {
        let truth = rng.below(3);
        truths.push(truth);
        let mut made: std::collections::BTreeMap<u64, Hash> = std::collections::BTreeMap::new();
        for agent in 0..50u8 {
            let value = if agent < 10 {
                if rng.below(100) < 75 {
                    truth
                } else {
                    (truth + 1 + rng.below(2)) % 3
                }
            } else {
                rng.below(3)
            };
            let hash = *made.entry(value).or_insert_with(|| {
                let mut a = Assertion::new(
                    format!("s{s}"),
                    "p",
                    ObjectValue::Integer(value as i64),
                    0.5,
                    NOW_MS + s,
                );
                a.sign(&key(100 + agent));
                let hash = a.content_hash();
                records.push(LogRecord::Assertion(a));
                hash
            });
            records.push(LogRecord::Vote(Vote::sign(
                &key(100 + agent),
                hash,
                1.0,
                NOW_MS + s,
            )));
        }
    }
    let dir = TempDir::new().unwrap();
    let state = State::open(dir.path(), StateConfig::default()).unwrap();
    let records = laid(records);
    let mut feeder = Rng::new(9);
    feed(&state, &records, &mut feeder);
    let registry = LensRegistry::with_builtins();
    let snapshot = state.snapshot().unwrap();
    let trust = TrustBook {
        default: 1.0,
        ..TrustBook::default()
    };
    let (mut right, mut consensus) = (0, 0);
    for (s, truth) in truths.iter().enumerate() {
        for (lens, count) in [("learned", &mut right), ("consensus", &mut consensus)] {
            let query = Query::new(format!("s{s}"), "p", lens);
            let resolution =
                resolve(&snapshot, &query, registry.get(lens).unwrap().as_ref(), &trust).unwrap();
            let winner = resolution.ranked[0].candidate.hash;
            let value = state.get(&winner).unwrap().unwrap().assertion.object;
            *count += usize::from(value == ObjectValue::Integer(*truth as i64));
        }
    }
    eprintln!("seed {seed}: learned {right}, consensus {consensus}");
    assert!(
        right > consensus && right >= 50,
        "seed {seed}: learned right on {right} of 60, consensus on {consensus} (model: {:?})",
        state.learned_meta().unwrap()
    );
}

#[test]
fn a_thousand_new_keys_cannot_outvote_twenty_established_agents() {
    // 20 agents right 85% of the time answer 40 subjects; then, on 10 more, 1,000 new keys all
    // back the wrong value, their votes interleaved with the established agents' answers.
    let mut rng = Rng::new(11);
    let mut records = Vec::new();
    let mut targets = Vec::new();
    let sybils: Vec<AgentKey> = (0..1000u32)
        .map(|i| AgentKey::from_secret_bytes(Hash::of(&i.to_le_bytes()).as_bytes()))
        .collect();
    for s in 0..50u64 {
        let truth = rng.below(2);
        let mut made: std::collections::BTreeMap<u64, Hash> = std::collections::BTreeMap::new();
        let mut claim = |value: u64, signer: &AgentKey, records: &mut Vec<LogRecord>| {
            *made.entry(value).or_insert_with(|| {
                let mut a = Assertion::new(
                    format!("s{s}"),
                    "p",
                    ObjectValue::Integer(value as i64),
                    0.5,
                    NOW_MS + s,
                );
                a.sign(signer);
                let hash = a.content_hash();
                records.push(LogRecord::Assertion(a));
                hash
            })
        };
        let mut answers: Vec<(AgentKey, u64)> = (0..20u8)
            .map(|agent| {
                (
                    key(100 + agent),
                    if rng.below(100) < 85 { truth } else { 1 - truth },
                )
            })
            .collect();
        if s >= 40 {
            answers.extend(sybils.iter().map(|k| (k.clone(), 1 - truth)));
            // Interleaved: a seeded shuffle.
            for i in (1..answers.len()).rev() {
                answers.swap(i, rng.index(i + 1));
            }
        }
        for (signer, value) in &answers {
            let hash = claim(*value, signer, &mut records);
            records.push(LogRecord::Vote(Vote::sign(signer, hash, 1.0, NOW_MS + s)));
        }
        if s >= 40 {
            targets.push((s, claim(truth, &key(100), &mut records)));
        }
    }
    let dir = TempDir::new().unwrap();
    let state = State::open(dir.path(), StateConfig::default()).unwrap();
    let mut feeder = Rng::new(4);
    feed(&state, &laid(records), &mut feeder);
    let lens = LensRegistry::with_builtins();
    let snapshot = state.snapshot().unwrap();
    let mut right = 0;
    for (s, truth) in &targets {
        let query = Query::new(format!("s{s}"), "p", "learned");
        let resolution = resolve(
            &snapshot,
            &query,
            lens.get("learned").unwrap().as_ref(),
            &TrustBook::default(),
        )
        .unwrap();
        right += usize::from(resolution.winner == Some(*truth));
        let query = Query::new(format!("s{s}"), "p", "consensus");
        let trust = TrustBook {
            default: 1.0,
            ..TrustBook::default()
        };
        let consensus = resolve(&snapshot, &query, lens.get("consensus").unwrap().as_ref(), &trust).unwrap();
        assert_ne!(consensus.winner, Some(*truth), "the swarm carries consensus");
    }
    assert!(
        right >= 9,
        "learned right on {right} of 10 (model: {:?})",
        state.learned_meta().unwrap()
    );
}
