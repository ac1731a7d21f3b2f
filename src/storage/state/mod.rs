//! The queryable state: assertions, their indexes and the ingest cursor in LMDB, through heed.
//!
//! One concern per file: [`layout`] (every database, key and value encoding), `schema`
//! (versions, rebuild and conversion), `apply` (the one write path: a journal batch and the
//! cursor in one transaction), `read` (queries), `snapshot` (consistent multi-read views),
//! `votes` (live votes and totals), `trust` (applied trust changes), `inspect` (whole dumps),
//! `rejection` (why a record was refused), `config` and `error`.
//!
//! Invariants:
//! - The ingest cursor is written in the same transaction as the state it covers, so after any
//!   crash ingestion resumes exactly where the state ends: nothing applied twice or skipped.
//! - Vote totals equal a recount of the stored live votes (see `votes`).
//! - Every trust row is the greatest journaled trust change of its agent (see `trust`): trust,
//!   like everything else, is a replay of the journal.
//! - Every stored assertion has exactly one record (by offset), one hash entry pointing at it,
//!   and one `pairs` entry, in the superseded section if and only if a stored assertion names it
//!   as parent (one `supersession` edge per such child); nothing else has any of these.
//! - A batch commits whole: a reader, snapshots included, sees all of it or none of it.
//! - The journal is the durability point. LMDB skips the meta-page sync (`NO_META_SYNC`): a
//!   commit lost in a crash is replayed from the journal. `NO_SYNC` is never used; it can
//!   corrupt LMDB itself.
//! - A full map grows (doubling, up to `map_size_bytes_max`) and the write is retried; a map
//!   resize waits until no transaction of this process is open.

mod apply;
mod asof;
mod config;
mod digest;
mod error;
mod inspect;
pub mod layout;
mod read;
mod rejection;
mod schema;
mod snapshot;
mod tally;
mod trust;
pub mod tree;
mod checkpoints;
mod map;
pub mod learned;
mod receipt;
mod votes;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use parking_lot::{Mutex, RwLock};

use layout::DATABASES_MAX;
#[cfg_attr(not(feature = "test-kit"), allow(unused_imports, reason = "for tests"))]
pub use layout::{PairId, PairKey, Section, Summary};
pub use schema::{Outdated, SCHEMA_VERSION, Upgrade};
pub use snapshot::Snapshot;

#[cfg_attr(not(feature = "test-kit"), allow(unused_imports, reason = "for tests"))]
pub use apply::{ApplyOutcome, IngestRecord, Refused, UnknownTag};
pub(crate) use apply::Plan;
pub use config::{MAP_SIZE_GRANULE_BYTES, StateConfig};
pub use error::StateError;
pub use digest::StateDigest;
pub use inspect::StateDump;
#[cfg_attr(not(feature = "test-kit"), allow(unused_imports, reason = "for tests"))]
pub use receipt::ReceiptEvidence;
pub use read::{HeadSummary, LIST_LIMIT_MAX, ListCursor, ListPage, ListQuery, StoredAssertion};
pub use rejection::{RejectReason, Rejection};
pub use tally::{EXACT_WEIGHT_BYTES, ExactWeight, WeightUnderflow};
pub use trust::StoredTrust;
pub use learned::{LearnedMeta, LearnedSettings};
#[cfg_attr(not(feature = "test-kit"), allow(unused_imports, reason = "for tests"))]
pub use votes::{RoutedVote, StoredVote, Tally, VoteTotals, supersedes};

/// A database of the state: raw byte keys and values, encoded by [`layout`].
pub(crate) type Db = Database<'static, Bytes, Bytes>;

/// The named databases.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Databases {
    pub(crate) assertion_records: Db,
    pub(crate) assertion_hashes: Db,
    pub(crate) pairs: Db,
    pub(crate) supersession: Db,
    pub(crate) rejected: Db,
    pub(crate) meta: Db,
    pub(crate) votes: Db,
    pub(crate) vote_totals: Db,
    pub(crate) trust: Db,
    pub(crate) vote_history: Db,
    pub(crate) trust_history: Db,
    pub(crate) ingest_times: Db,
    pub(crate) tree: Db,
    pub(crate) leaf_index: Db,
    pub(crate) checkpoints: Db,
    pub(crate) map_leaves: Db,
    pub(crate) map_nodes: Db,
    pub(crate) evidence: Db,
    pub(crate) learned: Db,
}

impl Databases {
    /// Every database, for whole-state operations.
    fn all(&self) -> [Db; 19] {
        [
            self.assertion_records,
            self.assertion_hashes,
            self.pairs,
            self.supersession,
            self.rejected,
            self.meta,
            self.votes,
            self.vote_totals,
            self.trust,
            self.vote_history,
            self.trust_history,
            self.ingest_times,
            self.tree,
            self.leaf_index,
            self.checkpoints,
            self.map_leaves,
            self.map_nodes,
            self.evidence,
            self.learned,
        ]
    }
}

