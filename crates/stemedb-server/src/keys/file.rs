//! `keys.json`, described, read and written here and nowhere else.
//!
//! ```text
//! {
//!   "version": 1,
//!   "keys": [                      // in id order
//!     { "id": "<16 hex>", "label": "...", "roles": ["read", ...], "agents": ["<64 hex>", ...],
//!       "revoked": false, "revoked_ms": 1700000000000,   // revoked_ms: absent until revoked
//!       "created_ms": 1700000000000, "secret_blake3": "<64 hex>" }
//!   ],
//!   "agents": [                    // custodial agents, in id order
//!     { "agent": "<64 hex>", "secret": "<64 hex Ed25519 seed>" }
//!   ]
//! }
//! ```
//!
//! Invariants: the file is replaced whole and atomically (a fresh `keys.json.tmp`, created
//! 0600 with `O_EXCL` so it follows no symlink and inherits no looser mode, written, fsynced,
//! renamed over `keys.json`, then the directory fsynced), so a crash leaves the old file or the
//! new one. Unknown fields are refused; `revoked_ms` was added within version 1 and may be
//! absent. A file readable or writable by group or others is refused at open.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use serde::{Deserialize, Serialize};

use stemedb::protocol::{AgentId, AgentKey};

use super::state::Inner;
use super::{KeyInfo, KeyStoreError};

/// The version this build writes and reads.
const KEYS_FILE_VERSION: u32 = 1;

/// Permission bits of group and others; a secrets file must have none of them.
const MODE_GROUP_OTHERS: u32 = 0o077;

/// A key as stored: what is shown of it, and the hash of its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoredKey {
    #[serde(flatten)]
    pub(super) info: KeyInfo,
    pub(super) secret_blake3: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredAgent {
    agent: AgentId,
    secret: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    version: u32,
    keys: Vec<StoredKey>,
    agents: Vec<StoredAgent>,
}

/// Refuses `path` if group or others may read or write it (as ssh refuses a private key).
pub(super) fn check_private(path: &Path) -> Result<(), KeyStoreError> {
    let mode = std::fs::metadata(path)
        .map_err(KeyStoreError::io(path))?
        .permissions()
        .mode();
    if mode & MODE_GROUP_OTHERS != 0 {
        return Err(KeyStoreError::Permissions {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Reads the store at `path`, after checking its mode.
pub(super) fn load(path: &Path) -> Result<Inner, KeyStoreError> {
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(KeyStoreError::io(path))?;
    let damaged = |reason: String| KeyStoreError::Damaged {
        path: path.to_owned(),
        reason,
    };
    let file: KeysFile = serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
    if file.version != KEYS_FILE_VERSION {
        return Err(damaged(format!(
            "version {} (this build reads {KEYS_FILE_VERSION})",
            file.version
        )));
    }
    let mut agents = HashMap::with_capacity(file.agents.len());
    for stored in file.agents {
        let bytes: [u8; 32] = hex::decode(&stored.secret)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| damaged(format!("agent {} has a malformed secret", stored.agent)))?;
        agents.insert(stored.agent, AgentKey::from_secret_bytes(&bytes));
    }
    let mut keys = HashMap::with_capacity(file.keys.len());
    for key in file.keys {
        if let Some(duplicate) = keys.insert(key.info.id.clone(), key) {
            return Err(damaged(format!("key {} is stored twice", duplicate.info.id)));
        }
    }
    Ok(Inner { keys, agents })
}

/// Replaces the store at `path` with `inner`, durably (see the module docs).
pub(super) fn save(path: &Path, inner: &Inner) -> Result<(), KeyStoreError> {
    let mut keys: Vec<StoredKey> = inner.keys.values().cloned().collect();
    keys.sort_by(|a, b| a.info.id.cmp(&b.info.id));
    let mut agents: Vec<StoredAgent> = inner
        .agents
        .iter()
        .map(|(agent, key)| StoredAgent {
            agent: *agent,
            secret: hex::encode(key.secret_bytes()),
        })
        .collect();
    agents.sort_by_key(|a| a.agent);
    let file = KeysFile {
        version: KEYS_FILE_VERSION,
        keys,
        agents,
    };
    let text = serde_json::to_vec_pretty(&file).map_err(|e| KeyStoreError::Damaged {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let tmp = path.with_extension("json.tmp");
    write_private(&tmp, &text)?;
    std::fs::rename(&tmp, path).map_err(KeyStoreError::io(path))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(KeyStoreError::io(dir))?;
    }
    Ok(())
}

/// Writes `bytes` to a new file at `path`, readable by its owner only, and syncs it. A file
/// already there (a temporary file left by a crash) is removed first, so the new one is
/// created with mode 0600 rather than keeping the old one's mode.
pub(super) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(KeyStoreError::io(path)(e)),
        _ => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(KeyStoreError::io(path))?;
    file.write_all(bytes).map_err(KeyStoreError::io(path))?;
    file.sync_all().map_err(KeyStoreError::io(path))
}
