//! The ingestor's vote counting: each shard counts its own votes, and the ingestor waits
//! for every tally before it commits the batch.

use super::IngestorActor;
use super::error::IngestError;
use crate::actors::vote_counter::{CountVotes, shard_of};
use crate::storage::state::{RoutedVote, Tally};

impl IngestorActor {
    /// Sends each shard its votes; the future resolves to every shard's tally. A shard that
    /// stopped drops the request, which resolves to [`IngestError::ShardGone`].
    pub(super) fn count_votes(
        &self,
        votes: Vec<RoutedVote>,
    ) -> impl std::future::Future<Output = Result<Vec<Tally>, IngestError>> + 'static {
        let shards = self.shards.len();
        let mut routed: Vec<Vec<RoutedVote>> = vec![Vec::new(); shards];
        for vote in votes {
            routed[shard_of(&vote.vote.assertion, shards)].push(vote);
        }
        let requests: Vec<_> = routed
            .into_iter()
            .enumerate()
            .filter(|(_, votes)| !votes.is_empty())
            .map(|(shard, votes)| {
                // Counted until answered, or until the request is dropped unanswered.
                let pending = self.mailboxes.vote_counter.pending();
                (shard, self.shards[shard].send(CountVotes { votes }), pending)
            })
            .collect();
        async move {
            let mut tallies = Vec::with_capacity(requests.len());
            for (shard, request, pending) in requests {
                let answer = request.await;
                drop(pending);
                tallies.push(answer.map_err(|_| IngestError::ShardGone { shard })??);
            }
            Ok(tallies)
        }
    }
}

