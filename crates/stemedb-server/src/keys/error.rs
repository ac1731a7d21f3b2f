//! [`KeyStoreError`]: everything the key store refuses or fails at, one variant per cause, so
//! the HTTP layer can answer each with its own status.

use std::path::PathBuf;

use stemedb::protocol::AgentId;

use super::Role;

/// The key store refused a change, or could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// An I/O error on a file of the store.
    #[error("key store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a key store this build reads.
    #[error("key store {path} is damaged: {reason}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file holding secrets may be read or written by group or others; like ssh with a
    /// private key, the store refuses to use it until its owner alone may.
    #[error(
        "{path} holds API secrets but its mode {mode:04o} lets group or others read or write it; \
         run `chmod 600 {path}` and start again"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The operating system's random source failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// No key has this id.
    #[error("no API key has id {0}")]
    UnknownKey(String),
    /// An agent named for a key is not a custodial agent of this server and not an id.
    #[error("agent {0} is not known")]
    UnknownAgent(String),
    /// A new key names no role.
    #[error("a key needs at least one role")]
    NoRoles,
    /// A new key names a role twice.
    #[error("role {0:?} is named twice")]
    DuplicateRole(Role),
    /// A new key names an agent twice.
    #[error("agent {0} is named twice")]
    DuplicateAgent(AgentId),
    /// A new key names more agents than a key may have.
    #[error("a key has at most {max} agents, not {count}")]
    TooManyAgents {
        /// The agents named.
        count: usize,
        /// [`KEY_AGENTS_MAX`](super::KEY_AGENTS_MAX).
        max: usize,
    },
    /// A new key's label is too long.
    #[error("a label is at most {max} bytes, not {bytes}")]
    LabelTooLong {
        /// The label's length in bytes.
        bytes: usize,
        /// [`KEY_LABEL_BYTES_MAX`](super::KEY_LABEL_BYTES_MAX).
        max: usize,
    },
    /// The store holds as many keys as it may, none of them revoked (a revoked key would
    /// have made room).
    #[error("the key store is full: {max} keys, none revoked; revoke one to make room")]
    StoreFull {
        /// [`KEYS_MAX`](super::KEYS_MAX).
        max: usize,
    },
    /// The store holds as many custodial agents as it may.
    #[error("the key store holds the most custodial agents it may, {max}")]
    AgentsFull {
        /// [`CUSTODIAL_AGENTS_MAX`](super::CUSTODIAL_AGENTS_MAX).
        max: usize,
    },
    /// The key is the last unrevoked key with the admin role: revoking it would leave
    /// nobody able to administer the server.
    #[error("key {0} is the last admin key; make another admin key before revoking it")]
    LastAdmin(String),
}

impl KeyStoreError {
    /// An I/O error on `path`, for `map_err`.
    pub(super) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.to_owned(),
            source,
        }
    }
}
