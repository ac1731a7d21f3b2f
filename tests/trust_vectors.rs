//! Committed test vectors pin the trust-change format: for fixed secret keys and bodies, the
//! canonical body bytes, content hash, record bytes, journal payload (tag 3 first) and the
//! Ed25519 signature (over the "stemedb/v1/trust" signing message) must come out exactly as
//! recorded in `tests/vectors/trust_v1.json`. Any drift in encoding, hashing, tagging or the
//! signing message fails here.
//!
//! The file was produced by this test's writer (`cargo test --test trust_vectors -- --ignored
//! regenerate_trust_vectors`), run once when the trust record was added; it must never be
//! regenerated to make a failure go away — a failure means the wire format changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::NOW_MS;
use serde::{Deserialize, Serialize};
use stemedb::protocol::{AgentKey, Limits, LogRecord, TRUST_FACTOR_MAX, TrustChange, validate_trust};

const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/trust_v1.json");

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustVector {
    name: String,
    secret_key: String,
    change: TrustChange,
    canonical_body_hex: String,
    content_hash: String,
    record_hex: String,
    log_record_hex: String,
}

fn key_from_hex(text: &str) -> AgentKey {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text, &mut seed).unwrap();
    AgentKey::from_secret_bytes(&seed)
}

fn vector(name: &str, seed: [u8; 32], change: TrustChange) -> TrustVector {
    TrustVector {
        name: name.into(),
        secret_key: hex::encode(seed),
        canonical_body_hex: hex::encode(change.canonical_body()),
        content_hash: change.content_hash().to_string(),
        record_hex: hex::encode(change.to_record_bytes()),
        log_record_hex: hex::encode(LogRecord::Trust(change.clone()).encode()),
        change,
    }
}

#[test]
fn trust_vectors_reproduce_exactly() {
    let text = std::fs::read_to_string(VECTORS_PATH).expect("vectors file is committed");
    let vectors: Vec<TrustVector> = serde_json::from_str(&text).unwrap();
    assert!(vectors.len() >= 3);
    for v in &vectors {
        let key = key_from_hex(&v.secret_key);
        let c = &v.change;
        let resigned = TrustChange::sign(&key, c.agent, c.factor, c.timestamp_ms);
        assert_eq!(&resigned, c, "{}: signature", v.name);
        let again = vector(&v.name, key.secret_bytes(), resigned);
        assert_eq!(
            again.canonical_body_hex, v.canonical_body_hex,
            "{}: canonical body",
            v.name
        );
        assert_eq!(again.content_hash, v.content_hash, "{}: content hash", v.name);
        assert_eq!(again.record_hex, v.record_hex, "{}: record bytes", v.name);
        assert_eq!(
            again.log_record_hex, v.log_record_hex,
            "{}: journal payload",
            v.name
        );
        let verdict = validate_trust(c, &Limits::default(), NOW_MS);
        assert!(verdict.is_ok(), "{}: verifies: {verdict:?}", v.name);
        // Independently of the crate's signing code: Ed25519 over context, NUL, blake3(body).
        let body = hex::decode(&v.canonical_body_hex).unwrap();
        assert_eq!(
            blake3::hash(&body).to_hex().as_str(),
            v.content_hash,
            "{}: blake3",
            v.name
        );
        let message = [b"stemedb/v1/trust\0".as_slice(), blake3::hash(&body).as_bytes()].concat();
        let public = ed25519_dalek::VerifyingKey::from_bytes(c.admin.as_bytes()).unwrap();
        let signature = ed25519_dalek::Signature::from_bytes(c.signature.as_bytes());
        assert!(
            public.verify_strict(&message, &signature).is_ok(),
            "{}: signing message",
            v.name
        );
        let decoded = TrustChange::from_record_bytes(&hex::decode(&v.record_hex).unwrap()).unwrap();
        assert_eq!(&decoded, c, "{}: record decodes", v.name);
    }
}

/// Writes the vectors file. Ignored: it runs only when asked for by name.
#[test]
#[ignore = "rewrites tests/vectors/trust_v1.json; only for a deliberate new format version"]
fn regenerate_trust_vectors() {
    let seeds: Vec<[u8; 32]> = (1..=3u8).map(|n| [n; 32]).collect();
    let keys: Vec<AgentKey> = seeds.iter().map(AgentKey::from_secret_bytes).collect();
    let ts = 1_700_000_000_000u64;
    let vectors: Vec<TrustVector> = [
        ("distrust", 0usize, 1usize, 0.0f32, ts),
        ("fractional", 1, 2, 0.25, ts + 5),
        ("largest", 2, 0, TRUST_FACTOR_MAX, 0),
    ]
    .into_iter()
    .map(|(name, admin, agent, factor, at)| {
        let change = TrustChange::sign(&keys[admin], keys[agent].agent_id(), factor, at);
        vector(name, seeds[admin], change)
    })
    .collect();
    let text = serde_json::to_string_pretty(&vectors).unwrap();
    std::fs::write(VECTORS_PATH, text + "\n").unwrap();
}
