//! Metrics through the [`metrics`] facade, and their Prometheus exposition.
//!
//! The crate records to whatever recorder the host installed, and never installs one itself:
//! with none installed, every metric is a no-op. `stemedb serve` installs the Prometheus
//! recorder that [`prometheus_recorder`] builds (explicit buckets for every histogram of the
//! [`catalog`]) and serves it at `/metrics`. An embedded host may install the same, or any
//! recorder of its own, before [`Node::start`](crate::node::Node::start).
//!
//! Every metric is in [`catalog::METRICS`], with its type, labels, meaning and the dashboard
//! panel that shows it; `docs/metrics.md` is the same table for readers. Labels take only
//! small, fixed sets of values: never an agent, a subject or an API key.
//!
//! Gauges that describe a state rather than an event (lag, queue use, segments, the LMDB map)
//! are sampled: the node samples them every second, and `/metrics` samples them again just
//! before it renders.

pub mod catalog;
mod config;
mod mailbox;

pub use config::{LogFormat, TelemetryConfig};

pub(crate) use mailbox::{Depth, Mailboxes};

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};

use catalog::{Kind, METRICS};

/// Builds (without installing) the Prometheus recorder for the node's metrics: every histogram
/// of the catalog with its explicit buckets. Install it with [`metrics::set_global_recorder`]
/// and render it with the [`PrometheusHandle`](metrics_exporter_prometheus::PrometheusHandle)
/// from [`PrometheusRecorder::handle`].
pub fn prometheus_recorder() -> PrometheusRecorder {
    let mut builder = PrometheusBuilder::new();
    for spec in METRICS.iter().filter(|spec| spec.kind == Kind::Histogram) {
        builder = match builder.set_buckets_for_metric(Matcher::Full(spec.name.to_owned()), spec.buckets) {
            Ok(builder) => builder,
            // Only an empty bucket list is refused, and the catalog's test rules that out.
            Err(_) => unreachable!("histogram {} has no buckets", spec.name),
        };
    }
    builder.build_recorder()
}

/// Describes every metric of the catalog to the installed recorder (help text and unit), and
/// registers each one that has no labels, or only labels with a fixed set of values, at zero:
/// a counter that has not moved yet is exported as 0 rather than missing, so rates and alerts
/// over it work from the first scrape. Called by [`Node::start`](crate::node::Node::start);
/// harmless to call again.
pub fn describe() {
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

/// Counts an item that the bounded queue `queue` (one of [`catalog::QUEUES`]) refused because
/// it was full.
pub(crate) fn busy(queue: &'static str) {
    metrics::counter!(catalog::BUSY_REJECTIONS, "queue" => queue).increment(1);
}

/// The unit a metric's name ends in, if any.
fn unit_of(name: &str) -> Option<Unit> {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_seconds") {
        Some(Unit::Seconds)
    } else if base.ends_with("_bytes") || base.ends_with("_bytes_max") {
        Some(Unit::Bytes)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::catalog::{Kind, METRICS};

    #[test]
    fn names_follow_the_prometheus_conventions() {
        let mut seen = std::collections::BTreeSet::new();
        for spec in METRICS {
            assert!(seen.insert(spec.name), "{} is listed twice", spec.name);
            assert!(spec.name.starts_with("stemedb_"), "{}", spec.name);
            assert!(
                spec.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                spec.name
            );
            assert_eq!(
                spec.kind == Kind::Counter,
                spec.name.ends_with("_total"),
                "{}",
                spec.name
            );
            assert_eq!(
                spec.kind == Kind::Histogram,
                !spec.buckets.is_empty(),
                "{}",
                spec.name
            );
            assert!(
                spec.buckets.windows(2).all(|w| w[0] < w[1]),
                "{} buckets ascend",
                spec.name
            );
            assert!(!spec.help.is_empty() && !spec.panel.is_empty(), "{}", spec.name);
            for label in spec.labels {
                for unbounded in ["agent", "subject", "predicate", "key", "hash", "voter"] {
                    assert_ne!(*label, unbounded, "{} has an unbounded label", spec.name);
                }
            }
        }
    }

    /// The table in `docs/metrics.md` is the catalog's; `STEMEDB_BLESS=1` rewrites it.
    #[test]
    fn the_reference_table_is_the_catalog() {
        const START: &str = "<!-- catalog:start -->\n";
        const END: &str = "<!-- catalog:end -->";
        let mut table = String::from("| Name | Type | Labels | Meaning | Panel |\n|---|---|---|---|---|\n");
        for spec in METRICS {
            let labels: Vec<String> = spec.labels.iter().map(|l| format!("`{l}`")).collect();
            let labels = if labels.is_empty() {
                "—".to_owned()
            } else {
                labels.join(", ")
            };
            table.push_str(&format!(
                "| `{}` | {} | {labels} | {} | {} |\n",
                spec.name,
                spec.kind.as_str(),
                spec.help,
                spec.panel
            ));
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md");
        let text = std::fs::read_to_string(&path).expect("read docs/metrics.md");
        let start = text.find(START).expect("catalog start marker") + START.len();
        let end = text.find(END).expect("catalog end marker");
        if std::env::var_os("STEMEDB_BLESS").is_some() {
            std::fs::write(&path, format!("{}{table}{}", &text[..start], &text[end..])).expect("write");
            return;
        }
        assert_eq!(
            &text[start..end],
            table,
            "docs/metrics.md is stale: run with STEMEDB_BLESS=1"
        );
    }

    /// Every metric appears in `docs/metrics.md` with its panel, and in a query of the
    /// dashboard, under that panel's title.
    #[test]
    fn the_reference_and_the_dashboard_show_every_metric() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md");
        let reference = std::fs::read_to_string(path).expect("read docs/metrics.md");
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../dashboards/stemedb-overview.json"))
                .expect("dashboard JSON");
        assert_eq!(dashboard["uid"], "stemedb-overview");
        let panels = dashboard["panels"].as_array().expect("panels");
        for spec in METRICS {
            let row = reference
                .lines()
                .find(|line| line.starts_with(&format!("| `{}`", spec.name)))
                .unwrap_or_else(|| panic!("{} is missing from docs/metrics.md", spec.name));
            assert!(
                row.contains(spec.panel),
                "docs/metrics.md gives {} another panel: {row}",
                spec.name
            );
            let shown = panels.iter().any(|panel| {
                panel["title"] == spec.panel
                    && panel["targets"].as_array().is_some_and(|targets| {
                        targets
                            .iter()
                            .any(|t| t["expr"].as_str().is_some_and(|e| e.contains(spec.name)))
                    })
            });
            assert!(shown, "no query of panel {:?} shows {}", spec.panel, spec.name);
        }
    }
}
