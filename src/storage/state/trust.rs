//! Trust: the applied trust change of each agent, from the journal's trust records, in the
//! `trust` database (see [`layout`](super::layout)).
//!
//! The applied change of an agent is the greatest of its changes by (timestamp, content hash):
//! a newer change replaces the older one, an older or identical one changes nothing. Because
//! the winner is a maximum, the outcome does not depend on the order changes arrive in, and
//! replaying one changes nothing. Trust records reach the journal only after admission checked
//! their signature and that their signer is a configured administrator; applying them trusts
//! the journal and does not consult the configuration again, so a replay gives the same state
//! whatever the configuration says at the time.

use std::collections::BTreeMap;

use heed::RoTxn;

use super::layout::decode_trust;
use super::{Databases, State, StateError};
use crate::protocol::{AgentId, Hash, TrustChange};

/// An applied trust change.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTrust {
    /// The change's content hash.
    pub hash: Hash,
    /// The journal offset of the record that brought it.
    pub offset: u64,
    /// The change.
    pub change: TrustChange,
}

impl StoredTrust {
    /// Returns the change's rank among the changes of its agent: the greatest is applied.
    pub fn rank(&self) -> (u64, Hash) {
        (self.change.timestamp_ms, self.hash)
    }
}

/// Folds `new` into `pending` (the changes planned in this batch, by agent) if it outranks
/// both the pending and the stored change of its agent; returns true if and only if it does.
/// The change it replaces, stored or planned earlier in the batch, goes to `replaced`.
pub(super) fn plan_trust(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    pending: &mut BTreeMap<AgentId, StoredTrust>,
    replaced: &mut Vec<StoredTrust>,
    new: StoredTrust,
) -> Result<bool, StateError> {
    let agent = new.change.agent;
    let live = match pending.get(&agent) {
        Some(planned) => Some(planned.clone()),
        None => get_trust(txn, dbs, &agent)?,
    };
    if live.as_ref().is_some_and(|live| live.rank() >= new.rank()) {
        return Ok(false);
    }
    replaced.extend(live);
    pending.insert(agent, new);
    Ok(true)
}

impl State {
    /// Returns the trust factor of `agent`'s applied trust change, if it has one.
    pub fn trust(&self, agent: &AgentId) -> Result<Option<f32>, StateError> {
        Ok(self.trust_change(agent)?.map(|stored| stored.change.factor))
    }

    /// Returns `agent`'s applied trust change, if it has one.
    pub fn trust_change(&self, agent: &AgentId) -> Result<Option<StoredTrust>, StateError> {
        self.read(|txn, dbs| get_trust(txn, dbs, agent))
    }
}

pub(super) fn get_trust(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    agent: &AgentId,
) -> Result<Option<StoredTrust>, StateError> {
    dbs.trust
        .get(txn, agent.as_bytes())
        .map_err(StateError::lmdb("read trust"))?
        .map(decode_trust)
        .transpose()
}
