//! The journal actor inside a real actix System: concurrent appends acknowledged with their
//! durable offsets, range reads that stop at the end of the log, and cursors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb::actors::{Append, JournalActor, ReadRange, SetCursor};
use stemedb::storage::journal::{Journal, JournalConfig};
use tempfile::TempDir;

#[actix_rt::test]
async fn concurrent_appends_are_acknowledged_and_read_back_in_order() {
    use actix::Actor;
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    let actor = JournalActor::new(journal.clone()).start();
    let sends: Vec<_> = (0..200u32)
        .map(|n| {
            actor.send(Append {
                payload: n.to_le_bytes().to_vec(),
            })
        })
        .collect();
    let mut acked = Vec::new();
    for (n, send) in sends.into_iter().enumerate() {
        let offset = send.await.unwrap().unwrap();
        assert!(journal.durable_end() > offset, "acknowledged means durable");
        acked.push((offset, (n as u32).to_le_bytes().to_vec()));
    }
    acked.sort();
    let range = actor
        .send(ReadRange {
            from: 0,
            max_records: 1000,
            max_bytes: usize::MAX,
        })
        .await
        .unwrap()
        .unwrap();
    assert!(range.at_end);
    assert_eq!(range.records, acked);
    let page = actor
        .send(ReadRange {
            from: 0,
            max_records: 10,
            max_bytes: usize::MAX,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.records.len(), 10);
    assert!(!page.at_end);
    assert_eq!(page.next, acked[10].0);
    actor
        .send(SetCursor {
            name: "ingest".into(),
            offset: page.next,
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(journal.cursor("ingest"), Some(page.next));
}