/// The open state. Clones share it; reads may run on any thread, writes come from the one
/// ingest thread.
#[derive(Clone)]
pub struct State {
    inner: Arc<Inner>,
}

struct Inner {
    env: Env<WithoutTls>,
    dbs: Databases,
    config: StateConfig,
    path: PathBuf,
    /// Held shared by every transaction and exclusively by a map resize, which LMDB allows
    /// only while no transaction of the process is open.
    resize: RwLock<()>,
    /// The current map size, in bytes.
    map_size_bytes: Mutex<usize>,
    /// The live snapshots, whose transactions a resize or their expiry lets go.
    snapshots: snapshot::Registry,
    /// Whether ingest keeps the Merkle tree and the map (`checkpoint.enabled`).
    verifiable: std::sync::atomic::AtomicBool,
    /// How the learned trust model is kept, if it is (`[learned]`).
    learned: parking_lot::RwLock<Option<LearnedSettings>>,
    /// Nanoseconds spent keeping the learned model, and the re-estimations last reported.
    learned_ns: std::sync::atomic::AtomicU64,
    learned_epochs_seen: std::sync::atomic::AtomicU64,
}

impl State {
    /// Opens (creating if needed) the state in directory `path`. A state of an older schema
    /// is refused with [`StateError::SchemaOutdated`], unchanged; see [`open_with`](Self::open_with).
    #[cfg_attr(not(feature = "test-kit"), allow(dead_code, reason = "the node opens with a decision"))]
    pub fn open(path: impl AsRef<Path>, config: StateConfig) -> Result<Self, StateError> {
        Self::open_with(path, config, |_| Ok::<_, StateError>(Upgrade::Refuse))
    }

    /// Opens (creating if needed) the state in directory `path`; a state of an older schema is
    /// handed to `decide`, which answers what to do with it (see `schema`).
    pub fn open_with<E: From<StateError>>(
        path: impl AsRef<Path>,
        config: StateConfig,
        decide: impl FnOnce(Outdated) -> Result<Upgrade, E>,
    ) -> Result<Self, E> {
        config.validate().map_err(StateError::Config)?;
        let path = path.as_ref().to_owned();
        std::fs::create_dir_all(&path).map_err(|source| StateError::CreateDir {
            path: path.clone(),
            source,
        })?;
        // Reader slots belong to transactions, not threads: any number of host threads may read.
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options
            .map_size(config.map_size_bytes_initial)
            .max_dbs(DATABASES_MAX)
            .max_readers(config.readers_max);
        // SAFETY: NO_META_SYNC lets a crash lose the last commits, never corrupt the
        // environment (LMDB keeps both meta pages and falls back to the older one); the journal
        // replays what was lost, because the ingest cursor is committed with the state.
        #[allow(unsafe_code)]
        unsafe {
            options.flags(EnvFlags::NO_META_SYNC);
        }
        // SAFETY: the state files are modified only through LMDB. Within this process heed
        // refuses to open the same environment twice; across processes LMDB's lock file
        // coordinates readers and writers, and the node opens the state only while it holds the
        // journal's directory lock, which keeps a second node off the same data directory.
        #[allow(unsafe_code)]
        let env = unsafe { options.open(&path) }.map_err(StateError::lmdb("open environment"))?;
        let upgrade = match schema::inspect(&env) {
            Ok(schema::Found::Current) => None,
            Ok(schema::Found::Outdated(outdated)) => match decide(outdated) {
                Ok(Upgrade::Refuse) => {
                    env.prepare_for_closing().wait();
                    return Err(StateError::SchemaOutdated {
                        found: outdated.found,
                        expected: SCHEMA_VERSION,
                    }
                    .into());
                }
                Ok(upgrade) => Some((upgrade, outdated)),
                Err(error) => {
                    env.prepare_for_closing().wait();
                    return Err(error);
                }
            },
            Err(error) => {
                env.prepare_for_closing().wait();
                return Err(error.into());
            }
        };
        let (dbs, legacy) = schema::create_databases(&env)?;
        let env_map_size = env.info().map_size;
        let state = Self {
            inner: Arc::new(Inner {
                env,
                dbs,
                // An existing environment larger than the configured start keeps its size.
                map_size_bytes: Mutex::new(env_map_size.max(config.map_size_bytes_initial)),
                config,
                path,
                resize: RwLock::new(()),
                snapshots: snapshot::Registry::default(),
                verifiable: std::sync::atomic::AtomicBool::new(true),
                learned: parking_lot::RwLock::new(Some(LearnedSettings::default())),
                learned_ns: std::sync::atomic::AtomicU64::new(0),
                learned_epochs_seen: std::sync::atomic::AtomicU64::new(u64::MAX),
            }),
        };
        match upgrade {
            None => state.write(schema::stamp)?,
            Some((Upgrade::Rebuild, outdated)) => {
                state.write(|txn, dbs| schema::rebuild(txn, dbs, &legacy))?;
                tracing::warn!(
                    from = outdated.found,
                    to = SCHEMA_VERSION,
                    "state emptied, to be rebuilt from the journal"
                );
            }
            Some((_, outdated)) => state.write(|txn, dbs| schema::convert(txn, dbs, &legacy, outdated.found))?,
        }
        Ok(state)
    }

