//! [`LogRecord`]: what one journal record holds — a tagged, canonical protocol record.
//!
//! ```text
//! [tag: u8][canonical MessagePack of the signed record]
//! tag 1: assertion
//! tag 2: vote
//! tag 3: trust change
//! ```
//!
//! The tag comes first so that a reader knows the type before decoding; an unknown tag is a
//! typed error, never a guess.
//!
//! **New record kinds.** Tags 4 to 127 are never used: a record with one is garbage to every
//! build. A kind a newer build adds takes a tag from 128 up (an *extension* tag) and comes in
//! one envelope that every build can check without knowing the kind:
//!
//! ```text
//! [tag: u8 >= 128][signer: 32-byte agent id][signature: 64 bytes][body: the kind's bytes]
//! signature: Ed25519 by signer over "stemedb/v1/extension" NUL blake3(tag || body)
//! ```
//!
//! Only an administrator may sign an extension record. A build that meets an extension record
//! it does not know, correctly signed by one of its administrators, stops ingesting before it
//! and reports why ("upgrade needed"): the record is genuine, and a newer build applies it. Any
//! other unknown record — a tag from 4 to 127, a bad envelope or signature, a signer who is not
//! an administrator — is rejected by reason on a log that others can write, so no anonymous
//! publisher can stop a cluster. See [`Extension`].

use super::agent::{AGENT_ID_LEN, AgentId, AgentKey, SIGNATURE_LEN, Signature};
use super::assertion::Assertion;
use super::error::CodecError;
use super::hash::Hash;
use super::signing::{self, RecordKind};
use super::trust::TrustChange;
use super::vote::Vote;

/// Tag of an assertion record.
pub(crate) const TAG_ASSERTION: u8 = 1;
/// Tag of a vote record.
pub(crate) const TAG_VOTE: u8 = 2;
/// Tag of a trust-change record.
pub(crate) const TAG_TRUST: u8 = 3;

/// The first extension tag: see the module docs.
pub const EXTENSION_TAG_MIN: u8 = 128;

/// An extension record's envelope, parsed (borrowing its payload); see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extension<'a> {
    /// The record's tag (128 or more).
    pub tag: u8,
    /// The administrator who signed it.
    pub signer: AgentId,
    /// The signature.
    pub signature: Signature,
    /// The kind's own bytes, unread by builds that do not know the kind.
    pub body: &'a [u8],
}

impl<'a> Extension<'a> {
    /// Parses `payload` as an extension envelope; `None` if its tag is below
    /// [`EXTENSION_TAG_MIN`], it is too short, or its signer is not a valid agent id.
    pub fn parse(payload: &'a [u8]) -> Option<Self> {
        let (&tag, rest) = payload.split_first()?;
        if tag < EXTENSION_TAG_MIN {
            return None;
        }
        let (signer, rest) = rest.split_first_chunk::<AGENT_ID_LEN>()?;
        let (signature, body) = rest.split_first_chunk::<SIGNATURE_LEN>()?;
        Some(Self {
            tag,
            signer: AgentId::from_bytes(signer).ok()?,
            signature: Signature::from_bytes(*signature),
            body,
        })
    }

    /// Returns the hash the signature covers: blake3 of the tag and the body.
    pub fn content_hash(&self) -> Hash {
        extension_hash(self.tag, self.body)
    }

    /// Returns true if and only if the signer's signature over the record is valid.
    pub fn verify(&self) -> bool {
        signing::verify(
            &self.signer,
            RecordKind::Extension,
            &self.content_hash(),
            &self.signature,
        )
    }

    /// Encodes an extension record of kind `tag` (128 or more) with `body`, signed by `key`.
    ///
    /// # Panics
    /// If `tag` is below [`EXTENSION_TAG_MIN`].
    pub fn encode(tag: u8, body: &[u8], key: &AgentKey) -> Vec<u8> {
        assert!(
            tag >= EXTENSION_TAG_MIN,
            "extension tags start at {EXTENSION_TAG_MIN}"
        );
        let signature = signing::sign(key, RecordKind::Extension, &extension_hash(tag, body));
        let mut out = Vec::with_capacity(1 + AGENT_ID_LEN + SIGNATURE_LEN + body.len());
        out.push(tag);
        out.extend_from_slice(key.agent_id().as_bytes());
        out.extend_from_slice(signature.as_bytes());
        out.extend_from_slice(body);
        out
    }
}

/// blake3 of an extension record's tag and body: what its signature covers.
fn extension_hash(tag: u8, body: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[tag]);
    hasher.update(body);
    Hash::from_bytes(*hasher.finalize().as_bytes())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extension_envelope_round_trips_verifies_and_refuses_tampering_and_short_or_low_tags() {
        let key = AgentKey::from_secret_bytes(&[7; 32]);
        let payload = Extension::encode(200, b"body", &key);
        let parsed = Extension::parse(&payload).expect("parses");
        assert_eq!(
            (parsed.tag, parsed.signer, parsed.body),
            (200, key.agent_id(), &b"body"[..])
        );
        assert!(parsed.verify());
        // The tag is signed: the same bytes under another extension tag do not verify.
        let mut retagged = payload.clone();
        retagged[0] = 201;
        assert!(!Extension::parse(&retagged).unwrap().verify());
        let mut tampered = payload.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(!Extension::parse(&tampered).unwrap().verify());
        // Below the extension range, or too short for an envelope: not an extension.
        let mut low = payload.clone();
        low[0] = EXTENSION_TAG_MIN - 1;
        assert_eq!(Extension::parse(&low), None);
        for len in 0..1 + AGENT_ID_LEN + SIGNATURE_LEN {
            assert_eq!(Extension::parse(&payload[..len]), None, "{len} bytes");
        }
        // An envelope with an empty body is still one.
        assert!(
            Extension::parse(&Extension::encode(128, b"", &key))
                .unwrap()
                .verify()
        );
    }
}
