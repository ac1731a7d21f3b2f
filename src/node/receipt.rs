//! Verifiable resolutions on a [`Node`]: [`Node::resolve_verifiable`] answers a query with a
//! [`Receipt`] that [`crate::receipt::verify`] checks offline.

use super::{Node, NodeError};
use crate::lens::{LensRegistry, Query, Resolution, ResolveError};
use crate::receipt::{RECEIPT_VERSION, RankedScore, Receipt, ReceiptQuery, ReceiptResult, ReceiptTrust};

impl Node {
    /// Resolves `query` (computed, never from a view) and proves the answer: the receipt holds
    /// the signed checkpoint, the lens and its parameters, every record that counted with its
    /// inclusion proof, the map proofs that nothing was left out, and the ranking. An answer
    /// about the past (`as_of`, or a tree that grew since the resolution read it) is proven
    /// against a checkpoint of that past size, connected to the current one by a consistency
    /// proof. Only a built-in lens can be proven (a verifier replays it).
    pub async fn resolve_verifiable(&self, mut query: Query) -> Result<(Resolution, Receipt), ResolveError> {
        query.max_stale = None;
        // Resolved first: an unknown lens is refused as such.
        let resolution = self.resolve(query.clone()).await?;
        if !LensRegistry::provable(&query.lens) {
            return Err(ResolveError::Unprovable(format!(
                "lens {:?} is not one a verifier can replay (recency, confidence and consensus are)",
                query.lens
            )));
        }
        let node = self.clone();
        let end = resolution.offset;
        let result = ReceiptResult {
            winner: resolution.winner,
            ranked: resolution
                .ranked
                .iter()
                .map(|s| RankedScore {
                    hash: s.candidate.hash,
                    score: s.score.value,
                })
                .collect(),
        };
        let receipt = actix_rt::task::spawn_blocking(move || node.build_receipt(&query, end, result))
            .await
            .map_err(|_| ResolveError::Closed)?
            .map_err(|error| match error {
                NodeError::State(error) => ResolveError::State(error),
                NodeError::Closed => ResolveError::Closed,
                other => ResolveError::Unprovable(other.to_string()),
            })?;
        Ok((resolution, receipt))
    }

    fn build_receipt(&self, query: &Query, end: u64, result: ReceiptResult) -> Result<Receipt, NodeError> {
        self.with_state(|state| {
            let evidence = state.receipt_evidence(&query.subject, &query.predicate, end)?;
            let checkpointer = &self.inner.checkpointer;
            let current = checkpointer.sign_head(state, evidence.head, Some(evidence.map_root), false)?;
            let past_checkpoint = match evidence.size < evidence.head.size {
                true => Some(
                    checkpointer
                        .sign_past(state, evidence.head.size, evidence.size, evidence.root_at_size)?
                        .note,
                ),
                false => None,
            };
            let book = &self.inner.trust_book;
            let configured = evidence
                .voters
                .iter()
                .filter_map(|voter| book.configured.get(voter).map(|factor| (*voter, *factor)))
                .collect();
            let mut receipt = Receipt {
                version: RECEIPT_VERSION,
                checkpoint: current.note,
                past_checkpoint,
                consistency: evidence.consistency,
                query: ReceiptQuery {
                    subject: query.subject.clone(),
                    predicate: query.predicate.clone(),
                    lens: query.lens.clone(),
                    lifecycles: query.lifecycles.clone(),
                    history: query.history,
                    limit: query.limit,
                },
                trust: ReceiptTrust {
                    default: book.default,
                    configured,
                    admins: self.inner.admins.clone(),
                },
                size: evidence.size,
                records: evidence.records,
                inclusion: evidence.inclusion,
                pair: evidence.pair,
                agents: evidence.agents,
                result,
                signature: String::new(),
            };
            receipt.signature = checkpointer.sign_text(&receipt.signature_text())?;
            metrics::counter!(crate::telemetry::catalog::RECEIPTS).increment(1);
            Ok(receipt)
        })
    }
}
