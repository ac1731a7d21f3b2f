//! Errors of the protocol layer: parsing text forms and decoding wire forms.
//!
//! Validation failures have their own type, [`ValidationError`](super::ValidationError), since
//! they carry which field broke which limit.

use thiserror::Error;

/// A text form (hex hash, hex key, hex signature) that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The text has the wrong number of hex digits.
    #[error("{what}: expected {expected} hex digits, got {actual}")]
    HexLength {
        /// What was being parsed, e.g. "hash".
        what: &'static str,
        /// Digits required.
        expected: usize,
        /// Digits given.
        actual: usize,
    },
    /// The text is not hex.
    #[error("{what}: not valid hex: {reason}")]
    Hex {
        /// What was being parsed.
        what: &'static str,
        /// What the hex decoder said.
        reason: String,
    },
    /// The 32 bytes are not a usable Ed25519 public key.
    #[error("agent id {hex} is not a valid Ed25519 public key: {reason}")]
    InvalidAgentKey {
        /// The key as given.
        hex: String,
        /// Why it was refused.
        reason: &'static str,
    },
}

/// A wire form (MessagePack or JSON) that could not be encoded or decoded.
#[derive(Debug, Error)]
pub enum CodecError {
    /// MessagePack decoding failed: the bytes are not a well-formed record.
    #[error("malformed MessagePack record: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    /// The bytes decode, but are not the canonical encoding of what they decode to
    /// (trailing bytes, wider integers than needed, a map where an array belongs, ...).
    #[error("MessagePack record is not in canonical form ({len} bytes; canonical form has {canonical_len})")]
    NonCanonical {
        /// Length of the input.
        len: usize,
        /// Length of the canonical encoding of the decoded value.
        canonical_len: usize,
    },
    /// MessagePack encoding failed (only possible for values serde cannot represent).
    #[error("could not encode record as MessagePack: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// A journal record with no bytes at all.
    #[error("empty log record: a journal record holds at least a tag byte")]
    EmptyLogRecord,
    /// A journal record whose tag names no known record kind.
    #[error("unknown log record tag {tag}")]
    UnknownLogRecordTag {
        /// The tag found.
        tag: u8,
    },
    /// JSON decoding failed; the message names the field and position.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
}
