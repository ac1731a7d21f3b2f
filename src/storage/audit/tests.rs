//! The audit store on a map far too small for its byte budget: every commit that finds the map
//! full evicts more and retries, so appends keep succeeding, before and after a reopen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{AuditBounds, AuditError, AuditLog, AuditRecord};

/// A map of 64 pages of 4 KiB: a few dozen of the records below fill it.
const MAP_BYTES: usize = 256 * 1024;

fn record(id: u64, requester_bytes: usize) -> AuditRecord {
    AuditRecord {
        id,
        at_ms: id,
        requester: Some("r".repeat(requester_bytes)),
        subject: format!("subject/{id}"),
        predicate: "mayor".into(),
        lens: "recency".into(),
        history: false,
        as_of: None,
        candidates: Vec::new(),
        winner: None,
        offset: id,
    }
}

/// Bounds that only the map limits: no byte or record budget below it.
fn unbounded_but_for_the_map() -> AuditBounds {
    AuditBounds {
        map_bytes: MAP_BYTES,
        bytes_max: 1 << 40,
        records_max: u64::MAX,
    }
}

/// Appends records `first..first + count`, each with a 6 KiB requester; returns the outcomes.
fn append_all(log: &AuditLog, first: u64, count: u64) -> Vec<Result<(), AuditError>> {
    actix_rt::System::new().block_on(async {
        let mut outcomes = Vec::new();
        for id in first..first + count {
            outcomes.push(log.append(record(id, 6 * 1024)).await);
        }
        outcomes
    })
}

#[test]
fn a_full_map_evicts_the_oldest_and_keeps_accepting_records_before_and_after_a_reopen() {
    let dir = tempfile::TempDir::new().unwrap();
    // 200 records of over 6 KiB: about five times the map.
    let (log, next_id, writer) = AuditLog::open(dir.path(), unbounded_but_for_the_map()).unwrap();
    assert_eq!(next_id, 1);
    for (i, outcome) in append_all(&log, 1, 200).into_iter().enumerate() {
        assert!(outcome.is_ok(), "record {} failed: {outcome:?}", i + 1);
    }
    assert!(log.get(200).unwrap().is_some(), "the newest is kept");
    assert!(log.get(1).unwrap().is_none(), "the oldest made room");
    assert!(log.stored_bytes() < MAP_BYTES as u64);
    drop(log);
    writer.join().unwrap();
    let (log, next_id, writer) = AuditLog::open(dir.path(), unbounded_but_for_the_map()).unwrap();
    assert_eq!(next_id, 201);
    for outcome in append_all(&log, 201, 50) {
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    assert!(log.get(250).unwrap().is_some());
    drop(log);
    writer.join().unwrap();
}

#[test]
fn a_record_larger_than_the_budget_is_refused_and_the_stored_bytes_are_counted_exactly() {
    let dir = tempfile::TempDir::new().unwrap();
    let bounds = AuditBounds {
        map_bytes: 1 << 20,
        bytes_max: 16 * 1024,
        records_max: 100,
    };
    let (log, _, writer) = AuditLog::open(dir.path(), bounds).unwrap();
    let outcomes = actix_rt::System::new().block_on(async {
        let big = log.append(record(1, 20 * 1024)).await;
        let small = log.append(record(2, 100)).await;
        (big, small)
    });
    assert!(matches!(outcomes.0, Err(AuditError::TooLarge { max: 16_384, .. })), "{outcomes:?}");
    assert!(outcomes.1.is_ok());
    assert!(log.get(1).unwrap().is_none());
    let stored = log.stored_bytes();
    drop(log);
    writer.join().unwrap();
    // The total recomputed at open from the records is the running total.
    let (log, _, writer) = AuditLog::open(dir.path(), bounds).unwrap();
    assert_eq!(log.stored_bytes(), stored);
    drop(log);
    writer.join().unwrap();
}
