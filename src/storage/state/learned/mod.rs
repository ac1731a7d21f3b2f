//! The learned trust model in the state (issue 26): what [`crate::lens::learned`] estimates,
//! kept up to date by the ingest and read by the `learned` lens.
//!
//! # What is kept
//! One database, `learned`, with a tag byte before every key:
//! - `a` pair ‖ assertion ‖ agent → offset ‖ class: every *answer*, an agent's live vote on an
//!   assertion or its signature on it, from the record that first gave it;
//! - `l` assertion → predicate digest ‖ class: each stored assertion's class, the number of
//!   its object value among the predicate's values in order of first appearance;
//! - `c` predicate digest ‖ object digest → class; `c` predicate digest → values seen;
//! - `u` agent ‖ predicate digest ‖ offset → the unit's learned counts from that offset on;
//! - `w` predicate digest ‖ offset → classes seen (up to `classes_max`) ‖ class weights from
//!   that offset on;
//! - `t` pair → the task's running log-scores and posterior (what the next answer is weighed
//!   against);
//! - `m` → cursor ‖ answers ‖ next re-estimation; `s` → the settings it was built with.
//!
//! # How it moves
//! Every answer updates, in log order, its unit's counts by the task's posterior with it (one
//! step of online EM: `O(classes²)`, a few reads and three writes). When the number of
//! answers reaches the next re-estimation point (`epoch_answers_min` answers, and at least
//! `epoch_growth` more than the last time), EM runs over every answer
//! ([`crate::truth::estimate`]), from the model as it stands, and writes every unit
//! and task it changed, at that record's offset. Both steps depend on the log alone, in its
//! order, never on how it was batched: two nodes fed the same log have the same rows, and the
//! rows keyed by offset give the model as of any point ([`Snapshot::learned_unit`]).
//!
//! # Trust changes
//! An administrator's journaled trust factor is a *prior*, not an override, except at 0: a
//! factor `f > 0` sets the agent's prior skill to `f / (1 + f)` with the weight of
//! `admin_strength` answers, which its record then confirms or wears down; a factor of 0
//! removes the agent's answers from the model and the lens (a ban must hold whatever the
//! banned agent agrees with). Why a prior: an administrator knows a few agents, the log knows
//! all of them, and an agent whose answers contradict the evidence should lose weight even if
//! someone once vouched for it.

mod apply;
mod codec;
mod epoch;

use heed::RoTxn;
use smallvec::SmallVec;

pub(crate) use apply::{Answered, extend};
pub use codec::Weights;
use codec::{decode_meta, decode_params, decode_weights};

use super::layout::PairId;
use super::{Databases, Snapshot, State, StateError};
use crate::truth::{EmConfig, Params};
use crate::protocol::{AgentId, Hash};

/// How the learned model is kept: `[learned]` in the configuration. Every replica of a log
/// must use the same settings; the state records them and refuses others.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnedSettings {
    /// Classes of a predicate that get a confusion matrix (at most 64).
    pub classes_max: u32,
    /// Prior skill of an agent no administrator rated, in [0, 1): 0 is chance.
    pub skill_new: f64,
    /// Weight of that prior, in answers per row.
    pub strength: f64,
    /// Weight of an administrator's trust factor as a prior, in answers per row.
    pub admin_strength: f64,
    /// Answers before the first re-estimation, and the least between two.
    pub epoch_answers_min: u64,
    /// Growth in answers between two re-estimations, as a fraction of the answers.
    pub epoch_growth: f64,
    /// Most EM rounds of one re-estimation.
    pub rounds_max: u32,
}

impl Default for LearnedSettings {
    fn default() -> Self {
        Self {
            classes_max: 8,
            skill_new: 0.0,
            strength: 0.5,
            admin_strength: 10.0,
            epoch_answers_min: 256,
            epoch_growth: 0.25,
            rounds_max: 50,
        }
    }
}

