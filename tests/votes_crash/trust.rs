//! The trust part of the votes SIGKILL test: the child's administrator task, which submits
//! signed trust changes (newer, tied, older, identical re-sends) and proves a non-admin's is
//! refused; and the parent's replay of the journal's trust records, which the state's trust
//! table must equal.

use std::collections::BTreeMap;

use stemedb::node::{Node, SubmitError};
use stemedb::protocol::{AgentId, TRUST_FACTOR_MAX, TrustChange};
use stemedb::storage::state::{StateDump, StoredTrust};

use crate::common::{self, Rng, crash::ADMIN_KEY};

/// Changes the task remembers, to re-send, tie or undercut by up to `OLDER_MS_MAX` ms.
const HISTORY_MAX: usize = 16;
const OLDER_MS_MAX: u64 = 2000;
/// One change in this many is first tried by a non-admin, which must be refused.
const NON_ADMIN_EVERY: u64 = 16;
/// The key of the agent that is not an administrator.
const OUTSIDER_KEY: u8 = 251;

/// The child's administrator task: rates `agents`, one change at a time.
pub struct Admin {
    /// Seeded choices.
    pub rng: Rng,
    /// The agents it rates (the voters).
    pub agents: Vec<AgentId>,
    /// The timestamp of its newest change; steps ahead with every new change.
    pub clock_ms: u64,
    /// Acknowledged changes as (agent, factor, timestamp), newest last.
    pub history: Vec<(AgentId, f32, u64)>,
}

impl Admin {
    /// Submits changes until the child is killed, printing `ack trust <hash> <offset>` for each
    /// durable one.
    pub async fn run(mut self, node: Node) {
        loop {
            let (agent, factor, timestamp_ms) = self.choose();
            if self.rng.below(NON_ADMIN_EVERY) == 0 {
                let outsider = TrustChange::sign(&common::key(OUTSIDER_KEY), agent, factor, timestamp_ms);
                let refused = node.submit_trust(outsider).await;
                assert!(
                    matches!(refused, Err(SubmitError::NotAdmin { .. })),
                    "{refused:?}"
                );
            }
            let change = TrustChange::sign(&common::key(ADMIN_KEY), agent, factor, timestamp_ms);
            let receipt = node.submit_trust(change.clone()).await.unwrap();
            assert_eq!(receipt.hash, change.content_hash(), "a wrong receipt");
            println!("ack trust {} {}", receipt.hash, receipt.offset);
            let excess = (self.history.len() + 1).saturating_sub(HISTORY_MAX);
            self.history.drain(..excess);
            self.history.push((agent, factor, timestamp_ms));
        }
    }

    /// Chooses the next change: an identical re-send, an older one, a timestamp tie, or (most
    /// often) a newer one, for a random agent; factors from 0 to the largest allowed.
    fn choose(&mut self) -> (AgentId, f32, u64) {
        let factor = match self.rng.below(8) {
            0 => 0.0,
            1 => TRUST_FACTOR_MAX,
            2 => f32::from_bits(1 + self.rng.below(1 << 23) as u32),
            _ => self.rng.below(1_000_000) as f32 / 1000.0,
        };
        let roll = self.rng.below(100);
        let earlier = self.rng.pick(&self.history);
        if let (0..40, Some((agent, earlier_factor, earlier_ms))) = (roll, earlier) {
            return match roll {
                0..10 => (agent, earlier_factor, earlier_ms),
                10..25 => (agent, factor, earlier_ms - 1 - self.rng.below(OLDER_MS_MAX)),
                _ => (agent, factor, earlier_ms),
            };
        }
        self.clock_ms += 1 + self.rng.below(3);
        let agent = self.rng.pick(&self.agents).unwrap();
        (agent, factor, self.clock_ms)
    }
}

/// Applies a journaled trust change to the replay's trust table: it must be the
/// administrator's, and it replaces its agent's change if it outranks it.
pub fn replay(trust: &mut BTreeMap<AgentId, StoredTrust>, offset: u64, change: &TrustChange, ctx: &str) {
    let admin = common::key(ADMIN_KEY).agent_id();
    assert_eq!(
        change.admin, admin,
        "{ctx}: a non-admin's trust change at {offset} was journaled"
    );
    let new = StoredTrust {
        hash: change.content_hash(),
        offset,
        change: change.clone(),
    };
    let applied = trust.entry(change.agent).or_insert_with(|| new.clone());
    if new.rank() > applied.rank() {
        *applied = new;
    }
}

/// Returns true if and only if the acknowledged `change` (with `hash`, at `offset`) is kept in
/// `dump`: it is its agent's applied change (at its offset, or at an identical change's
/// before), or the applied change outranks it.
pub fn kept(dump: &StateDump, change: &TrustChange, hash: stemedb::protocol::Hash, offset: u64) -> bool {
    let applied = dump.trust.iter().find(|t| t.change.agent == change.agent);
    applied.is_some_and(|t| (t.hash == hash && t.offset <= offset) || t.rank() > (change.timestamp_ms, hash))
}

/// The trust table, comparable: (agent, hash, offset, factor bits) per applied change.
pub fn rows<'a>(
    trust: impl IntoIterator<Item = &'a StoredTrust>,
) -> std::collections::BTreeSet<(AgentId, String, u64, u32)> {
    let row = |t: &StoredTrust| {
        (
            t.change.agent,
            t.hash.to_string(),
            t.offset,
            t.change.factor.to_bits(),
        )
    };
    trust.into_iter().map(row).collect()
}
