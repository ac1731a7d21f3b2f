//! Validation of assertions, votes and trust changes against [`Limits`]: shape, limits and
//! signatures.
//!
//! Everything here depends only on the record itself, the limits and the clock, never on
//! stored state, so it runs before a record reaches the journal. Each broken rule has its own
//! [`ValidationError`] variant naming the field and the limit. Checks run cheapest first;
//! signatures last.

use std::collections::HashSet;
use std::fmt;

use thiserror::Error;

use super::agent::AgentId;
use super::assertion::Assertion;
use super::hash::Hash;
use super::limits::Limits;
use super::log_record::LogRecord;
use super::object::ObjectValue;
use super::signing::{self, RecordKind, SignatureCheck};
use super::trust::{TRUST_FACTOR_MAX, TrustChange};
use super::vote::Vote;

/// Which text field a [`ValidationError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    /// `subject`.
    Subject,
    /// `predicate`.
    Predicate,
    /// `object.text`.
    ObjectText,
    /// `object.ref`.
    ObjectRef,
}

impl fmt::Display for TextField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Subject => "subject",
            Self::Predicate => "predicate",
            Self::ObjectText => "object.text",
            Self::ObjectRef => "object.ref",
        })
    }
}

/// A record that breaks a rule. Bad input is refused whole; nothing is stored.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ValidationError {
    /// A required text field is empty.
    #[error("{field} is empty; it must be at least 1 byte")]
    Empty {
        /// The field.
        field: TextField,
    },
    /// A text field is longer than its limit.
    #[error("{field} is {len_bytes} bytes; the limit is {max_bytes} bytes")]
    TooLong {
        /// The field.
        field: TextField,
        /// Its length in bytes.
        len_bytes: usize,
        /// The limit in bytes.
        max_bytes: usize,
    },
    /// A subject, predicate or reference contains a NUL or other control character.
    #[error("{field} contains control character U+{code_point:04X} at byte {byte_offset}")]
    ControlCharacter {
        /// The field.
        field: TextField,
        /// Where the character starts, in bytes.
        byte_offset: usize,
        /// The character's code point.
        code_point: u32,
    },
    /// Confidence is NaN or infinite.
    #[error("confidence {value} is not a finite number")]
    ConfidenceNotFinite {
        /// The value given.
        value: f32,
    },
    /// Confidence is outside [0, 1] (negative zero included, so equal bodies hash equal).
    #[error("confidence {value} is outside [0, 1]")]
    ConfidenceOutOfRange {
        /// The value given.
        value: f32,
    },
    /// A float object is NaN or infinite.
    #[error("object.float {value} is not a finite number")]
    FloatNotFinite {
        /// The value given.
        value: f64,
    },
    /// A vote weight is NaN or infinite.
    #[error("vote weight {value} is not a finite number")]
    WeightNotFinite {
        /// The value given.
        value: f32,
    },
    /// A vote weight is outside (0, `vote_weight_max`].
    #[error("vote weight {value} is outside (0, {max}]")]
    WeightOutOfRange {
        /// The value given.
        value: f32,
        /// The configured maximum.
        max: f32,
    },
    /// A trust factor is NaN or infinite.
    #[error("trust factor {value} is not a finite number")]
    TrustFactorNotFinite {
        /// The value given.
        value: f32,
    },
    /// A trust factor is outside 0..=[`TRUST_FACTOR_MAX`] (negative zero included, so equal
    /// bodies hash equal).
    #[error("trust factor {value} is outside [0, {max}]")]
    TrustFactorOutOfRange {
        /// The value given.
        value: f32,
        /// The largest trust factor.
        max: f32,
    },
    /// A timestamp lies further in the future than the allowed clock skew.
    #[error(
        "timestamp_ms {timestamp_ms} is {ahead_ms} ms ahead of now ({now_ms}); at most {skew_ms_max} ms is allowed"
    )]
    TimestampInFuture {
        /// The timestamp given.
        timestamp_ms: u64,
        /// The validator's clock.
        now_ms: u64,
        /// How far ahead it is.
        ahead_ms: u64,
        /// The allowed skew.
        skew_ms_max: u64,
    },
    /// An assertion carries no signature.
    #[error("assertion has no signature; at least 1 is required")]
    NoSignatures,
    /// An assertion carries more signatures than allowed.
    #[error("assertion has {count} signatures; the limit is {max}")]
    TooManySignatures {
        /// Signatures given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The same agent signed an assertion twice.
    #[error("agent {agent} signed the assertion more than once")]
    DuplicateSigner {
        /// The agent.
        agent: AgentId,
    },
    /// A signature does not verify against the record's content hash.
    #[error("signature of agent {agent} does not verify for record {content_hash}")]
    BadSignature {
        /// The claimed signer.
        agent: AgentId,
        /// The content hash the signature should cover.
        content_hash: Hash,
    },
    /// The encoded record is larger than allowed.
    #[error("record is {len_bytes} bytes encoded; the limit is {max_bytes} bytes")]
    RecordTooLarge {
        /// Encoded length.
        len_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
}

/// Checks the values of `record` that reach the tallies and the lenses, as every build must
/// whatever checked the record before: an assertion's confidence (finite, in 0..=1) and
/// floating-point object (finite), a vote's weight (finite, positive), a trust change's factor
/// (finite, in 0..=[`TRUST_FACTOR_MAX`]). It needs no limits and no clock, so every node
/// decides alike; the ingest refuses a record that fails it rather than count it.
pub fn check_values(record: &LogRecord) -> Result<(), ValidationError> {
    match record {
        LogRecord::Assertion(assertion) => {
            if let ObjectValue::Float(value) = assertion.object
                && !value.is_finite()
            {
                return Err(ValidationError::FloatNotFinite { value });
            }
            check_confidence(assertion.confidence)
        }
        LogRecord::Vote(vote) => {
            let weight = vote.weight;
            if !weight.is_finite() {
                return Err(ValidationError::WeightNotFinite { value: weight });
            }
            if weight > 0.0 {
                Ok(())
            } else {
                Err(ValidationError::WeightOutOfRange {
                    value: weight,
                    max: f32::MAX,
                })
            }
        }
        LogRecord::Trust(change) => check_factor(change.factor),
    }
}

fn check_confidence(confidence: f32) -> Result<(), ValidationError> {
    if !confidence.is_finite() {
        return Err(ValidationError::ConfidenceNotFinite { value: confidence });
    }
    if !(0.0..=1.0).contains(&confidence) || confidence.is_sign_negative() {
        return Err(ValidationError::ConfidenceOutOfRange { value: confidence });
    }
    Ok(())
}

fn check_factor(factor: f32) -> Result<(), ValidationError> {
    if !factor.is_finite() {
        return Err(ValidationError::TrustFactorNotFinite { value: factor });
    }
    if !(0.0..=TRUST_FACTOR_MAX).contains(&factor) || factor.is_sign_negative() {
        return Err(ValidationError::TrustFactorOutOfRange {
            value: factor,
            max: TRUST_FACTOR_MAX,
        });
    }
    Ok(())
}

/// Checks everything about `assertion` but its signatures' validity; returns its content hash.
///
/// `now_ms` is the validator's clock, in milliseconds since the Unix epoch.
pub fn check_assertion_shape(
    assertion: &Assertion,
    limits: &Limits,
    now_ms: u64,
) -> Result<Hash, ValidationError> {
    check_name(TextField::Subject, &assertion.subject, limits.subject_bytes_max)?;
    check_name(
        TextField::Predicate,
        &assertion.predicate,
        limits.predicate_bytes_max,
    )?;
    match &assertion.object {
        ObjectValue::Text(text) => check_len(TextField::ObjectText, text, limits.object_text_bytes_max)?,
        ObjectValue::Ref(subject) => check_name(TextField::ObjectRef, subject, limits.subject_bytes_max)?,
        ObjectValue::Float(value) if !value.is_finite() => {
            return Err(ValidationError::FloatNotFinite { value: *value });
        }
        ObjectValue::Float(_) | ObjectValue::Integer(_) | ObjectValue::Bool(_) => {}
    }
    check_confidence(assertion.confidence)?;
    check_timestamp(assertion.timestamp_ms, limits, now_ms)?;
    let count = assertion.signatures.len();
    if count == 0 {
        return Err(ValidationError::NoSignatures);
    }
    if count > limits.signatures_max {
        return Err(ValidationError::TooManySignatures {
            count,
            max: limits.signatures_max,
        });
    }
    let mut signers = HashSet::with_capacity(count);
    for signature in &assertion.signatures {
        if !signers.insert(signature.agent) {
            return Err(ValidationError::DuplicateSigner {
                agent: signature.agent,
            });
        }
    }
    check_record_len(assertion.to_record_bytes().len(), limits)?;
    Ok(assertion.content_hash())
}

/// Checks everything about `vote` but its signature's validity; returns its content hash.
pub fn check_vote_shape(vote: &Vote, limits: &Limits, now_ms: u64) -> Result<Hash, ValidationError> {
    let weight = vote.weight;
    if !weight.is_finite() {
        return Err(ValidationError::WeightNotFinite { value: weight });
    }
    if !(weight > 0.0 && weight <= limits.vote_weight_max) {
        return Err(ValidationError::WeightOutOfRange {
            value: weight,
            max: limits.vote_weight_max,
        });
    }
    check_timestamp(vote.timestamp_ms, limits, now_ms)?;
    check_record_len(vote.to_record_bytes().len(), limits)?;
    Ok(vote.content_hash())
}

/// Checks everything about `change` but its signature's validity; returns its content hash.
///
/// Whether its signer is an administrator is the node's configuration, checked at submission.
pub fn check_trust_shape(
    change: &TrustChange,
    limits: &Limits,
    now_ms: u64,
) -> Result<Hash, ValidationError> {
    check_factor(change.factor)?;
    check_timestamp(change.timestamp_ms, limits, now_ms)?;
    check_record_len(change.to_record_bytes().len(), limits)?;
    Ok(change.content_hash())
}

/// Fully validates one assertion, signatures included; returns its content hash.
pub fn validate_assertion(
    assertion: &Assertion,
    limits: &Limits,
    now_ms: u64,
) -> Result<Hash, ValidationError> {
    let hash = check_assertion_shape(assertion, limits, now_ms)?;
    for signature in &assertion.signatures {
        if !signing::verify(
            &signature.agent,
            RecordKind::Assertion,
            &hash,
            &signature.signature,
        ) {
            return Err(ValidationError::BadSignature {
                agent: signature.agent,
                content_hash: hash,
            });
        }
    }
    Ok(hash)
}

/// Fully validates one vote, signature included; returns its content hash.
pub fn validate_vote(vote: &Vote, limits: &Limits, now_ms: u64) -> Result<Hash, ValidationError> {
    let hash = check_vote_shape(vote, limits, now_ms)?;
    if signing::verify(&vote.voter, RecordKind::Vote, &hash, &vote.signature) {
        Ok(hash)
    } else {
        Err(ValidationError::BadSignature {
            agent: vote.voter,
            content_hash: hash,
        })
    }
}

/// Fully validates one trust change, signature included; returns its content hash.
pub fn validate_trust(change: &TrustChange, limits: &Limits, now_ms: u64) -> Result<Hash, ValidationError> {
    let hash = check_trust_shape(change, limits, now_ms)?;
    if signing::verify(&change.admin, RecordKind::Trust, &hash, &change.signature) {
        Ok(hash)
    } else {
        Err(ValidationError::BadSignature {
            agent: change.admin,
            content_hash: hash,
        })
    }
}

/// Validates many assertions, verifying all their signatures in one batch; returns one result
/// per assertion, in order. A bad record does not affect the verdict on the others.
pub fn validate_assertions(
    assertions: &[Assertion],
    limits: &Limits,
    now_ms: u64,
) -> Vec<Result<Hash, ValidationError>> {
    let records: Vec<RecordRef<'_>> = assertions.iter().map(RecordRef::Assertion).collect();
    validate_batch(&records, limits, now_ms)
}

/// Validates many journal records (assertions, votes, trust changes), verifying every signature in one
/// batch; returns one result per record, in order.
pub fn validate_records(
    records: &[LogRecord],
    limits: &Limits,
    now_ms: u64,
) -> Vec<Result<Hash, ValidationError>> {
    let records: Vec<RecordRef<'_>> = records
        .iter()
        .map(|record| match record {
            LogRecord::Assertion(assertion) => RecordRef::Assertion(assertion),
            LogRecord::Vote(vote) => RecordRef::Vote(vote),
            LogRecord::Trust(change) => RecordRef::Trust(change),
        })
        .collect();
    validate_batch(&records, limits, now_ms)
}

/// A record to validate, borrowed.
#[derive(Clone, Copy)]
enum RecordRef<'a> {
    Assertion(&'a Assertion),
    Vote(&'a Vote),
    Trust(&'a TrustChange),
}

impl<'a> RecordRef<'a> {
    fn check_shape(self, limits: &Limits, now_ms: u64) -> Result<Hash, ValidationError> {
        match self {
            Self::Assertion(a) => check_assertion_shape(a, limits, now_ms),
            Self::Vote(v) => check_vote_shape(v, limits, now_ms),
            Self::Trust(t) => check_trust_shape(t, limits, now_ms),
        }
    }

    /// Pushes a check of every signature the record carries, over `hash`.
    fn signature_checks(self, hash: &'a Hash, checks: &mut Vec<SignatureCheck<'a>>) {
        let check = |agent, kind, signature| SignatureCheck {
            agent,
            kind,
            content_hash: hash,
            signature,
        };
        match self {
            Self::Assertion(assertion) => checks.extend(
                assertion
                    .signatures
                    .iter()
                    .map(|s| check(&s.agent, RecordKind::Assertion, &s.signature)),
            ),
            Self::Vote(vote) => checks.push(check(&vote.voter, RecordKind::Vote, &vote.signature)),
            Self::Trust(change) => checks.push(check(&change.admin, RecordKind::Trust, &change.signature)),
        }
    }
}

fn validate_batch(
    records: &[RecordRef<'_>],
    limits: &Limits,
    now_ms: u64,
) -> Vec<Result<Hash, ValidationError>> {
    let shapes: Vec<Result<Hash, ValidationError>> = records
        .iter()
        .map(|record| record.check_shape(limits, now_ms))
        .collect();
    // (index of the record, check) for every signature of every well-shaped record.
    let mut owners = Vec::new();
    let mut checks = Vec::new();
    for (index, (record, shape)) in records.iter().zip(&shapes).enumerate() {
        let Ok(hash) = shape else { continue };
        let before = checks.len();
        record.signature_checks(hash, &mut checks);
        owners.resize(owners.len() + checks.len() - before, index);
    }
    let verdicts = signing::verify_batch(&checks);
    let mut results = shapes.clone();
    for ((index, check), valid) in owners.into_iter().zip(&checks).zip(verdicts) {
        if !valid && results[index].is_ok() {
            results[index] = Err(ValidationError::BadSignature {
                agent: *check.agent,
                content_hash: *check.content_hash,
            });
        }
    }
    results
}

fn check_len(field: TextField, text: &str, max_bytes: usize) -> Result<(), ValidationError> {
    if text.is_empty() && field != TextField::ObjectText {
        return Err(ValidationError::Empty { field });
    }
    if text.len() > max_bytes {
        return Err(ValidationError::TooLong {
            field,
            len_bytes: text.len(),
            max_bytes,
        });
    }
    Ok(())
}

fn check_name(field: TextField, text: &str, max_bytes: usize) -> Result<(), ValidationError> {
    check_len(field, text, max_bytes)?;
    match text.char_indices().find(|(_, c)| c.is_control()) {
        Some((byte_offset, c)) => Err(ValidationError::ControlCharacter {
            field,
            byte_offset,
            code_point: u32::from(c),
        }),
        None => Ok(()),
    }
}

fn check_timestamp(timestamp_ms: u64, limits: &Limits, now_ms: u64) -> Result<(), ValidationError> {
    let ahead_ms = timestamp_ms.saturating_sub(now_ms);
    if ahead_ms > limits.clock_skew_ms_max {
        return Err(ValidationError::TimestampInFuture {
            timestamp_ms,
            now_ms,
            ahead_ms,
            skew_ms_max: limits.clock_skew_ms_max,
        });
    }
    Ok(())
}

fn check_record_len(len_bytes: usize, limits: &Limits) -> Result<(), ValidationError> {
    if len_bytes > limits.record_bytes_max {
        return Err(ValidationError::RecordTooLarge {
            len_bytes,
            max_bytes: limits.record_bytes_max,
        });
    }
    Ok(())
}
