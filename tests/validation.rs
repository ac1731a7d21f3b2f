//! Every validation rule of field content, with an input just inside and just outside its
//! limit, and the NaN / infinity cases; each failure is its own named error. Signature counts,
//! record size and vote weight are in `validation_records.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::*;
use stemedb::protocol::{
    Assertion, Hash, Limits, ObjectValue, TextField, ValidationError, Vote, validate_assertion, validate_vote,
};

/// Signs `assertion` with key 1 and validates it with `limits`.
fn check(mut assertion: Assertion, limits: &Limits) -> Result<Hash, ValidationError> {
    assertion.signatures.clear();
    assertion.sign(&key(1));
    validate_assertion(&assertion, limits, NOW_MS)
}

fn base() -> Assertion {
    Assertion::new("s", "p", ObjectValue::Bool(true), 0.5, NOW_MS)
}

fn with_subject(subject: &str) -> Assertion {
    Assertion {
        subject: subject.to_owned(),
        ..base()
    }
}

#[test]
fn subject_length_limit() {
    let limits = Limits::default();
    assert!(check(with_subject(&"a".repeat(1024)), &limits).is_ok());
    assert_eq!(
        check(with_subject(&"a".repeat(1025)), &limits).unwrap_err(),
        ValidationError::TooLong {
            field: TextField::Subject,
            len_bytes: 1025,
            max_bytes: 1024
        }
    );
    assert!(check(with_subject("a"), &limits).is_ok());
    assert_eq!(
        check(with_subject(""), &limits).unwrap_err(),
        ValidationError::Empty {
            field: TextField::Subject
        }
    );
}

#[test]
fn length_limits_count_bytes_not_characters() {
    // 256 four-byte emoji = 1024 bytes: inside; one more byte: outside.
    let limits = Limits::default();
    assert!(check(with_subject(&"😀".repeat(256)), &limits).is_ok());
    let over = format!("{}a", "😀".repeat(256));
    assert!(matches!(
        check(with_subject(&over), &limits),
        Err(ValidationError::TooLong { len_bytes: 1025, .. })
    ));
}

#[test]
fn predicate_length_limit() {
    let limits = Limits::default();
    let ok = Assertion {
        predicate: "p".repeat(1024),
        ..base()
    };
    assert!(check(ok, &limits).is_ok());
    let long = Assertion {
        predicate: "p".repeat(1025),
        ..base()
    };
    assert!(matches!(
        check(long, &limits),
        Err(ValidationError::TooLong {
            field: TextField::Predicate,
            len_bytes: 1025,
            max_bytes: 1024
        })
    ));
    let empty = Assertion {
        predicate: String::new(),
        ..base()
    };
    assert_eq!(
        check(empty, &limits).unwrap_err(),
        ValidationError::Empty {
            field: TextField::Predicate
        }
    );
}

#[test]
fn configured_limits_are_the_ones_enforced() {
    let limits = Limits {
        subject_bytes_max: 8,
        ..Limits::default()
    };
    assert!(check(with_subject("12345678"), &limits).is_ok());
    assert!(matches!(
        check(with_subject("123456789"), &limits),
        Err(ValidationError::TooLong { max_bytes: 8, .. })
    ));
}

#[test]
fn control_characters_are_refused_in_names() {
    let limits = Limits::default();
    for (text, at, code) in [
        ("a\0b", 1, 0u32),
        ("a\nb", 1, 0x0a),
        ("\u{7f}", 0, 0x7f),
        ("é\u{85}", 2, 0x85),
    ] {
        assert_eq!(
            check(with_subject(text), &limits).unwrap_err(),
            ValidationError::ControlCharacter {
                field: TextField::Subject,
                byte_offset: at,
                code_point: code
            },
            "{text:?}"
        );
    }
    let predicate = Assertion {
        predicate: "tab\there".into(),
        ..base()
    };
    assert!(matches!(
        check(predicate, &limits),
        Err(ValidationError::ControlCharacter {
            field: TextField::Predicate,
            ..
        })
    ));
    // Separators, right-to-left text and emoji are ordinary characters.
    assert!(check(with_subject("a:b/c\u{5d0}\u{5d1} 😀"), &limits).is_ok());
}

