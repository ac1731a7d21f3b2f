//! Cross-language test vectors: `tests/vectors/clients_v1.json` is what this Rust code makes of
//! fixed keys and bodies: for every assertion, vote and trust change, its JSON record, canonical
//! body bytes, content hash, signing message, signatures and record bytes. Client libraries in
//! other languages (`clients/python/`) check their own encoding and signing against the file,
//! byte for byte; `docs/SIGNING.md` is the specification they follow.
//!
//! The cases cover the edges an encoder gets wrong: every object kind, every lifecycle, text
//! at each MessagePack string-header boundary and in several scripts, integers at each integer
//! header boundary and at the i64 extremes, floats at the f64 extremes (subnormal, negative
//! zero, the largest finite), confidences and weights at the f32 edges, and several signers.
//!
//! This test fails if the file is not exactly what the code makes now: a change in encoding,
//! hashing or signing is a change of the wire format, which every client must follow. Only for a
//! deliberate format change, rewrite it with `STEMEDB_WRITE_VECTORS=1 cargo test --test
//! client_vectors`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Serialize;
use serde_json::{Value, json};
use stemedb::protocol::{
    AgentKey, Assertion, Hash, Lifecycle, Limits, ObjectValue, RecordKind, TrustChange, Vote,
    signing_message, validate_assertion, validate_trust, validate_vote,
};

const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/clients_v1.json");

/// A fixed time inside every vector's validity window (timestamps may not be far in the future).
const NOW_MS: u64 = 1_767_225_600_000;
const TS: u64 = 1_700_000_000_000;

#[derive(Serialize)]
struct Vector {
    kind: &'static str,
    name: String,
    /// The signers' 32-byte Ed25519 seeds, in signing order.
    secret_keys: Vec<String>,
    /// The record as the HTTP API takes it (JSON).
    record: Value,
    canonical_body_hex: String,
    content_hash: String,
    signing_message_hex: String,
    /// Each signer's signature over the signing message, in signing order.
    signatures: Vec<String>,
    record_hex: String,
}

fn seed(n: u8) -> [u8; 32] {
    let mut seed = [0u8; 32];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = n.wrapping_mul(31).wrapping_add(i as u8);
    }
    seed
}

fn assertion(subject: &str, predicate: &str, object: ObjectValue, confidence: f32) -> Assertion {
    Assertion::new(subject, predicate, object, confidence, TS)
}

