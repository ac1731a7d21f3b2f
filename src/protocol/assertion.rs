//! [`Assertion`]: a signed, immutable, content-addressed claim
//! "subject · predicate · object, with confidence".

use serde::{Deserialize, Serialize};

use super::agent::{AgentKey, AgentSignature};
use super::codec;
use super::error::CodecError;
use super::hash::Hash;
use super::object::{Lifecycle, ObjectValue};
use super::signing::{self, RecordKind};

/// A claim by one or more agents. Immutable once signed: any change to a body field changes
/// its [`content_hash`](Self::content_hash) and so invalidates every signature.
///
/// JSON form: an object with exactly these fields (`parent` may be omitted or `null`); hashes,
/// keys and signatures as hex. Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    /// What the claim is about; 1 to `subject_bytes_max` bytes, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")
    )]
    pub subject: String,
    /// Which property of the subject; 1 to `predicate_bytes_max` bytes, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$")
    )]
    pub predicate: String,
    /// The claimed value.
    pub object: ObjectValue,
    /// How sure the authors are, in [0, 1].
    #[cfg_attr(feature = "openapi", schema(minimum = 0.0, maximum = 1.0))]
    pub confidence: f32,
    /// When the claim was made, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Where the claim stands in its life.
    pub lifecycle: Lifecycle,
    /// The assertion this one supersedes, if any.
    #[serde(default)]
    pub parent: Option<Hash>,
    /// The authors' signatures over the content hash; 1 to `signatures_max`, one per agent.
    pub signatures: Vec<AgentSignature>,
}

/// The unsigned body, borrowed: the fields a content hash and a signature cover, in canonical
/// order. Keep in step with [`Assertion`]: a new body field must be added here too.
#[derive(Serialize)]
struct AssertionBody<'a> {
    subject: &'a str,
    predicate: &'a str,
    object: &'a ObjectValue,
    confidence: f32,
    timestamp_ms: u64,
    lifecycle: Lifecycle,
    parent: &'a Option<Hash>,
}

impl Assertion {
    /// Starts an unsigned, `Active` assertion without parent; sign it with
    /// [`sign`](Self::sign) before submitting it.
    pub fn new(
        subject: impl Into<String>,
        predicate: impl Into<String>,
        object: ObjectValue,
        confidence: f32,
        timestamp_ms: u64,
    ) -> Self {
        Self {
            subject: subject.into(),
            predicate: predicate.into(),
            object,
            confidence,
            timestamp_ms,
            lifecycle: Lifecycle::Active,
            parent: None,
            signatures: Vec::new(),
        }
    }

    /// Returns the canonical MessagePack encoding of the unsigned body.
    pub fn canonical_body(&self) -> Vec<u8> {
        codec::to_canonical(&AssertionBody {
            subject: &self.subject,
            predicate: &self.predicate,
            object: &self.object,
            confidence: self.confidence,
            timestamp_ms: self.timestamp_ms,
            lifecycle: self.lifecycle,
            parent: &self.parent,
        })
    }

    /// Returns the content address: blake3 of [`canonical_body`](Self::canonical_body).
    pub fn content_hash(&self) -> Hash {
        Hash::of(&self.canonical_body())
    }

    /// Adds `key`'s signature over the current body (co-signing keeps earlier signatures).
    ///
    /// Signing again with a key that already signed replaces its signature.
    pub fn sign(&mut self, key: &AgentKey) -> &mut Self {
        let agent = key.agent_id();
        let signature = signing::sign(key, RecordKind::Assertion, &self.content_hash());
        self.signatures.retain(|s| s.agent != agent);
        self.signatures.push(AgentSignature { agent, signature });
        self
    }

    /// Returns the canonical MessagePack encoding of the whole signed record.
    pub fn to_record_bytes(&self) -> Vec<u8> {
        codec::to_canonical(self)
    }

    /// Decodes a record written by [`to_record_bytes`](Self::to_record_bytes).
    ///
    /// Refuses malformed and non-canonical bytes; does not validate limits or signatures.
    pub fn from_record_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::from_canonical(bytes)
    }

    /// Returns the JSON form.
    pub fn to_json(&self) -> Result<String, CodecError> {
        codec::to_json(self)
    }

    /// Parses the JSON form; does not validate limits or signatures.
    pub fn from_json(text: &str) -> Result<Self, CodecError> {
        codec::from_json(text)
    }
}
