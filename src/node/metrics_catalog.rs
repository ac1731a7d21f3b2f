//! [`describe_metrics`]: the catalog told to the installed recorder when a node starts.

use metrics::{describe_counter, describe_gauge, describe_histogram};

use crate::telemetry::catalog::{self, Kind, METRICS};
use crate::telemetry::unit_of;

/// Describes every metric of the catalog to the installed recorder (help text and unit), and
/// registers each one that has no labels, or only labels with a fixed set of values, at zero:
/// a counter that has not moved yet is exported as 0 rather than missing, so rates and alerts
/// over it work from the first scrape. Called by [`Node::start`](super::Node::start);
/// harmless to call again.
pub fn describe_metrics() {
    for spec in METRICS {
        let unit = unit_of(spec.name);
        match (spec.kind, unit) {
            (Kind::Counter, Some(unit)) => describe_counter!(spec.name, unit, spec.help),
            (Kind::Counter, None) => describe_counter!(spec.name, spec.help),
            (Kind::Gauge, Some(unit)) => describe_gauge!(spec.name, unit, spec.help),
            (Kind::Gauge, None) => describe_gauge!(spec.name, spec.help),
            (Kind::Histogram, Some(unit)) => describe_histogram!(spec.name, unit, spec.help),
            (Kind::Histogram, None) => describe_histogram!(spec.name, spec.help),
        }
    }
    for spec in METRICS.iter().filter(|spec| spec.kind == Kind::Counter) {
        let values: &[&str] = match spec.name {
            catalog::INGEST_REJECTED => crate::storage::state::RejectReason::CODES,
            catalog::JOURNAL_APPEND_ERRORS => catalog::APPEND_ERROR_KINDS,
            catalog::HTTP_REJECTIONS => catalog::HTTP_REJECTION_REASONS,
            catalog::BUSY_REJECTIONS => catalog::QUEUES,
            catalog::RESOLVE_ERRORS => catalog::RESOLVE_ERROR_REASONS,
            catalog::CHECKPOINTS_SIGNED => catalog::CHECKPOINT_KINDS,
            _ if spec.labels.is_empty() => {
                metrics::counter!(spec.name).increment(0);
                continue;
            }
            // Labels with open sets (a lens, a route) appear with their first use.
            _ => continue,
        };
        for &value in values {
            metrics::counter!(spec.name, spec.labels[0] => value).increment(0);
        }
    }
    for spec in METRICS
        .iter()
        .filter(|spec| spec.kind == Kind::Histogram && spec.labels.is_empty())
    {
        // Registering creates the series; no sample is recorded.
        let _ = metrics::histogram!(spec.name);
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    metrics::gauge!(catalog::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "profile" => profile)
        .set(1.0);
}
