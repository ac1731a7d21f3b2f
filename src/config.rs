//! [`Config`]: the typed configuration, read from TOML and validated before use.
//!
//! `config/default.toml` is the documented default; it is compiled into the crate, so the
//! binary needs no file on disk. Every field has a default, so a config file names only what
//! it changes; unknown fields are refused, so a typo is an error rather than a silent default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::http::HttpConfig;
use crate::node::{NodeConfig, VotesConfig};
use crate::protocol::Limits;
pub use crate::replication::{ReplicationConfig, ReplicationMode};
use crate::storage::journal::JournalConfig;
pub use crate::storage::state::{MAP_SIZE_GRANULE_BYTES, StateConfig};
use crate::telemetry::TelemetryConfig;

/// The text of `config/default.toml`.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../config/default.toml");

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Validation limits for assertions and votes (`[limits]`).
    pub limits: Limits,
    /// The write-ahead journal (`[journal]`).
    pub journal: JournalConfig,
    /// The LMDB state (`[state]`).
    pub state: StateConfig,
    /// The submission and ingest pipeline (`[node]`).
    pub node: NodeConfig,
    /// Vote counting and voter trust (`[votes]`).
    pub votes: VotesConfig,
    /// The HTTP API of `stemedb serve` (`[http]`).
    pub http: HttpConfig,
    /// Metrics exposition and logging (`[telemetry]`).
    pub telemetry: TelemetryConfig,
    /// Where the log lives: the local journal, or a NATS JetStream stream (`[replication]`).
    pub replication: ReplicationConfig,
}

/// A configuration that could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not valid TOML for a [`Config`].
    #[error("invalid config {origin}: {source}")]
    Parse {
        /// The file, or "(built-in default)".
        origin: String,
        /// What the parser said, with line and column.
        source: Box<toml::de::Error>,
    },
    /// A value is out of its range.
    #[error("invalid config {origin}: {reason}")]
    Invalid {
        /// The file, or "(built-in default)".
        origin: String,
        /// Which value and why.
        reason: String,
    },
}

impl Config {
    /// Loads the file at `path`, or the built-in default when `path` is `None`; validates it.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            None => Self::from_toml(DEFAULT_CONFIG_TOML, "(built-in default)"),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::from_toml(&text, &path.display().to_string())
            }
        }
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|source| ConfigError::Parse {
            origin: origin.to_owned(),
            source: Box::new(source),
        })?;
        config.validate().map_err(|reason| ConfigError::Invalid {
            origin: origin.to_owned(),
            reason,
        })?;
        Ok(config)
    }

    /// Checks every value against its range, and the sections against each other; returns a
    /// message naming the offending field.
    pub fn validate(&self) -> Result<(), String> {
        self.limits.validate().map_err(|e| e.to_string())?;
        self.journal.validate().map_err(|e| format!("journal.{e}"))?;
        self.state.validate()?;
        self.node.validate()?;
        self.votes.validate()?;
        self.http.validate()?;
        self.telemetry.validate()?;
        self.replication.validate()?;
        // The fetch buffer must hold more than one ingest batch, so that a full buffer is never
        // taken whole by a batch that then leaves nothing to free it.
        if self.replication.is_jetstream() {
            let needed = 2 * self.node.ingest_batch_bytes_max + self.limits.record_bytes_max;
            if self.replication.fetch_buffer_bytes_max < needed {
                return Err(format!(
                    "replication.fetch_buffer_bytes_max = {} must be at least twice node.ingest_batch_bytes_max \
                     plus limits.record_bytes_max = {needed}",
                    self.replication.fetch_buffer_bytes_max
                ));
            }
        }
        // A submission of one valid record must fit the verification queue.
        let needed = self.limits.record_bytes_max + crate::node::RECORD_STRUCT_BYTES;
        if self.node.verify_queue_bytes_max < needed {
            return Err(format!(
                "node.verify_queue_bytes_max = {} must be at least limits.record_bytes_max + {} (a record's struct) = {needed}",
                self.node.verify_queue_bytes_max,
                crate::node::RECORD_STRUCT_BYTES,
            ));
        }
        // A valid record of exactly the limit is journaled with its tag.
        let needed = self.limits.record_bytes_max + crate::protocol::TAG_BYTES;
        if self.journal.record_bytes_max < needed {
            return Err(format!(
                "journal.record_bytes_max = {} must be at least limits.record_bytes_max + {} (the record tag) = {needed}",
                self.journal.record_bytes_max,
                crate::protocol::TAG_BYTES,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_file_equals_default_values() {
        let parsed = Config::load(None).expect("built-in default parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn unknown_field_is_refused() {
        let error = Config::from_toml("[limits]\nsubject_byte_max = 5\n", "test").unwrap_err();
        assert!(error.to_string().contains("subject_byte_max"), "{error}");
    }

    #[test]
    fn out_of_range_limit_is_refused() {
        let error = Config::from_toml("[limits]\nsubject_bytes_max = 1025\n", "test").unwrap_err();
        assert!(matches!(error, ConfigError::Invalid { .. }), "{error}");
        let error = Config::from_toml("[limits]\nvote_weight_max = -1.0\n", "test").unwrap_err();
        assert!(error.to_string().contains("vote_weight_max"), "{error}");
        for bad in ["watch_buffer = 0", "watch_buffer = 65537"] {
            let error = Config::from_toml(&format!("[node]\n{bad}\n"), "test").unwrap_err();
            assert!(error.to_string().contains("node.watch_buffer"), "{error}");
        }
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let config = Config::from_toml("[limits]\nsignatures_max = 3\n", "test").expect("valid");
        assert_eq!(config.limits.signatures_max, 3);
        assert_eq!(
            config.limits.subject_bytes_max,
            Limits::default().subject_bytes_max
        );
    }
}
