//! [`Node::sample_gauges`]: the gauges that describe a state rather than count events.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;

use super::Node;
use crate::telemetry::catalog;

/// How often a node samples its gauges by itself.
pub const GAUGE_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

impl Node {
    /// Sets every sampled gauge from the node's current state: ingest lag (bytes, records,
    /// seconds) and stall, journal segments, disk bytes, quarantine and poisoning, queue use
    /// against budgets, mailbox depths, views and watchers, and the LMDB map. The node calls
    /// it every second ([`GAUGE_SAMPLE_INTERVAL`]); an exporter may call it just before it
    /// renders. Does nothing once the node is shut down.
    pub fn sample_gauges(&self) {
        self.inner
            .sampled_ms
            .store(crate::protocol::now_ms(), Ordering::Relaxed);
        let status = self.ingest_status();
        metrics::gauge!(catalog::INGEST_STALLED).set(f64::from(u8::from(status.stalled.is_some())));
        let lag_seconds = status
            .behind_since
            .map_or(0.0, |since| since.elapsed().as_secs_f64());
        metrics::gauge!(catalog::INGEST_LAG_SECONDS).set(lag_seconds);
        let (views, watchers) = self.inner.views.census();
        metrics::gauge!(catalog::VIEWS).set(views as f64);
        metrics::gauge!(catalog::WATCHERS).set(watchers as f64);
        for (label, depth) in self.inner.mailboxes.labelled() {
            metrics::gauge!(catalog::MAILBOX_DEPTH, "actor" => label).set(depth.get() as f64);
        }
        let _ = self.with_running(|running| {
            let durable_end = running.log.durable_end();
            // Bytes of journal, or records of the stream (whose positions are sequences).
            metrics::gauge!(catalog::INGEST_LAG_BYTES).set(durable_end.saturating_sub(status.cursor) as f64);
            let publish_queue = match (&running.journal, &running.replica) {
                (Some(journal), _) => {
                    let lag_records = journal
                        .appended_records()
                        .saturating_sub(status.applied_since_start);
                    metrics::gauge!(catalog::INGEST_LAG_RECORDS).set(lag_records as f64);
                    metrics::gauge!(catalog::JOURNAL_SEGMENTS).set(journal.segment_count() as f64);
                    metrics::gauge!(catalog::JOURNAL_DISK_BYTES).set(journal.disk_bytes() as f64);
                    metrics::gauge!(catalog::JOURNAL_QUARANTINED_REGIONS)
                        .set(journal.quarantined_regions() as f64);
                    metrics::gauge!(catalog::JOURNAL_POISONED)
                        .set(f64::from(u8::from(journal.is_poisoned())));
                    journal.queue_use()
                }
                (None, Some(replica)) => {
                    let lag_records = durable_end.saturating_sub(status.cursor);
                    metrics::gauge!(catalog::INGEST_LAG_RECORDS).set(lag_records as f64);
                    replica.publisher.queue_use()
                }
                (None, None) => (0, 0, 0),
            };
            for (queue, (entries, bytes, bytes_max)) in [
                ("verify", running.admission.queue_use()),
                ("group_commit", publish_queue),
            ] {
                metrics::gauge!(catalog::QUEUE_ENTRIES, "queue" => queue).set(entries as f64);
                metrics::gauge!(catalog::QUEUE_BYTES, "queue" => queue).set(bytes as f64);
                metrics::gauge!(catalog::QUEUE_BYTES_MAX, "queue" => queue).set(bytes_max as f64);
            }
            metrics::gauge!(catalog::STATE_MAP_USED_BYTES).set(running.state.map_used_bytes() as f64);
            metrics::gauge!(catalog::STATE_MAP_SIZE_BYTES).set(running.state.map_size_bytes() as f64);
            Ok(())
        });
    }
}

impl Node {
    /// [`sample_gauges`](Self::sample_gauges) unless they were sampled less than `fresh` ago:
    /// a scrape flood costs one sample per `fresh`, however many scrapes come.
    pub(crate) fn sample_gauges_unless_fresh(&self, fresh: Duration) {
        let last = self.inner.sampled_ms.load(Ordering::Relaxed);
        if crate::protocol::now_ms().saturating_sub(last) >= fresh.as_millis() as u64 {
            self.sample_gauges();
        }
    }
}

/// Samples a node's gauges every [`GAUGE_SAMPLE_INTERVAL`] until the node shuts down. Holds
/// the node weakly: it never keeps a node alive.
pub(super) struct GaugeSampler {
    pub(super) node: std::sync::Weak<super::Inner>,
}

impl Actor for GaugeSampler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(GAUGE_SAMPLE_INTERVAL, |sampler, ctx| {
            match sampler.node.upgrade() {
                Some(inner) if inner.running.read().is_some() => Node { inner }.sample_gauges(),
                _ => ctx.stop(),
            }
        });
    }
}
