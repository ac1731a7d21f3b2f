//! One copy of each helper the workspace's tests share: deterministic keys, claim builders and
//! sample records, proptest strategies for arbitrary protocol values, the deadline of a wait,
//! nodes and servers under test ([`http`]), the CLI ([`cli`]), journals ([`journal`]), crash
//! replays ([`crash`]) and the kill harness ([`kill`]).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cli;
pub mod crash;
pub mod http;
pub mod journal;
pub mod kill;

use std::time::{Duration, Instant};

/// Longest any one wait of a test may take before it counts as a failure: far beyond what a
/// healthy node needs, even on a loaded two-core CI machine, so that only a real hang fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// The deadline of a wait that starts now: [`WAIT`] from now.
pub fn deadline() -> Instant {
    Instant::now() + WAIT
}

/// A seeded generator (`fastrand`), with the few conveniences the tests use; seeded tests
/// print their seed, and the same seed replays the same run.
pub struct Rng(fastrand::Rng);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }

    /// The next number.
    #[allow(
        clippy::should_implement_trait,
        reason = "an endless generator, not an iterator"
    )]
    pub fn next(&mut self) -> u64 {
        self.0.u64(..)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.u64(..n)
    }

    /// An index in `0..n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.0.usize(..n)
    }

    /// One of `items`, if any.
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> Option<T> {
        self.0.choice(items).cloned()
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        self.0.fill(&mut bytes);
        bytes
    }

    /// A payload of 512 to 1,535 random bytes.
    pub fn payload(&mut self) -> Vec<u8> {
        let len = 512 + self.index(1024);
        self.bytes(len)
    }
}

use proptest::prelude::*;
use stemedb::protocol::{AgentKey, AgentSignature, Assertion, Hash, Lifecycle, ObjectValue, Signature, Vote};

/// A fixed "now" for validation, so tests do not depend on the clock: 2026-01-01T00:00:00Z.
pub const NOW_MS: u64 = 1_767_225_600_000;

/// The deterministic key number `n` (secret seed = `n` repeated).
pub fn key(n: u8) -> AgentKey {
    AgentKey::from_secret_bytes(&[n; 32])
}

/// A claim being built: an assertion of `object` about (`subject`, `predicate`), by default with
/// confidence 0.5, stamped [`NOW_MS`], active and without a parent; [`signed`](Self::signed)
/// finishes it.
#[derive(Debug, Clone)]
pub struct Claim(Assertion);

impl Claim {
    /// A claim that `subject`'s `predicate` is `object`.
    pub fn new(subject: impl Into<String>, predicate: impl Into<String>, object: ObjectValue) -> Self {
        Self(Assertion::new(subject, predicate, object, 0.5, NOW_MS))
    }

    /// With confidence `confidence`.
    pub fn confidence(mut self, confidence: f32) -> Self {
        self.0.confidence = confidence;
        self
    }

    /// Stamped `offset_ms` after [`NOW_MS`].
    pub fn at(mut self, offset_ms: u64) -> Self {
        self.0.timestamp_ms = NOW_MS + offset_ms;
        self
    }

    /// Superseding `parent`, if any.
    pub fn parent(mut self, parent: Option<Hash>) -> Self {
        self.0.parent = parent;
        self
    }

    /// Signed by the deterministic keys numbered `signers`, in order.
    pub fn signed(self, signers: &[u8]) -> Assertion {
        let keys: Vec<AgentKey> = signers.iter().map(|&n| key(n)).collect();
        self.signed_with(&keys)
    }

    /// Signed by `keys`, in order.
    pub fn signed_with(mut self, keys: &[AgentKey]) -> Assertion {
        for key in keys {
            self.0.sign(key);
        }
        self.0
    }
}

/// A valid assertion signed by key 1.
pub fn signed_assertion() -> Assertion {
    let mut assertion = Assertion::new(
        "city/paris",
        "population",
        ObjectValue::Integer(2_102_650),
        0.9,
        NOW_MS,
    );
    assertion.sign(&key(1));
    assertion
}

/// A valid vote by key 2 for [`signed_assertion`].
pub fn signed_vote() -> Vote {
    Vote::sign(&key(2), signed_assertion().content_hash(), 1.5, NOW_MS)
}

/// Any finite f32 (NaN breaks equality-based round-trip checks; validation tests cover it).
pub fn finite_f32() -> impl Strategy<Value = f32> {
    any::<f32>().prop_filter("finite", |v| v.is_finite())
}

