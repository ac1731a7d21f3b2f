//! The queryable state: assertions, their indexes and the ingest cursor in LMDB, through heed.
//!
//! One concern per file: [`layout`] (every database, key and value encoding), `apply` (the one write path: a journal batch and the
//! cursor in one transaction), `read` (queries), `votes` (live votes and totals), `trust`
//! (applied trust changes), `inspect` (whole dumps), `rejection` (why a record was refused), `config` and `error`.
//!
//! Invariants:
//! - The ingest cursor is written in the same transaction as the state it covers, so after any
//!   crash ingestion resumes exactly where the state ends: nothing applied twice or skipped.
//! - Vote totals equal a recount of the stored live votes (see `votes`).
//! - Every trust row is the greatest journaled trust change of its agent (see `trust`): trust,
//!   like everything else, is a replay of the journal.
//! - Every stored assertion has exactly one key in each of `by_subject` and
//!   `by_subject_predicate`, and one `supersession` key if it has a parent; nothing else does.
//! - The journal is the durability point. LMDB skips the meta-page sync (`NO_META_SYNC`): a
//!   commit lost in a crash is replayed from the journal. `NO_SYNC` is never used; it can
//!   corrupt LMDB itself.
//! - A full map grows (doubling, up to `map_size_bytes_max`) and the write is retried; a map
//!   resize waits until no transaction of this process is open.

mod apply;
mod config;
mod error;
mod inspect;
pub mod layout;
mod read;
mod rejection;
mod tally;
mod trust;
mod votes;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use parking_lot::{Mutex, RwLock};

use layout::{
    DATABASES_MAX, DB_ASSERTIONS, DB_BY_SUBJECT, DB_BY_SUBJECT_PREDICATE, DB_META, DB_REJECTED,
    DB_SUPERSESSION, DB_TRUST, DB_VOTE_TOTALS, DB_VOTES, META_SCHEMA_VERSION,
};

#[cfg_attr(not(feature = "test-support"), allow(unused_imports, reason = "for tests"))]
pub use apply::{ApplyOutcome, IngestRecord, UnknownTag};
pub(crate) use apply::Plan;
pub use config::{MAP_SIZE_GRANULE_BYTES, StateConfig};
pub use error::StateError;
pub use inspect::StateDump;
pub use read::{LIST_LIMIT_MAX, ListCursor, ListPage, ListQuery, StoredAssertion};
pub use rejection::{RejectReason, Rejection};
pub use tally::{EXACT_WEIGHT_BYTES, ExactWeight, WeightUnderflow};
pub use trust::StoredTrust;
#[cfg_attr(not(feature = "test-support"), allow(unused_imports, reason = "for tests"))]
pub use votes::{RoutedVote, StoredVote, Tally, VoteTotals, supersedes};

/// Version of the layout described in [`layout`]; stored in `meta` and checked at open.
///
/// Version 2: `trust` rows hold the applied trust-change record instead of a bare factor
/// written outside the journal. A version 1 state is migrated at open by clearing its trust
/// rows, which no replay of the journal could reproduce.
pub const SCHEMA_VERSION: u32 = 2;
/// The one older version that [`State::open`] migrates.
const SCHEMA_VERSION_UNJOURNALED_TRUST: u32 = 1;

/// A database of the state: raw byte keys and values, encoded by [`layout`].
pub(crate) type Db = Database<'static, Bytes, Bytes>;

/// The named databases.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Databases {
    pub(crate) assertions: Db,
    pub(crate) by_subject: Db,
    pub(crate) by_subject_predicate: Db,
    pub(crate) supersession: Db,
    pub(crate) rejected: Db,
    pub(crate) meta: Db,
    pub(crate) votes: Db,
    pub(crate) vote_totals: Db,
    pub(crate) trust: Db,
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
}

