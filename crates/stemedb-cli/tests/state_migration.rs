//! A state written by an older build (schema 2: `tests/fixtures/state-v2`, with the manifest of
//! what that build's `Node::dump()` held) opened by this one (schema 3):
//!
//! - when the journal still holds every record, the node empties the state and replays the
//!   journal from offset 0, and ends up holding exactly what the manifest lists, now with a
//!   `pairs` entry per assertion;
//! - when retention has deleted the first segment, the node refuses to start, names
//!   `stemedb state convert`, and changes no file; the command converts the state in place,
//!   keeping every vote, total, trust row, rejection and the cursor, so that the node then
//!   starts with nothing to replay and holds exactly what the manifest lists;
//! - a state of a schema version this build does not know is refused, by the node and by the
//!   command, and left as it was.
//!
//! Every comparison is against the manifest written by the old build, so a lost or altered
//! row (a vote, a weight byte, a rejection's reason) fails it. Each test works on a copy of the
//! fixture in a temporary directory; the committed fixture is only read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use stemedb_testkit as common;

use common::deadline;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::cli::stemedb;
use common::key;
use serde::Deserialize;
use stemedb::Config;
use stemedb::actors::Hooks;
use stemedb::node::{JOURNAL_DIR, ListQuery, Node, NodeError, STATE_DIR, STATE_SCHEMA_VERSION, StateDump};
use stemedb::protocol::Hash;
use stemedb::storage::state::{PairId, Section, State, StateError, Summary};
use tempfile::TempDir;

/// The fixture: a data directory written by state schema 2.
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/state-v2");
/// The fixture's first journal segment, the one retention deletes first.
const FIRST_SEGMENT: &str = "00000000000000000000.wal";
/// The base offset of the fixture's second segment: where the journal starts without the first.
const SECOND_SEGMENT_BASE: u64 = 8398;
/// Files that opening creates (the journal's directory lock, LMDB's lock file): not data.
const LOCK_FILES: [&str; 2] = ["journal/LOCK", "state/lock.mdb"];
/// Most entries one listing in these tests asks for; far more than the fixture holds.
const LIMIT: usize = 1000;

/// The configuration the fixture was written with: 8 KiB segments, key 77 the administrator.
fn config_toml() -> String {
    format!(
        "[journal]\nsegment_size_bytes = 8192\n\n[votes]\nadmins = [\"{}\"]\n",
        key(77).agent_id()
    )
}

fn config() -> Config {
    Config::from_toml(&config_toml(), "state_migration").unwrap()
}

/// A copy of the fixture: `data()` is the data directory, `config_file()` the configuration
/// the fixture was written with, for the binary.
struct Copy {
    root: TempDir,
}

