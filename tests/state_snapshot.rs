//! Snapshots of the LMDB state: one read transaction that reflects whole ingest batches only,
//! with the cursor it reflects; repeatable while batches commit; expired after its lifetime;
//! and let go by a map resize, which therefore never waits for it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::Claim;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use stemedb::protocol::{ObjectValue, encode_assertion};
use stemedb::storage::state::{IngestRecord, MAP_SIZE_GRANULE_BYTES, State, StateConfig, StateError};
use tempfile::TempDir;

/// Assertions per batch.
const BATCH: u64 = 7;
/// Longest the resize test waits for the writer.
const WAIT: Duration = Duration::from_secs(60);

/// Batch `b`: `BATCH` assertions about ("s", "p"), laid from `offset` on; returns the records
/// and the offset after them.
fn batch(b: u64, offset: u64, text_bytes: usize) -> (Vec<IngestRecord>, u64) {
    let payloads = (0..BATCH).map(|i| {
        let n = b * BATCH + i;
        let text = format!("{n:08}").repeat(text_bytes / 8 + 1);
        let claim = Claim::new("s", "p", ObjectValue::Text(text)).at(n).signed(&[1]);
        encode_assertion(&claim)
    });
    common::journal::laid_end_to_end(payloads, offset, 64)
}

#[test]
fn snapshots_see_whole_batches_only_and_the_cursor_they_reflect() {
    let dir = TempDir::new().unwrap();
    let state = State::open(dir.path(), StateConfig::default()).unwrap();
    let batches = 150;
    // The cursor after each batch, so a snapshot's cursor says how many batches it holds.
    let mut ends = vec![0u64];
    let mut all = Vec::new();
    for b in 0..batches {
        let (records, end) = batch(b, *ends.last().unwrap(), 8);
        all.push(records);
        ends.push(end);
    }
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (state, done) = (state.clone(), done.clone());
        std::thread::spawn(move || {
            for records in &all {
                state.apply(records).unwrap();
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut seen = 0;
    loop {
        let finished = done.load(Ordering::Acquire);
        let snapshot = state.snapshot().unwrap();
        let heads = snapshot.heads("s", "p", 10_000).unwrap();
        let applied = ends.iter().position(|&e| e == snapshot.cursor());
        assert!(
            applied.is_some(),
            "cursor {} is not at a batch end",
            snapshot.cursor()
        );
        assert_eq!(
            heads.len() as u64,
            applied.unwrap() as u64 * BATCH,
            "a snapshot at cursor {} sees part of a batch",
            snapshot.cursor()
        );
        seen += 1;
        if finished {
            break;
        }
    }
    writer.join().unwrap();
    assert!(seen >= 1);
    assert_eq!(state.snapshot().unwrap().cursor(), *ends.last().unwrap());
}

#[test]
fn a_snapshot_is_repeatable_while_batches_commit() {
    let dir = TempDir::new().unwrap();
    let state = State::open(dir.path(), StateConfig::default()).unwrap();
    let (first, end) = batch(0, 0, 8);
    state.apply(&first).unwrap();
    let snapshot = state.snapshot().unwrap();
    let (second, end2) = batch(1, end, 8);
    state.apply(&second).unwrap();
    assert_eq!(snapshot.cursor(), end);
    assert_eq!(snapshot.heads("s", "p", 100).unwrap().len() as u64, BATCH);
    let hash = encode_assertion_hash(&second[0]);
    assert!(
        snapshot.get(&hash).unwrap().is_none(),
        "the old snapshot does not see the new batch"
    );
    let fresh = state.snapshot().unwrap();
    assert_eq!(fresh.cursor(), end2);
    assert!(fresh.get(&hash).unwrap().is_some());
    assert_eq!(fresh.heads("s", "p", 100).unwrap().len() as u64, 2 * BATCH);
}

fn encode_assertion_hash(record: &IngestRecord) -> stemedb::protocol::Hash {
    match stemedb::protocol::LogRecord::decode(&record.payload).unwrap() {
        stemedb::protocol::LogRecord::Assertion(a) => a.content_hash(),
        other => panic!("not an assertion: {other:?}"),
    }
}

#[test]
fn a_snapshot_expires_after_its_lifetime() {
    let dir = TempDir::new().unwrap();
    let config = StateConfig {
        snapshot_lifetime_ms_max: 5,
        ..StateConfig::default()
    };
    let state = State::open(dir.path(), config).unwrap();
    let snapshot = state.snapshot().unwrap();
    assert!(snapshot.heads("s", "p", 1).unwrap().is_empty(), "young: readable");
    // Time passing is the condition itself, not a stand-in for an event.
    while snapshot.age() <= Duration::from_millis(5) {
        std::hint::spin_loop();
    }
    let expired = snapshot.heads("s", "p", 1).unwrap_err();
    assert!(
        matches!(expired, StateError::SnapshotExpired { .. }),
        "{expired:?}"
    );
    assert!(
        state.snapshot().unwrap().heads("s", "p", 1).is_ok(),
        "a new one reads"
    );
}

#[test]
fn a_map_resize_lets_go_of_live_snapshots_instead_of_waiting_for_them() {
    let dir = TempDir::new().unwrap();
    let config = StateConfig {
        map_size_bytes_initial: 4 * MAP_SIZE_GRANULE_BYTES,
        ..StateConfig::default()
    };
    let state = State::open(dir.path(), config).unwrap();
    let initial = state.map_size_bytes();
    let snapshot = state.snapshot().unwrap();
    assert!(snapshot.heads("s", "p", 1).unwrap().is_empty());
    // Far more than the map holds: the writer must grow it while the snapshot is alive.
    let (done_tx, done_rx) = mpsc::channel();
    let writer = {
        let state = state.clone();
        std::thread::spawn(move || {
            let mut offset = 0;
            for b in 0..20 {
                let (records, end) = batch(b, offset, 4096);
                state.apply(&records).unwrap();
                offset = end;
            }
            done_tx.send(offset).unwrap();
        })
    };
    let end = done_rx
        .recv_timeout(WAIT)
        .expect("the writer finished: a live snapshot did not stall the map resize");
    writer.join().unwrap();
    assert!(state.map_size_bytes() > initial, "the map grew");
    let revoked = snapshot.heads("s", "p", 1).unwrap_err();
    assert!(
        matches!(revoked, StateError::SnapshotExpired { .. }),
        "{revoked:?}"
    );
    let fresh = state.snapshot().unwrap();
    assert_eq!(fresh.cursor(), end);
    assert_eq!(fresh.heads("s", "p", 10_000).unwrap().len() as u64, 20 * BATCH);
}

#[test]
fn closing_the_state_lets_go_of_live_snapshots() {
    let dir = TempDir::new().unwrap();
    let state = State::open(dir.path(), StateConfig::default()).unwrap();
    let (records, _) = batch(0, 0, 8);
    state.apply(&records).unwrap();
    let snapshot = state.snapshot().unwrap();
    assert_eq!(snapshot.heads("s", "p", 100).unwrap().len() as u64, BATCH);
    let (done_tx, done_rx) = mpsc::channel();
    let closer = std::thread::spawn(move || {
        state.close();
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(WAIT)
        .expect("close returned: a live snapshot does not keep the state open");
    closer.join().unwrap();
    let closed = snapshot.heads("s", "p", 1).unwrap_err();
    assert!(matches!(closed, StateError::SnapshotExpired { .. }), "{closed:?}");
    // The directory opens again.
    let reopened = State::open(dir.path(), StateConfig::default()).unwrap();
    assert_eq!(
        reopened.snapshot().unwrap().heads("s", "p", 100).unwrap().len() as u64,
        BATCH
    );
}
