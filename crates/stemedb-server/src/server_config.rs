//! [`ServerConfig`]: the whole configuration file of `stemedb serve`: the engine's sections and
//! the server's own (`[http]`, `[telemetry]`, `[replication]`).

use std::path::Path;

use serde::{Deserialize, Serialize};
use stemedb::config::{ConfigError, JournalConfig, StateConfig, parse_toml, read_toml};
use stemedb::node::{NodeConfig, VotesConfig};
use stemedb::protocol::Limits;
use stemedb_jetstream::{JetStream, ReplicationConfig, ReplicationMode};

use crate::{HttpConfig, TelemetryConfig};

/// The text of `config/default.toml`, the documented default of every section; compiled in, so
/// the binary needs no file on disk.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../../config/default.toml");

/// The whole configuration of a server. Every field has a default, so a file names only what
/// it changes; unknown fields are refused, so a typo is an error rather than a silent default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
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
    pub checkpoint: stemedb::config::CheckpointConfig,
    /// The trust model learned from the log (`[learned]`).
    pub learned: stemedb::config::LearnedConfig,
    /// The HTTP API (`[http]`).
    pub http: HttpConfig,
    /// Metrics exposition and logging (`[telemetry]`).
    pub telemetry: TelemetryConfig,
    /// Where the log lives: the local journal, or a NATS JetStream stream (`[replication]`).
    pub replication: ReplicationConfig,
}

impl ServerConfig {
    /// Loads the file at `path`, or the built-in default (`config/default.toml`) when `path` is
    /// `None`; validates it.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            None => Self::from_toml(DEFAULT_CONFIG_TOML, "(built-in default)"),
            Some(path) => read_toml(path, Self::validate),
        }
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        parse_toml(text, origin, Self::validate)
    }

    /// Checks every section, and the sections against each other; the error names the
    /// offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            origin: "(in memory)".to_owned(),
            reason,
        };
        let engine = self.engine();
        engine.validate()?;
        self.http.validate().map_err(invalid)?;
        self.telemetry.validate().map_err(invalid)?;
        self.log_backend_checked(&engine)?;
        Ok(())
    }

    /// The engine's sections, for [`Node::start`](stemedb::Node::start).
    pub fn engine(&self) -> stemedb::Config {
        stemedb::Config {
            limits: self.limits.clone(),
            journal: self.journal.clone(),
            state: self.state.clone(),
            node: self.node.clone(),
            votes: self.votes.clone(),
            checkpoint: self.checkpoint.clone(),
            learned: self.learned.clone(),
        }
    }

    /// Starts a node on `data_dir` with these settings and the log `[replication]` names.
    /// Must be called inside a running actix System.
    pub fn start_node(&self, data_dir: &Path) -> Result<stemedb::Node, StartError> {
        let engine = self.engine();
        match self.log_backend_checked(&engine)? {
            Some(stream) => Ok(stemedb::Node::start_with_log(engine, data_dir, stream)?),
            None => Ok(stemedb::Node::start(engine, data_dir)?),
        }
    }

    /// The JetStream backend if `[replication]` asks for one, checked against the engine.
    fn log_backend_checked(&self, engine: &stemedb::Config) -> Result<Option<JetStream>, ConfigError> {
        match self.replication.mode {
            ReplicationMode::Local => {
                self.replication.validate().map_err(ConfigError::invalid_value)?;
                Ok(None)
            }
            ReplicationMode::Jetstream => Ok(Some(JetStream::new(self.replication.clone(), engine)?)),
        }
    }
}

/// A node that could not start from a [`ServerConfig`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The node could not start.
    #[error(transparent)]
    Node(#[from] stemedb::node::NodeError),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn default_file_equals_default_values() {
        let parsed = ServerConfig::load(None).expect("built-in default parses");
        assert_eq!(parsed, ServerConfig::default());
        assert_eq!(parsed.engine(), stemedb::Config::default());
    }

    #[test]
    fn unknown_field_is_refused() {
        let error = ServerConfig::from_toml("[limits]\nsubject_byte_max = 5\n", "test").unwrap_err();
        assert!(error.to_string().contains("subject_byte_max"), "{error}");
        let error = ServerConfig::from_toml("[http]\nbnd = \"127.0.0.1:1\"\n", "test").unwrap_err();
        assert!(error.to_string().contains("bnd"), "{error}");
    }

    #[test]
    fn out_of_range_values_are_refused_with_their_names() {
        let error = ServerConfig::from_toml("[limits]\nsubject_bytes_max = 1025\n", "test").unwrap_err();
        assert!(matches!(error, ConfigError::Invalid { .. }), "{error}");
        for bad in ["watch_buffer = 0", "watch_buffer = 65537"] {
            let error = ServerConfig::from_toml(&format!("[node]\n{bad}\n"), "test").unwrap_err();
            assert!(error.to_string().contains("node.watch_buffer"), "{error}");
        }
        let error = ServerConfig::from_toml(
            "[replication]\nmode = \"jetstream\"\nservers = [\"nats://127.0.0.1:4222\"]\nfetch_buffer_bytes_max = 1\n",
            "test",
        )
        .unwrap_err();
        assert!(error.to_string().contains("fetch_buffer_bytes_max"), "{error}");
    }
}
