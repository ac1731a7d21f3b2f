//! Metrics through the [`metrics`] facade: the catalog of every metric the engine records.
//!
//! The engine records to whatever recorder the host installed, and never installs one itself:
//! with none installed, every metric is a no-op. `stemedb serve` installs the Prometheus
//! recorder that `stemedb_server::prometheus_recorder` builds (explicit buckets for every
//! histogram of the [`catalog`]) and serves it at `/metrics`. An embedded host may install the
//! same, or any recorder of its own, before [`Node::start`](crate::node::Node::start), which
//! describes every metric to it ([`describe_metrics`](crate::node::describe_metrics)).
//!
//! Every metric is in [`catalog::METRICS`], with its type, labels, meaning and the dashboard
//! panel that shows it; `docs/metrics.md` is the same table for readers. Labels take only
//! small, fixed sets of values: never an agent, a subject or an API key.
//!
//! Gauges that describe a state rather than an event (lag, queue use, segments, the LMDB map)
//! are sampled: the node samples them every second, and `/metrics` samples them again just
//! before it renders.

pub mod catalog;
mod mailbox;

pub(crate) use mailbox::Mailboxes;

use metrics::Unit;

/// The unit a metric's name ends in, if any.
pub(crate) fn unit_of(name: &str) -> Option<Unit> {
    let base = name.strip_suffix("_total").unwrap_or(name);
    if base.ends_with("_seconds") {
        Some(Unit::Seconds)
    } else if base.ends_with("_bytes") || base.ends_with("_bytes_max") {
        Some(Unit::Bytes)
    } else {
        None
    }
}

/// Counts an item that the bounded queue `queue` (one of [`catalog::QUEUES`]) refused because
/// it was full.
pub(crate) fn busy(queue: &'static str) {
    metrics::counter!(catalog::BUSY_REJECTIONS, "queue" => queue).increment(1);
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