impl Copy {
    fn new() -> Self {
        let root = TempDir::new().unwrap();
        for sub in [JOURNAL_DIR, STATE_DIR] {
            let to = root.path().join("data").join(sub);
            std::fs::create_dir_all(&to).unwrap();
            for entry in std::fs::read_dir(Path::new(FIXTURE).join(sub)).unwrap() {
                let entry = entry.unwrap();
                assert!(entry.file_type().unwrap().is_file(), "{:?}", entry.path());
                std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            }
        }
        std::fs::write(root.path().join("stemedb.toml"), config_toml()).unwrap();
        let copy = Self { root };
        for lock in LOCK_FILES {
            assert!(!copy.data().join(lock).exists(), "the fixture holds no {lock}");
        }
        copy
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn config_file(&self) -> PathBuf {
        self.root.path().join("stemedb.toml")
    }

    /// Deletes the first journal segment, as retention does once every cursor has passed it.
    fn retire_first_segment(&self) {
        std::fs::remove_file(self.data().join(JOURNAL_DIR).join(FIRST_SEGMENT)).unwrap();
    }

    /// The blake3 hash of every data file (lock files aside), by path under the data directory.
    fn files(&self) -> BTreeMap<String, blake3::Hash> {
        let mut files = BTreeMap::new();
        for sub in [JOURNAL_DIR, STATE_DIR] {
            for entry in std::fs::read_dir(self.data().join(sub)).unwrap() {
                let entry = entry.unwrap();
                let name = format!("{sub}/{}", entry.file_name().to_string_lossy());
                if !LOCK_FILES.contains(&name.as_str()) {
                    files.insert(name, blake3::hash(&std::fs::read(entry.path()).unwrap()));
                }
            }
        }
        files
    }

    /// Rewrites the schema version stored in the state's `meta` database from `from` to `to`,
    /// in the bytes of `data.mdb`: a `meta` leaf holds the key `schema_version` followed by
    /// the u32 value, and LMDB keeps no page checksums. Every copy is patched (a stale page
    /// may hold one too); whether the live one was is for the caller to check, by opening.
    fn patch_schema_version(&self, from: u32, to: u32) {
        let path = self.data().join(STATE_DIR).join("data.mdb");
        let mut bytes = std::fs::read(&path).unwrap();
        let mut old = b"schema_version".to_vec();
        old.extend_from_slice(&from.to_be_bytes());
        let at: Vec<usize> = bytes
            .windows(old.len())
            .enumerate()
            .filter(|(_, window)| *window == old.as_slice())
            .map(|(i, _)| i)
            .collect();
        assert!(!at.is_empty(), "data.mdb holds schema_version = {from}");
        for i in at {
            bytes[i + old.len() - 4..i + old.len()].copy_from_slice(&to.to_be_bytes());
        }
        std::fs::write(&path, bytes).unwrap();
    }

    /// Runs `stemedb --config <file> state convert <data>`.
    fn convert(&self) -> assert_cmd::assert::Assert {
        stemedb()
            .arg("--config")
            .arg(self.config_file())
            .args(["state", "convert"])
            .arg(self.data())
            .assert()
    }
}

/// What the old build's `Node::dump()` held (`manifest.json`), or what a dump holds, in the
/// same shape: hashes and agents in hex, weights as the hex of their exact bytes, rejections
/// by reason code.
#[derive(Debug, PartialEq, Eq, Deserialize)]
struct Manifest {
    ingest_cursor: u64,
    /// (hash, offset), by hash.
    assertions: Vec<(String, u64)>,
    /// (parent, child), by parent then child.
    supersession: Vec<(String, String)>,
    /// (vote hash, offset), by (assertion, voter).
    votes: Vec<(String, u64)>,
    /// (assertion, count, exact weight bytes), by assertion.
    vote_totals: Vec<(String, u64, String)>,
    /// (agent, change hash, offset), by agent.
    trust: Vec<(String, String, u64)>,
    /// (offset, reason code), by offset.
    rejected: Vec<(u64, String)>,
}

impl Manifest {
    fn load() -> Self {
        let text = std::fs::read_to_string(Path::new(FIXTURE).join("manifest.json")).unwrap();
        let manifest: Self = serde_json::from_str(&text).unwrap();
        // A comparison with an empty list would prove little: the fixture holds some of each.
        assert!(manifest.ingest_cursor > 0);
        assert!(!manifest.assertions.is_empty() && !manifest.supersession.is_empty());
        assert!(!manifest.votes.is_empty() && !manifest.vote_totals.is_empty());
        assert!(!manifest.trust.is_empty() && !manifest.rejected.is_empty());
        manifest
    }

