//! [`Config`]: the typed configuration, read from TOML and validated before use.
//!
//! Every field has a default (the engine sections of `config/default.toml` document them), so
//! a config file names only what it changes; unknown fields are refused, so a typo is an error
//! rather than a silent default. The server's configuration (`stemedb-server`) embeds these
//! sections and adds its own.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

mod checkpoint;
mod learned;
mod node;

use crate::protocol::Limits;
pub use crate::storage::journal::JournalConfig;
pub use crate::storage::state::{MAP_SIZE_GRANULE_BYTES, StateConfig};
pub use checkpoint::CheckpointConfig;
pub use learned::LearnedConfig;
pub use node::{
    AUDIT_BYTES_MIN, AUDIT_MAP_HEADROOM_FACTOR, AuditMode, BATCH_RECORDS_CEILING, NodeConfig,
    RECORD_STRUCT_BYTES, VERIFY_THREADS_CEILING, VOTE_SHARDS_CEILING, VotesConfig,
};

/// The engine's configuration: the sections of `config/default.toml` a [`Node`](crate::node::Node)
/// reads. The server's file adds `[http]`, `[telemetry]` and `[replication]` to these (see the
/// `stemedb-server` crate).
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
    /// Signed checkpoints of the log's Merkle tree (`[checkpoint]`).
    pub checkpoint: CheckpointConfig,
    /// The trust model learned from the log (`[learned]`).
    pub learned: LearnedConfig,
}

/// Reads the TOML file at `path` into `T` (a [`Config`], or a host's configuration that embeds
/// its sections) and checks it with `validate`; errors name the file.
pub fn read_toml<T: serde::de::DeserializeOwned>(
    path: &Path,
    validate: impl FnOnce(&T) -> Result<(), ConfigError>,
) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_toml(&text, &path.display().to_string(), validate)
}

/// Parses TOML `text` into `T` and checks it with `validate`; `origin` (a file, or
/// "(built-in default)") names it in errors.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &str,
    validate: impl FnOnce(&T) -> Result<(), ConfigError>,
) -> Result<T, ConfigError> {
    let config = toml::from_str(text).map_err(|source| ConfigError::Parse {
        origin: origin.to_owned(),
        source: Box::new(source),
    })?;
    validate(&config).map_err(|error| error.with_origin(origin))?;
    Ok(config)
}

/// A configuration that could not be loaded, or a value out of its range.
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
        /// The file, "(built-in default)", or "(in memory)" for a value built in code.
        origin: String,
        /// Which value and why.
        reason: String,
    },
}

impl ConfigError {
    /// A value built in code (not read from a file) is out of its range: `reason` names it.
    pub fn invalid_value(reason: String) -> Self {
        Self::invalid(reason)
    }

    pub(crate) fn invalid(reason: String) -> Self {
        Self::Invalid {
            origin: "(in memory)".to_owned(),
            reason,
        }
    }

    /// The same error, naming `origin` (a file) as where the bad value came from.
    pub fn with_origin(self, origin: &str) -> Self {
        match self {
            Self::Invalid { reason, .. } => Self::Invalid {
                origin: origin.to_owned(),
                reason,
            },
            other => other,
        }
    }
}

impl Config {
    /// Loads the file at `path`, or the built-in default when `path` is `None`; validates it.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            None => {
                let config = Self::default();
                config
                    .validate()
                    .map_err(|error| error.with_origin("(built-in default)"))?;
                Ok(config)
            }
            Some(path) => read_toml(path, Self::validate),
        }
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        parse_toml(text, origin, Self::validate)
    }

    /// Checks every value against its range, and the sections against each other; the error
    /// names the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check().map_err(ConfigError::invalid)
    }

    fn check(&self) -> Result<(), String> {
        self.limits.validate().map_err(|e| e.to_string())?;
        self.journal.validate().map_err(|e| format!("journal.{e}"))?;
        self.state.validate()?;
        self.node.validate()?;
        self.votes.validate()?;
        self.checkpoint.validate()?;
        self.learned.validate()?;
        // A submission of one valid record must fit the verification queue.
        let needed = self.limits.record_bytes_max + RECORD_STRUCT_BYTES;
        if self.node.verify_queue_bytes_max < needed {
            return Err(format!(
                "node.verify_queue_bytes_max = {} must be at least limits.record_bytes_max + {} (a record's struct) = {needed}",
                self.node.verify_queue_bytes_max, RECORD_STRUCT_BYTES,
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
    fn default_values_are_valid() {
        let loaded = Config::load(None).expect("the defaults are valid");
        assert_eq!(loaded, Config::default());
    }

    #[test]
    fn server_sections_are_not_engine_sections() {
        let error = Config::from_toml("[http]\nbind = \"127.0.0.1:1\"\n", "test").unwrap_err();
        assert!(matches!(error, ConfigError::Parse { .. }), "{error}");
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
