//! API keys and custodial agents, in `<data_dir>/api/keys.json` (mode 0600, rewritten whole,
//! atomically, on each change).
//!
//! - A key is `sdb_<id>_<secret>`: `id` (16 hex digits) names the key, `secret` (64 hex digits,
//!   256 random bits) proves it. Only the blake3 hash of the secret is stored; a presented
//!   secret is hashed and compared in constant time (`blake3::Hash` equality).
//! - A key has roles (`read`, `write`, `admin`) and agents: the agents it may submit as, signed
//!   by their own keys (pre-signed records) or by the server (custodial agents, whose secret
//!   keys this file holds).
//! - Revoking a key takes effect at once: the next request with it is refused.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use stemedb::protocol::{AgentId, AgentKey, now_ms};

/// File name of the key store in the API directory.
pub const KEYS_FILE: &str = "keys.json";
/// File name of the development admin key written on first start.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read assertions, votes, resolutions, audits and the winner feed.
    Read,
    /// Submit assertions and votes as the key's agents.
    Write,
    /// Submit trust changes, and manage keys and custodial agents.
    Admin,
}

/// A key as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInfo {
    /// The key's id (the part of the token between the underscores).
    pub id: String,
    /// A name for people.
    pub label: String,
    /// What the key may do.
    pub roles: Vec<Role>,
    /// The agents the key may submit as.
    #[schema(value_type = Vec<String>)]
    pub agents: Vec<AgentId>,
    /// Whether the key was revoked.
    pub revoked: bool,
    /// When the key was made (ms since the epoch).
    pub created_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    #[serde(flatten)]
    info: KeyInfo,
    secret_blake3: String,
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

/// The key store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// An I/O error on the file.
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
    /// The operating system's random source failed.
    #[error("no randomness for a new key: {0}")]
    Random(String),
    /// No key has this id.
    #[error("no API key has id {0}")]
    UnknownKey(String),
    /// An agent named for a key is not a custodial agent of this server and not an id.
    #[error("agent {0} is not known")]
    UnknownAgent(String),
}

/// A key that presented a valid secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticated {
    /// The key.
    pub info: KeyInfo,
}

struct Inner {
    keys: HashMap<String, StoredKey>,
    agents: HashMap<AgentId, AgentKey>,
}

/// The key store; see the module docs.
pub struct KeyStore {
    path: PathBuf,
    inner: RwLock<Inner>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError + '_ {
    move |source| KeyStoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn random_hex(bytes: usize) -> Result<String, KeyStoreError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| KeyStoreError::Random(e.to_string()))?;
    Ok(hex::encode(buf))
}

/// A new key's token and what is stored of it.
fn mint(label: &str, roles: Vec<Role>, agents: Vec<AgentId>) -> Result<(String, StoredKey), KeyStoreError> {
    let id = random_hex(8)?;
    let secret = random_hex(32)?;
    let token = format!("sdb_{id}_{secret}");
    let stored = StoredKey {
        info: KeyInfo {
            id,
            label: label.to_owned(),
            roles,
            agents,
            revoked: false,
            created_ms: now_ms(),
        },
        secret_blake3: blake3::hash(secret.as_bytes()).to_hex().to_string(),
    };
    Ok((token, stored))
}

