//! The log seam is a real seam: a node runs on a log backend written outside the engine. The
//! backend here keeps its records in memory (a stand-in for a replicated log, which is what the
//! `stemedb-jetstream` crate plugs in the same way); the node verifies, appends, ingests and
//! answers reads through the seam's traits alone, and a refusal of the backend reaches the
//! submitter by name. A log that others can write is checked at ingest as admission checks:
//! forged, unauthorized, out-of-range, undecodable and unknown records are rejected by reason,
//! and none of them halts ingestion.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use stemedb::log::{
    Append, AppendError, Collect, DurableListener, Log, LogBackend, LogError, LogReader, OpenedLog, Outgoing,
    QueueUse, RangeRead, ReadError, Rebuild,
};
use stemedb::node::{ListQuery, Node, SubmitError};
use stemedb::protocol::{Extension, LogRecord, ObjectValue, TrustChange, Vote};
use stemedb_testkit::{Claim, NOW_MS, deadline, key};

/// Records in memory, at positions 1, 2, 3, ... (as a stream numbers them).
#[derive(Default)]
struct Memory {
    records: Mutex<Vec<Vec<u8>>>,
    listener: Mutex<Option<DurableListener>>,
    /// Records larger than this are refused, as a stream refuses what exceeds its largest message.
    record_bytes_max: usize,
    /// Only this node's admission writes the log (false: others may, as on a shared stream).
    admitted_only: bool,
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
            range.records.push((position, payload.into()));
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
    fn admitted_only(&self) -> bool {
        self.0.admitted_only
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

/// Appends `payload` to `memory` as another writer of a shared log would (no admission), and
/// announces it; returns its position.
fn inject(memory: &Memory, payload: Vec<u8>) -> u64 {
    let position = {
        let mut records = memory.records.lock();
        records.push(payload);
        records.len() as u64
    };
    if let Some(listener) = memory.listener.lock().as_ref() {
        listener(position + 1);
    }
    position
}

/// A node on an in-memory log that others can write (as on a shared stream), with agent 6 as
/// its administrator: its data directory, the log, the node and the administrator's key.
fn shared_log_node() -> (tempfile::TempDir, Arc<Memory>, Node, stemedb::protocol::AgentKey) {
    let dir = tempfile::TempDir::new().unwrap();
    let memory = Arc::new(Memory {
        record_bytes_max: 4096,
        ..Memory::default()
    });
    let admin = key(6);
    let mut config = stemedb::Config::default();
    config.votes.admins = vec![admin.agent_id().to_string()];
    let node = Node::start_with_log(config, dir.path(), MemoryBackend(Arc::clone(&memory))).unwrap();
    (dir, memory, node, admin)
}

#[actix::test]
async fn a_log_others_can_write_is_checked_at_ingest_and_no_record_halts_it() {
    let (_dir, memory, node, admin) = shared_log_node();

    let good = Claim::new("city/paris", "mayor", ObjectValue::Integer(1)).signed(&[1]);
    let at_good = inject(&memory, LogRecord::Assertion(good.clone()).encode());
    // An assertion whose signature does not cover what it says.
    let mut forged = Claim::new("city/paris", "mayor", ObjectValue::Integer(2)).signed(&[2]);
    forged.object = ObjectValue::Integer(3);
    let at_forged = inject(&memory, LogRecord::Assertion(forged).encode());
    // A vote in agent 4's name, signed by agent 3.
    let mut impostor = Vote::sign(&key(3), good.content_hash(), 1.0, NOW_MS);
    impostor.voter = key(4).agent_id();
    let at_impostor = inject(&memory, LogRecord::Vote(impostor).encode());
    // A trust change by an agent that is not an administrator.
    let usurper = TrustChange::sign(&key(5), key(1).agent_id(), 0.0, NOW_MS);
    let at_usurper = inject(&memory, LogRecord::Trust(usurper).encode());
    // A vote weighing NaN, properly signed (encoded by hand: admission would refuse it).
    let nan = Vote::sign(&key(3), good.content_hash(), f32::NAN, NOW_MS);
    let at_nan = inject(&memory, LogRecord::Vote(nan).encode());
    // Bytes that do not decode, and a tag this build does not know.
    let at_garbage = inject(&memory, vec![1, 0xc1, 0xff, 0x00]);
    let at_unknown = inject(&memory, vec![0x42, 1, 2, 3]);
    // Extension records that are not an administrator's: signed by another agent, and an
    // administrator's with its body changed after signing.
    let at_stranger = inject(&memory, Extension::encode(200, b"newer kind", &key(5)));
    let mut tampered = Extension::encode(200, b"newer kind", &admin);
    *tampered.last_mut().unwrap() ^= 1;
    let at_tampered = inject(&memory, tampered);
    // An administrator's trust change, and a valid vote: applied.
    let lowered = TrustChange::sign(&admin, key(3).agent_id(), 0.5, NOW_MS);
    inject(&memory, LogRecord::Trust(lowered).encode());
    let vote = Vote::sign(&key(3), good.content_hash(), 2.0, NOW_MS);
    inject(&memory, LogRecord::Vote(vote).encode());

    // A real write after them is indexed: nothing halted ingestion.
    let later = Claim::new("city/lyon", "mayor", ObjectValue::Integer(9)).signed(&[1]);
    let receipt = node.submit(later.clone()).await.unwrap();
    node.wait_indexed(receipt.offset, deadline()).await.unwrap();
    assert_eq!(node.ingest_status().stalled, None);
    assert!(node.get(&later.content_hash()).unwrap().is_some());
    assert!(node.get(&good.content_hash()).unwrap().is_some());
    assert_eq!(node.rejection(at_good).unwrap(), None);
    // A copy of a record this node published, with its signature altered, is checked (only
    // the exact bytes admission verified pass unchecked) and refused.
    let mut altered = later.clone();
    let mut bytes = *altered.signatures[0].signature.as_bytes();
    bytes[0] ^= 1;
    altered.signatures[0].signature = stemedb::protocol::Signature::from_bytes(bytes);
    let at_altered = inject(&memory, LogRecord::Assertion(altered).encode());
    node.wait_indexed(at_altered, deadline()).await.unwrap();
    let refused = node
        .rejection(at_altered)
        .unwrap()
        .expect("the altered copy is refused");
    assert_eq!(refused.reason.code(), "invalid", "{}", refused.reason);

    let expected = [
        (at_forged, "invalid"),
        (at_impostor, "invalid"),
        (at_usurper, "not_admin"),
        (at_nan, "invalid"),
        (at_garbage, "undecodable"),
        (at_unknown, "unknown_tag"),
        (at_stranger, "unknown_tag"),
        (at_tampered, "unknown_tag"),
    ];
    for (offset, code) in expected {
        let rejection = node
            .rejection(offset)
            .unwrap()
            .unwrap_or_else(|| panic!("record at {offset} was not rejected"));
        assert_eq!(rejection.reason.code(), code, "at {offset}: {}", rejection.reason);
    }
    // None of them counted: agent 1 keeps its trust, and only the valid vote is live.
    assert_eq!(node.trust(&key(1).agent_id()).unwrap(), 1.0);
    assert_eq!(node.trust(&key(3).agent_id()).unwrap(), 0.5);
    let votes = node.votes(&good.content_hash(), 10).unwrap();
    assert_eq!(votes.len(), 1, "{votes:?}");
    assert_eq!(votes[0].vote.weight, 2.0);
    // Records others wrote just before a shutdown are still checked and applied: the checks
    // outlive admission, so the shutdown catches up with them rather than stall.
    for n in 0..300 {
        let claim = Claim::new("city/nice", "mayor", ObjectValue::Integer(n)).signed(&[2]);
        inject(&memory, LogRecord::Assertion(claim).encode());
    }
    node.shutdown().await.unwrap();
}

#[actix::test]
async fn an_administrators_extension_record_holds_ingestion_until_an_upgrade() {
    let (_dir, memory, node, admin) = shared_log_node();
    let before = Claim::new("city/paris", "mayor", ObjectValue::Integer(1)).signed(&[1]);
    let at_before = inject(&memory, LogRecord::Assertion(before.clone()).encode());
    let at_extension = inject(&memory, Extension::encode(200, b"a newer kind", &admin));
    let after = Claim::new("city/paris", "mayor", ObjectValue::Integer(2)).signed(&[1]);
    inject(&memory, LogRecord::Assertion(after.clone()).encode());

    // Ingestion applies what precedes the record, then stops before it, saying why.
    match node.wait_indexed(at_extension, deadline()).await {
        Err(stemedb::node::WaitError::Stalled { cursor, reason }) => {
            assert_eq!(cursor, at_extension);
            assert!(reason.contains("upgrade needed"), "{reason}");
            assert!(reason.contains("tag 200"), "{reason}");
        }
        other => panic!("expected a stall before the extension record, got {other:?}"),
    }
    // Every record before it is applied, none from it on, and it is not refused.
    assert_eq!(node.ingest_status().cursor, at_extension);
    assert!(node.get(&before.content_hash()).unwrap().is_some());
    assert_eq!(node.rejection(at_before).unwrap(), None);
    assert_eq!(
        node.rejection(at_extension).unwrap(),
        None,
        "a genuine record is not refused"
    );
    assert!(
        node.get(&after.content_hash()).unwrap().is_none(),
        "nothing past it is applied"
    );
    // Shutdown reports the stall too.
    match node.shutdown().await {
        Err(stemedb::node::NodeError::Stalled(reason)) => {
            assert!(reason.contains("upgrade needed"), "{reason}")
        }
        other => panic!("expected shutdown to report the stall, got {other:?}"),
    }
}
