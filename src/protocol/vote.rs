//! [`Vote`]: an agent's signed, weighted endorsement of an assertion.

use serde::{Deserialize, Serialize};

use super::agent::{AgentId, AgentKey, Signature};
use super::codec;
use super::error::CodecError;
use super::hash::Hash;
use super::signing::{self, RecordKind};

/// A voter's weighted endorsement of one assertion.
///
/// One vote is live per (voter, assertion): a newer vote replaces an older one. The signature
/// covers the whole body, the voter included, so a vote cannot be re-attributed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Vote {
    /// Content hash of the assertion voted for.
    pub assertion: Hash,
    /// Who votes; also the signer.
    pub voter: AgentId,
    /// How much the vote counts, in (0, `vote_weight_max`] (100 by default). As a 32-bit
    /// float: the document's minimum is the least positive normal `f32`, since a smaller
    /// number rounds to 0.
    #[cfg_attr(feature = "openapi", schema(minimum = 1.175_494_4e-38, maximum = 100.0))]
    pub weight: f32,
    /// When the vote was cast, in milliseconds since the Unix epoch; orders a voter's votes.
    pub timestamp_ms: u64,
    /// The voter's signature over the vote's content hash.
    pub signature: Signature,
}

/// The unsigned body, borrowed, in canonical order. Keep in step with [`Vote`].
#[derive(Serialize)]
struct VoteBody<'a> {
    assertion: &'a Hash,
    voter: &'a AgentId,
    weight: f32,
    timestamp_ms: u64,
}

impl Vote {
    /// Builds and signs a vote by `key`'s agent.
    pub fn sign(key: &AgentKey, assertion: Hash, weight: f32, timestamp_ms: u64) -> Self {
        let voter = key.agent_id();
        let body = VoteBody {
            assertion: &assertion,
            voter: &voter,
            weight,
            timestamp_ms,
        };
        let signature = signing::sign(key, RecordKind::Vote, &Hash::of(&codec::to_canonical(&body)));
        Self {
            assertion,
            voter,
            weight,
            timestamp_ms,
            signature,
        }
    }

    /// Returns the canonical MessagePack encoding of the unsigned body.
    pub fn canonical_body(&self) -> Vec<u8> {
        codec::to_canonical(&VoteBody {
            assertion: &self.assertion,
            voter: &self.voter,
            weight: self.weight,
            timestamp_ms: self.timestamp_ms,
        })
    }

    /// Returns the content address: blake3 of [`canonical_body`](Self::canonical_body).
    pub fn content_hash(&self) -> Hash {
        Hash::of(&self.canonical_body())
    }

    /// Returns the canonical MessagePack encoding of the whole signed record.
    pub fn to_record_bytes(&self) -> Vec<u8> {
        codec::to_canonical(self)
    }

    /// Decodes a record written by [`to_record_bytes`](Self::to_record_bytes).
    ///
    /// Refuses malformed and non-canonical bytes; does not validate limits or the signature.
    pub fn from_record_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::from_canonical(bytes)
    }

    /// Decodes a record read back from the state, which stores only records it decoded
    /// canonically: the canonical re-encoding check is skipped. Malformed bytes are still an
    /// error.
    pub(crate) fn from_stored_record_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }

    /// Returns the JSON form.
    pub fn to_json(&self) -> Result<String, CodecError> {
        codec::to_json(self)
    }

    /// Parses the JSON form; does not validate limits or the signature.
    pub fn from_json(text: &str) -> Result<Self, CodecError> {
        codec::from_json(text)
    }
}
