//! The log seam is a real seam: a node runs on a log backend written outside the engine. The
//! backend here keeps its records in memory (a stand-in for a replicated log, which is what the
//! `stemedb-jetstream` crate plugs in the same way); the node verifies, appends, ingests and
//! answers reads through the seam's traits alone, and a refusal of the backend reaches the
//! submitter by name.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use stemedb::log::{
    Append, AppendError, Collect, DurableListener, Log, LogBackend, LogError, LogReader, OpenedLog, Outgoing,
    QueueUse, RangeRead, ReadError, Rebuild,
};
use stemedb::node::{ListQuery, Node, SubmitError};
use stemedb::protocol::ObjectValue;
use stemedb_testkit::{Claim, deadline};

/// Records in memory, at positions 1, 2, 3, ... (as a stream numbers them).
#[derive(Default)]
struct Memory {
    records: Mutex<Vec<Vec<u8>>>,
    listener: Mutex<Option<DurableListener>>,
    /// Records larger than this are refused, as a stream refuses what exceeds its largest message.
    record_bytes_max: usize,
}

impl Memory {
    fn end(&self) -> u64 {
        self.records.lock().len() as u64 + 1
    }
}

struct Reader(Arc<Memory>);

impl LogReader for Reader {
    fn read_range(
        &mut self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<RangeRead, ReadError> {
        let records = self.0.records.lock();
        let mut range = RangeRead {
            records: Vec::new(),
            next: from.max(1),
            at_end: true,
        };
        let mut bytes = 0;
        for position in from.max(1)..=records.len() as u64 {
            if range.records.len() >= max_records || bytes >= max_bytes {
                range.at_end = false;
                break;
            }
            let payload = records[position as usize - 1].clone();
            bytes += payload.len();
            range.records.push((position, payload));
            range.next = position + 1;
        }
        Ok(range)
    }
}

struct MemoryLog(Arc<Memory>);

impl Log for MemoryLog {
    fn durable_end(&self) -> u64 {
        self.0.end()
    }
    fn reader(&self) -> Box<dyn LogReader> {
        Box::new(Reader(Arc::clone(&self.0)))
    }
    fn set_durable_listener(&self, listener: DurableListener) {
        *self.0.listener.lock() = Some(listener);
    }
    fn clear_durable_listener(&self) {
        self.0.listener.lock().take();
    }
    fn collector(&self) -> Option<&dyn Collect> {
        None
    }
    fn records_behind(&self, cursor: u64, _applied_since_start: u64) -> u64 {
        self.0.end().saturating_sub(cursor)
    }
    fn fault(&self) -> Option<String> {
        None
    }
    fn record_gauges(&self) {}
}

impl Append for MemoryLog {
    fn record_bytes_max(&self) -> usize {
        self.0.record_bytes_max
    }
    fn try_append(&self, records: Vec<Outgoing>) -> Result<(), AppendError> {
        for record in records {
            let position = {
                let mut stored = self.0.records.lock();
                stored.push(record.payload);
                stored.len() as u64
            };
            record.reply.reply(Ok(position));
            if let Some(listener) = self.0.listener.lock().as_ref() {
                listener(position + 1);
            }
        }
        Ok(())
    }
    fn queue_use(&self) -> QueueUse {
        QueueUse::default()
    }
}

struct MemoryBackend(Arc<Memory>);

impl LogBackend for MemoryBackend {
    fn prepare(&mut self, data_dir: &Path) -> Result<(), LogError> {
        std::fs::create_dir_all(data_dir).map_err(|e| LogError::Backend(Box::new(e)))
    }
    fn rebuild(&mut self, _data_dir: &Path, _cursor: u64) -> Result<Rebuild, LogError> {
        Ok(Rebuild::Allowed)
    }
    fn open(self: Box<Self>, _data_dir: &Path, cursor: u64) -> Result<OpenedLog, LogError> {
        let end = self.0.end();
        if cursor > end {
            return Err(LogError::StateAhead { cursor, end });
        }
        let log = Arc::new(MemoryLog(Arc::clone(&self.0)));
        Ok(OpenedLog {
            log: log.clone(),
            append: log,
            guard: Box::new(()),
        })
    }
}

#[actix::test]
async fn a_node_runs_on_a_log_backend_from_outside_the_engine() {
    let dir = tempfile::TempDir::new().unwrap();
    let memory = Arc::new(Memory {
        record_bytes_max: 4096,
        ..Memory::default()
    });
    let node = Node::start_with_log(
        stemedb::Config::default(),
        dir.path(),
        MemoryBackend(Arc::clone(&memory)),
    )
    .unwrap();

    let first = Claim::new("city/paris", "mayor", ObjectValue::Integer(1)).signed(&[1]);
    let second = Claim::new("city/paris", "mayor", ObjectValue::Integer(2))
        .at(1)
        .signed(&[2]);
    let receipts: Vec<_> = node
        .submit_many(vec![first.clone(), second.clone()])
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // Positions are the backend's own: 1 and 2, not journal offsets.
    assert_eq!(receipts.iter().map(|r| r.offset).collect::<Vec<_>>(), [1, 2]);
    node.wait_indexed(2, deadline()).await.unwrap();
    let page = node.list(&ListQuery::pair("city/paris", "mayor")).unwrap();
    let mut listed: Vec<_> = page.assertions.iter().map(|a| a.hash).collect();
    listed.sort();
    let mut expected = vec![first.content_hash(), second.content_hash()];
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(
        memory.records.lock().len(),
        2,
        "the backend holds what was acknowledged"
    );

    // A record the backend cannot store is refused by name, and nothing is appended.
    let big = Claim::new("city/paris", "mayor", ObjectValue::Text("x".repeat(8192))).signed(&[1]);
    match node.submit(big).await {
        Err(SubmitError::Log(AppendError::RecordTooLarge { max, .. })) => assert_eq!(max, 4096),
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    assert_eq!(memory.records.lock().len(), 2);
    node.shutdown().await.unwrap();

    // A restart on the same log resumes from the state's cursor; nothing is applied twice.
    let node = Node::start_with_log(
        stemedb::Config::default(),
        dir.path(),
        MemoryBackend(Arc::clone(&memory)),
    )
    .unwrap();
    node.wait_caught_up(deadline()).await.unwrap();
    assert_eq!(node.counts().unwrap(), (2, 0));
    node.shutdown().await.unwrap();

    // A state that has applied more than the log holds is refused.
    let other = Arc::new(Memory::default());
    let refused =
        Node::start_with_log(stemedb::Config::default(), dir.path(), MemoryBackend(other)).unwrap_err();
    assert!(
        matches!(
            refused,
            stemedb::node::NodeError::Log(LogError::StateAhead { cursor: 3, end: 1 })
        ),
        "{refused}"
    );
}
