//! The wire and data model: agents, hashes, assertions, votes, trust changes, their canonical
//! encoding, the signing message, and validation.
//!
//! Invariants:
//! - A content hash is blake3 of the canonical MessagePack of the unsigned body; every
//!   signature signs [`signing_message`] of that hash, so it covers every body field.
//! - Canonical decoding accepts one encoding per value (see [`Assertion::from_record_bytes`]).
//! - An [`AgentId`] is always a valid, non-weak Ed25519 public key.
//! - Nothing here panics on untrusted bytes: decoding and validation return typed errors.

mod agent;
mod assertion;
mod codec;
mod error;
mod fixed;
mod hash;
mod key_cache;
mod limits;
mod log_record;
pub mod merkle;
pub mod note;
mod object;
pub mod receipt;
#[cfg(feature = "openapi")]
mod schema;
mod signing;
pub mod smt;
mod trust;
mod validate;
mod vote;

pub use agent::{AGENT_ID_LEN, AgentId, AgentKey, AgentSignature, SECRET_KEY_LEN, SIGNATURE_LEN, Signature};
pub use assertion::Assertion;
pub use error::{CodecError, ParseError};
pub use hash::{HASH_LEN, Hash};
pub use key_cache::KEY_CACHE_ENTRIES_MAX;
pub use limits::{
    Limits, LimitsError, NAME_BYTES_CEILING, NameTooLong, OBJECT_TEXT_BYTES_CEILING, RECORD_BYTES_CEILING,
    SIGNATURES_CEILING,
};
pub use log_record::{EXTENSION_TAG_MIN, Extension, LogRecord, TAG_BYTES, encode_assertion};
pub(crate) use log_record::{TAG_ASSERTION, TAG_TRUST, TAG_VOTE};
pub use object::{Lifecycle, ObjectValue};
pub use signing::{
    RecordKind, SignatureCheck, curve25519_backend, sign, signing_message, verify, verify_batch,
};
pub use trust::{TRUST_FACTOR_MAX, TrustChange};
pub use validate::{
    TextField, ValidationError, check_assertion_shape, check_trust_shape, check_values, check_vote_shape,
    validate_assertion, validate_assertions, validate_records, validate_trust, validate_vote,
};
pub use vote::Vote;

/// Returns the current wall-clock time in milliseconds since the Unix epoch (0 if the clock
/// is set before 1970, which only makes timestamp checks stricter).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