impl LearnedSettings {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=crate::truth::CLASSES_MAX).contains(&self.classes_max) {
            return Err("learned.classes_max must lie in 2..=64".into());
        }
        if !(0.0..1.0).contains(&self.skill_new) {
            return Err("learned.skill_new must lie in [0, 1)".into());
        }
        for (name, v) in [("strength", self.strength), ("admin_strength", self.admin_strength)] {
            if !(v.is_finite() && v > 0.0 && v <= 1e6) {
                return Err(format!("learned.{name} must lie in (0, 1e6]"));
            }
        }
        if self.epoch_answers_min == 0 {
            return Err("learned.epoch_answers_min must be at least 1".into());
        }
        if !(self.epoch_growth.is_finite() && (0.0..=10.0).contains(&self.epoch_growth)) {
            return Err("learned.epoch_growth must lie in [0, 10]".into());
        }
        if !(1..=1000).contains(&self.rounds_max) {
            return Err("learned.rounds_max must lie in 1..=1000".into());
        }
        Ok(())
    }

    /// The EM configuration these settings give.
    pub fn em(&self) -> EmConfig {
        EmConfig {
            classes_max: self.classes_max,
            rounds_max: self.rounds_max as usize,
            tolerance: 1e-6,
        }
    }

    /// The prior of an agent with journaled trust `factor` (if any): skill and strength.
    /// `None` for a banned agent (factor 0).
    pub fn prior(&self, factor: Option<f32>) -> Option<(f64, f64)> {
        match factor {
            None => Some((self.skill_new, self.strength)),
            Some(f) if f <= 0.0 => None,
            Some(f) => {
                let f = f64::from(f);
                Some((f / (1.0 + f), self.admin_strength))
            }
        }
    }
}

/// Key tags of the `learned` database.
pub(super) mod tag {
    pub const ANSWER: u8 = b'a';
    pub const LABEL: u8 = b'l';
    pub const CLASS: u8 = b'c';
    pub const UNIT: u8 = b'u';
    pub const WEIGHTS: u8 = b'w';
    pub const TASK: u8 = b't';
    pub const META: u8 = b'm';
    pub const SETTINGS: u8 = b's';
}

/// Digest of a predicate, as the second half of a [`PairId`].
pub(crate) type PredicateDigest = [u8; 32];

pub(crate) fn predicate_of(pair: &PairId) -> PredicateDigest {
    let mut out = [0u8; 32];
    out.copy_from_slice(&pair.as_bytes()[32..]);
    out
}

/// Bytes of a model key held without allocating: the longest fixed-size key (an answer's: tag,
/// pair, assertion, agent) is 129 bytes; only a value's key with a long object allocates.
const KEY_INLINE_BYTES: usize = 136;

/// A key of the `learned` database: its tag, then `parts` in order.
type Key = SmallVec<[u8; KEY_INLINE_BYTES]>;

fn key(tag: u8, parts: &[&[u8]]) -> Key {
    let mut out = Key::new();
    out.push(tag);
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// The value of the last key under `prefix` (an offset follows it) whose offset lies below `end`.
fn last_below(txn: &RoTxn<'_>, dbs: &Databases, prefix: &[u8], end: u64) -> Result<Option<Vec<u8>>, StateError> {
    if end == 0 {
        return Ok(None);
    }
    let lower = Key::from_slice(prefix);
    let mut upper = Key::from_slice(prefix);
    upper.extend_from_slice(&(end - 1).to_be_bytes());
    let range = (std::ops::Bound::Included(&lower[..]), std::ops::Bound::Included(&upper[..]));
    let found = dbs
        .learned
        .rev_range(txn, &range)
        .map_err(StateError::lmdb("read learned model"))?
        .next()
        .transpose()
        .map_err(StateError::lmdb("read learned model"))?;
    Ok(found.map(|(_, value)| value.to_vec()))
}

pub(super) fn unit_as_of(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    agent: &AgentId,
    predicate: &PredicateDigest,
    end: u64,
) -> Result<Option<Params>, StateError> {
    last_below(txn, dbs, &key(tag::UNIT, &[agent.as_bytes(), predicate]), end)?
        .map(|v| decode_params(&v))
        .transpose()
}

pub(super) fn weights_as_of(
    txn: &RoTxn<'_>,
    dbs: &Databases,
    predicate: &PredicateDigest,
    end: u64,
) -> Result<Option<Weights>, StateError> {
    last_below(txn, dbs, &key(tag::WEIGHTS, &[predicate]), end)?
        .map(|v| decode_weights(&v))
        .transpose()
}

pub(super) fn label(txn: &RoTxn<'_>, dbs: &Databases, assertion: &Hash) -> Result<Option<(PredicateDigest, u32)>, StateError> {
    let Some(value) = dbs
        .learned
        .get(txn, &key(tag::LABEL, &[assertion.as_bytes()]))
        .map_err(StateError::lmdb("read learned label"))?
    else {
        return Ok(None);
    };
    codec::decode_label(value).map(Some)
}

/// Where the model stands: the log position it covers, answers, next re-estimation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LearnedMeta {
    /// Records below it are in the model.
    pub cursor: u64,
    /// Answers counted.
    pub answers: u64,
    /// The answer count at which EM runs next.
    pub next_epoch: u64,
    /// Re-estimations run.
    pub epochs: u64,
}