    fn of(dump: &StateDump) -> Self {
        Self {
            ingest_cursor: dump.ingest_cursor,
            assertions: dump
                .assertions
                .iter()
                .map(|a| (a.hash.to_string(), a.offset))
                .collect(),
            supersession: dump
                .supersession
                .iter()
                .map(|(parent, child)| (parent.to_string(), child.to_string()))
                .collect(),
            votes: dump
                .votes
                .iter()
                .map(|v| (v.hash.to_string(), v.offset))
                .collect(),
            vote_totals: dump
                .vote_totals
                .iter()
                .map(|(hash, totals)| {
                    (
                        hash.to_string(),
                        totals.count,
                        hex::encode(totals.weight.to_bytes()),
                    )
                })
                .collect(),
            trust: dump
                .trust
                .iter()
                .map(|t| (t.change.agent.to_string(), t.hash.to_string(), t.offset))
                .collect(),
            rejected: dump
                .rejected
                .iter()
                .map(|r| (r.offset, r.reason.code().to_owned()))
                .collect(),
        }
    }
}

/// Assertions of one pair as the index orders them: (timestamp, hash).
type Entries = Vec<(u64, Hash)>;

/// Checks the schema 3 index against the assertions and supersession edges of `dump`: one
/// `pairs` entry per assertion, in its pair, with its timestamp and summary, superseded if and
/// only if it is a parent; and that `heads` and `list` (heads and history) of every pair agree
/// with it.
fn check_pairs_index(node: &Node, dump: &StateDump) {
    let parents: BTreeSet<Hash> = dump.supersession.iter().map(|(parent, _)| *parent).collect();
    assert_eq!(
        dump.pairs.len(),
        dump.assertions.len(),
        "one pairs entry per assertion"
    );
    let entries: HashMap<Hash, _> = dump
        .pairs
        .iter()
        .map(|(key, summary)| (key.hash, (key, summary)))
        .collect();
    assert_eq!(
        entries.len(),
        dump.assertions.len(),
        "no assertion has two pairs entries"
    );
    // Expected heads and history of each pair, by (timestamp, hash) as the index orders them.
    let mut by_pair: BTreeMap<(String, String), (Entries, Entries)> = BTreeMap::new();
    for stored in &dump.assertions {
        let a = &stored.assertion;
        let (key, summary) = entries
            .get(&stored.hash)
            .unwrap_or_else(|| panic!("no pairs entry for {}", stored.hash));
        let superseded = parents.contains(&stored.hash);
        let section = if superseded {
            Section::Superseded
        } else {
            Section::Head
        };
        assert_eq!(key.pair, PairId::of_assertion(a), "{}", stored.hash);
        assert_eq!(key.section, section, "{}", stored.hash);
        assert_eq!(key.timestamp_ms, a.timestamp_ms, "{}", stored.hash);
        assert_eq!(**summary, Summary::of(a, stored.offset), "{}", stored.hash);
        let pair = by_pair
            .entry((a.subject.clone(), a.predicate.clone()))
            .or_default();
        let part = if superseded { &mut pair.1 } else { &mut pair.0 };
        part.push((a.timestamp_ms, stored.hash));
    }
    assert!(by_pair.len() > 1 && by_pair.values().any(|(_, old)| !old.is_empty()));
    for ((subject, predicate), (mut heads, mut history)) in by_pair {
        heads.sort();
        history.sort();
        let head_hashes: Vec<Hash> = heads.iter().map(|(_, hash)| *hash).collect();
        let indexed = node.heads(&subject, &predicate, LIMIT).unwrap();
        let indexed: Vec<(u64, Hash)> = indexed.iter().map(|h| (h.timestamp_ms, h.hash)).collect();
        assert_eq!(indexed, heads, "heads of ({subject}, {predicate})");
        let mut query = ListQuery::pair(subject.clone(), predicate.clone());
        query.limit = LIMIT;
        let listed = node.list(&query).unwrap();
        assert!(listed.next.is_none());
        let listed: Vec<Hash> = listed.assertions.iter().map(|a| a.hash).collect();
        assert_eq!(listed, head_hashes, "listed heads of ({subject}, {predicate})");
        query.history = true;
        let listed = node.list(&query).unwrap();
        assert!(listed.next.is_none());
        let listed: Vec<Hash> = listed.assertions.iter().map(|a| a.hash).collect();
        let all: Vec<Hash> = heads.iter().chain(&history).map(|(_, hash)| *hash).collect();
        assert_eq!(listed, all, "history of ({subject}, {predicate})");
    }
}

/// Hooks that record the ingest cursor at which each batch commits.
fn commit_recorder() -> (Hooks, Arc<Mutex<Vec<u64>>>) {
    let commits = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&commits);
    let hooks = Hooks {
        before_commit: Some(Arc::new(move |cursor| seen.lock().unwrap().push(cursor))),
        ..Hooks::default()
    };
    (hooks, commits)
}

/// Starts a node on `data`, waits until it has applied the whole journal, checks that it holds
/// what the manifest lists and that its `pairs` index agrees, and shuts it down. Returns its
/// dump and the ingest cursor of every batch it committed.
fn start_and_check(data: &Path, manifest: &Manifest) -> (StateDump, Vec<u64>) {
    let (hooks, commits) = commit_recorder();
    let dump = actix::System::new().block_on(async {
        let node = Node::start_with_hooks(config(), data, hooks).unwrap();
        node.wait_caught_up(deadline()).await.unwrap();
        assert_eq!(
            node.durable_end().unwrap(),
            manifest.ingest_cursor,
            "the journal lost nothing"
        );
        let dump = node.dump().unwrap();
        assert_eq!(Manifest::of(&dump), *manifest);
        check_pairs_index(&node, &dump);
        node.shutdown().await.unwrap();
        dump
    });
    let commits = commits.lock().unwrap().clone();
    (dump, commits)
}

/// Opens the state alone, which refuses any older schema: it succeeds only at this version.
/// Returns its dump.
fn reopen_current(data: &Path) -> StateDump {
    assert_eq!(STATE_SCHEMA_VERSION, 3, "these tests convert schema 2 to 3");
    let state = State::open(data.join(STATE_DIR), config().state).unwrap();
    let dump = state.dump().unwrap();
    state.close();
    dump
}

