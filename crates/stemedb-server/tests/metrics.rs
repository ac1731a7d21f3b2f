//! The metrics move as they should, read back through the real Prometheus recorder (the one
//! `stemedb serve` installs) as its text exposition: a rejected record counts under its
//! reason and no other, a fresh view counts a hit (and its absence a miss), a quarantined
//! region raises its gauge, a replaced vote counts as replaced, and the sampled gauges follow
//! the node. The recorder is process-wide, so the tests of this binary take turns.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::deadline;

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use common::journal::walk;
use common::{NOW_MS, key};
use metrics_exporter_prometheus::PrometheusHandle;
use stemedb::lens::{MaxStale, Query};
use stemedb::node::Node;
use stemedb::protocol::{Assertion, Hash, ObjectValue, Vote};
use stemedb::storage::journal::layout::SEGMENT_HEADER_BYTES;
use stemedb::storage::journal::{Journal, JournalConfig};
use stemedb::telemetry::catalog;
use stemedb_server::ServerConfig as Config;
use tempfile::TempDir;

/// The recorder, installed once for the whole binary, and the lock the tests take turns on.
fn recorder() -> (&'static PrometheusHandle, MutexGuard<'static, ()>) {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    static TURN: Mutex<()> = Mutex::new(());
    let handle = HANDLE.get_or_init(|| {
        let recorder = stemedb_server::prometheus_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).expect("no other recorder in this binary");
        handle
    });
    (
        handle,
        TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
    )
}

/// The value of the series `name{labels}` (labels as `k="v"` pairs, in any order), or `None`
/// if the exposition has no such series.
fn value(handle: &PrometheusHandle, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = handle.render();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, number) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let found: Vec<&str> = if rest.is_empty() {
                Vec::new()
            } else {
                rest.split(',').collect()
            };
            let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            let same = found.len() == wanted.len() && wanted.iter().all(|w| found.contains(&w.as_str()));
            same.then(|| number.parse().expect("a number"))
        })
}

/// Like [`value`], 0 when the series is missing.
fn count(handle: &PrometheusHandle, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(handle, name, labels).unwrap_or(0.0)
}

fn claim(subject: &str, n: i64, timestamp_ms: u64) -> Assertion {
    let mut assertion = Assertion::new(subject, "population", ObjectValue::Integer(n), 0.5, timestamp_ms);
    assertion.sign(&key(1));
    assertion
}

