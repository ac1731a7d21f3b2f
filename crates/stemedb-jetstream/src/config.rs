//! `[replication]`: where the log lives — the local journal (the default) or a NATS JetStream
//! stream that every node of a cluster ingests.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which log the node writes to and ingests from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationMode {
    /// The local write-ahead journal in `<data_dir>/journal` (embedded use).
    #[default]
    Local,
    /// A NATS JetStream stream: every node publishes to it and ingests all of it.
    Jetstream,
}

/// The replication settings (`[replication]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplicationConfig {
    /// `local` (default) or `jetstream`.
    pub mode: ReplicationMode,
    /// NATS server URLs (`nats://host:port`); the client connects to one and learns the rest.
    pub servers: Vec<String>,
    /// The JetStream stream holding the log; created when missing.
    pub stream: String,
    /// The subject records are published on; the stream holds only it.
    pub subject: String,
    /// Replicas of the stream when this node creates it (1 to 5; 3 tolerates one server lost).
    pub replicas: usize,
    /// Longest one publish waits for its acknowledgement before it is sent again (same
    /// `Nats-Msg-Id`), in milliseconds: bounds how long a lost ack stalls a write.
    pub ack_timeout_ms: u64,
    /// Longest a record is retried, from its first publish, before its submitter is told it
    /// failed, in milliseconds. Below the stream's duplicate window, so no retry stores a
    /// record twice.
    pub publish_deadline_ms: u64,
    /// The stream's duplicate window when this node creates it, in milliseconds.
    pub duplicate_window_ms: u64,
    /// Longest the node waits at start to reach the cluster and find or create the stream, in
    /// milliseconds.
    pub connect_timeout_ms: u64,
    /// Bytes of fetched, not yet applied records the node buffers; the fetch waits past it.
    pub fetch_buffer_bytes_max: usize,
    /// NATS user name, for user and password authentication; the password comes from
    /// `password_file` or `password_env`, never from the config's text. Default: none.
    pub user: Option<String>,
    /// File holding the NATS password of `user` (one line; a trailing newline is ignored).
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the NATS password of `user`.
    pub password_env: Option<String>,
    /// File holding the NATS authentication token (token authentication).
    pub token_file: Option<PathBuf>,
    /// Environment variable holding the NATS authentication token.
    pub token_env: Option<String>,
    /// File holding the node's NATS user nkey seed (`SU...`; nkey authentication).
    pub nkey_seed_file: Option<PathBuf>,
    /// NATS credentials file (`.creds`: a user JWT and its nkey seed; decentralized auth).
    pub credentials_file: Option<PathBuf>,
    /// Refuses a server that does not offer TLS. Default false: TLS is used when a server
    /// asks for it (or a URL is `tls://`).
    pub tls_required: bool,
    /// PEM file of the certificate authorities that sign the servers' certificates; the
    /// system's roots when unset.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM file of this node's client certificate, for servers that verify clients (with
    /// `tls_key_file`).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file of the private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            mode: ReplicationMode::Local,
            servers: vec!["nats://127.0.0.1:4222".to_owned()],
            stream: "STEMEDB".to_owned(),
            subject: "stemedb.log".to_owned(),
            replicas: 3,
            ack_timeout_ms: 2_000,
            publish_deadline_ms: 60_000,
            duplicate_window_ms: 120_000,
            connect_timeout_ms: 10_000,
            fetch_buffer_bytes_max: 64 << 20,
            user: None,
            password_file: None,
            password_env: None,
            token_file: None,
            token_env: None,
            nkey_seed_file: None,
            credentials_file: None,
            tls_required: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl ReplicationConfig {
    /// Checks the fields; returns a message naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.mode == ReplicationMode::Local {
            return Ok(());
        }
        if self.servers.is_empty() {
            return Err("replication.servers: at least one NATS server URL is needed".into());
        }
        let token = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !token(&self.stream) {
            return Err(format!(
                "replication.stream = {:?}: letters, digits, '-' and '_' only",
                self.stream
            ));
        }
        if self.subject.is_empty() || self.subject.split('.').any(|part| !token(part)) {
            return Err(format!(
                "replication.subject = {:?}: dot-separated tokens of letters, digits, '-' and '_' (no wildcards)",
                self.subject
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(format!("replication.replicas = {}: 1 to 5", self.replicas));
        }
        if self.ack_timeout_ms == 0 || self.ack_timeout_ms > self.publish_deadline_ms {
            return Err(format!(
                "replication.ack_timeout_ms = {}: above 0 and at most publish_deadline_ms ({})",
                self.ack_timeout_ms, self.publish_deadline_ms
            ));
        }
        if self.publish_deadline_ms.saturating_add(self.ack_timeout_ms) >= self.duplicate_window_ms {
            return Err(format!(
                "replication.publish_deadline_ms + ack_timeout_ms = {} must be below duplicate_window_ms = {}: a \
                 retry past the window could store a record twice",
                self.publish_deadline_ms.saturating_add(self.ack_timeout_ms),
                self.duplicate_window_ms
            ));
        }
        if self.connect_timeout_ms == 0 {
            return Err("replication.connect_timeout_ms: above 0".into());
        }
        if self.fetch_buffer_bytes_max < 1 << 20 {
            return Err(format!(
                "replication.fetch_buffer_bytes_max = {}: at least 1 MiB (one largest message)",
                self.fetch_buffer_bytes_max
            ));
        }
        crate::security::validate(self)
    }

    /// Returns true for a JetStream log.
    pub fn is_jetstream(&self) -> bool {
        self.mode == ReplicationMode::Jetstream
    }
}
