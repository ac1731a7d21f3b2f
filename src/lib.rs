//! # StemeDB
//!
//! An embeddable knowledge store for many agents that make signed claims and disagree.
//!
//! Agents publish *assertions* — "subject · predicate · object, with confidence" — signed with
//! their Ed25519 keys and content-addressed by blake3; they endorse assertions with signed,
//! weighted *votes*. Reads ask a *lens* to resolve competing assertions into a winner, with
//! reasons.
//!
//! This crate is the engine a host application embeds; the HTTP server, the JetStream log
//! backend, the CLI and the simulator are crates of their own around it (see
//! `docs/ARCHITECTURE.md`). It is built in layers, each importing only those before it:
//! - [`protocol`]: the data model, canonical encoding, signing and validation;
//! - [`storage`]: on-disk layout: the write-ahead journal and the LMDB state;
//! - [`log`]: the log seam: the traits a log backend implements, and the local journal's
//!   implementation;
//! - [`lens`]: resolving competing assertions into a winner, with reasons;
//! - `actors` (internal): actix actors over storage (ingestor, vote counters, lens pool);
//! - [`node`]: the embedded [`Node`]: submit, wait until indexed, read;
//!
//! and beside them [`config`] (typed, validated configuration) and [`telemetry`] (the metrics
//! catalog; the node records through the [`metrics`] facade to whatever recorder the host
//! installed).
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
/// `test-kit` feature opens internals to this workspace's own tests, benches and simulator.
macro_rules! internal_mod {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[cfg(feature = "test-kit")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "test-kit"))]
        pub(crate) mod $name;
    };
}

internal_mod!(actors);
pub mod budget;
pub mod config;
pub mod lens;
pub mod log;
pub mod node;
pub mod protocol;
pub mod receipt;
pub mod storage;
pub mod telemetry;
pub mod truth;

pub use config::Config;
pub use node::Node;