#[test]
fn a_rejected_record_counts_under_its_reason_and_no_other() {
    let (handle, _turn) = recorder();
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(stemedb::Config::default(), dir.path()).unwrap();
        let reasons = stemedb::node::RejectReason::CODES;
        let before: Vec<f64> = reasons
            .iter()
            .map(|r| value(handle, catalog::INGEST_REJECTED, &[("reason", r)]).expect("registered at start"))
            .collect();
        let stray = Vote::sign(&key(5), Hash::of(b"no such assertion"), 1.0, NOW_MS);
        let receipt = node.cast_vote(stray).await.unwrap();
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        for (reason, before) in reasons.iter().zip(before) {
            let after = count(handle, catalog::INGEST_REJECTED, &[("reason", reason)]);
            let expected = if *reason == "unknown_assertion" { 1.0 } else { 0.0 };
            assert_eq!(after - before, expected, "reason {reason}");
        }
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_fresh_view_counts_a_hit_and_a_missing_one_a_miss() {
    let (handle, _turn) = recorder();
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(stemedb::Config::default(), dir.path()).unwrap();
        let receipt = node.submit(claim("city/metrics-view", 1, NOW_MS)).await.unwrap();
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        let (hits, misses) = (
            count(handle, catalog::VIEW_HITS, &[]),
            count(handle, catalog::VIEW_MISSES, &[]),
        );
        let computed = count(
            handle,
            catalog::RESOLVES,
            &[("lens", "recency"), ("source", "computed")],
        );
        let mut query = Query::new("city/metrics-view", "population", "recency");
        query.max_stale = Some(MaxStale::Offsets(0));
        // No view yet: a miss, resolved on the pool, which creates the view.
        node.resolve(query.clone()).await.unwrap();
        assert_eq!(count(handle, catalog::VIEW_MISSES, &[]) - misses, 1.0);
        assert_eq!(count(handle, catalog::VIEW_HITS, &[]) - hits, 0.0);
        // The view is fresh now: a hit, answered from it.
        let from_view = count(
            handle,
            catalog::RESOLVES,
            &[("lens", "recency"), ("source", "view")],
        );
        node.resolve(query).await.unwrap();
        assert_eq!(count(handle, catalog::VIEW_HITS, &[]) - hits, 1.0);
        assert_eq!(count(handle, catalog::VIEW_MISSES, &[]) - misses, 1.0);
        assert_eq!(
            count(
                handle,
                catalog::RESOLVES,
                &[("lens", "recency"), ("source", "view")]
            ) - from_view,
            1.0
        );
        assert_eq!(
            count(
                handle,
                catalog::RESOLVES,
                &[("lens", "recency"), ("source", "computed")]
            ) - computed,
            1.0
        );
        // And the latency histogram has both.
        let samples = count(handle, "stemedb_resolve_seconds_count", &[("lens", "recency")]);
        assert!(samples >= 2.0, "{samples}");
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_replaced_vote_counts_as_applied_then_replaced() {
    let (handle, _turn) = recorder();
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(stemedb::Config::default(), dir.path()).unwrap();
        let target = node.submit(claim("city/metrics-votes", 1, NOW_MS)).await.unwrap();
        let before = [
            catalog::VOTES_APPLIED,
            catalog::VOTES_REPLACED,
            catalog::VOTES_IGNORED,
        ]
        .map(|name| count(handle, name, &[]));
        let first = node
            .cast_vote(Vote::sign(&key(7), target.hash, 1.0, NOW_MS))
            .await
            .unwrap();
        node.wait_indexed(first.offset, deadline()).await.unwrap();
        let second = node
            .cast_vote(Vote::sign(&key(7), target.hash, 2.0, NOW_MS + 1))
            .await
            .unwrap();
        let stale = node
            .cast_vote(Vote::sign(&key(7), target.hash, 3.0, NOW_MS - 1))
            .await
            .unwrap();
        node.wait_indexed(second.offset.max(stale.offset), deadline())
            .await
            .unwrap();
        let after = [
            catalog::VOTES_APPLIED,
            catalog::VOTES_REPLACED,
            catalog::VOTES_IGNORED,
        ]
        .map(|name| count(handle, name, &[]));
        assert_eq!(after[0] - before[0], 2.0, "applied: the first and the newer");
        assert_eq!(after[1] - before[1], 1.0, "replaced: the first");
        assert_eq!(after[2] - before[2], 1.0, "ignored: the older");
        node.shutdown().await.unwrap();
    });
}

#[test]
fn a_quarantined_region_raises_its_gauge() {
    let (handle, _turn) = recorder();
    let dir = TempDir::new().unwrap();
    let config = JournalConfig {
        segment_size_bytes: 4096,
        ..JournalConfig::default()
    };
    let offsets: Vec<u64> = {
        let journal = Journal::open(dir.path(), config.clone()).unwrap();
        (0..60u8).map(|n| journal.append(vec![n; 200]).unwrap()).collect()
    };
    // Flip a byte inside the fifth record, which lies in the first (sealed) segment.
    let first = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[SEGMENT_HEADER_BYTES + offsets[4] as usize + 60] ^= 0x10;
    std::fs::write(&first, bytes).unwrap();
    let journal = Journal::open(dir.path(), config).unwrap();
    assert_eq!(
        value(handle, catalog::JOURNAL_QUARANTINED_REGIONS, &[]),
        Some(0.0),
        "not seen at open"
    );
    assert_eq!(walk(&journal, 0).len(), 59, "every other record reads back");
    assert_eq!(journal.quarantined_regions(), 1);
    assert_eq!(
        value(handle, catalog::JOURNAL_QUARANTINED_REGIONS, &[]),
        Some(1.0)
    );
}