impl State {
    /// Opens (creating if needed) the state in directory `path`.
    pub fn open(path: impl AsRef<Path>, config: StateConfig) -> Result<Self, StateError> {
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
        let dbs = create_databases(&env)?;
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
            }),
        };
        state.check_schema()?;
        Ok(state)
    }

    /// Returns the current map size, in bytes.
    #[cfg_attr(not(feature = "test-support"), allow(dead_code, reason = "read by tests"))]
    pub fn map_size_bytes(&self) -> usize {
        *self.inner.map_size_bytes.lock()
    }

    /// Closes the environment and waits until LMDB has released it, so that it can be opened
    /// again in this process. Every clone of this state must be dropped first (the wait lasts
    /// until they are).
    pub fn close(self) {
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
        // SAFETY: the exclusive guard waits for every transaction of this process to end
        // (each holds the guard shared) and keeps new ones from starting.
        #[allow(unsafe_code)]
        unsafe { self.inner.env.resize(new_size) }.map_err(StateError::lmdb("resize map"))?;
        tracing::info!(from = *size, to = new_size, "LMDB map grown");
        metrics::counter!("stemedb_state_map_grows_total").increment(1);
        *size = new_size;
        Ok(())
    }

    fn check_schema(&self) -> Result<(), StateError> {
        self.write(|txn, dbs| {
            match dbs
                .meta
                .get(txn, META_SCHEMA_VERSION)
                .map_err(StateError::lmdb("read meta"))?
            {
                Some(bytes) => {
                    let found = u32::from_be_bytes(
                        bytes
                            .try_into()
                            .map_err(|_| StateError::corrupt("schema version", "not 4 bytes"))?,
                    );
                    if found == SCHEMA_VERSION_UNJOURNALED_TRUST {
                        migrate_unjournaled_trust(txn, dbs)?;
                    } else if found != SCHEMA_VERSION {
                        return Err(StateError::SchemaVersion {
                            found,
                            expected: SCHEMA_VERSION,
                        });
                    }
                }
                None => dbs
                    .meta
                    .put(txn, META_SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(StateError::lmdb("write meta"))?,
            }
            Ok(())
        })
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("path", &self.inner.path).finish()
    }
}

fn create_databases(env: &Env<WithoutTls>) -> Result<Databases, StateError> {
    let txn = env.write_txn().map_err(StateError::lmdb("begin write"))?;
    let [
        assertions,
        by_subject,
        by_subject_predicate,
        supersession,
        rejected,
        meta,
        votes,
        vote_totals,
        trust,
    ] = env
        .create_databases_and_commit(txn, |opener, txn| {
            let mut create = |name| opener.create_database::<Bytes, Bytes>(txn, Some(name));
            let array = [
                create(DB_ASSERTIONS)?,
                create(DB_BY_SUBJECT)?,
                create(DB_BY_SUBJECT_PREDICATE)?,
                create(DB_SUPERSESSION)?,
                create(DB_REJECTED)?,
                create(DB_META)?,
                create(DB_VOTES)?,
                create(DB_VOTE_TOTALS)?,
                create(DB_TRUST)?,
            ];
            Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(array))
        })
        .map_err(StateError::lmdb("create databases"))?
        .unwrap_commit();
    Ok(Databases {
        assertions,
        by_subject,
        by_subject_predicate,
        supersession,
        rejected,
        meta,
        votes,
        vote_totals,
        trust,
    })
}

/// Migrates a version 1 state: drops the trust factors set outside the journal (the journal
/// cannot reproduce them; an administrator re-issues them as trust changes).
fn migrate_unjournaled_trust(txn: &mut RwTxn<'_>, dbs: &Databases) -> Result<(), StateError> {
    let dropped = dbs.trust.len(txn).map_err(StateError::lmdb("count trust"))?;
    dbs.trust.clear(txn).map_err(StateError::lmdb("clear trust"))?;
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "trust factors set outside the journal were dropped; re-issue them as trust changes"
        );
    }
    dbs.meta
        .put(txn, META_SCHEMA_VERSION, &SCHEMA_VERSION.to_be_bytes())
        .map_err(StateError::lmdb("write meta"))
}
