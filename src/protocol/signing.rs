//! The one definition of what gets signed, and signature verification (single and batch).
//!
//! A signature covers a domain-separated message: a fixed context string naming the record
//! kind and format version, a NUL, then the record's content hash. The content hash is blake3
//! of the whole canonical unsigned body, so a signature binds every field — subject,
//! predicate, object, confidence, timestamp, lifecycle, parent for assertions; assertion,
//! voter, weight and timestamp for votes; agent, factor, timestamp and administrator for
//! trust changes. The context string keeps a signature of one kind from ever being replayed
//! as a signature of another kind, or of another protocol.
//!
//! Verification is strict (`verify_strict`: small-order keys and nonces refused). Batches go
//! through ed25519-dalek's batch verifier, whose coefficients are derived from the inputs, so
//! the outcome is deterministic; when a batch fails, each signature is checked strictly to
//! name the bad ones. A batch can accept a signature that strict checking would refuse only if
//! its own signer crafted it with a torsion component; that cannot forge another agent's claim.

use super::agent::{AgentId, AgentKey, Signature};
use super::hash::{HASH_LEN, Hash};

/// The kind of record a signature is for; part of the signing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// An [`Assertion`](super::Assertion).
    Assertion,
    /// A [`Vote`](super::Vote).
    Vote,
    /// A [`TrustChange`](super::TrustChange).
    Trust,
    /// An [`Extension`](super::Extension) record: a kind a newer build adds.
    Extension,
}

impl RecordKind {
    /// The domain-separation context of this kind (format version included).
    pub const fn context(self) -> &'static [u8] {
        match self {
            Self::Assertion => b"stemedb/v1/assertion",
            Self::Vote => b"stemedb/v1/vote",
            Self::Trust => b"stemedb/v1/trust",
            Self::Extension => b"stemedb/v1/extension",
        }
    }
}

/// Returns the exact bytes an agent signs for a record of `kind` with `content_hash`.
///
/// Signer and verifier both call this function; it is the only definition of the message.
pub fn signing_message(kind: RecordKind, content_hash: &Hash) -> Vec<u8> {
    let context = kind.context();
    let mut message = Vec::with_capacity(context.len() + 1 + HASH_LEN);
    message.extend_from_slice(context);
    message.push(0);
    message.extend_from_slice(content_hash.as_bytes());
    message
}

/// Signs the record of `kind` with `content_hash`.
pub fn sign(key: &AgentKey, kind: RecordKind, content_hash: &Hash) -> Signature {
    key.sign_message(&signing_message(kind, content_hash))
}

/// Returns true if and only if `signature` is `agent`'s strict signature over the record.
pub fn verify(agent: &AgentId, kind: RecordKind, content_hash: &Hash, signature: &Signature) -> bool {
    agent.verifying_key().is_some_and(|key| {
        key.verify_strict(&signing_message(kind, content_hash), &signature.to_dalek())
            .is_ok()
    })
}

/// One signature to check in a batch.
#[derive(Debug, Clone, Copy)]
pub struct SignatureCheck<'a> {
    /// The claimed signer.
    pub agent: &'a AgentId,
    /// The record kind signed.
    pub kind: RecordKind,
    /// The record's content hash.
    pub content_hash: &'a Hash,
    /// The signature to check.
    pub signature: &'a Signature,
}

/// Returns the curve25519 arithmetic backend that signature checks run on here: `"avx512ifma"`,
/// `"avx2"` or `"serial"`.
///
/// It mirrors curve25519-dalek 5's own choice, which it does not expose: the AVX-512 IFMA
/// backend exists only in a build for a CPU that has it (`RUSTFLAGS="-C target-cpu=native"` on
/// such a machine, see the README), and is used when this CPU has it; the AVX2 backend is in
/// every x86-64 build and is used when the CPU has AVX2; otherwise the portable serial one.
pub fn curve25519_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(all(target_feature = "avx512ifma", target_feature = "avx512vl"))
            && std::arch::is_x86_feature_detected!("avx512ifma")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            return "avx512ifma";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "serial"
}

/// Verifies many signatures at once; returns, per check, whether it is valid.
///
/// One batch equation covers all of them; only when it fails are they checked one by one, so
/// the common all-valid case costs far less than separate verification.
pub fn verify_batch(checks: &[SignatureCheck<'_>]) -> Vec<bool> {
    match checks {
        [] => return Vec::new(),
        [one] => return vec![verify(one.agent, one.kind, one.content_hash, one.signature)],
        _ => {}
    }
    let messages: Vec<Vec<u8>> = checks
        .iter()
        .map(|c| signing_message(c.kind, c.content_hash))
        .collect();
    let message_refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let signatures: Vec<ed25519_dalek::Signature> = checks.iter().map(|c| c.signature.to_dalek()).collect();
    let keys: Option<Vec<ed25519_dalek::VerifyingKey>> =
        checks.iter().map(|c| c.agent.verifying_key()).collect();
    let batch_valid =
        keys.is_some_and(|keys| ed25519_dalek::verify_batch(&message_refs, &signatures, &keys).is_ok());
    if batch_valid {
        return vec![true; checks.len()];
    }
    checks
        .iter()
        .map(|c| verify(c.agent, c.kind, c.content_hash, c.signature))
        .collect()
}
