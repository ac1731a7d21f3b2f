//! Agents and their keys: [`AgentId`] (an Ed25519 public key), [`AgentKey`] (the secret half)
//! and [`Signature`].
//!
//! Invariant: an `AgentId` always holds a point that decompresses and is not of small order,
//! so a "weak" key that would verify signatures on any message can never be constructed, from
//! the wire or otherwise.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::ParseError;
use super::fixed;

/// Length of an [`AgentId`] (an Ed25519 public key) in bytes.
pub const AGENT_ID_LEN: usize = 32;
/// Length of a [`Signature`] in bytes.
pub const SIGNATURE_LEN: usize = 64;
/// Length of an agent's secret key seed in bytes.
pub const SECRET_KEY_LEN: usize = 32;

/// An agent's identity: its Ed25519 verifying (public) key, kept compressed (32 bytes).
///
/// Displays and parses as 64 lowercase hex digits; equality and order are by the key bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId([u8; AGENT_ID_LEN]);

impl AgentId {
    /// Parses a public key from its 32 bytes.
    ///
    /// Returns an error if the bytes are not a point on the curve or are a small-order
    /// ("weak") point, for which signatures prove nothing.
    pub fn from_bytes(bytes: &[u8; AGENT_ID_LEN]) -> Result<Self, ParseError> {
        super::key_cache::checked_key(bytes).map_err(|reason| ParseError::InvalidAgentKey {
            hex: hex::encode(bytes),
            reason,
        })?;
        Ok(Self(*bytes))
    }

    /// An id read back from the state, which stores only ids that [`from_bytes`](Self::from_bytes)
    /// checked, so it is not checked again (the check decompresses a curve point). Should the
    /// stored bytes be damaged, [`verifying_key`](Self::verifying_key) answers `None` and
    /// verification fails; reads that only compare or look up ids are unaffected.
    pub(crate) const fn from_stored_bytes(bytes: [u8; AGENT_ID_LEN]) -> Self {
        Self(bytes)
    }

    /// Returns the 32 public key bytes.
    pub const fn as_bytes(&self) -> &[u8; AGENT_ID_LEN] {
        &self.0
    }

    /// Returns the ed25519-dalek key, for verification; `None` is impossible for a key built
    /// by [`from_bytes`](Self::from_bytes) or [`AgentKey::agent_id`], and verifiers treat it as
    /// a failed verification.
    pub(crate) fn verifying_key(&self) -> Option<VerifyingKey> {
        super::key_cache::checked_key(&self.0).ok()
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_bytes()))
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentId({self})")
    }
}

impl FromStr for AgentId {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_bytes(&fixed::parse_hex(text, "agent id")?)
    }
}

impl Serialize for AgentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fixed::serialize(self.as_bytes(), serializer)
    }
}

impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = fixed::deserialize(deserializer, "agent id")?;
        Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// A 64-byte Ed25519 signature, kept as bytes; it is checked only when verified.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl Signature {
    /// Wraps raw signature bytes.
    pub const fn from_bytes(bytes: [u8; SIGNATURE_LEN]) -> Self {
        Self(bytes)
    }

    /// Returns the signature bytes.
    pub const fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }

    pub(crate) fn to_dalek(self) -> ed25519_dalek::Signature {
        ed25519_dalek::Signature::from_bytes(&self.0)
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl FromStr for Signature {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        fixed::parse_hex(text, "signature").map(Self)
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fixed::serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        fixed::deserialize(deserializer, "signature").map(Self)
    }
}

/// One signer's signature over an assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentSignature {
    /// Who signed.
    pub agent: AgentId,
    /// The signature over [`signing_message`](super::signing_message) of the assertion.
    pub signature: Signature,
}

/// An agent's secret signing key.
///
/// The secret is zeroized when dropped; `Debug` shows only the public half.
#[derive(Clone)]
pub struct AgentKey(SigningKey);

impl AgentKey {
    /// Builds a key from its 32-byte secret seed (deterministic: the same seed, the same key).
    pub fn from_secret_bytes(secret: &[u8; SECRET_KEY_LEN]) -> Self {
        Self(SigningKey::from_bytes(secret))
    }

    /// Generates a fresh key from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut secret = [0u8; SECRET_KEY_LEN];
        getrandom::fill(&mut secret)?;
        let key = Self::from_secret_bytes(&secret);
        secret.fill(0);
        Ok(key)
    }

    /// Returns the 32-byte secret seed. Handle with care.
    pub fn secret_bytes(&self) -> [u8; SECRET_KEY_LEN] {
        self.0.to_bytes()
    }

    /// Returns the public identity of this key.
    pub fn agent_id(&self) -> AgentId {
        // The public key of a secret is a valid point; a small-order result is impossible
        // because it is a multiple of the prime-order basepoint by a clamped nonzero scalar.
        AgentId(self.0.verifying_key().to_bytes())
    }

    /// Signs an arbitrary message; callers pass a domain-separated signing message.
    pub(crate) fn sign_message(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgentKey(agent={})", self.agent_id())
    }
}
