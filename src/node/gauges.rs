//! [`Node::refresh_gauges`] and the sampler behind it: the gauges that describe a state rather
//! than count events.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;

use super::Node;
use crate::telemetry::catalog;

/// How often a node samples its gauges by itself.
pub const GAUGE_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

impl Node {
    /// Sets every sampled gauge from the node's current state: ingest lag (bytes, records,
    /// seconds) and stall, the log's own gauges (journal segments, disk bytes, quarantine and
    /// poisoning), queue use against budgets, mailbox depths, views (count and bytes) and
    /// watchers, the audit trail's stored bytes, and the LMDB map. The node calls it every
    /// second ([`GAUGE_SAMPLE_INTERVAL`]). Does nothing once the node is shut down.
    fn sample_gauges(&self) {
        self.inner
            .sampled_ms
            .store(crate::protocol::now_ms(), Ordering::Relaxed);
        let status = self.ingest_status();
        metrics::gauge!(catalog::INGEST_STALLED).set(f64::from(u8::from(status.stalled.is_some())));
        let lag_seconds = status
            .behind_since
            .map_or(0.0, |since| since.elapsed().as_secs_f64());
        metrics::gauge!(catalog::INGEST_LAG_SECONDS).set(lag_seconds);
        let census = self.inner.views.census();
        metrics::gauge!(catalog::VIEWS).set(census.views as f64);
        metrics::gauge!(catalog::VIEWS_BYTES).set(census.bytes as f64);
        metrics::gauge!(catalog::WATCHERS).set(census.watchers as f64);
        for (label, depth) in self.inner.mailboxes.labelled() {
            metrics::gauge!(catalog::MAILBOX_DEPTH, "actor" => label).set(depth.get() as f64);
        }
        let _ = self.with_running(|running| {
            let durable_end = running.log.durable_end();
            // Positions: bytes of journal, or records of a stream (whose positions are sequences).
            metrics::gauge!(catalog::INGEST_LAG_BYTES).set(durable_end.saturating_sub(status.cursor) as f64);
            let lag_records = running
                .log
                .records_behind(status.cursor, status.applied_since_start);
            metrics::gauge!(catalog::INGEST_LAG_RECORDS).set(lag_records as f64);
            running.log.record_gauges();
            let append = running.append.queue_use();
            for (queue, (entries, bytes, bytes_max)) in [
                ("verify", running.admission.queue_use()),
                ("group_commit", (append.entries, append.bytes, append.bytes_max)),
            ] {
                metrics::gauge!(catalog::QUEUE_ENTRIES, "queue" => queue).set(entries as f64);
                metrics::gauge!(catalog::QUEUE_BYTES, "queue" => queue).set(bytes as f64);
                metrics::gauge!(catalog::QUEUE_BYTES_MAX, "queue" => queue).set(bytes_max as f64);
            }
            if let Some(audit) = &running.audit {
                metrics::gauge!(catalog::AUDIT_STORED_BYTES).set(audit.stored_bytes() as f64);
            }
            metrics::gauge!(catalog::STATE_MAP_USED_BYTES).set(running.state.map_used_bytes() as f64);
            metrics::gauge!(catalog::STATE_MAP_SIZE_BYTES).set(running.state.map_size_bytes() as f64);
            Ok(())
        });
    }
}

impl Node {
    /// Samples the gauges the node samples every [`GAUGE_SAMPLE_INTERVAL`] (lag, queue use,
    /// the log's and the LMDB map's sizes) now, unless they were sampled less than `fresh` ago:
    /// for an exporter, just before it renders; a scrape flood costs one sample per `fresh`,
    /// however many scrapes come. Does nothing once the node is shut down.
    pub fn refresh_gauges(&self, fresh: Duration) {
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
