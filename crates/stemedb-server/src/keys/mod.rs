//! API keys and custodial agents, in `<data_dir>/api/keys.json` (format in `file.rs`).
//!
//! - A key is `sdb_<id>_<secret>`: `id` (16 hex digits) names the key, `secret` (64 hex digits,
//!   256 random bits) proves it. Only the blake3 hash of the secret is stored; a presented
//!   secret is hashed and compared in constant time (`blake3::Hash` equality).
//! - A key has roles (`read`, `write`, `admin`) and agents: the agents it may submit as, signed
//!   by their own keys (pre-signed records) or by the server (custodial agents, whose secret
//!   keys this file holds).
//! - **Saved before it takes effect.** A change (make a key, revoke one, make an agent) edits a
//!   copy of the current state, writes and fsyncs it, and only then publishes it. A failed
//!   save changes nothing: memory stays as it was and the caller gets the error.
//! - **Authentication never waits on file I/O.** Authentication reads an immutable snapshot,
//!   an `Arc` cloned under a lock that is held only to clone or replace that `Arc`. Writers
//!   are serialised by their own mutex, held across copy-edit-save-publish.
//! - **Bounded.** At most [`KEYS_MAX`] keys (revoked ones included until pruned),
//!   [`KEY_AGENTS_MAX`] agents per key, [`CUSTODIAL_AGENTS_MAX`] custodial agents, labels of
//!   [`KEY_LABEL_BYTES_MAX`]; no role or agent twice in a key.
//! - **Revocation** takes effect at once: the next request with the key is refused. A revoked
//!   key is kept (listed, answered "revoked") for [`REVOKED_KEY_GRACE_MS`], then dropped at the
//!   next open or save (and then answered "unknown API key"); a full store drops its earliest
//!   revoked key early to make room. The last unrevoked admin key cannot be revoked.
//! - **Private.** `keys.json` and `admin.token` are written 0600, and [`KeyStore::open`]
//!   refuses either if group or others may read or write it.

mod error;
mod file;
mod state;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use stemedb::protocol::{AgentId, AgentKey, now_ms};

pub use error::KeyStoreError;
use file::StoredKey;
use state::Inner;

/// File name of the key store in the API directory.
pub const KEYS_FILE: &str = "keys.json";
/// File name of the development admin key written on first start.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Most keys in the store, revoked ones included until pruned. Each change rewrites the whole
/// file, and a key with [`KEY_AGENTS_MAX`] agents is about 5 KiB of JSON, so this bounds the
/// file to about 5 MiB; a deployment with more clients than this wants an identity provider.
pub const KEYS_MAX: usize = 1024;
/// Most agents one key may submit as. A key stands for one client, which signs as a handful
/// of agents; 64 leaves room for a relay acting for a team while bounding each key's entry
/// (64 × ~70 bytes) and the agent check of each write.
pub const KEY_AGENTS_MAX: usize = 64;
/// Most custodial agents: each is a secret key in the file, made by one admin request, so
/// the file stays bounded (about 180 bytes each) however often it is called.
pub const CUSTODIAL_AGENTS_MAX: usize = 1024;
/// Longest label, in bytes: a name for people, not a document.
pub const KEY_LABEL_BYTES_MAX: usize = 256;
/// How long a revoked key is kept, in milliseconds: 7 days, so that for a week an operator
/// sees in `GET /v1/keys` what was revoked when, and a client still using it is told
/// "revoked" rather than "unknown"; after that it only takes room.
pub const REVOKED_KEY_GRACE_MS: u64 = 7 * 24 * 60 * 60 * 1000;

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
    /// When the key was revoked (ms since the epoch); absent while it is not. The key is
    /// dropped [`REVOKED_KEY_GRACE_MS`] after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<u64>,
    /// When the key was made (ms since the epoch).
    pub created_ms: u64,
}

/// A key that presented a valid secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticated {
    /// The key.
    pub info: KeyInfo,
}

/// A hook a unit test runs inside a save, before the file is written.
#[cfg(test)]
type SaveHook = Box<dyn Fn() + Send + Sync>;

