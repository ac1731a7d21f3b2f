//! The write API of [`Node`]: assertions, votes and trust changes, submitted to admission;
//! each resolves once its record is durable.

use super::{Node, Receipt, SubmitError};
use crate::protocol::{Assertion, LogRecord, TrustChange, Vote};

impl Node {
    /// Submits one assertion; resolves once it is durable. An assertion stored already is
    /// not journaled again: its receipt is the stored one, marked
    /// [`duplicate`](Receipt::duplicate) (so are trust changes already applied).
    pub async fn submit(&self, assertion: Assertion) -> Result<Receipt, SubmitError> {
        let mut results = self.submit_many(vec![assertion]).await?;
        results.pop().unwrap_or(Err(SubmitError::Closed))
    }

    /// Submits several assertions, verified together; resolves, once every accepted one is
    /// durable, to one result per assertion, in order. A refused assertion does not affect the
    /// others. The outer error refuses the whole batch (too large, busy, shut down).
    pub async fn submit_many(
        &self,
        assertions: Vec<Assertion>,
    ) -> Result<Vec<Result<Receipt, SubmitError>>, SubmitError> {
        self.submit_records(assertions.into_iter().map(LogRecord::Assertion).collect())
            .await
    }

    /// Casts one vote; resolves once it is durable. The vote is counted when indexed: see
    /// [`wait_indexed`](Self::wait_indexed) and [`vote_totals`](Self::vote_totals).
    pub async fn cast_vote(&self, vote: Vote) -> Result<Receipt, SubmitError> {
        let mut results = self.cast_votes(vec![vote]).await?;
        results.pop().unwrap_or(Err(SubmitError::Closed))
    }

    /// Casts several votes, verified together; resolves to one result per vote, in order,
    /// like [`submit_many`](Self::submit_many).
    pub async fn cast_votes(
        &self,
        votes: Vec<Vote>,
    ) -> Result<Vec<Result<Receipt, SubmitError>>, SubmitError> {
        self.submit_records(votes.into_iter().map(LogRecord::Vote).collect())
            .await
    }

    /// Submits an administrator's signed trust change; resolves once it is durable. It applies
    /// when indexed (see [`wait_indexed`](Self::wait_indexed)), if it is the agent's newest by
    /// (timestamp, content hash), and from then on [`trust`](Self::trust) reads it.
    ///
    /// Refused with [`SubmitError::NotAdmin`] unless its signer is listed in `votes.admins`,
    /// and with [`SubmitError::Invalid`] if its factor, timestamp or signature is bad; a
    /// refused change never reaches the journal.
    pub async fn submit_trust(&self, change: TrustChange) -> Result<Receipt, SubmitError> {
        let mut results = self.submit_records(vec![LogRecord::Trust(change)]).await?;
        results.pop().unwrap_or(Err(SubmitError::Closed))
    }

    #[tracing::instrument(level = "debug", name = "node.submit", skip_all, fields(records = records.len()))]
    async fn submit_records(
        &self,
        records: Vec<LogRecord>,
    ) -> Result<Vec<Result<Receipt, SubmitError>>, SubmitError> {
        let max = self.inner.submit_batch_records_max;
        if records.len() > max {
            return Err(SubmitError::BatchTooLarge {
                count: records.len(),
                max,
            });
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let stored = self.stored_receipts(&records);
        let records: Vec<LogRecord> = records
            .into_iter()
            .zip(&stored)
            .filter_map(|(record, stored)| stored.is_none().then_some(record))
            .collect();
        if records.is_empty() {
            return Ok(stored
                .into_iter()
                .map(|receipt| receipt.ok_or(SubmitError::Closed))
                .collect());
        }
        let verdicts = {
            let running = self.inner.running.read();
            running
                .as_ref()
                .ok_or(SubmitError::Closed)?
                .admission
                .submit(records)?
        };
        let verdicts = verdicts.await.map_err(|_| SubmitError::Closed)??;
        let mut verdicts = verdicts.into_iter();
        let mut results = Vec::with_capacity(stored.len());
        for stored in stored {
            if let Some(receipt) = stored {
                results.push(Ok(receipt));
                continue;
            }
            let Some(verdict) = verdicts.next() else {
                results.push(Err(SubmitError::Closed));
                continue;
            };
            results.push(match verdict {
                Ok((hash, ack)) => match ack.await {
                    Ok(Ok(offset)) => Ok(Receipt {
                        hash,
                        offset,
                        duplicate: false,
                    }),
                    Ok(Err(error)) => Err(error),
                    Err(_) => Err(SubmitError::Closed),
                },
                Err(error) => Err(error),
            });
        }
        Ok(results)
    }
}