/// Any finite f64.
pub fn finite_f64() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("finite", |v| v.is_finite())
}

/// Any object value with finite floats.
pub fn object_value() -> impl Strategy<Value = ObjectValue> {
    prop_oneof![
        any::<String>().prop_map(ObjectValue::Text),
        any::<i64>().prop_map(ObjectValue::Integer),
        finite_f64().prop_map(ObjectValue::Float),
        any::<bool>().prop_map(ObjectValue::Bool),
        any::<String>().prop_map(ObjectValue::Ref),
    ]
}

/// Any lifecycle.
pub fn lifecycle() -> impl Strategy<Value = Lifecycle> {
    proptest::sample::select(Lifecycle::ALL.to_vec())
}

/// Any hash.
pub fn hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash::from_bytes)
}

/// A key from an arbitrary seed.
pub fn agent_key() -> impl Strategy<Value = AgentKey> {
    any::<[u8; 32]>().prop_map(|seed| AgentKey::from_secret_bytes(&seed))
}

/// Any assertion content (not necessarily valid): arbitrary strings, finite numbers, and
/// 0..4 signatures of arbitrary bytes by arbitrary agents.
pub fn any_assertion() -> impl Strategy<Value = Assertion> {
    let signature = (agent_key(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(key, a, b)| {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&a);
        bytes[32..].copy_from_slice(&b);
        AgentSignature {
            agent: key.agent_id(),
            signature: Signature::from_bytes(bytes),
        }
    });
    (
        any::<String>(),
        any::<String>(),
        object_value(),
        finite_f32(),
        any::<u64>(),
        lifecycle(),
        proptest::option::of(hash()),
        proptest::collection::vec(signature, 0..4),
    )
        .prop_map(
            |(subject, predicate, object, confidence, timestamp_ms, lifecycle, parent, signatures)| {
                Assertion {
                    subject,
                    predicate,
                    object,
                    confidence,
                    timestamp_ms,
                    lifecycle,
                    parent,
                    signatures,
                }
            },
        )
}

/// A valid, signed assertion with arbitrary content within the default limits.
pub fn valid_assertion() -> impl Strategy<Value = (Assertion, Vec<AgentKey>)> {
    (
        "\\PC{1,40}",
        "\\PC{1,40}",
        object_value().prop_filter("valid object", |o| match o {
            ObjectValue::Ref(s) => !s.is_empty() && s.len() <= 1024 && !s.chars().any(char::is_control),
            ObjectValue::Text(t) => t.len() <= 65536,
            _ => true,
        }),
        0.0f32..=1.0,
        0..=NOW_MS,
        lifecycle(),
        proptest::option::of(hash()),
        proptest::collection::vec(agent_key(), 1..4),
    )
        .prop_map(
            |(subject, predicate, object, confidence, timestamp_ms, lifecycle, parent, keys)| {
                let mut assertion = Assertion::new(subject, predicate, object, confidence, timestamp_ms);
                assertion.lifecycle = lifecycle;
                assertion.parent = parent;
                for key in &keys {
                    assertion.sign(key);
                }
                (assertion, keys)
            },
        )
        .prop_filter("distinct signers", |(a, keys)| a.signatures.len() == keys.len())
}

/// A valid, signed vote within the default limits.
pub fn valid_vote() -> impl Strategy<Value = Vote> {
    (agent_key(), hash(), 0.001f32..=100.0, 0..=NOW_MS)
        .prop_map(|(key, assertion, weight, timestamp_ms)| Vote::sign(&key, assertion, weight, timestamp_ms))
}

/// Any vote content (not necessarily valid).
pub fn any_vote() -> impl Strategy<Value = Vote> {
    (agent_key(), hash(), finite_f32(), any::<u64>(), any::<[u8; 32]>()).prop_map(
        |(key, assertion, weight, timestamp_ms, half)| {
            let mut vote = Vote::sign(&key, assertion, weight, timestamp_ms);
            let mut bytes = *vote.signature.as_bytes();
            bytes[..32].copy_from_slice(&half);
            vote.signature = Signature::from_bytes(bytes);
            vote
        },
    )
}

/// Runs `test` against a fresh node inside an actix System; its directory lives until the
/// test ends (segment files are opened lazily, so the directory must outlive the node).
pub fn with_node<F, Fut>(config: stemedb::Config, test: F)
where
    F: FnOnce(stemedb::node::Node) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let node = stemedb::node::Node::start(config, dir.path()).unwrap();
        test(node).await;
    });
}