/// The key store; see the module docs.
pub struct KeyStore {
    path: PathBuf,
    /// The published state: held only to clone or replace the `Arc`, never across I/O.
    current: RwLock<Arc<Inner>>,
    /// Serialises writers across copy-edit-save-publish.
    writer: Mutex<()>,
    #[cfg(test)]
    before_save: Option<SaveHook>,
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
            revoked_ms: None,
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
    ///
    /// Refuses ([`KeyStoreError::Permissions`]) a `keys.json` or `admin.token` that group or
    /// others may read or write. Drops keys revoked [`REVOKED_KEY_GRACE_MS`] ago, rewriting
    /// the file if it dropped any.
    pub fn open(dir: &Path) -> Result<(Self, Option<PathBuf>), KeyStoreError> {
        std::fs::create_dir_all(dir).map_err(KeyStoreError::io(dir))?;
        let path = dir.join(KEYS_FILE);
        let token_path = dir.join(ADMIN_TOKEN_FILE);
        if token_path.exists() {
            file::check_private(&token_path)?;
        }
        if path.exists() {
            let mut inner = file::load(&path)?;
            let now = now_ms();
            let stamped = inner.stamp_unknown_revocations(now);
            if inner.prune(now, REVOKED_KEY_GRACE_MS) + stamped > 0 {
                file::save(&path, &inner)?;
            }
            return Ok((Self::with(path, inner), None));
        }
        let agent = AgentKey::generate().map_err(|e| KeyStoreError::Random(e.to_string()))?;
        let roles = vec![Role::Read, Role::Write, Role::Admin];
        let (token, stored) = mint("development admin", roles, vec![agent.agent_id()])?;
        let inner = Inner {
            keys: HashMap::from([(stored.info.id.clone(), stored)]),
            agents: HashMap::from([(agent.agent_id(), agent)]),
        };
        file::write_private(&token_path, format!("{token}\n").as_bytes())?;
        file::save(&path, &inner)?;
        Ok((Self::with(path, inner), Some(token_path)))
    }

    fn with(path: PathBuf, inner: Inner) -> Self {
        Self {
            path,
            current: RwLock::new(Arc::new(inner)),
            writer: Mutex::new(()),
            #[cfg(test)]
            before_save: None,
        }
    }

    /// The published state. The read lock is held only to clone the `Arc`.
    fn snapshot(&self) -> Arc<Inner> {
        Arc::clone(&self.current.read())
    }

    /// Applies `edit` to a copy of the state (after dropping keys past their grace), saves the
    /// copy, and only then publishes it; on any error nothing changes.
    fn change<T>(
        &self,
        edit: impl FnOnce(&mut Inner, u64) -> Result<T, KeyStoreError>,
    ) -> Result<T, KeyStoreError> {
        let _writer = self.writer.lock();
        let before = self.snapshot();
        let mut next = Inner::clone(&before);
        let now = now_ms();
        next.prune(now, REVOKED_KEY_GRACE_MS);
        let out = edit(&mut next, now)?;
        // The server must stay administrable: no edit may revoke or drop the last admin key.
        assert!(
            !before.has_live_admin() || next.has_live_admin(),
            "a key store change removed the last admin key"
        );
        #[cfg(test)]
        if let Some(hook) = &self.before_save {
            hook();
        }
        file::save(&self.path, &next)?;
        *self.current.write() = Arc::new(next);
        Ok(out)
    }

    /// Checks a presented token; `Err` says why it is refused (malformed, unknown, wrong,
    /// revoked). Never waits on a save in progress.
    pub fn authenticate(&self, token: &str) -> Result<Authenticated, &'static str> {
        let mut parts = token.splitn(3, '_');
        let (Some("sdb"), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("the API key is malformed; expected sdb_<id>_<secret>");
        };
        let inner = self.snapshot();
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
        self.snapshot()
            .keys
            .get(id)
            .is_some_and(|stored| !stored.info.revoked)
    }

    /// Makes a key; returns its token (shown once, never stored) and what is stored. Refuses
    /// a label over [`KEY_LABEL_BYTES_MAX`], no role, a role or agent named twice, more than
    /// [`KEY_AGENTS_MAX`] agents, and a store of [`KEYS_MAX`] keys none of which is revoked.
    pub fn create_key(
        &self,
        label: &str,
        roles: Vec<Role>,
        agents: Vec<AgentId>,
    ) -> Result<(String, KeyInfo), KeyStoreError> {
        state::check_new_key(label, &roles, &agents, KEY_LABEL_BYTES_MAX, KEY_AGENTS_MAX)?;
        let (token, stored) = mint(label, roles, agents)?;
        let info = stored.info.clone();
        self.change(|next, _| next.insert_key(stored, KEYS_MAX))?;
        Ok((token, info))
    }

    /// Revokes key `id`; once saved, it is refused. Refuses the last unrevoked admin key
    /// ([`KeyStoreError::LastAdmin`]). Revoking a revoked key keeps its first revocation time.
    pub fn revoke(&self, id: &str) -> Result<KeyInfo, KeyStoreError> {
        self.change(|next, now| next.revoke(id, now))
    }

    /// Every key, in id order.
    pub fn keys(&self) -> Vec<KeyInfo> {
        let mut keys: Vec<KeyInfo> = self.snapshot().keys.values().map(|k| k.info.clone()).collect();
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        keys
    }

    /// Makes a custodial agent: the server generates and keeps its key. Refuses past
    /// [`CUSTODIAL_AGENTS_MAX`].
    pub fn create_agent(&self) -> Result<AgentId, KeyStoreError> {
        let key = AgentKey::generate().map_err(|e| KeyStoreError::Random(e.to_string()))?;
        self.change(|next, _| next.insert_agent(key, CUSTODIAL_AGENTS_MAX))
    }

    /// The key of custodial agent `agent`, if the server holds it.
    pub fn custodial(&self, agent: &AgentId) -> Option<AgentKey> {
        self.snapshot().agents.get(agent).cloned()
    }
}

#[cfg(test)]
mod tests;
