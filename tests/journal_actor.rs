//! The durable-end announcer inside a real actix System: subscribers are told every new
//! durable end of the journal, in increasing order, up to the last append.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb::storage::journal::{Journal, JournalConfig, format};
use tempfile::TempDir;

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
    use stemedb::actors::{DurableBroadcaster, Subscribe};
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    let group_commit = DurableBroadcaster::new(journal.clone()).start();
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
    // Appends block until durable, so they run off the System's thread, one after another.
    let appender = journal.clone();
    let appends = std::thread::spawn(move || {
        for n in 0..50u32 {
            appender.append(n.to_le_bytes().to_vec()).unwrap();
        }
    });
    let end = rx.await.unwrap();
    appends.join().unwrap();
    assert_eq!(end, target);
    assert_eq!(journal.durable_end(), target);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ends only grow: {seen:?}");
}