fn assertion_cases() -> Vec<(String, Assertion, Vec<u8>)> {
    let mut cases: Vec<(String, Assertion, Vec<u8>)> = vec![
        (
            "text".into(),
            assertion(
                "city/paris",
                "motto",
                ObjectValue::Text("Fluctuat nec mergitur".into()),
                0.9,
            ),
            vec![1],
        ),
        (
            "ref".into(),
            assertion(
                "person/ada",
                "born_in",
                ObjectValue::Ref("city/london".into()),
                0.5,
            ),
            vec![2],
        ),
        (
            "bool_false".into(),
            assertion("bridge/12", "open", ObjectValue::Bool(false), 0.0),
            vec![3],
        ),
        (
            "bool_true".into(),
            assertion("bridge/12", "open", ObjectValue::Bool(true), 1.0),
            vec![3],
        ),
        (
            "unicode".into(),
            assertion(
                "שלום 😀",
                "名前",
                ObjectValue::Text("ناظر e\u{301} \u{1F468}\u{200D}\u{1F469}".into()),
                0.25,
            ),
            vec![1],
        ),
        (
            "empty_text".into(),
            assertion("s", "p", ObjectValue::Text(String::new()), 0.5),
            vec![1],
        ),
    ];
    // Text at the MessagePack string-header boundaries: fixstr (< 32), str8 (< 256), str16.
    for len in [31usize, 32, 255, 256] {
        let text = "x".repeat(len);
        cases.push((
            format!("text_{len}_bytes"),
            assertion("s", "p", ObjectValue::Text(text), 0.5),
            vec![2],
        ));
    }
    // Integers at each header boundary (fixint, int8/uint8, 16, 32, 64) and the extremes.
    let integers: [i64; 18] = [
        0,
        1,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        4_294_967_295,
        4_294_967_296,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32_769,
        i64::MIN,
        i64::MAX,
    ];
    for value in integers {
        cases.push((
            format!("integer_{value}"),
            assertion("n", "v", ObjectValue::Integer(value), 0.5),
            vec![1],
        ));
    }
    let floats: [(&str, f64); 8] = [
        ("zero", 0.0),
        ("negative_zero", -0.0),
        ("g", 9.80665),
        ("third", 1.0 / 3.0),
        ("max", f64::MAX),
        ("lowest", f64::MIN),
        ("min_positive_normal", f64::MIN_POSITIVE),
        ("min_subnormal", 5e-324),
    ];
    for (name, value) in floats {
        cases.push((
            format!("float_{name}"),
            assertion("x", "f", ObjectValue::Float(value), 0.75),
            vec![2],
        ));
    }
    // Confidences at the f32 edges: the smallest subnormal, a value f32 cannot hold exactly.
    for (name, confidence) in [
        ("subnormal", 1e-45f32),
        ("tenth", 0.1),
        ("below_one", 0.999_999_94),
    ] {
        cases.push((
            format!("confidence_{name}"),
            assertion("c", "p", ObjectValue::Integer(1), confidence),
            vec![3],
        ));
    }
    for lifecycle in Lifecycle::ALL {
        let mut a = assertion("bridge/12", "open", ObjectValue::Bool(true), 1.0);
        a.lifecycle = lifecycle;
        cases.push((format!("lifecycle_{lifecycle}"), a, vec![1]));
    }
    let mut child = assertion("city/paris", "population", ObjectValue::Integer(2_102_651), 0.95);
    child.timestamp_ms = 0;
    child.parent = Some(cases[0].1.content_hash());
    cases.push(("parent_three_signers".into(), child, vec![1, 2, 3]));
    let mut large_ts = assertion("t", "p", ObjectValue::Integer(7), 0.5);
    large_ts.timestamp_ms = NOW_MS;
    cases.push(("two_signers".into(), large_ts, vec![3, 1]));
    cases
}

/// A record's vector from its parts: the JSON form, canonical body, signatures and record bytes.
struct Parts {
    kind: RecordKind,
    name: String,
    signers: Vec<u8>,
    json: String,
    body: Vec<u8>,
    signatures: Vec<String>,
    record: Vec<u8>,
}

fn vector(parts: Parts) -> Vector {
    let hash = Hash::of(&parts.body);
    let kind = match parts.kind {
        RecordKind::Assertion => "assertion",
        RecordKind::Vote => "vote",
        RecordKind::Trust => "trust",
        RecordKind::Extension => "extension",
    };
    Vector {
        kind,
        name: parts.name,
        secret_keys: parts.signers.iter().map(|&s| hex::encode(seed(s))).collect(),
        record: serde_json::from_str(&parts.json).unwrap(),
        canonical_body_hex: hex::encode(&parts.body),
        content_hash: hash.to_string(),
        signing_message_hex: hex::encode(signing_message(parts.kind, &hash)),
        signatures: parts.signatures,
        record_hex: hex::encode(parts.record),
    }
}

fn assertion_vector(name: String, mut assertion: Assertion, signers: &[u8]) -> Vector {
    for &s in signers {
        assertion.sign(&AgentKey::from_secret_bytes(&seed(s)));
    }
    validate_assertion(&assertion, &Limits::default(), NOW_MS).unwrap_or_else(|e| panic!("{name}: {e}"));
    vector(Parts {
        kind: RecordKind::Assertion,
        name,
        signers: signers.to_vec(),
        json: assertion.to_json().unwrap(),
        body: assertion.canonical_body(),
        signatures: assertion
            .signatures
            .iter()
            .map(|s| s.signature.to_string())
            .collect(),
        record: assertion.to_record_bytes(),
    })
}

