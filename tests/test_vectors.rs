//! Committed test vectors pin the formats: for fixed secret keys and bodies, the canonical
//! body bytes, content hash, record bytes and Ed25519 signatures must come out exactly as
//! recorded in `tests/vectors/protocol_v1.json`. Any drift in encoding, hashing or the signing
//! message fails here.
//!
//! The file was produced by this test's writer (`cargo test --test test_vectors -- --ignored
//! regenerate_vectors`), run once when the v1 format was fixed; it must never be regenerated to make
//! a failure go away — a failure means the wire format changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::NOW_MS;
use serde::{Deserialize, Serialize};
use stemedb::protocol::{
    AgentKey, Assertion, Lifecycle, Limits, ObjectValue, Vote, validate_assertion, validate_vote,
};

const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/protocol_v1.json");

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vectors {
    assertions: Vec<AssertionVector>,
    votes: Vec<VoteVector>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertionVector {
    name: String,
    secret_keys: Vec<String>,
    assertion: Assertion,
    canonical_body_hex: String,
    content_hash: String,
    record_hex: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoteVector {
    name: String,
    secret_key: String,
    vote: Vote,
    canonical_body_hex: String,
    content_hash: String,
    record_hex: String,
}

fn key_from_hex(text: &str) -> AgentKey {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text, &mut seed).unwrap();
    AgentKey::from_secret_bytes(&seed)
}

#[test]
fn vectors_reproduce_exactly() {
    let text = std::fs::read_to_string(VECTORS_PATH).expect("vectors file is committed");
    let vectors: Vectors = serde_json::from_str(&text).unwrap();
    assert!(vectors.assertions.len() >= 6 && !vectors.votes.is_empty());
    for v in &vectors.assertions {
        let a = &v.assertion;
        assert_eq!(
            hex::encode(a.canonical_body()),
            v.canonical_body_hex,
            "{}: canonical body",
            v.name
        );
        assert_eq!(
            a.content_hash().to_string(),
            v.content_hash,
            "{}: content hash",
            v.name
        );
        assert_eq!(
            hex::encode(a.to_record_bytes()),
            v.record_hex,
            "{}: record bytes",
            v.name
        );
        let mut resigned = Assertion {
            signatures: Vec::new(),
            ..a.clone()
        };
        for secret in &v.secret_keys {
            resigned.sign(&key_from_hex(secret));
        }
        assert_eq!(resigned.signatures, a.signatures, "{}: signatures", v.name);
        assert!(
            validate_assertion(a, &Limits::default(), NOW_MS).is_ok(),
            "{}: verifies",
            v.name
        );
        let decoded = Assertion::from_record_bytes(&hex::decode(&v.record_hex).unwrap()).unwrap();
        assert_eq!(&decoded, a, "{}: record decodes", v.name);
    }
    for v in &vectors.votes {
        let vote = &v.vote;
        assert_eq!(
            hex::encode(vote.canonical_body()),
            v.canonical_body_hex,
            "{}: canonical body",
            v.name
        );
        assert_eq!(
            vote.content_hash().to_string(),
            v.content_hash,
            "{}: content hash",
            v.name
        );
        assert_eq!(
            hex::encode(vote.to_record_bytes()),
            v.record_hex,
            "{}: record bytes",
            v.name
        );
        let resigned = Vote::sign(
            &key_from_hex(&v.secret_key),
            vote.assertion,
            vote.weight,
            vote.timestamp_ms,
        );
        assert_eq!(&resigned, vote, "{}: signature", v.name);
        assert!(
            validate_vote(vote, &Limits::default(), NOW_MS).is_ok(),
            "{}: verifies",
            v.name
        );
    }
}

/// Writes the vectors file. Ignored: it runs only when asked for by name.
#[test]
#[ignore = "rewrites tests/vectors/protocol_v1.json; only for a deliberate new format version"]
fn regenerate_vectors() {
    let seeds: Vec<[u8; 32]> = (1..=3u8).map(|n| [n; 32]).collect();
    let keys: Vec<AgentKey> = seeds.iter().map(AgentKey::from_secret_bytes).collect();
    let ts = 1_700_000_000_000u64;
    let mut cases: Vec<(&str, Assertion, Vec<usize>)> = vec![
        (
            "integer",
            Assertion::new(
                "city/paris",
                "population",
                ObjectValue::Integer(2_102_650),
                0.9,
                ts,
            ),
            vec![0],
        ),
        (
            "text",
            Assertion::new(
                "city/paris",
                "motto",
                ObjectValue::Text("Fluctuat nec mergitur".into()),
                1.0,
                ts,
            ),
            vec![1],
        ),
        (
            "float",
            Assertion::new(
                "planet:earth",
                "g_m_per_s2",
                ObjectValue::Float(9.80665),
                0.75,
                ts,
            ),
            vec![2],
        ),
        (
            "bool",
            Assertion::new("bridge/12", "open", ObjectValue::Bool(false), 0.0, ts),
            vec![0],
        ),
        (
            "ref",
            Assertion::new(
                "person/ada",
                "born_in",
                ObjectValue::Ref("city/london".into()),
                0.5,
                ts,
            ),
            vec![1],
        ),
        (
            "unicode",
            Assertion::new("שלום 😀", "名前", ObjectValue::Text("ناظر".into()), 0.25, ts),
            vec![2],
        ),
        (
            "negative",
            Assertion::new("sensor/7", "offset", ObjectValue::Integer(-42), 0.125, 0),
            vec![0],
        ),
    ];
    let mut cosigned = Assertion::new(
        "city/paris",
        "population",
        ObjectValue::Integer(2_102_651),
        0.95,
        ts + 1,
    );
    cosigned.lifecycle = Lifecycle::Proposed;
    cosigned.parent = Some(cases[0].1.content_hash());
    cases.push(("cosigned_with_parent", cosigned, vec![0, 1, 2]));
    let mut retracted = Assertion::new("bridge/12", "open", ObjectValue::Bool(true), 1.0, ts + 2);
    retracted.lifecycle = Lifecycle::Retracted;
    cases.push(("retracted", retracted, vec![1]));
    let mut deprecated = Assertion::new("bridge/12", "open", ObjectValue::Bool(true), 1.0, ts + 3);
    deprecated.lifecycle = Lifecycle::Deprecated;
    cases.push(("deprecated", deprecated, vec![2]));

    let assertions: Vec<AssertionVector> = cases
        .into_iter()
        .map(|(name, mut assertion, signers)| {
            for &s in &signers {
                assertion.sign(&keys[s]);
            }
            AssertionVector {
                name: name.into(),
                secret_keys: signers.iter().map(|&s| hex::encode(seeds[s])).collect(),
                canonical_body_hex: hex::encode(assertion.canonical_body()),
                content_hash: assertion.content_hash().to_string(),
                record_hex: hex::encode(assertion.to_record_bytes()),
                assertion,
            }
        })
        .collect();
    let target = assertions[0].assertion.content_hash();
    let votes = [
        ("weight_one", 0usize, 1.0f32, ts),
        ("fractional", 1, 2.5, ts + 5),
        ("tiny", 2, 0.001, 0),
    ]
    .into_iter()
    .map(|(name, k, weight, at)| {
        let vote = Vote::sign(&keys[k], target, weight, at);
        VoteVector {
            name: name.into(),
            secret_key: hex::encode(seeds[k]),
            canonical_body_hex: hex::encode(vote.canonical_body()),
            content_hash: vote.content_hash().to_string(),
            record_hex: hex::encode(vote.to_record_bytes()),
            vote,
        }
    })
    .collect();
    let text = serde_json::to_string_pretty(&Vectors { assertions, votes }).unwrap();
    std::fs::write(VECTORS_PATH, text + "\n").unwrap();
}
