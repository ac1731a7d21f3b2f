#!/usr/bin/env python3
"""Writes dashboards/stemedb-overview.json, the Grafana dashboard of a StemeDB node.

Edit the panels here and run `python3 scripts/dashboard.py`; the JSON is committed. Every
metric of the node's catalog (src/telemetry/catalog.rs) must be shown by the panel the catalog
names (a unit test checks it), and every query must return data against a node under load
(scripts/prometheus-check.sh checks that through a real Prometheus).
"""
import json
import pathlib

SEL = 'instance=~"$instance"'
RI = "$__rate_interval"


def sel(extra=""):
    return "{" + SEL + (", " + extra if extra else "") + "}"


def rate(metric, by=None, extra=""):
    inner = f"rate({metric}{sel(extra)}[{RI}])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def quantile(q, metric, by="le"):
    return f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket{sel()}[{RI}])))"


ROWS = [
    ("Throughput", [
        ("Writes acknowledged", "ops", [(rate("stemedb_journal_appends_total"), "records/s")]),
        ("Journal bytes written", "Bps", [(rate("stemedb_journal_append_bytes_total"), "bytes/s")]),
        ("Ingest applied", "ops", [
            (rate("stemedb_ingest_records_total"), "records/s"),
            (rate("stemedb_ingest_applied_total"), "assertions stored/s"),
            (rate("stemedb_ingest_duplicates_total"), "duplicates/s"),
        ]),
    ]),
    ("Latency percentiles", [
        ("fsync latency", "s", [
            (quantile(0.5, "stemedb_journal_fsync_seconds"), "p50"),
            (quantile(0.99, "stemedb_journal_fsync_seconds"), "p99"),
            (quantile(0.999, "stemedb_journal_fsync_seconds"), "p99.9"),
        ]),
        ("LMDB commit latency", "s", [
            (quantile(0.5, "stemedb_ingest_commit_seconds"), "p50"),
            (quantile(0.99, "stemedb_ingest_commit_seconds"), "p99"),
        ]),
        ("Resolve latency", "s", [
            (quantile(0.5, "stemedb_resolve_seconds", "le, lens"), "p50 {{lens}}"),
            (quantile(0.99, "stemedb_resolve_seconds", "le, lens"), "p99 {{lens}}"),
        ]),
        ("HTTP latency", "s", [
            (quantile(0.5, "stemedb_http_request_seconds", "le, route"), "p50 {{route}}"),
            (quantile(0.99, "stemedb_http_request_seconds", "le, route"), "p99 {{route}}"),
        ]),
    ]),
    ("Errors", [
        ("Rejected records by reason", "ops", [(rate("stemedb_ingest_rejected_total", "reason"), "{{reason}}")]),
        ("Journal append errors", "ops", [
            (rate("stemedb_journal_append_errors_total", "kind"), "{{kind}}"),
            (rate("stemedb_replication_publish_retries_total"), "stream publish retries"),
        ]),
        ("Resolve errors", "ops", [(rate("stemedb_resolve_errors_total", "reason"), "{{reason}}")]),
        ("HTTP error responses", "reqps", [
            (rate("stemedb_http_requests_total", "status", 'status=~"4..|5.."'), "{{status}}"),
        ]),
    ]),
    ("Ingest lag", [
        ("Ingest lag", "short", [
            (f"sum(stemedb_ingest_lag_bytes{sel()})", "bytes"),
            (f"sum(stemedb_ingest_lag_records{sel()})", "records"),
        ]),
        ("Ingest lag seconds", "s", [(f"max(stemedb_ingest_lag_seconds{sel()})", "oldest unapplied")]),
        ("Ingest stalls and retries", "short", [
            (f"max(stemedb_ingest_stalled{sel()})", "stalled"),
            (f"sum(increase(stemedb_ingest_stalls_total{sel()}[{RI}]))", "stalls"),
            (rate("stemedb_ingest_retries_total"), "retries/s"),
            (f"sum(increase(stemedb_ingest_halted_total{sel()}[{RI}]))", "halts"),
        ]),
    ]),
    ("Group commit", [
        ("Group-commit batch size", "short", [
            (quantile(0.5, "stemedb_journal_batch_records"), "p50"),
            (quantile(0.99, "stemedb_journal_batch_records"), "p99"),
            (f"{rate('stemedb_journal_batch_records_sum')} / {rate('stemedb_journal_batch_records_count')}", "mean"),
        ]),
        ("Queue bytes against budgets", "percentunit", [
            (f"max by (queue) (stemedb_queue_bytes{sel()} / stemedb_queue_bytes_max{sel()})", "{{queue}}"),
        ]),
        ("Queue entries", "short", [(f"sum by (queue) (stemedb_queue_entries{sel()})", "{{queue}}")]),
    ]),
    ("Votes", [
        ("Votes", "ops", [
            (rate("stemedb_votes_applied_total"), "applied/s"),
            (rate("stemedb_votes_replaced_total"), "replaced/s"),
            (rate("stemedb_votes_ignored_total"), "ignored/s"),
        ]),
        ("Trust changes", "ops", [
            (rate("stemedb_trust_changes_applied_total"), "applied/s"),
            (rate("stemedb_trust_changes_ignored_total"), "ignored/s"),
        ]),
    ]),
    ("Resolve and views", [
        ("Resolutions by lens", "ops", [
            (rate("stemedb_resolves_total", "lens, source"), "{{lens}} ({{source}})"),
            (rate("stemedb_audit_records_total"), "audited/s"),
        ]),
        ("View hits, misses and skew", "ops", [
            (rate("stemedb_view_hits_total"), "hits/s"),
            (rate("stemedb_view_misses_total"), "misses/s"),
            (rate("stemedb_view_skew_bypasses_total"), "skew bypasses/s"),
        ]),
        ("Watchers and views", "short", [
            (f"sum(stemedb_watchers{sel()})", "watchers"),
            (f"sum(stemedb_views{sel()})", "views"),
        ]),
        ("Watcher lag", "ops", [(rate("stemedb_watch_missed_total"), "changes missed/s")]),
    ]),
    ("HTTP", [
        ("HTTP requests by route and status", "reqps", [
            (rate("stemedb_http_requests_total", "route, status"), "{{route}} {{status}}"),
        ]),
        ("HTTP rejections by reason", "reqps", [(rate("stemedb_http_rejections_total", "reason"), "{{reason}}")]),
    ]),
    ("Verifiable log", [
        ("Tree leaves", "short", [(f"max(stemedb_tree_leaves{sel()})", "leaves")]),
        ("Checkpoints and receipts", "ops", [
            (rate("stemedb_checkpoints_signed_total", "kind"), "signed ({{kind}})"),
            (rate("stemedb_checkpoint_refusals_total"), "refused/s"),
            (rate("stemedb_receipts_total"), "receipts/s"),
        ]),
    ]),
    ("Learned trust", [
        ("Learned trust", "short", [
            (f"max(stemedb_learned_answers{sel()})", "answers"),
            (f"sum(increase(stemedb_learned_epochs_total{sel()}[$__rate_interval]))", "re-estimations"),
        ]),
        ("Learned trust time per batch", "s", [
            (quantile("0.5", "stemedb_learned_batch_seconds"), "p50"),
            (quantile("0.99", "stemedb_learned_batch_seconds"), "p99"),
        ]),
    ]),
    ("Capacity", [
        ("Mailbox depths", "short", [(f"sum by (actor) (stemedb_mailbox_depth{sel()})", "{{actor}}")]),
        ("Busy rejections", "ops", [(rate("stemedb_busy_rejections_total", "queue"), "{{queue}}")]),
    ]),
    ("Storage", [
        ("Journal on disk", "bytes", [
            (f"sum(stemedb_journal_disk_bytes{sel()})", "bytes"),
            (f"sum(stemedb_journal_segments{sel()})", "segments"),
        ]),
        ("Quarantine and poisoning", "short", [
            (f"sum(stemedb_journal_quarantined_regions{sel()})", "quarantined regions"),
            (f"max(stemedb_journal_poisoned{sel()})", "poisoned"),
        ]),
        ("Journal open time", "s", [(f"max(stemedb_journal_open_seconds{sel()})", "last open")]),
        ("LMDB map used against size", "bytes", [
            (f"sum(stemedb_state_map_used_bytes{sel()})", "used"),
            (f"sum(stemedb_state_map_size_bytes{sel()})", "map size"),
            (f"sum(increase(stemedb_state_map_grows_total{sel()}[{RI}]))", "grows"),
        ]),
        ("Build", "short", [(f"max by (version, profile) (stemedb_build_info{sel()})", "{{version}} {{profile}}")]),
        ("Audit trail", "short", [
            (f"sum(stemedb_audit_stored_bytes{sel()})", "stored bytes"),
            (rate("stemedb_audit_evicted_total"), "evicted/s"),
            (rate("stemedb_audit_write_failures_total"), "write failures/s"),
        ]),
        ("View memory and evictions", "short", [
            (f"sum(stemedb_views_bytes{sel()})", "view bytes"),
            (rate("stemedb_view_evictions_total"), "evictions/s"),
        ]),
    ]),
]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def panels():
    out, y, next_id = [], 0, 1
    for title, row in ROWS:
        out.append({"type": "row", "title": title, "id": next_id, "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        next_id += 1
        y += 1
        width = 24 // len(row) if len(row) <= 4 else 6
        for i, (panel_title, unit, targets) in enumerate(row):
            out.append({
                "type": "timeseries",
                "title": panel_title,
                "id": next_id,
                "datasource": DATASOURCE,
                "gridPos": {"h": 8, "w": width, "x": (i * width) % 24, "y": y + 8 * ((i * width) // 24)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                            "tooltip": {"mode": "multi", "sort": "none"}},
                "targets": [
                    {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend,
                     "refId": chr(ord("A") + n), "range": True}
                    for n, (expr, legend) in enumerate(targets)
                ],
            })
            next_id += 1
        y += 8 * ((len(row) * width + 23) // 24)
    return out


DASHBOARD = {
    "uid": "stemedb-overview",
    "title": "StemeDB overview",
    "description": "A StemeDB node: throughput, latency, errors, ingest lag, group commit, votes, "
                   "resolve and views, HTTP, capacity and storage. Metrics: docs/metrics.md.",
    "tags": ["stemedb"],
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "graphTooltip": 1,
    "time": {"from": "now-1h", "to": "now"},
    "refresh": "10s",
    "timezone": "",
    "annotations": {"list": [{
        "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
        "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
    }]},
    "templating": {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []},
        {"name": "instance", "label": "Instance", "type": "query", "datasource": DATASOURCE,
         "definition": "label_values(stemedb_build_info, instance)",
         "query": {"query": "label_values(stemedb_build_info, instance)", "refId": "instance"},
         "includeAll": True, "multi": True, "allValue": ".+", "refresh": 2, "sort": 1,
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "hide": 0, "options": []},
    ]},
    "panels": panels(),
}

if __name__ == "__main__":
    path = pathlib.Path(__file__).resolve().parent.parent / "dashboards" / "stemedb-overview.json"
    path.write_text(json.dumps(DASHBOARD, indent=2) + "\n")
    print(f"wrote {path}")
