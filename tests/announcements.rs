//! The broadcaster of durable offsets (`DurableBroadcaster`) inside a real actix System:
//! subscribers are told every new durable end of the journal, in increasing order, up to the
//! last append. Facing a subscriber that cannot keep up: however many announcements find its mailbox full, at most one re-announce is pending,
//! and once the subscriber drains its mailbox it is sent the latest end.
//!
//! The flood is of `DurableOffset` messages sent straight to the broadcaster (as the journal's
//! listener does), so that it is far faster than the 1 ms re-announce delay on any disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::time::Duration;

use actix::prelude::*;
use stemedb::actors::{DurableBroadcaster, DurableOffset, GetReannounceCounts, Subscribe};
use stemedb::storage::journal::{Journal, JournalConfig, format};
use tempfile::TempDir;
use tokio::sync::watch;

/// Longest any wait in this test may take before it counts as a failure.
const WAIT: Duration = Duration::from_secs(20);
/// Durable ends announced in the flood.
const FLOOD_ENDS: u64 = 1000;

/// A subscriber whose first announcement blocks its thread until released; its mailbox holds
/// one message, so the broadcaster finds it full meanwhile.
struct Stuck {
    release: Option<mpsc::Receiver<()>>,
    seen: watch::Sender<u64>,
}

impl Actor for Stuck {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1);
    }
}

impl Handler<DurableOffset> for Stuck {
    type Result = ();

    fn handle(&mut self, message: DurableOffset, _ctx: &mut Self::Context) {
        if let Some(release) = self.release.take() {
            // Bounded: a test that fails early drops the sender, which ends this wait too.
            let _ = release.recv_timeout(WAIT);
        }
        self.seen.send_modify(|seen| *seen = (*seen).max(message.end));
    }
}

#[test]
fn flood_of_durable_ends_leaves_one_reannounce_pending_for_a_full_subscriber() {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    System::new().block_on(async move {
        let broadcaster_thread = Arbiter::new();
        let durable = DurableBroadcaster::new(journal.clone());
        let broadcaster =
            DurableBroadcaster::start_in_arbiter(&broadcaster_thread.handle(), move |_| durable);
        let subscriber_thread = Arbiter::new();
        let (release, blocked) = mpsc::channel();
        let (seen_tx, mut seen) = watch::channel(0);
        let stuck = Stuck {
            release: Some(blocked),
            seen: seen_tx,
        };
        let stuck = Stuck::start_in_arbiter(&subscriber_thread.handle(), move |_| stuck);
        broadcaster
            .send(Subscribe(stuck.recipient()))
            .await
            .unwrap()
            .unwrap();
        for end in 1..=FLOOD_ENDS {
            broadcaster.send(DurableOffset { end }).await.unwrap();
        }
        let counts = broadcaster.send(GetReannounceCounts).await.unwrap();
        assert_eq!(
            counts.pending_max, 1,
            "the subscriber's mailbox was full, and one re-announce at most may be pending: {counts:?}"
        );
        release.send(()).unwrap();
        let caught_up = actix_rt::time::timeout(WAIT, seen.wait_for(|end| *end == FLOOD_ENDS)).await;
        assert!(
            caught_up.is_ok(),
            "the subscriber is sent the latest end once it has room"
        );
        let counts = broadcaster.send(GetReannounceCounts).await.unwrap();
        assert_eq!(counts.pending_max, 1, "{counts:?}");
        subscriber_thread.stop();
        broadcaster_thread.stop();
        subscriber_thread.join().unwrap();
        broadcaster_thread.join().unwrap();
    });
}

/// Collects announced durable ends; signals when one reaches a target.
struct Watcher {
    target: u64,
    done: Option<tokio::sync::oneshot::Sender<u64>>,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

impl Actor for Watcher {
    type Context = Context<Self>;
}

impl Handler<DurableOffset> for Watcher {
    type Result = ();

    fn handle(&mut self, message: DurableOffset, _ctx: &mut Self::Context) {
        self.seen.lock().unwrap().push(message.end);
        if message.end >= self.target
            && let Some(done) = self.done.take()
        {
            let _ = done.send(message.end);
        }
    }
}

#[actix_rt::test]
async fn subscribers_are_told_growing_durable_ends_up_to_the_last_append() {
    let dir = TempDir::new().unwrap();
    let journal = Journal::open(dir.path(), JournalConfig::default()).unwrap();
    let broadcaster = DurableBroadcaster::new(journal.clone()).start();
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
    broadcaster
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
