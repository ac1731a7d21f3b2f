//! Validation of signature counts, signers, record size and vote weight, each with an input
//! just inside and just outside its limit; and the wording of validation errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::*;
use stemedb::protocol::{
    Assertion, Hash, Limits, ObjectValue, ValidationError, Vote, check_assertion_shape, validate_assertion,
    validate_vote,
};

fn base() -> Assertion {
    Assertion::new("s", "p", ObjectValue::Bool(true), 0.5, NOW_MS)
}

#[test]
fn signature_count_limits() {
    let limits = Limits {
        signatures_max: 3,
        ..Limits::default()
    };
    let mut assertion = base();
    assert_eq!(
        validate_assertion(&assertion, &limits, NOW_MS).unwrap_err(),
        ValidationError::NoSignatures
    );
    for n in 1..=3 {
        assertion.sign(&key(n));
    }
    assert!(validate_assertion(&assertion, &limits, NOW_MS).is_ok());
    assertion.sign(&key(4));
    assert_eq!(
        validate_assertion(&assertion, &limits, NOW_MS).unwrap_err(),
        ValidationError::TooManySignatures { count: 4, max: 3 }
    );
}

#[test]
fn sixteen_cosigners_by_default_and_no_seventeenth() {
    let limits = Limits::default();
    let mut assertion = base();
    for n in 1..=16 {
        assertion.sign(&key(n));
    }
    assert!(validate_assertion(&assertion, &limits, NOW_MS).is_ok());
    assertion.sign(&key(17));
    assert!(matches!(
        validate_assertion(&assertion, &limits, NOW_MS),
        Err(ValidationError::TooManySignatures { count: 17, max: 16 })
    ));
}

#[test]
fn duplicate_signer_is_refused() {
    let mut assertion = base();
    assertion.sign(&key(1));
    let again = assertion.signatures[0];
    assertion.signatures.push(again);
    assert_eq!(
        check_assertion_shape(&assertion, &Limits::default(), NOW_MS).unwrap_err(),
        ValidationError::DuplicateSigner {
            agent: key(1).agent_id()
        }
    );
}

#[test]
fn record_size_limit() {
    let mut assertion = Assertion {
        object: ObjectValue::Text("x".repeat(1000)),
        ..base()
    };
    assertion.sign(&key(1));
    let len = assertion.to_record_bytes().len();
    let at = Limits {
        record_bytes_max: len,
        ..Limits::default()
    };
    assert!(validate_assertion(&assertion, &at, NOW_MS).is_ok());
    let under = Limits {
        record_bytes_max: len - 1,
        ..Limits::default()
    };
    assert_eq!(
        validate_assertion(&assertion, &under, NOW_MS).unwrap_err(),
        ValidationError::RecordTooLarge {
            len_bytes: len,
            max_bytes: len - 1
        }
    );
    let vote = signed_vote();
    let len = vote.to_record_bytes().len();
    assert!(
        validate_vote(
            &vote,
            &Limits {
                record_bytes_max: len,
                ..Limits::default()
            },
            NOW_MS
        )
        .is_ok()
    );
    assert!(matches!(
        validate_vote(
            &vote,
            &Limits {
                record_bytes_max: len - 1,
                ..Limits::default()
            },
            NOW_MS
        ),
        Err(ValidationError::RecordTooLarge { .. })
    ));
}

#[test]
fn default_limits_admit_a_maximal_assertion() {
    // Every field at its default maximum, with every co-signer: still under record_bytes_max.
    let limits = Limits::default();
    let mut assertion = Assertion::new(
        "s".repeat(1024),
        "p".repeat(1024),
        ObjectValue::Text("t".repeat(65536)),
        1.0,
        NOW_MS,
    );
    assertion.parent = Some(Hash::of(b"parent"));
    for n in 1..=16 {
        assertion.sign(&key(n));
    }
    assert!(validate_assertion(&assertion, &limits, NOW_MS).is_ok());
}

#[test]
fn vote_weight_range() {
    let limits = Limits {
        vote_weight_max: 10.0,
        ..Limits::default()
    };
    let vote = |weight: f32| Vote::sign(&key(1), Hash::of(b"a"), weight, NOW_MS);
    for ok in [10.0f32, f32::MIN_POSITIVE, 1e-30, 5.0] {
        assert!(validate_vote(&vote(ok), &limits, NOW_MS).is_ok(), "{ok}");
    }
    for bad in [0.0f32, -0.0, -1.0, 10.000001, 1e30] {
        assert_eq!(
            validate_vote(&vote(bad), &limits, NOW_MS).unwrap_err(),
            ValidationError::WeightOutOfRange {
                value: bad,
                max: 10.0
            },
            "{bad}"
        );
    }
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert!(matches!(
            validate_vote(&vote(bad), &limits, NOW_MS),
            Err(ValidationError::WeightNotFinite { .. })
        ));
    }
}

#[test]
fn errors_say_which_field_and_which_limit() {
    let mut long = Assertion {
        subject: "a".repeat(1025),
        ..base()
    };
    long.sign(&key(1));
    let error = validate_assertion(&long, &Limits::default(), NOW_MS).unwrap_err();
    assert_eq!(
        error.to_string(),
        "subject is 1025 bytes; the limit is 1024 bytes"
    );
    let mut nan = Assertion {
        confidence: f32::NAN,
        ..base()
    };
    nan.sign(&key(1));
    let error = validate_assertion(&nan, &Limits::default(), NOW_MS).unwrap_err();
    assert_eq!(error.to_string(), "confidence NaN is not a finite number");
}
