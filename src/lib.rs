//! # StemeDB
//!
//! An embeddable knowledge store for many agents that make signed claims and disagree.
//!
//! Agents publish *assertions* — "subject · predicate · object, with confidence" — signed with
//! their Ed25519 keys and content-addressed by blake3; they endorse assertions with signed,
//! weighted *votes*. Reads ask a *lens* to resolve competing assertions into a winner, with
//! reasons.
//!
//! This crate is built in layers:
//! - [`protocol`]: the data model, canonical encoding, signing and validation;
//! - [`storage`]: on-disk layout: the write-ahead journal and the LMDB state;
//! - `actors` (internal): actix actors over storage (durable broadcaster, ingestor, vote counters);
//! - [`node`]: the embedded [`Node`](node::Node): submit, wait until indexed, read;
//! - [`lens`]: resolving competing assertions into a winner, with reasons;
//! - [`http`]: the HTTP API of `stemedb serve`;
//! - [`config`]: typed, validated configuration;
//! - [`telemetry`]: the metrics catalog and its Prometheus exposition;
//! - [`replication`]: the log on a NATS JetStream stream, for a cluster of full replicas;
//! - [`sim`]: the simulation arenas of `stemedb sim`.
//!
//! ```
//! use stemedb::protocol::{validate_assertion, AgentKey, Assertion, Limits, ObjectValue};
//!
//! let key = AgentKey::from_secret_bytes(&[7; 32]);
//! let mut claim = Assertion::new("city/paris", "population", ObjectValue::Integer(2_102_650), 0.9, 1_700_000_000_000);
//! claim.sign(&key);
//! let hash = validate_assertion(&claim, &Limits::default(), stemedb::protocol::now_ms())?;
//! assert_eq!(hash, claim.content_hash());
//!
//! // Any change to the body invalidates the signature.
//! claim.confidence = 1.0;
//! assert!(validate_assertion(&claim, &Limits::default(), stemedb::protocol::now_ms()).is_err());
//! # Ok::<(), stemedb::protocol::ValidationError>(())
//! ```

/// Declares a module that is `pub(crate)`, or `pub` (hidden from the docs) when the
/// `test-support` feature opens internals to this crate's own tests and benches.
macro_rules! internal_mod {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[cfg(feature = "test-support")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "test-support"))]
        pub(crate) mod $name;
    };
}

internal_mod!(actors);
mod budget;
pub mod config;
pub mod http;
pub mod lens;
pub mod node;
pub mod protocol;
pub mod replication;
pub mod sim;
pub mod storage;
pub mod telemetry;

pub use config::Config;