impl KeyStore {
    /// Opens the key store in `dir` (creating `dir`). On first start, with no store yet, it
    /// creates a development setup: one custodial agent and an admin key (all roles) bound to
    /// it, whose token is written to `dir/admin.token` (0600); the path is returned.
    pub fn open(dir: &Path) -> Result<(Self, Option<PathBuf>), KeyStoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(KEYS_FILE);
        if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let file: KeysFile = serde_json::from_str(&text).map_err(|e| KeyStoreError::Damaged {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let mut agents = HashMap::new();
            for stored in file.agents {
                let bytes: [u8; 32] = hex::decode(&stored.secret)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| KeyStoreError::Damaged {
                        path: path.clone(),
                        reason: format!("agent {} has a malformed secret", stored.agent),
                    })?;
                agents.insert(stored.agent, AgentKey::from_secret_bytes(&bytes));
            }
            let keys = file.keys.into_iter().map(|k| (k.info.id.clone(), k)).collect();
            let inner = RwLock::new(Inner { keys, agents });
            return Ok((Self { path, inner }, None));
        }
        let agent = AgentKey::generate().map_err(|e| KeyStoreError::Random(e.to_string()))?;
        let roles = vec![Role::Read, Role::Write, Role::Admin];
        let (token, stored) = mint("development admin", roles, vec![agent.agent_id()])?;
        let store = Self {
            path,
            inner: RwLock::new(Inner {
                keys: HashMap::from([(stored.info.id.clone(), stored)]),
                agents: HashMap::from([(agent.agent_id(), agent)]),
            }),
        };
        let token_path = dir.join(ADMIN_TOKEN_FILE);
        write_private(&token_path, format!("{token}\n").as_bytes())?;
        store.save(&store.inner.read())?;
        Ok((store, Some(token_path)))
    }

    /// Checks a presented token; `None` if it is malformed, unknown, wrong or revoked.
    pub fn authenticate(&self, token: &str) -> Result<Authenticated, &'static str> {
        let mut parts = token.splitn(3, '_');
        let (Some("sdb"), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("the API key is malformed; expected sdb_<id>_<secret>");
        };
        let inner = self.inner.read();
        let Some(stored) = inner.keys.get(id) else {
            return Err("unknown API key");
        };
        let Ok(expected) = blake3::Hash::from_hex(&stored.secret_blake3) else {
            return Err("unknown API key");
        };
        // blake3::Hash compares in constant time.
        if blake3::hash(secret.as_bytes()) != expected {
            return Err("unknown API key");
        }
        if stored.info.revoked {
            return Err("the API key was revoked");
        }
        Ok(Authenticated {
            info: stored.info.clone(),
        })
    }

    /// Returns true if and only if key `id` exists and is not revoked.
    pub fn is_active(&self, id: &str) -> bool {
        self.inner
            .read()
            .keys
            .get(id)
            .is_some_and(|stored| !stored.info.revoked)
    }

    /// Makes a key; returns its token (shown once, never stored) and what is stored.
    pub fn create_key(
        &self,
        label: &str,
        roles: Vec<Role>,
        agents: Vec<AgentId>,
    ) -> Result<(String, KeyInfo), KeyStoreError> {
        let (token, stored) = mint(label, roles, agents)?;
        let info = stored.info.clone();
        let mut inner = self.inner.write();
        inner.keys.insert(info.id.clone(), stored);
        self.save(&inner)?;
        Ok((token, info))
    }

    /// Revokes key `id`; from now on it is refused.
    pub fn revoke(&self, id: &str) -> Result<KeyInfo, KeyStoreError> {
        let mut inner = self.inner.write();
        let stored = inner
            .keys
            .get_mut(id)
            .ok_or_else(|| KeyStoreError::UnknownKey(id.to_owned()))?;
        stored.info.revoked = true;
        let info = stored.info.clone();
        self.save(&inner)?;
        Ok(info)
    }

    /// Every key, in id order.
    pub fn keys(&self) -> Vec<KeyInfo> {
        let mut keys: Vec<KeyInfo> = self.inner.read().keys.values().map(|k| k.info.clone()).collect();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        keys
    }

    /// Makes a custodial agent: the server generates and keeps its key.
    pub fn create_agent(&self) -> Result<AgentId, KeyStoreError> {
        let key = AgentKey::generate().map_err(|e| KeyStoreError::Random(e.to_string()))?;
        let agent = key.agent_id();
        let mut inner = self.inner.write();
        inner.agents.insert(agent, key);
        self.save(&inner)?;
        Ok(agent)
    }

    /// The key of custodial agent `agent`, if the server holds it.
    pub fn custodial(&self, agent: &AgentId) -> Option<AgentKey> {
        self.inner.read().agents.get(agent).cloned()
    }

    fn save(&self, inner: &Inner) -> Result<(), KeyStoreError> {
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
        agents.sort_by_key(|a| a.agent.to_string());
        let file = KeysFile {
            version: 1,
            keys,
            agents,
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| KeyStoreError::Damaged {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let tmp = self.path.with_extension("json.tmp");
        write_private(&tmp, &text)?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        Ok(())
    }
}

/// Writes `bytes` to a new file at `path`, readable by its owner only, and syncs it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_key_authenticates_until_revoked_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (store, token_path) = KeyStore::open(dir.path()).unwrap();
        let admin = std::fs::read_to_string(token_path.unwrap()).unwrap();
        assert!(store.authenticate(admin.trim()).is_ok());
        let agent = store.create_agent().unwrap();
        let (token, info) = store.create_key("w", vec![Role::Write], vec![agent]).unwrap();
        assert_eq!(store.authenticate(&token).unwrap().info, info);
        // A wrong secret, a wrong id, garbage: refused.
        let flipped = if token.ends_with('0') { '1' } else { '0' };
        let wrong = format!("{}{flipped}", &token[..token.len() - 1]);
        assert!(store.authenticate(&wrong).is_err());
        assert!(store.authenticate("sdb_0000_00").is_err());
        assert!(store.authenticate("Bearer").is_err());
        store.revoke(&info.id).unwrap();
        assert_eq!(store.authenticate(&token), Err("the API key was revoked"));
        drop(store);
        let (store, created) = KeyStore::open(dir.path()).unwrap();
        assert!(created.is_none());
        assert_eq!(store.authenticate(&token), Err("the API key was revoked"));
        assert!(store.authenticate(admin.trim()).is_ok());
        assert!(store.custodial(&agent).is_some());
        let mode = std::fs::metadata(dir.path().join(KEYS_FILE)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
    }
}
