//! [`VoteCounterActor`]: one per shard; the one place the totals of its assertions are counted.
//!
//! Every vote is routed by its assertion's hash ([`shard_of`]), so all votes on one assertion
//! reach the same shard, which handles one [`CountVotes`] message at a time: there is never a
//! second writer of the same totals, so no update can be lost to a read-modify-write race. The
//! shard folds the batch into the committed rows and totals ([`State::tally`]) and hands the
//! result back to the ingestor, the one LMDB writer, which commits every shard's tally together with the assertions
//! and the ingest cursor in one LMDB transaction: after a crash, votes, totals and cursor are
//! consistent, and replay neither loses nor double-counts a vote.
//!
//! A shard is not restarted: a panic drops it (and the request it was handling), the ingestor
//! finds it gone, and halts with that reason, since the shard's votes cannot be counted
//! anywhere else.

use actix::prelude::*;

use super::hooks::Hooks;
use crate::protocol::Hash;
use crate::storage::state::{RoutedVote, State, StateError, Tally};

/// Mailbox capacity: the ingestor sends each shard at most one batch at a time.
const MAILBOX_CAPACITY: usize = 4;

/// Returns the shard (in `0..shards`) that owns the totals of `assertion`.
pub fn shard_of(assertion: &Hash, shards: usize) -> usize {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&assertion.as_bytes()[..8]);
    // `shards` is at most VOTE_SHARDS_CEILING, so the remainder fits a usize.
    (u64::from_be_bytes(prefix) % shards.max(1) as u64) as usize
}

/// A vote-counting shard.
pub struct VoteCounterActor {
    shard: usize,
    state: State,
    hooks: Hooks,
}

impl VoteCounterActor {
    /// Creates shard `shard` over `state`.
    pub fn new(shard: usize, state: State) -> Self {
        Self {
            shard,
            state,
            hooks: Hooks::default(),
        }
    }

    /// Installs test-only [`Hooks`] (faults to inject).
    #[doc(hidden)]
    pub fn with_hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }
}

impl std::fmt::Debug for VoteCounterActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoteCounterActor")
            .field("shard", &self.shard)
            .finish()
    }
}

impl Actor for VoteCounterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

/// Count these votes (all routed to this shard, in journal order) against the committed state.
#[derive(Debug, Message)]
#[rtype(result = "Result<Tally, StateError>")]
pub struct CountVotes {
    /// The votes.
    pub votes: Vec<RoutedVote>,
}

impl Handler<CountVotes> for VoteCounterActor {
    type Result = Result<Tally, StateError>;

    fn handle(&mut self, message: CountVotes, _ctx: &mut Self::Context) -> Self::Result {
        self.hooks.before_tally(self.shard);
        self.state.tally(&message.votes)
    }
}