fn vote_vector(name: &str, signer: u8, target: Hash, weight: f32, at: u64) -> Vector {
    let vote = Vote::sign(&AgentKey::from_secret_bytes(&seed(signer)), target, weight, at);
    validate_vote(&vote, &Limits::default(), NOW_MS).unwrap_or_else(|e| panic!("{name}: {e}"));
    vector(Parts {
        kind: RecordKind::Vote,
        name: name.into(),
        signers: vec![signer],
        json: vote.to_json().unwrap(),
        body: vote.canonical_body(),
        signatures: vec![vote.signature.to_string()],
        record: vote.to_record_bytes(),
    })
}

fn trust_vector(name: &str, admin: u8, agent: u8, factor: f32, at: u64) -> Vector {
    let agent = AgentKey::from_secret_bytes(&seed(agent)).agent_id();
    let change = TrustChange::sign(&AgentKey::from_secret_bytes(&seed(admin)), agent, factor, at);
    validate_trust(&change, &Limits::default(), NOW_MS).unwrap_or_else(|e| panic!("{name}: {e}"));
    vector(Parts {
        kind: RecordKind::Trust,
        name: name.into(),
        signers: vec![admin],
        json: change.to_json().unwrap(),
        body: change.canonical_body(),
        signatures: vec![change.signature.to_string()],
        record: change.to_record_bytes(),
    })
}

fn vectors() -> Value {
    let cases = assertion_cases();
    let target = cases[0].1.content_hash();
    let mut vectors: Vec<Vector> = cases
        .into_iter()
        .map(|(name, assertion, signers)| assertion_vector(name, assertion, &signers))
        .collect();
    for (name, signer, weight, at) in [
        ("vote_one", 1u8, 1.0f32, TS),
        ("vote_fraction", 2, 2.5, TS + 5),
        ("vote_tenth", 3, 0.1, 0),
        ("vote_max", 1, 100.0, NOW_MS),
        ("vote_min_positive_normal", 2, f32::MIN_POSITIVE, TS),
    ] {
        vectors.push(vote_vector(name, signer, target, weight, at));
    }
    for (name, admin, agent, factor, at) in [
        ("trust_ban", 4u8, 1u8, 0.0f32, TS),
        ("trust_half", 4, 2, 0.5, TS + 1),
        ("trust_max", 4, 3, 1000.0, NOW_MS),
    ] {
        vectors.push(trust_vector(name, admin, agent, factor, at));
    }
    let agents: Vec<Value> = (1..=4u8)
        .map(|n| {
            json!({
                "secret_key": hex::encode(seed(n)),
                "agent": AgentKey::from_secret_bytes(&seed(n)).agent_id().to_string(),
            })
        })
        .collect();
    json!({
        "format": "stemedb/v1",
        "spec": "docs/SIGNING.md",
        "agents": agents,
        "vectors": vectors,
    })
}

#[test]
fn client_vectors_are_what_the_code_makes() {
    let made = serde_json::to_string_pretty(&vectors()).unwrap() + "\n";
    if std::env::var_os("STEMEDB_WRITE_VECTORS").is_some() {
        std::fs::write(VECTORS_PATH, &made).unwrap();
    }
    let committed =
        std::fs::read_to_string(VECTORS_PATH).expect("tests/vectors/clients_v1.json is committed");
    assert!(
        committed == made,
        "tests/vectors/clients_v1.json differs from what the code makes now: the wire format changed"
    );
}

#[test]
fn client_vectors_cover_every_kind_and_object() {
    let vectors = vectors();
    let list = vectors["vectors"].as_array().unwrap();
    for kind in ["assertion", "vote", "trust"] {
        assert!(list.iter().any(|v| v["kind"] == kind), "no {kind} vector");
    }
    for object in ["text", "integer", "float", "bool", "ref"] {
        assert!(
            list.iter().any(|v| v["record"]["object"].get(object).is_some()),
            "no {object} object"
        );
    }
    assert!(
        list.iter()
            .any(|v| v["signatures"].as_array().unwrap().len() == 3)
    );
}