#[test]
fn the_sampled_gauges_follow_the_node() {
    let (handle, _turn) = recorder();
    let dir = TempDir::new().unwrap();
    actix::System::new().block_on(async {
        let node = Node::start(stemedb::Config::default(), dir.path()).unwrap();
        let appends = count(handle, catalog::JOURNAL_APPENDS, &[]);
        let mut last = 0;
        for n in 0..20 {
            last = node
                .submit(claim("city/metrics-gauges", n, NOW_MS + n as u64))
                .await
                .unwrap()
                .offset;
        }
        node.wait_indexed(last, deadline()).await.unwrap();
        node.refresh_gauges(std::time::Duration::ZERO);
        assert_eq!(count(handle, catalog::JOURNAL_APPENDS, &[]) - appends, 20.0);
        assert_eq!(value(handle, catalog::INGEST_LAG_BYTES, &[]), Some(0.0));
        assert_eq!(value(handle, catalog::INGEST_LAG_RECORDS, &[]), Some(0.0));
        assert_eq!(value(handle, catalog::INGEST_LAG_SECONDS, &[]), Some(0.0));
        assert_eq!(value(handle, catalog::INGEST_STALLED, &[]), Some(0.0));
        assert_eq!(value(handle, catalog::JOURNAL_POISONED, &[]), Some(0.0));
        assert!(value(handle, catalog::JOURNAL_SEGMENTS, &[]).unwrap() >= 1.0);
        let disk = value(handle, catalog::JOURNAL_DISK_BYTES, &[]).unwrap();
        assert!(disk >= node.durable_end().unwrap() as f64, "{disk}");
        let used = value(handle, catalog::STATE_MAP_USED_BYTES, &[]).unwrap();
        let size = value(handle, catalog::STATE_MAP_SIZE_BYTES, &[]).unwrap();
        assert!(used > 0.0 && used <= size, "{used} of {size}");
        assert_eq!(
            value(handle, catalog::QUEUE_BYTES, &[("queue", "verify")]),
            Some(0.0)
        );
        let budget = Config::default().node.verify_queue_bytes_max as f64;
        assert_eq!(
            value(handle, catalog::QUEUE_BYTES_MAX, &[("queue", "verify")]),
            Some(budget)
        );
        assert_eq!(
            value(handle, catalog::MAILBOX_DEPTH, &[("actor", "lens")]),
            Some(0.0)
        );
        let commits = count(handle, "stemedb_ingest_commit_seconds_count", &[]);
        assert!(commits >= 1.0, "{commits}");
        node.shutdown().await.unwrap();
    });
}

#[test]
fn an_ingest_held_in_its_commit_shows_its_lag_in_bytes_records_and_seconds() {
    let (handle, _turn) = recorder();
    let dir = TempDir::new().unwrap();
    let (entered_tx, entered) = crossbeam_channel::bounded::<()>(1);
    let (release, released) = crossbeam_channel::bounded::<()>(1);
    let hooks = stemedb::actors::Hooks {
        before_commit: Some(std::sync::Arc::new(move |_cursor| {
            let _ = entered_tx.try_send(());
            // Held until the test has looked (or for at most 10 s).
            let _ = released.recv_timeout(Duration::from_secs(10));
        })),
        ..stemedb::actors::Hooks::default()
    };
    actix::System::new().block_on(async {
        let node = Node::start_with_hooks(stemedb::Config::default(), dir.path(), hooks).unwrap();
        let receipt = node.submit(claim("city/metrics-lag", 1, NOW_MS)).await.unwrap();
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the ingest reached its commit");
        node.refresh_gauges(std::time::Duration::ZERO);
        let lag_bytes = value(handle, catalog::INGEST_LAG_BYTES, &[]).unwrap();
        assert_eq!(
            lag_bytes,
            node.durable_end().unwrap() as f64,
            "all of it is behind"
        );
        assert_eq!(value(handle, catalog::INGEST_LAG_RECORDS, &[]), Some(1.0));
        let seconds = value(handle, catalog::INGEST_LAG_SECONDS, &[]).unwrap();
        assert!(
            seconds > 0.0,
            "held in its first commit, the ingest is behind: {seconds}"
        );
        release.send(()).unwrap();
        node.wait_indexed(receipt.offset, deadline()).await.unwrap();
        node.refresh_gauges(std::time::Duration::ZERO);
        assert_eq!(value(handle, catalog::INGEST_LAG_BYTES, &[]), Some(0.0));
        assert_eq!(value(handle, catalog::INGEST_LAG_RECORDS, &[]), Some(0.0));
        assert_eq!(value(handle, catalog::INGEST_LAG_SECONDS, &[]), Some(0.0));
        node.shutdown().await.unwrap();
    });
}
