//! [`TrustChange`]: an administrator's signed setting of an agent's trust factor.
//!
//! A trust change is a journaled record like an assertion or a vote, so the state is always a
//! replay of the journal. Validation checks the factor, the timestamp and the signature; who
//! counts as an administrator is the node's configuration (`votes.admins`), checked when the
//! change is submitted.

use serde::{Deserialize, Serialize};

use super::agent::{AgentId, AgentKey, Signature};
use super::codec;
use super::error::CodecError;
use super::hash::Hash;
use super::signing::{self, RecordKind};

/// Largest trust factor: trust scales vote weights, and a bound keeps one agent's influence
/// finite and the consensus arithmetic far from overflow.
pub const TRUST_FACTOR_MAX: f32 = 1000.0;

/// An administrator's setting of one agent's trust factor.
///
/// The applied trust of an agent is that of its greatest change by (timestamp, content hash),
/// so the outcome does not depend on the order changes arrive in. The signature covers the
/// whole body, the administrator included, so a change cannot be re-attributed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TrustChange {
    /// The agent whose trust factor is set.
    pub agent: AgentId,
    /// The new trust factor, finite in 0..=[`TRUST_FACTOR_MAX`].
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1000.0))]
    pub factor: f32,
    /// When the change was made, in milliseconds since the Unix epoch; orders an agent's
    /// changes.
    pub timestamp_ms: u64,
    /// The administrator who makes the change; also the signer.
    pub admin: AgentId,
    /// The administrator's signature over the change's content hash.
    pub signature: Signature,
}

/// The unsigned body, borrowed, in canonical order. Keep in step with [`TrustChange`].
#[derive(Serialize)]
struct TrustBody<'a> {
    agent: &'a AgentId,
    factor: f32,
    timestamp_ms: u64,
    admin: &'a AgentId,
}

impl TrustChange {
    /// Builds and signs a change of `agent`'s trust factor by `key`'s agent (the administrator).
    pub fn sign(key: &AgentKey, agent: AgentId, factor: f32, timestamp_ms: u64) -> Self {
        let admin = key.agent_id();
        let body = TrustBody {
            agent: &agent,
            factor,
            timestamp_ms,
            admin: &admin,
        };
        let hash = Hash::of(&codec::to_canonical(&body));
        let signature = signing::sign(key, RecordKind::Trust, &hash);
        Self {
            agent,
            factor,
            timestamp_ms,
            admin,
            signature,
        }
    }

    /// Returns the canonical MessagePack encoding of the unsigned body.
    pub fn canonical_body(&self) -> Vec<u8> {
        codec::to_canonical(&TrustBody {
            agent: &self.agent,
            factor: self.factor,
            timestamp_ms: self.timestamp_ms,
            admin: &self.admin,
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

    /// Returns the JSON form.
    pub fn to_json(&self) -> Result<String, CodecError> {
        codec::to_json(self)
    }

    /// Parses the JSON form; does not validate limits, the signature or the administrator.
    pub fn from_json(text: &str) -> Result<Self, CodecError> {
        codec::from_json(text)
    }
}
