//! The journal actor inside a real actix System: concurrent appends acknowledged with their
//! durable offsets, range reads that stop at the end of the log, and cursors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb::actors::{Append, JournalActor, ReadRange, SetCursor};
use stemedb::storage::journal::{Journal, JournalConfig, format};
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

/// Collects announced durable ends; signals when one reaches a target.
struct Watcher {
    target: u64,
    done: Option<tokio::sync::oneshot::Sender<u64>>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

impl actix::Actor for Watcher {
    type Context = actix::Context<Self>;
}

impl actix::Handler<stemedb::actors::DurableOffset> for Watcher {
    type Result = ();

    fn handle(&mut self, message: stemedb::actors::DurableOffset, _ctx: &mut Self::Context) {
        self.seen.lock().unwrap().push(message.end);
        if message.end >= self.target {
            if let Some(done) = self.done.take() {
                let _ = done.send(message.end);
            }
        }
    }
}

#[actix_rt::test]
async fn group_commit_actor_announces_growing_durable_ends() {
    use actix::Actor;
    use stemedb::actors::{GroupCommitActor, Subscribe};
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    let group_commit = GroupCommitActor::new(journal.clone()).start();
    let appender = JournalActor::new(journal.clone()).start();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    // 50 records of 4 bytes, each its own batch (each append is awaited before the next):
    // the durable end after the last is 50 records and 50 batch marks.
    let target = 50 * (format::record_len(4) + format::MARK_BYTES) as u64;
    let watcher = Watcher {
        target,
        done: Some(tx),
        seen: seen.clone(),
    }
    .start();
    group_commit
        .send(Subscribe(watcher.recipient()))
        .await
        .unwrap()
        .unwrap();
    for n in 0..50u32 {
        appender
            .send(Append {
                payload: n.to_le_bytes().to_vec(),
            })
            .await
            .unwrap()
            .unwrap();
    }
    let end = rx.await.unwrap();
    assert_eq!(end, target);
    assert_eq!(journal.durable_end(), target);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ends only grow: {seen:?}");
}