#[test]
fn outdated_state_is_rebuilt_from_a_journal_that_holds_every_record() {
    let copy = Copy::new();
    let manifest = Manifest::load();
    let (dump, commits) = start_and_check(&copy.data(), &manifest);
    assert_eq!(
        commits.first(),
        Some(&0),
        "the state was emptied and replayed from offset 0"
    );
    assert_eq!(
        reopen_current(&copy.data()),
        dump,
        "stored at schema 3, and it reopens as it was"
    );
    copy.convert().success().stdout(predicates::str::contains(
        "already at schema version 3; nothing to do",
    ));
}

#[test]
fn version_1_state_is_rebuilt_too_with_trust_replayed_from_the_journal() {
    let copy = Copy::new();
    copy.patch_schema_version(2, 1);
    let opened = State::open(copy.data().join(STATE_DIR), config().state).unwrap_err();
    assert!(
        matches!(
            opened,
            StateError::SchemaOutdated {
                found: 1,
                expected: 3
            }
        ),
        "the patch reached the live meta page: {opened:?}"
    );
    let (_, commits) = start_and_check(&copy.data(), &Manifest::load());
    assert_eq!(
        commits.first(),
        Some(&0),
        "the state was emptied and replayed from offset 0"
    );
    reopen_current(&copy.data());
}

#[test]
fn outdated_state_without_its_first_segment_is_refused_unchanged_then_converted_by_command() {
    let copy = Copy::new();
    let manifest = Manifest::load();
    copy.retire_first_segment();
    let before = copy.files();
    let refused = actix::System::new().block_on(async { Node::start(config(), copy.data()).unwrap_err() });
    match &refused {
        NodeError::StateNeedsConversion {
            dir,
            found: 2,
            expected: 3,
            journal_start: SECOND_SEGMENT_BASE,
            quarantined: 0,
        } => assert_eq!(dir, &copy.data()),
        other => {
            panic!("expected StateNeedsConversion from schema 2, journal at {SECOND_SEGMENT_BASE}: {other:?}")
        }
    }
    let message = refused.to_string();
    let command = format!("stemedb state convert {}", copy.data().display());
    assert!(message.contains(&command), "{message}");
    assert_eq!(copy.files(), before, "refusing changed no file");

    copy.convert().success().stdout(predicates::str::contains(
        "state converted from schema version 2 to 3",
    ));
    assert!(
        !copy.data().join(JOURNAL_DIR).join(FIRST_SEGMENT).exists(),
        "converting needs no journal record"
    );
    let (dump, commits) = start_and_check(&copy.data(), &manifest);
    assert_eq!(
        commits,
        Vec::<u64>::new(),
        "the converted state kept its cursor: nothing was replayed"
    );
    copy.convert().success().stdout(predicates::str::contains(
        "already at schema version 3; nothing to do",
    ));
    assert_eq!(
        reopen_current(&copy.data()),
        dump,
        "converting again changed nothing"
    );
}

#[test]
fn state_of_an_unknown_future_version_is_refused_unchanged() {
    let copy = Copy::new();
    copy.patch_schema_version(2, 99);
    let before = copy.files();
    let opened = State::open(copy.data().join(STATE_DIR), config().state).unwrap_err();
    assert!(
        matches!(
            opened,
            StateError::SchemaVersion {
                found: 99,
                expected: 3
            }
        ),
        "{opened:?}"
    );
    let refused = actix::System::new().block_on(async { Node::start(config(), copy.data()).unwrap_err() });
    assert!(
        matches!(
            refused,
            NodeError::State(StateError::SchemaVersion {
                found: 99,
                expected: 3
            })
        ),
        "the journal holds every record, yet an unknown version is not rebuilt: {refused:?}"
    );
    copy.convert().code(1).stderr(predicates::str::contains(
        "state schema version is 99; this build reads version 3",
    ));
    assert_eq!(
        copy.files(),
        before,
        "neither the node nor the command changed a file"
    );
}

#[test]
fn converting_a_directory_that_is_not_a_data_directory_creates_nothing() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("typo");
    stemedb()
        .args(["state", "convert"])
        .arg(&missing)
        .assert()
        .failure()
        .stderr(predicates::str::contains("is not a StemeDB data directory"));
    assert!(!missing.exists(), "nothing was created");
}
