//! Round trips of the wire forms: canonical MessagePack and JSON, for arbitrary content; and
//! the strictness of decoding (non-canonical, malformed and unknown input refused, never a
//! panic).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::*;
use proptest::prelude::*;
use stemedb::protocol::{Assertion, CodecError, Vote};

proptest! {
    #[test]
    fn assertion_record_bytes_round_trip(assertion in any_assertion()) {
        let bytes = assertion.to_record_bytes();
        let decoded = Assertion::from_record_bytes(&bytes).unwrap();
        prop_assert_eq!(&decoded, &assertion);
        prop_assert_eq!(decoded.content_hash(), assertion.content_hash());
    }

    #[test]
    fn vote_record_bytes_round_trip(vote in any_vote()) {
        let bytes = vote.to_record_bytes();
        let decoded = Vote::from_record_bytes(&bytes).unwrap();
        prop_assert_eq!(&decoded, &vote);
        prop_assert_eq!(decoded.content_hash(), vote.content_hash());
    }

    #[test]
    fn assertion_json_round_trip(assertion in any_assertion()) {
        let json = assertion.to_json().unwrap();
        let decoded = Assertion::from_json(&json).unwrap();
        prop_assert_eq!(decoded.content_hash(), assertion.content_hash());
        prop_assert_eq!(decoded, assertion);
    }

    #[test]
    fn vote_json_round_trip(vote in any_vote()) {
        let json = vote.to_json().unwrap();
        prop_assert_eq!(Vote::from_json(&json).unwrap(), vote);
    }

    #[test]
    fn trailing_bytes_are_refused(assertion in any_assertion(), extra in proptest::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = assertion.to_record_bytes();
        bytes.extend_from_slice(&extra);
        prop_assert!(Assertion::from_record_bytes(&bytes).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        // Whatever the verdict, decoding untrusted bytes returns; a decoded value is canonical.
        if let Ok(assertion) = Assertion::from_record_bytes(&bytes) {
            prop_assert_eq!(assertion.to_record_bytes(), bytes.clone());
        }
        if let Ok(vote) = Vote::from_record_bytes(&bytes) {
            prop_assert_eq!(vote.to_record_bytes(), bytes);
        }
    }

    #[test]
    fn truncated_records_are_refused(assertion in any_assertion(), cut in any::<prop::sample::Index>()) {
        let bytes = assertion.to_record_bytes();
        let cut = cut.index(bytes.len());
        prop_assert!(Assertion::from_record_bytes(&bytes[..cut]).is_err());
    }
}

#[test]
fn non_canonical_encoding_is_refused() {
    // The same value in rmp-serde's named (map) form decodes, but is not the canonical form.
    let assertion = signed_assertion();
    let named = rmp_serde::to_vec_named(&assertion).unwrap();
    assert!(
        rmp_serde::from_slice::<Assertion>(&named).is_ok(),
        "fixture: named form decodes"
    );
    let error = Assertion::from_record_bytes(&named).unwrap_err();
    assert!(matches!(error, CodecError::NonCanonical { .. }), "{error}");
}

#[test]
fn json_with_unknown_field_is_refused() {
    let json = signed_assertion().to_json().unwrap();
    let tampered = json.replacen('{', "{\"extra\":1,", 1);
    let error = Assertion::from_json(&tampered).unwrap_err();
    assert!(error.to_string().contains("unknown field `extra`"), "{error}");
    let vote = signed_vote()
        .to_json()
        .unwrap()
        .replacen('{', "{\"note\":\"x\",", 1);
    assert!(
        Vote::from_json(&vote)
            .unwrap_err()
            .to_string()
            .contains("unknown field `note`")
    );
}

#[test]
fn json_with_bad_hex_names_the_value() {
    let json = signed_vote().to_json().unwrap();
    let assertion_hex = signed_assertion().content_hash().to_string();
    let short = json.replace(&assertion_hex, &assertion_hex[..62]);
    let error = Vote::from_json(&short).unwrap_err().to_string();
    assert!(
        error.contains("hash") && error.contains("64 hex digits"),
        "{error}"
    );
    let not_hex = json.replace(&assertion_hex, &"zz".repeat(32));
    assert!(
        Vote::from_json(&not_hex)
            .unwrap_err()
            .to_string()
            .contains("not valid hex")
    );
}

#[test]
fn json_with_weak_agent_key_is_refused() {
    // The identity point (small order) encodes as 0x01 followed by zeros.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let json = signed_vote().to_json().unwrap();
    let voter = key(2).agent_id().to_string();
    let error = Vote::from_json(&json.replace(&voter, &hex::encode(weak))).unwrap_err();
    assert!(error.to_string().contains("weak"), "{error}");
}

#[test]
fn hex_display_and_parse_round_trip() {
    let hash = signed_assertion().content_hash();
    assert_eq!(hash.to_string().parse::<stemedb::protocol::Hash>().unwrap(), hash);
    let agent = key(3).agent_id();
    assert_eq!(
        agent.to_string().parse::<stemedb::protocol::AgentId>().unwrap(),
        agent
    );
    let signature = signed_vote().signature;
    assert_eq!(
        signature
            .to_string()
            .parse::<stemedb::protocol::Signature>()
            .unwrap(),
        signature
    );
    assert!("ABC".parse::<stemedb::protocol::Hash>().is_err());
}
