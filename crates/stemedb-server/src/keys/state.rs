//! [`Inner`]: one immutable snapshot of the keys and custodial agents, and the pure edits a
//! writer makes to a copy of it before saving. Nothing here touches a file or a lock.
//!
//! Invariants kept by the edits (files written by older builds may break the first two; they
//! are read as they are, and only new keys are held to the limits):
//! - at most `keys_max` keys, a new key refused only when no revoked key can make room;
//! - no key revoked by an edit here leaves the store without an unrevoked admin key if it had one.

use std::collections::HashMap;

use stemedb::protocol::{AgentId, AgentKey};

use super::file::StoredKey;
use super::{KeyInfo, KeyStoreError, Role};

/// The keys (by id) and the custodial agents (by id).
#[derive(Clone, Default)]
pub(super) struct Inner {
    pub(super) keys: HashMap<String, StoredKey>,
    pub(super) agents: HashMap<AgentId, AgentKey>,
}

impl Inner {
    /// Whether some unrevoked key holds the admin role.
    pub(super) fn has_live_admin(&self) -> bool {
        self.keys.values().any(|k| is_live_admin(&k.info))
    }

    /// Gives revoked keys without a revocation time (written before `revoked_ms` existed) the
    /// time `now_ms`, so their grace period starts now; returns how many it stamped.
    pub(super) fn stamp_unknown_revocations(&mut self, now_ms: u64) -> usize {
        let mut stamped = 0;
        for key in self.keys.values_mut() {
            if key.info.revoked && key.info.revoked_ms.is_none() {
                key.info.revoked_ms = Some(now_ms);
                stamped += 1;
            }
        }
        stamped
    }

    /// Drops keys revoked `grace_ms` or longer before `now_ms`; returns how many it dropped.
    pub(super) fn prune(&mut self, now_ms: u64, grace_ms: u64) -> usize {
        let before = self.keys.len();
        self.keys
            .retain(|_, k| match (k.info.revoked, k.info.revoked_ms) {
                (true, Some(at)) => now_ms.saturating_sub(at) < grace_ms,
                _ => true,
            });
        before - self.keys.len()
    }

    /// Adds `key`, first dropping the earliest revoked key if the store already holds
    /// `keys_max`; refuses if none is revoked.
    pub(super) fn insert_key(&mut self, key: StoredKey, keys_max: usize) -> Result<(), KeyStoreError> {
        if self.keys.contains_key(&key.info.id) {
            // 64 random bits: about one chance in 2^44 with a full store; refused, not replaced.
            return Err(KeyStoreError::Random(format!(
                "the new key id {} is taken",
                key.info.id
            )));
        }
        if self.keys.len() >= keys_max {
            let earliest = self
                .keys
                .values()
                .filter(|k| k.info.revoked)
                .min_by_key(|k| (k.info.revoked_ms.unwrap_or(0), k.info.id.clone()))
                .map(|k| k.info.id.clone())
                .ok_or(KeyStoreError::StoreFull { max: keys_max })?;
            self.keys.remove(&earliest);
        }
        if self.keys.len() >= keys_max {
            // An older build's file may hold more than the bound: refuse until it shrinks.
            return Err(KeyStoreError::StoreFull { max: keys_max });
        }
        self.keys.insert(key.info.id.clone(), key);
        Ok(())
    }

    /// Revokes key `id` at `now_ms` (a key revoked before keeps its first time); refuses the
    /// last unrevoked admin key.
    pub(super) fn revoke(&mut self, id: &str, now_ms: u64) -> Result<KeyInfo, KeyStoreError> {
        let key = self
            .keys
            .get(id)
            .ok_or_else(|| KeyStoreError::UnknownKey(id.to_owned()))?;
        if is_live_admin(&key.info)
            && !self
                .keys
                .values()
                .any(|k| k.info.id != id && is_live_admin(&k.info))
        {
            return Err(KeyStoreError::LastAdmin(id.to_owned()));
        }
        let key = self
            .keys
            .get_mut(id)
            .ok_or_else(|| KeyStoreError::UnknownKey(id.to_owned()))?;
        if !key.info.revoked {
            key.info.revoked = true;
            key.info.revoked_ms = Some(now_ms);
        }
        Ok(key.info.clone())
    }

    /// Adds custodial agent `key`; refuses past `agents_max`.
    pub(super) fn insert_agent(
        &mut self,
        key: AgentKey,
        agents_max: usize,
    ) -> Result<AgentId, KeyStoreError> {
        if self.agents.len() >= agents_max {
            return Err(KeyStoreError::AgentsFull { max: agents_max });
        }
        let agent = key.agent_id();
        self.agents.insert(agent, key);
        Ok(agent)
    }
}

fn is_live_admin(info: &KeyInfo) -> bool {
    !info.revoked && info.roles.contains(&Role::Admin)
}

/// Checks a new key's fields: a label of at most `label_bytes_max`, at least one role and no
/// role twice, at most `agents_max` agents and no agent twice.
pub(super) fn check_new_key(
    label: &str,
    roles: &[Role],
    agents: &[AgentId],
    label_bytes_max: usize,
    agents_max: usize,
) -> Result<(), KeyStoreError> {
    if label.len() > label_bytes_max {
        return Err(KeyStoreError::LabelTooLong {
            bytes: label.len(),
            max: label_bytes_max,
        });
    }
    if roles.is_empty() {
        return Err(KeyStoreError::NoRoles);
    }
    for (i, role) in roles.iter().enumerate() {
        if roles[..i].contains(role) {
            return Err(KeyStoreError::DuplicateRole(*role));
        }
    }
    // Counted before the duplicate scan, which is quadratic in the count.
    if agents.len() > agents_max {
        return Err(KeyStoreError::TooManyAgents {
            count: agents.len(),
            max: agents_max,
        });
    }
    for (i, agent) in agents.iter().enumerate() {
        if agents[..i].contains(agent) {
            return Err(KeyStoreError::DuplicateAgent(*agent));
        }
    }
    Ok(())
}
