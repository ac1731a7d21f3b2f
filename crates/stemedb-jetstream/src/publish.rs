//! [`Publisher`]: admitted records to the stream, each acknowledged by its PubAck.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishErrorKind};

use super::{ReplicationConfig, ReplicationError};
use stemedb::budget::{Budget, Reservation};
use stemedb::log::{Append, AppendError, Outgoing, QueueUse};

/// First pause before a publish is retried; doubling up to [`RETRY_PAUSE_MAX`].
const RETRY_PAUSE_MIN: Duration = Duration::from_millis(25);
/// Longest pause between retries.
const RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);

/// Publishes to the stream; cheap to clone.
#[derive(Clone)]
pub(crate) struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    runtime: tokio::runtime::Handle,
    js: jetstream::Context,
    stream: String,
    subject: async_nats::Subject,
    deadline: Duration,
    record_bytes_max: usize,
    budget: Arc<Budget>,
    /// One past the highest sequence acknowledged to this node (shared with its log).
    acked: Arc<AtomicU64>,
}

impl Publisher {
    pub(super) fn new(
        runtime: tokio::runtime::Handle,
        js: jetstream::Context,
        config: &ReplicationConfig,
        record_bytes_max: usize,
        budget: Arc<Budget>,
        acked: Arc<AtomicU64>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                runtime,
                js,
                stream: config.stream.clone(),
                subject: config.subject.clone().into(),
                deadline: Duration::from_millis(config.publish_deadline_ms),
                record_bytes_max,
                budget,
                acked,
            }),
        }
    }
}

impl Append for Publisher {
    fn record_bytes_max(&self) -> usize {
        self.inner.record_bytes_max
    }

    /// Queues one submission's records without blocking, all or none: refused when the
    /// publish queue is full. Each record's reply runs exactly once. The caller has refused
    /// records above [`record_bytes_max`](Append::record_bytes_max).
    fn try_append(&self, records: Vec<Outgoing>) -> Result<(), AppendError> {
        let bytes = records.iter().map(|r| r.payload.len()).sum();
        let share = self
            .inner
            .budget
            .try_reserve(records.len(), bytes)
            .map_err(AppendError::Busy)?;
        let inner = Arc::clone(&self.inner);
        self.inner
            .runtime
            .spawn(async move { inner.publish(records, share).await });
        Ok(())
    }

    fn queue_use(&self) -> QueueUse {
        let (entries, bytes) = self.inner.budget.in_flight();
        QueueUse {
            entries,
            bytes,
            bytes_max: self.inner.budget.bytes_max(),
        }
    }
}

impl Inner {
    /// Publishes a submission's records, pipelined, in order; `after_previous` records wait for
    /// every earlier acknowledgement. Failed publishes are retried with their ids until the
    /// deadline.
    async fn publish(&self, records: Vec<Outgoing>, share: Reservation) {
        let deadline = Instant::now() + self.deadline;
        let mut wave = Vec::new();
        let mut failed: Option<String> = None;
        for record in records {
            if record.after_previous && !wave.is_empty() {
                failed = self.publish_wave(std::mem::take(&mut wave), deadline).await;
            }
            // An earlier record was not stored: a later one may depend on it, so none after it
            // is published.
            if let Some(error) = &failed {
                self.not_stored(record, error);
                continue;
            }
            wave.push(record);
        }
        if !wave.is_empty() {
            self.publish_wave(wave, deadline).await;
        }
        drop(share);
    }

    /// Answers `record`, which follows one that was not stored (`error`), without publishing it.
    fn not_stored(&self, record: Outgoing, error: &str) {
        record
            .reply
            .reply(Err(AppendError::from(ReplicationError::NotAcknowledged {
                deadline_ms: self.deadline.as_millis() as u64,
                reason: format!("an earlier record of its submission was not stored: {error}"),
            })));
    }

    /// Publishes records that do not depend on each other, retrying those not acknowledged
    /// until `deadline`; every reply runs. Returns why some were not stored, if any were not.
    async fn publish_wave(&self, records: Vec<Outgoing>, deadline: Instant) -> Option<String> {
        let mut pending: Vec<(Outgoing, bytes::Bytes)> = records
            .into_iter()
            .map(|mut record| {
                let payload = bytes::Bytes::from(std::mem::take(&mut record.payload));
                (record, payload)
            })
            .collect();
        let mut pause = RETRY_PAUSE_MIN;
        let mut outcome = None;
        loop {
            // Built first: the records (their replies) must not be borrowed across an await.
            let messages: Vec<_> = pending
                .iter()
                .map(|(record, payload)| {
                    jetstream::message::PublishMessage::build()
                        .payload(payload.clone())
                        .message_id(record.id.to_string())
                })
                .collect();
            // Every send and every acknowledgement of the round is bounded by the deadline, and
            // the acknowledgements are awaited together: a round takes at most one ack timeout.
            let round = async {
                let mut acks = Vec::with_capacity(messages.len());
                for message in messages {
                    acks.push(self.js.send_publish(self.subject.clone(), message).await);
                }
                futures_util::future::join_all(acks.into_iter().map(|sent| async move {
                    match sent {
                        Ok(ack) => ack.await,
                        Err(error) => Err(error),
                    }
                }))
                .await
            };
            let acks = match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), round).await {
                Ok(acks) => acks.into_iter().map(Some).collect(),
                Err(_) => (0..pending.len()).map(|_| None).collect::<Vec<_>>(),
            };
            let mut failed = Vec::new();
            let mut last_error = String::from("the deadline passed");
            for ((record, payload), ack) in pending.into_iter().zip(acks) {
                match ack {
                    Some(Ok(ack)) if ack.stream == self.stream => {
                        self.acked.fetch_max(ack.sequence + 1, Ordering::AcqRel);
                        record.reply.reply(Ok(ack.sequence));
                    }
                    Some(Ok(ack)) => {
                        let error = format!(
                            "stream {} acknowledged it, not {}: another stream holds the subject",
                            ack.stream, self.stream
                        );
                        outcome = Some(error.clone());
                        record.reply.reply(Err(ReplicationError::Refused(error).into()));
                    }
                    Some(Err(error)) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                        outcome = Some(error.to_string());
                        record
                            .reply
                            .reply(Err(AppendError::from(ReplicationError::RecordTooLarge {
                                bytes: payload.len(),
                                max: self.record_bytes_max,
                            })));
                    }
                    Some(Err(error)) => {
                        last_error = error.to_string();
                        failed.push((record, payload));
                    }
                    None => failed.push((record, payload)),
                }
            }
            if failed.is_empty() {
                return outcome;
            }
            metrics::counter!(stemedb::telemetry::catalog::REPLICATION_PUBLISH_RETRIES)
                .increment(failed.len() as u64);
            if Instant::now() + pause >= deadline {
                tracing::error!(records = failed.len(), error = %last_error, "stream publishes not acknowledged by the deadline");
                for (record, _) in failed {
                    record
                        .reply
                        .reply(Err(AppendError::from(ReplicationError::NotAcknowledged {
                            deadline_ms: self.deadline.as_millis() as u64,
                            reason: last_error.clone(),
                        })));
                }
                return Some(last_error);
            }
            // Once a wave at warn (an election fails every publish for seconds), then at debug.
            if pause == RETRY_PAUSE_MIN {
                tracing::warn!(records = failed.len(), error = %last_error, "stream publishes not acknowledged; retrying with the same ids");
            } else {
                tracing::debug!(records = failed.len(), error = %last_error, retry_in = ?pause, "stream publishes retried");
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_PAUSE_MAX);
            pending = failed;
        }
    }
}