    /// Sets whether ingest keeps the Merkle tree and the map (on by default); see
    /// `checkpoint.enabled`.
    pub fn set_verifiable(&self, on: bool) {
        self.inner.verifiable.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Returns whether ingest keeps the Merkle tree and the map.
    pub fn verifiable(&self) -> bool {
        self.inner.verifiable.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Returns the current map size, in bytes.
    #[cfg_attr(not(feature = "test-kit"), allow(dead_code, reason = "read by tests"))]
    pub fn map_size_bytes(&self) -> usize {
        *self.inner.map_size_bytes.lock()
    }

    /// Returns the bytes of map pages in use: up to the last page LMDB has used.
    pub fn map_used_bytes(&self) -> u64 {
        let info = self.inner.env.info();
        (info.last_page_number as u64 + 1) * rustix::param::page_size() as u64
    }

    /// Closes the environment and waits until LMDB has released it, so that it can be opened
    /// again in this process. Every clone of this state must be dropped first (the wait lasts
    /// until they are).
    pub fn close(self) {
        // Snapshots hold transactions (and so the environment) without holding the state.
        self.inner.snapshots.revoke_all();
        let event = match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner.env.prepare_for_closing(),
            Err(shared) => shared.env.clone().prepare_for_closing(),
        };
        event.wait();
    }

    /// Flushes every commit to disk, meta page included (commits skip the meta-page sync).
    pub fn sync(&self) -> Result<(), StateError> {
        let _guard = self.inner.resize.read();
        self.inner.env.force_sync().map_err(StateError::lmdb("sync"))
    }

    /// Runs `f` in a short read transaction.
    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&RoTxn<'_>, &Databases) -> Result<R, StateError>,
    ) -> Result<R, StateError> {
        let _guard = self.inner.resize.read();
        let txn = self
            .inner
            .env
            .read_txn()
            .map_err(StateError::lmdb("begin read"))?;
        f(&txn, &self.inner.dbs)
    }

    /// Runs `f` in a write transaction and commits; if the map fills, grows it and runs `f`
    /// again from the start in a new transaction.
    pub(crate) fn write<R>(
        &self,
        mut f: impl FnMut(&mut RwTxn<'_>, &Databases) -> Result<R, StateError>,
    ) -> Result<R, StateError> {
        let lifetime = std::time::Duration::from_millis(self.inner.config.snapshot_lifetime_ms_max);
        self.inner.snapshots.reap_expired(lifetime);
        loop {
            let outcome = {
                let _guard = self.inner.resize.read();
                let mut txn = self
                    .inner
                    .env
                    .write_txn()
                    .map_err(StateError::lmdb("begin write"))?;
                f(&mut txn, &self.inner.dbs)
                    .and_then(|r| txn.commit().map_err(StateError::lmdb("commit")).map(|()| r))
            };
            match outcome {
                Err(error) if error.is_map_full() => self.grow()?,
                other => return other,
            }
        }
    }

    /// Doubles the map size (up to the configured maximum).
    fn grow(&self) -> Result<(), StateError> {
        let _exclusive = self.inner.resize.write();
        let mut size = self.inner.map_size_bytes.lock();
        let max = self.inner.config.map_size_bytes_max;
        if *size >= max {
            return Err(StateError::MapSizeLimit {
                map_size_bytes: *size,
                max_bytes: max,
            });
        }
        let new_size = size.saturating_mul(2).min(max);
        // Snapshots hold their transactions without the guard: let them go (waiting only for
        // reads in progress), so that a long-lived snapshot cannot stall the resize.
        let revoked = self.inner.snapshots.revoke_all();
        // SAFETY: the exclusive guard waits for every short transaction of this process to end
        // (each holds the guard shared) and keeps new ones and new snapshots from starting;
        // every snapshot's transaction was let go above.
        #[allow(unsafe_code)]
        unsafe { self.inner.env.resize(new_size) }.map_err(StateError::lmdb("resize map"))?;
        tracing::info!(from = *size, to = new_size, revoked, "LMDB map grown");
        metrics::counter!("stemedb_state_map_grows_total").increment(1);
        *size = new_size;
        Ok(())
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("path", &self.inner.path).finish()
    }
}