/// (answers, re-estimations) of the model as it stands.
pub(crate) fn answers_and_epochs(txn: &RoTxn<'_>, dbs: &Databases) -> Result<(u64, u64), StateError> {
    let meta = meta(txn, dbs)?;
    Ok((meta.answers, meta.epochs))
}

pub(super) fn meta(txn: &RoTxn<'_>, dbs: &Databases) -> Result<LearnedMeta, StateError> {
    Ok(dbs
        .learned
        .get(txn, &[tag::META])
        .map_err(StateError::lmdb("read learned meta"))?
        .map(decode_meta)
        .transpose()?
        .unwrap_or_default())
}

impl State {
    /// Keeps the learned model with `settings` (or stops keeping it, with `None`): what
    /// `[learned]` configures. A model kept before under other settings is refused
    /// ([`StateError::Config`]); the settings are recorded with the model's first batch.
    pub fn set_learned(&self, settings: Option<LearnedSettings>) -> Result<(), StateError> {
        if let Some(settings) = &settings {
            settings.validate().map_err(StateError::Config)?;
            let stored = self.read(|txn, dbs| {
                dbs.learned
                    .get(txn, &[tag::SETTINGS])
                    .map_err(StateError::lmdb("read learned settings"))
                    .map(|v| v.map(<[u8]>::to_vec))
            })?;
            let encoded = codec::encode_settings(settings);
            match stored {
                Some(stored) if stored != encoded => {
                    return Err(StateError::Config(
                        "this state's learned model was built under other [learned] settings; \
                         use those, or rebuild the state from the log"
                            .into(),
                    ));
                }
                // Recorded with the model's first batch: a state is a function of its log.
                Some(_) | None => {}
            }
        }
        *self.inner.learned.write() = settings;
        Ok(())
    }

    /// Counts time the model took in a batch (of a write transaction that may still be
    /// retried: the time spent is real either way) and reports `meta` as metrics.
    pub(crate) fn learned_spent(&self, spent: std::time::Duration, meta: Option<LearnedMeta>) {
        use std::sync::atomic::Ordering;
        self.inner.learned_ns.fetch_add(spent.as_nanos() as u64, Ordering::Relaxed);
        metrics::histogram!(crate::telemetry::catalog::LEARNED_BATCH_SECONDS).record(spent);
        if let Some(meta) = meta {
            metrics::gauge!(crate::telemetry::catalog::LEARNED_ANSWERS).set(meta.answers as f64);
            let seen = self.inner.learned_epochs_seen.swap(meta.epochs, Ordering::Relaxed);
            // Re-estimations of earlier runs (first report since the open) are not counted again.
            if meta.epochs > seen && seen != u64::MAX {
                metrics::counter!(crate::telemetry::catalog::LEARNED_EPOCHS).increment(meta.epochs - seen);
            }
        }
    }

    /// Time this process spent keeping the learned model, since the state was opened.
    pub fn learned_time(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.inner.learned_ns.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The settings the learned model is kept with, if it is.
    pub fn learned(&self) -> Option<LearnedSettings> {
        *self.inner.learned.read()
    }

    /// Where the learned model stands.
    pub fn learned_meta(&self) -> Result<LearnedMeta, StateError> {
        self.read(meta)
    }
}

impl Snapshot {
    /// Where the learned model stands in this snapshot.
    pub fn learned_meta(&self) -> Result<LearnedMeta, StateError> {
        self.read(meta)
    }

    /// The settings the learned model in this snapshot was built with, if any.
    pub fn learned_settings(&self) -> Result<Option<LearnedSettings>, StateError> {
        self.read(|txn, dbs| {
            dbs.learned
                .get(txn, &[tag::SETTINGS])
                .map_err(StateError::lmdb("read learned settings"))?
                .map(codec::decode_settings)
                .transpose()
        })
    }

    /// The learned counts of `agent` on `predicate` as of `end` (records below it).
    pub fn learned_unit(&self, agent: &AgentId, predicate: &PredicateDigest, end: u64) -> Result<Option<Params>, StateError> {
        let end = end.min(self.cursor());
        self.read(|txn, dbs| unit_as_of(txn, dbs, agent, predicate, end))
    }

    /// The classes and class weights of `predicate` as of `end`.
    pub fn learned_weights(&self, predicate: &PredicateDigest, end: u64) -> Result<Option<Weights>, StateError> {
        let end = end.min(self.cursor());
        self.read(|txn, dbs| weights_as_of(txn, dbs, predicate, end))
    }

    /// The predicate and class of a stored assertion, if the model has it.
    pub fn learned_label(&self, assertion: &Hash) -> Result<Option<(PredicateDigest, u32)>, StateError> {
        self.read(|txn, dbs| label(txn, dbs, assertion))
    }
}