#[test]
fn object_text_limit_and_free_content() {
    let limits = Limits {
        object_text_bytes_max: 16,
        ..Limits::default()
    };
    let at = Assertion {
        object: ObjectValue::Text("x\n\0yz".repeat(3) + "x"),
        ..base()
    };
    assert!(check(at, &limits).is_ok(), "text may hold newlines and NUL");
    let empty = Assertion {
        object: ObjectValue::Text(String::new()),
        ..base()
    };
    assert!(check(empty, &limits).is_ok(), "empty text is a value");
    let over = Assertion {
        object: ObjectValue::Text("x".repeat(17)),
        ..base()
    };
    assert_eq!(
        check(over, &limits).unwrap_err(),
        ValidationError::TooLong {
            field: TextField::ObjectText,
            len_bytes: 17,
            max_bytes: 16
        }
    );
}

#[test]
fn object_ref_follows_subject_rules() {
    let limits = Limits::default();
    assert!(
        check(
            Assertion {
                object: ObjectValue::Ref("x".repeat(1024)),
                ..base()
            },
            &limits
        )
        .is_ok()
    );
    assert!(matches!(
        check(
            Assertion {
                object: ObjectValue::Ref("x".repeat(1025)),
                ..base()
            },
            &limits
        ),
        Err(ValidationError::TooLong {
            field: TextField::ObjectRef,
            ..
        })
    ));
    assert_eq!(
        check(
            Assertion {
                object: ObjectValue::Ref(String::new()),
                ..base()
            },
            &limits
        )
        .unwrap_err(),
        ValidationError::Empty {
            field: TextField::ObjectRef
        }
    );
    assert!(matches!(
        check(
            Assertion {
                object: ObjectValue::Ref("a\u{1}".into()),
                ..base()
            },
            &limits
        ),
        Err(ValidationError::ControlCharacter {
            field: TextField::ObjectRef,
            ..
        })
    ));
}

#[test]
fn object_float_must_be_finite() {
    let limits = Limits::default();
    assert!(
        check(
            Assertion {
                object: ObjectValue::Float(f64::MAX),
                ..base()
            },
            &limits
        )
        .is_ok()
    );
    assert!(
        check(
            Assertion {
                object: ObjectValue::Float(-0.0),
                ..base()
            },
            &limits
        )
        .is_ok()
    );
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(
            check(
                Assertion {
                    object: ObjectValue::Float(bad),
                    ..base()
                },
                &limits
            ),
            Err(ValidationError::FloatNotFinite { .. })
        ));
    }
}

#[test]
fn confidence_range() {
    let limits = Limits::default();
    for ok in [0.0f32, 1.0, 0.5, f32::MIN_POSITIVE] {
        assert!(
            check(
                Assertion {
                    confidence: ok,
                    ..base()
                },
                &limits
            )
            .is_ok(),
            "{ok}"
        );
    }
    for bad in [1.0f32 + f32::EPSILON, -f32::MIN_POSITIVE, -0.0, 2.0] {
        assert_eq!(
            check(
                Assertion {
                    confidence: bad,
                    ..base()
                },
                &limits
            )
            .unwrap_err(),
            ValidationError::ConfidenceOutOfRange { value: bad },
            "{bad}"
        );
    }
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert!(matches!(
            check(
                Assertion {
                    confidence: bad,
                    ..base()
                },
                &limits
            ),
            Err(ValidationError::ConfidenceNotFinite { .. })
        ));
    }
}

#[test]
fn timestamp_skew_limit() {
    let limits = Limits {
        clock_skew_ms_max: 1000,
        ..Limits::default()
    };
    assert!(
        check(
            Assertion {
                timestamp_ms: NOW_MS + 1000,
                ..base()
            },
            &limits
        )
        .is_ok()
    );
    assert!(
        check(
            Assertion {
                timestamp_ms: 0,
                ..base()
            },
            &limits
        )
        .is_ok(),
        "the past is fine"
    );
    assert_eq!(
        check(
            Assertion {
                timestamp_ms: NOW_MS + 1001,
                ..base()
            },
            &limits
        )
        .unwrap_err(),
        ValidationError::TimestampInFuture {
            timestamp_ms: NOW_MS + 1001,
            now_ms: NOW_MS,
            ahead_ms: 1001,
            skew_ms_max: 1000
        }
    );
    let vote = Vote::sign(&key(1), Hash::of(b"a"), 1.0, NOW_MS + 1001);
    assert!(matches!(
        validate_vote(&vote, &limits, NOW_MS),
        Err(ValidationError::TimestampInFuture { .. })
    ));
    let vote = Vote::sign(&key(1), Hash::of(b"a"), 1.0, NOW_MS + 1000);
    assert!(validate_vote(&vote, &limits, NOW_MS).is_ok());
}
