//! A signature covers the whole body: changing any single field of a signed assertion or vote
//! makes verification fail, and a signature of one kind never verifies as the other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::*;
use proptest::prelude::*;
use stemedb::protocol::{
    AgentSignature, Assertion, Hash, Lifecycle, Limits, ObjectValue, RecordKind, ValidationError, Vote,
    signing_message, validate_assertion, validate_assertions, validate_vote, verify,
};

/// One single-field change to an assertion.
#[derive(Debug, Clone)]
enum AssertionEdit {
    Subject(String),
    Predicate(String),
    Object(ObjectValue),
    Confidence(f32),
    Timestamp(u64),
    Lifecycle(Lifecycle),
    Parent(Option<Hash>),
}

fn assertion_edit() -> impl Strategy<Value = AssertionEdit> {
    prop_oneof![
        "\\PC{1,40}".prop_map(AssertionEdit::Subject),
        "\\PC{1,40}".prop_map(AssertionEdit::Predicate),
        object_value()
            .prop_filter(
                "valid",
                |o| !matches!(o, ObjectValue::Ref(s) if s.is_empty() || s.chars().any(char::is_control))
            )
            .prop_map(AssertionEdit::Object),
        (0.0f32..=1.0).prop_map(AssertionEdit::Confidence),
        (0..=NOW_MS).prop_map(AssertionEdit::Timestamp),
        lifecycle().prop_map(AssertionEdit::Lifecycle),
        proptest::option::of(hash()).prop_map(AssertionEdit::Parent),
    ]
}

/// Applies `edit`; returns false if it would not change anything (the same value).
fn apply(assertion: &mut Assertion, edit: AssertionEdit) -> bool {
    let before = assertion.clone();
    match edit {
        AssertionEdit::Subject(v) => assertion.subject = v,
        AssertionEdit::Predicate(v) => assertion.predicate = v,
        AssertionEdit::Object(v) => assertion.object = v,
        AssertionEdit::Confidence(v) => assertion.confidence = v,
        AssertionEdit::Timestamp(v) => assertion.timestamp_ms = v,
        AssertionEdit::Lifecycle(v) => assertion.lifecycle = v,
        AssertionEdit::Parent(v) => assertion.parent = v,
    }
    // Bitwise comparison through the canonical body: 0.0 and -0.0 differ, as they do on the wire.
    assertion.canonical_body() != before.canonical_body()
}

proptest! {
    #[test]
    fn any_assertion_field_change_breaks_every_signature((assertion, _keys) in valid_assertion(), edit in assertion_edit()) {
        let limits = Limits::default();
        prop_assert!(validate_assertion(&assertion, &limits, NOW_MS).is_ok());
        let mut edited = assertion.clone();
        prop_assume!(apply(&mut edited, edit));
        let error = validate_assertion(&edited, &limits, NOW_MS).unwrap_err();
        prop_assert!(matches!(error, ValidationError::BadSignature { .. }), "{}", error);
        // The batch path reaches the same verdict, and the untouched original still passes.
        let verdicts = validate_assertions(&[assertion, edited], &limits, NOW_MS);
        prop_assert!(verdicts[0].is_ok());
        let batch_rejects = matches!(verdicts[1], Err(ValidationError::BadSignature { .. }));
        prop_assert!(batch_rejects);
    }

    #[test]
    fn any_vote_field_change_breaks_the_signature(
        vote in valid_vote(),
        field in 0..4usize,
        other_hash in hash(),
        other_key in agent_key(),
        weight in 0.001f32..=100.0,
        timestamp_ms in 0..=NOW_MS,
    ) {
        let limits = Limits::default();
        prop_assert!(validate_vote(&vote, &limits, NOW_MS).is_ok());
        let mut edited = vote.clone();
        match field {
            0 => edited.assertion = other_hash,
            1 => edited.voter = other_key.agent_id(),
            2 => edited.weight = weight,
            _ => edited.timestamp_ms = timestamp_ms,
        }
        prop_assume!(edited.canonical_body() != vote.canonical_body());
        let error = validate_vote(&edited, &limits, NOW_MS).unwrap_err();
        prop_assert!(matches!(error, ValidationError::BadSignature { .. }), "{}", error);
    }

    #[test]
    fn a_signature_moved_to_another_signer_fails((mut assertion, _keys) in valid_assertion(), other in agent_key()) {
        prop_assume!(assertion.signatures.iter().all(|s| s.agent != other.agent_id()));
        assertion.signatures[0] = AgentSignature { agent: other.agent_id(), signature: assertion.signatures[0].signature };
        prop_assert!(validate_assertion(&assertion, &Limits::default(), NOW_MS).is_err());
    }
}

#[test]
fn a_vote_signature_never_verifies_as_an_assertion_signature() {
    // Domain separation: the same key signing the same 32 bytes under the two kinds yields
    // signatures that do not cross over.
    let key = key(9);
    let hash = Hash::of(b"the same content hash");
    let as_vote = stemedb::protocol::sign(&key, RecordKind::Vote, &hash);
    assert!(verify(&key.agent_id(), RecordKind::Vote, &hash, &as_vote));
    assert!(!verify(&key.agent_id(), RecordKind::Assertion, &hash, &as_vote));
    assert_ne!(
        signing_message(RecordKind::Vote, &hash),
        signing_message(RecordKind::Assertion, &hash)
    );
}

#[test]
fn one_bad_record_in_a_batch_spares_the_others() {
    let limits = Limits::default();
    let good: Vec<Assertion> = (0..8u8)
        .map(|n| {
            let mut a = Assertion::new(format!("s{n}"), "p", ObjectValue::Bool(true), 0.5, NOW_MS);
            a.sign(&key(n + 1));
            a
        })
        .collect();
    let mut batch = good.clone();
    batch[3].confidence = 0.25;
    let verdicts = validate_assertions(&batch, &limits, NOW_MS);
    for (index, verdict) in verdicts.iter().enumerate() {
        if index == 3 {
            assert!(
                matches!(verdict, Err(ValidationError::BadSignature { .. })),
                "{verdict:?}"
            );
        } else {
            assert_eq!(verdict.as_ref().unwrap(), &good[index].content_hash());
        }
    }
}

#[test]
fn vote_signed_by_one_key_is_not_valid_for_another_voter() {
    let mut vote = Vote::sign(&key(4), Hash::of(b"x"), 1.0, NOW_MS);
    vote.voter = key(5).agent_id();
    assert!(validate_vote(&vote, &Limits::default(), NOW_MS).is_err());
}
