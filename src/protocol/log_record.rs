//! [`LogRecord`]: what one journal record holds — a tagged, canonical protocol record.
//!
//! ```text
//! [tag: u8][canonical MessagePack of the signed record]
//! tag 1: assertion
//! tag 2: vote
//! tag 3: trust change
//! ```
//!
//! The tag comes first so that a reader knows the type before decoding; new kinds take new
//! tags, and an unknown tag is a typed error, never a guess.

use super::assertion::Assertion;
use super::error::CodecError;
use super::trust::TrustChange;
use super::vote::Vote;

/// Tag of an assertion record.
pub(crate) const TAG_ASSERTION: u8 = 1;
/// Tag of a vote record.
const TAG_VOTE: u8 = 2;
/// Tag of a trust-change record.
const TAG_TRUST: u8 = 3;

/// Bytes the tag adds to a record's body in the journal: a journal must admit payloads of
/// `limits.record_bytes_max + TAG_BYTES` for every valid record to fit.
pub const TAG_BYTES: usize = size_of::<u8>();

/// One record of the journal.
#[derive(Debug, Clone, PartialEq)]
pub enum LogRecord {
    /// A signed assertion.
    Assertion(Assertion),
    /// A signed vote.
    Vote(Vote),
    /// An administrator's signed trust change.
    Trust(TrustChange),
}

impl LogRecord {
    /// Returns the journal payload: the tag, then the canonical record bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Assertion(assertion) => encode_assertion(assertion),
            Self::Vote(vote) => encode_tagged(TAG_VOTE, &vote.to_record_bytes()),
            Self::Trust(change) => encode_tagged(TAG_TRUST, &change.to_record_bytes()),
        }
    }

    /// Decodes a journal payload written by [`encode`](Self::encode); strict and canonical.
    pub fn decode(payload: &[u8]) -> Result<Self, CodecError> {
        let (&tag, body) = payload.split_first().ok_or(CodecError::EmptyLogRecord)?;
        match tag {
            TAG_ASSERTION => Ok(Self::Assertion(Assertion::from_record_bytes(body)?)),
            TAG_VOTE => Ok(Self::Vote(Vote::from_record_bytes(body)?)),
            TAG_TRUST => Ok(Self::Trust(TrustChange::from_record_bytes(body)?)),
            _ => Err(CodecError::UnknownLogRecordTag { tag }),
        }
    }
}

impl LogRecord {
    /// Returns the record's content hash.
    pub fn content_hash(&self) -> super::hash::Hash {
        match self {
            Self::Assertion(assertion) => assertion.content_hash(),
            Self::Vote(vote) => vote.content_hash(),
            Self::Trust(change) => change.content_hash(),
        }
    }
}

/// Encodes an assertion as a journal payload without cloning it.
pub fn encode_assertion(assertion: &Assertion) -> Vec<u8> {
    encode_tagged(TAG_ASSERTION, &assertion.to_record_bytes())
}

fn encode_tagged(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + body.len());
    out.push(tag);
    out.extend_from_slice(body);
    out
}
