//! The LMDB state on its own: a map far too small for the data grows and every write
//! succeeds; applying a batch twice changes nothing; and the ingestor, fed a journal whose
//! record was damaged after it became durable, holds at that record and reports it rather
//! than skip it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use std::time::Duration;

use actix::prelude::*;
use common::{NOW_MS, key};
use stemedb::actors::{IngestStatus, IngestorActor, IngestorConfig, VoteCounterActor};
use stemedb::node::NodeConfig;
use stemedb::protocol::{Assertion, ObjectValue, encode_assertion};
use stemedb::storage::journal::{Journal, JournalConfig};
use stemedb::storage::state::{IngestRecord, MAP_SIZE_GRANULE_BYTES, State, StateConfig};
use tempfile::TempDir;

fn assertion(i: u64, text_bytes: usize) -> Assertion {
    let text = format!("{i:08}").repeat(text_bytes / 8);
    let mut a = Assertion::new(
        format!("subject/{}", i % 50),
        "p",
        ObjectValue::Text(text),
        0.5,
        NOW_MS + i,
    );
    a.sign(&key(1));
    a
}

/// Records laid end to end from offset 0, as the journal would give them.
fn records(count: u64, text_bytes: usize) -> Vec<IngestRecord> {
    let payloads = (0..count).map(|i| encode_assertion(&assertion(i, text_bytes)));
    common::journal::laid_end_to_end(payloads, 0, 40).0
}

#[test]
fn full_map_grows_and_no_write_fails() {
    let dir = TempDir::new().unwrap();
    let config = StateConfig {
        map_size_bytes_initial: 4 * MAP_SIZE_GRANULE_BYTES,
        ..StateConfig::default()
    };
    let state = State::open(dir.path(), config.clone()).unwrap();
    let all = records(2000, 4096);
    for batch in all.chunks(100) {
        state.apply(batch).unwrap();
    }
    assert!(
        state.map_size_bytes() > config.map_size_bytes_initial * 16,
        "8 MB of records must have grown a 256 KiB map: now {}",
        state.map_size_bytes()
    );
    assert_eq!(state.counts().unwrap(), (2000, 0));
    assert_eq!(state.ingest_cursor().unwrap(), all.last().unwrap().next);
    let dump = state.dump().unwrap();
    assert_eq!(dump.pairs.len(), 2000);
}

#[test]
fn map_at_its_ceiling_fails_with_a_typed_error_and_keeps_what_was_committed() {
    let dir = TempDir::new().unwrap();
    let config = StateConfig {
        map_size_bytes_initial: 4 * MAP_SIZE_GRANULE_BYTES,
        map_size_bytes_max: 8 * MAP_SIZE_GRANULE_BYTES,
        ..StateConfig::default()
    };
    let state = State::open(dir.path(), config).unwrap();
    let all = records(400, 4096);
    let mut committed = 0;
    let error = loop {
        match state.apply(&all[committed..committed + 10]) {
            Ok(_) => committed += 10,
            Err(error) => break error,
        }
    };
    assert!(
        matches!(error, stemedb::storage::state::StateError::MapSizeLimit { .. }),
        "{error}"
    );
    assert_eq!(state.counts().unwrap().0, committed as u64);
    assert_eq!(state.ingest_cursor().unwrap(), all[committed - 1].next);
}

#[test]
fn applying_a_batch_twice_changes_nothing() {
    let dir = TempDir::new().unwrap();
    let state = State::open(dir.path(), StateConfig::default()).unwrap();
    let all = records(20, 16);
    let first = state.apply(&all).unwrap();
    assert_eq!((first.applied, first.skipped), (20, 0));
    let before = state.dump().unwrap();
    let again = state.apply(&all).unwrap();
    assert_eq!((again.applied, again.skipped, again.duplicates), (0, 20, 0));
    assert_eq!(state.dump().unwrap(), before);
}

#[test]
fn ingestor_holds_at_a_record_damaged_after_it_was_durable() {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path().join("journal"), JournalConfig::default()).unwrap();
    let offsets: Vec<u64> = (0..5)
        .map(|i| journal.append(encode_assertion(&assertion(i, 64))).unwrap())
        .collect();
    // Flip a payload byte of record 3 in place, behind the journal's back.
    let segment = std::fs::read_dir(dir.path().join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wal"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[offsets[3] as usize + 50] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();

    let state = State::open(dir.path().join("state"), StateConfig::default()).unwrap();
    let (status_tx, mut status) = tokio::sync::watch::channel(IngestStatus::default());
    let end = journal.durable_end();
    let held_at = offsets[3];
    let stalled = actix::System::new().block_on(async move {
        let shards = vec![VoteCounterActor::new(0, state.clone()).start()];
        let defaults = NodeConfig::default();
        let config = IngestorConfig {
            batch_records_max: defaults.ingest_batch_records_max,
            batch_bytes_max: defaults.ingest_batch_bytes_max,
            commit_duty_percent: defaults.ingest_commit_duty_percent,
            retry_backoff_ms_max: defaults.ingest_retry_backoff_ms_max,
        };
        let (ends, durable_ends) = tokio::sync::watch::channel(0);
        let ingestor = IngestorActor::new(
            std::sync::Arc::new(journal),
            state.clone(),
            config,
            durable_ends,
            shards,
            status_tx,
        )
        .unwrap();
        let _address = ingestor.start();
        ends.send_replace(end);
        let wait = status.wait_for(|s| s.stalled.is_some());
        let outcome = actix_rt::time::timeout(Duration::from_secs(30), wait).await;
        let stalled = outcome.expect("the ingestor reports the damage").unwrap().clone();
        // Held at the damaged record: the three before it are applied, nothing after it.
        assert_eq!(state.ingest_cursor().unwrap(), held_at);
        assert_eq!(state.counts().unwrap(), (3, 0));
        stalled
    });
    assert_eq!(stalled.cursor, offsets[3]);
    let reason = stalled.stalled.unwrap();
    assert!(reason.contains(&format!("offset {}", offsets[3])), "{reason}");
}
