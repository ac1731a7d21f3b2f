//! The ingest's side of the learned model: answers applied one by one in log order, and the
//! re-estimations they trigger; see the parent module.

use std::collections::HashMap;

use heed::{RoTxn, RwTxn};

use super::codec::{
    TaskState, Weights, decode_task, encode_answer, encode_label, encode_meta, encode_params,
    encode_task, encode_weights,
};
use super::{LearnedMeta, LearnedSettings, PredicateDigest, key, label, meta, predicate_of, tag, unit_as_of, weights_as_of};
use crate::truth::{Params, Unit, View, log_class_weight};
use crate::protocol::{AgentId, Hash, ObjectValue};
use crate::storage::state::layout::PairId;
use crate::storage::state::{Databases, StateError, asof};

/// What the learned model takes from a batch: one event per stored assertion and per vote
/// that became live, in any order (they are applied in log order).
#[derive(Debug, Clone)]
pub(crate) enum Answered {
    /// An assertion was stored: its object value gets a class; each signer answers it.
    Stored {
        offset: u64,
        hash: Hash,
        pair: PairId,
        object: [u8; 32],
        signers: Vec<AgentId>,
    },
    /// A vote became live: its voter answers the assertion.
    Voted {
        offset: u64,
        assertion: Hash,
        pair: PairId,
        voter: AgentId,
    },
}

impl Answered {
    fn offset(&self) -> u64 {
        match self {
            Self::Stored { offset, .. } | Self::Voted { offset, .. } => *offset,
        }
    }

    /// The digest of an object value, as the model tells values apart.
    pub(crate) fn object_digest(object: &ObjectValue) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"stemedb learned class v1");
        match object {
            ObjectValue::Text(text) => hasher.update(&[0]).update(text.as_bytes()),
            ObjectValue::Integer(v) => hasher.update(&[1]).update(&v.to_be_bytes()),
            ObjectValue::Float(v) => hasher.update(&[2]).update(&v.to_bits().to_be_bytes()),
            ObjectValue::Bool(v) => hasher.update(&[3, u8::from(*v)]),
            ObjectValue::Ref(subject) => hasher.update(&[4]).update(subject.as_bytes()),
        };
        *hasher.finalize().as_bytes()
    }
}

/// What one batch has read of the model and may read again: each predicate's latest class
/// weights (written through; emptied by a re-estimation, which rewrites them all).
#[derive(Default)]
struct Cache {
    weights: HashMap<PredicateDigest, Weights>,
}

impl Cache {
    fn weights(&mut self, txn: &RoTxn<'_>, dbs: &Databases, predicate: &PredicateDigest) -> Result<Weights, StateError> {
        if let Some(weights) = self.weights.get(predicate) {
            return Ok(weights.clone());
        }
        let weights = weights_as_of(txn, dbs, predicate, u64::MAX)?.unwrap_or_default();
        self.weights.insert(*predicate, weights.clone());
        Ok(weights)
    }
}

/// Most values one task's running state follows, and most candidates a task may have to
/// count in a re-estimation: what bounds the cost of one answer and of one task.
pub(crate) const TASK_CANDIDATES_MAX: usize = 64;

pub(super) fn put(txn: &mut RwTxn<'_>, dbs: &Databases, key: &[u8], value: &[u8]) -> Result<(), StateError> {
    dbs.learned
        .put(txn, key, value)
        .map_err(StateError::lmdb("store learned model"))
}

/// Applies a batch's `events` to the model, if it covers the log up to `cursor` (the batch's
/// start), and moves it to `end`. A model behind (kept off for a while) stays behind.
pub(crate) fn extend(
    txn: &mut RwTxn<'_>,
    dbs: &Databases,
    settings: &LearnedSettings,
    mut events: Vec<Answered>,
    cursor: u64,
    end: u64,
) -> Result<Option<LearnedMeta>, StateError> {
    let mut meta = meta(txn, dbs)?;
    if meta.cursor != cursor {
        return Ok(None);
    }
    if meta.next_epoch == 0 {
        meta.next_epoch = settings.epoch_answers_min;
        put(txn, dbs, &[tag::SETTINGS], &super::codec::encode_settings(settings))?;
    }
    events.sort_by_key(Answered::offset);
    let mut cache = Cache::default();
    for event in events {
        match event {
            Answered::Stored {
                offset,
                hash,
                pair,
                object,
                mut signers,
            } => {
                let class = classify(txn, dbs, settings, &mut cache, &pair, &object, &hash, offset)?;
                signers.sort_unstable();
                signers.dedup();
                for agent in signers {
                    answer(txn, dbs, settings, &mut cache, &mut meta, &pair, &hash, &agent, class, offset)?;
                }
            }
            Answered::Voted {
                offset,
                assertion,
                pair,
                voter,
            } => {
                let (_, class) = label(txn, dbs, &assertion)?
                    .ok_or_else(|| StateError::corrupt("learned label", format!("none for {assertion}")))?;
                answer(txn, dbs, settings, &mut cache, &mut meta, &pair, &assertion, &voter, class, offset)?;
            }
        }
    }
    meta.cursor = end;
    put(txn, dbs, &[tag::META], &encode_meta(&meta))?;
    Ok(Some(meta))
}

/// The class of a stored assertion's object value: its predicate's, or a new one.
#[allow(clippy::too_many_arguments, reason = "one step of the ingest's loop, with its context")]
fn classify(
    txn: &mut RwTxn<'_>,
    dbs: &Databases,
    settings: &LearnedSettings,
    cache: &mut Cache,
    pair: &PairId,
    object: &[u8; 32],
    hash: &Hash,
    offset: u64,
) -> Result<u32, StateError> {
    let predicate = predicate_of(pair);
    let class_key = key(tag::CLASS, &[&predicate, object]);
    let known = dbs
        .learned
        .get(txn, &class_key)
        .map_err(StateError::lmdb("read learned class"))?
        .map(|v| {
            <[u8; 4]>::try_from(v)
                .map(u32::from_be_bytes)
                .map_err(|_| StateError::corrupt("learned class", "not 4 bytes"))
        })
        .transpose()?;
    let class = match known {
        Some(class) => class,
        None => {
            // The predicate's count of values; the weights' `classes` counts only up to
            // `classes_max` (every use takes the lesser of the two), so a predicate with
            // open-ended values writes no new weights version per value.
            let count_key = key(tag::CLASS, &[&predicate]);
            let class = dbs
                .learned
                .get(txn, &count_key)
                .map_err(StateError::lmdb("read learned class count"))?
                .map(|v| {
                    <[u8; 4]>::try_from(v)
                        .map(u32::from_be_bytes)
                        .map_err(|_| StateError::corrupt("learned class count", "not 4 bytes"))
                })
                .transpose()?
                .unwrap_or(0);
            put(txn, dbs, &count_key, &(class + 1).to_be_bytes())?;
            put(txn, dbs, &class_key, &class.to_be_bytes())?;
            if class < settings.classes_max {
                let mut weights = cache.weights(txn, dbs, &predicate)?;
                weights.classes = class + 1;
                weights.weights.resize(weights.classes as usize, 0.0);
                put(txn, dbs, &key(tag::WEIGHTS, &[&predicate, &offset.to_be_bytes()]), &encode_weights(&weights))?;
                cache.weights.insert(predicate, weights);
            }
            class
        }
    };
    put(txn, dbs, &key(tag::LABEL, &[hash.as_bytes()]), &encode_label(&predicate, class))?;
    Ok(class)
}

/// An agent's prior as of `end`, or `None` if it is banned.
pub(super) fn prior_of(txn: &RoTxn<'_>, dbs: &Databases, settings: &LearnedSettings, agent: &AgentId, end: u64) -> Result<Option<Unit>, StateError> {
    let factor = asof::trust_as_of(txn, dbs, agent, end)?.map(|t| t.change.factor);
    Ok(settings.prior(factor).map(|(skill, strength)| Unit {
        predicate: 0,
        skill,
        strength,
    }))
}

/// The log-probability of an answer `given` under `truth`, in the full form or the one-coin
/// form of `candidates` candidates.
pub(super) fn log_answer(view: &View<'_>, truth: u32, given: u32, full: bool, candidates: usize) -> f64 {
    if full {
        view.confusion(truth, given).ln()
    } else {
        let accuracy = view.accuracy();
        if truth == given {
            accuracy.ln()
        } else {
            ((1.0 - accuracy) / (candidates.max(2) - 1) as f64).ln()
        }
    }
}

/// Normalizes a task's posteriors from its log-scores and the class weights.
pub(super) fn normalize(task: &mut TaskState, weights: &Weights, classes_max: u32) {
    let full = task.candidates.iter().all(|(c, ..)| *c < classes_max);
    let logs: Vec<f64> = task
        .candidates
        .iter()
        .map(|(c, log, _)| log + if full { log_class_weight(&weights.weights, *c) } else { 0.0 })
        .collect();
    let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = logs.iter().map(|v| (v - top).exp()).sum();
    for ((_, _, q), log) in task.candidates.iter_mut().zip(logs) {
        *q = (log - top).exp() / total;
    }
}

/// Records one answer and, if it is new, takes one online EM step for it; runs a
/// re-estimation when the answers reach the next point.
#[allow(clippy::too_many_arguments, reason = "one step of the ingest's loop, with its context")]
fn answer(
    txn: &mut RwTxn<'_>,
    dbs: &Databases,
    settings: &LearnedSettings,
    cache: &mut Cache,
    meta: &mut LearnedMeta,
    pair: &PairId,
    assertion: &Hash,
    agent: &AgentId,
    class: u32,
    offset: u64,
) -> Result<(), StateError> {
    let answer_key = key(tag::ANSWER, &[pair.as_bytes(), assertion.as_bytes(), agent.as_bytes()]);
    if dbs
        .learned
        .get(txn, &answer_key)
        .map_err(StateError::lmdb("read learned answer"))?
        .is_some()
    {
        return Ok(());
    }
    put(txn, dbs, &answer_key, &encode_answer(offset, class))?;
    meta.answers += 1;
    if let Some(unit) = prior_of(txn, dbs, settings, agent, offset)? {
        step(txn, dbs, settings, cache, pair, agent, &unit, class, offset)?;
    }
    if meta.answers >= meta.next_epoch {
        super::epoch::epoch(txn, dbs, settings, meta, offset)?;
        cache.weights.clear();
    }
    Ok(())
}

/// One online EM step: the task's posterior with the new answer, then the unit's counts and
/// the class weights moved by it.
#[allow(clippy::too_many_arguments, reason = "one step of the ingest's loop, with its context")]
fn step(
    txn: &mut RwTxn<'_>,
    dbs: &Databases,
    settings: &LearnedSettings,
    cache: &mut Cache,
    pair: &PairId,
    agent: &AgentId,
    unit: &Unit,
    class: u32,
    offset: u64,
) -> Result<(), StateError> {
    let predicate = predicate_of(pair);
    let mut weights = cache.weights(txn, dbs, &predicate)?;
    let task_key = key(tag::TASK, &[pair.as_bytes()]);
    let old = dbs
        .learned
        .get(txn, &task_key)
        .map_err(StateError::lmdb("read learned task"))?
        .map(decode_task)
        .transpose()?
        .unwrap_or_default();
    let mut params = unit_as_of(txn, dbs, agent, &predicate, u64::MAX)?.unwrap_or_else(Params::empty);
    let mut task = old.clone();
    // The truths the posterior ranges over: every modelled class of the predicate in the full
    // form (an answer nobody opposed yet earns a new unit nothing), the values answered in
    // the one-coin form.
    let full = class < settings.classes_max && task.candidates.iter().all(|(c, ..)| *c < settings.classes_max);
    let wanted: Vec<u32> = if full {
        (0..weights.classes.min(settings.classes_max)).collect()
    } else {
        vec![class]
    };
    for truth in wanted {
        if task.candidates.iter().any(|(c, ..)| *c == truth) {
            continue;
        }
        if task.candidates.len() >= TASK_CANDIDATES_MAX {
            // Past the values a task's state follows: counted at the next re-estimation.
            return Ok(());
        }
        // A truth not followed before: as likely as the least likely one so far (the answers
        // before are not read again; the next re-estimation weighs them exactly).
        let floor = task.candidates.iter().map(|(_, log, _)| *log).fold(f64::INFINITY, f64::min);
        let at = task.candidates.partition_point(|(c, ..)| *c < truth);
        task.candidates.insert(at, (truth, if floor.is_finite() { floor } else { 0.0 }, 0.0));
    }
    let full = task.candidates.iter().all(|(c, ..)| *c < settings.classes_max);
    let n = task.candidates.len();
    let view = View {
        unit,
        params: &params,
        classes: weights.classes,
        classes_max: settings.classes_max,
    };
    for (truth, log, _) in &mut task.candidates {
        *log += log_answer(&view, *truth, class, full, n);
    }
    normalize(&mut task, &weights, settings.classes_max);
    let k = weights.classes.min(settings.classes_max);
    let full = task.candidates.iter().all(|(c, ..)| *c < settings.classes_max);
    if full {
        grow(&mut params, k);
        for (truth, _, q) in &task.candidates {
            params.counts[(truth * k + class) as usize] += q;
            let before = old.candidates.iter().find(|(c, ..)| c == truth).map_or(0.0, |(_, _, q)| *q);
            weights.weights[*truth as usize] += q - before;
        }
    } else {
        params.open_seen += 1.0;
        params.open_right += task.candidates.iter().find(|(c, ..)| *c == class).map_or(0.0, |(_, _, q)| *q);
    }
    let at = offset.to_be_bytes();
    put(txn, dbs, &key(tag::UNIT, &[agent.as_bytes(), &predicate, &at]), &encode_params(&params))?;
    if full {
        // The one-coin form leaves the class weights as they are: no new version.
        put(txn, dbs, &key(tag::WEIGHTS, &[&predicate, &at]), &encode_weights(&weights))?;
        cache.weights.insert(predicate, weights);
    }
    put(txn, dbs, &task_key, &encode_task(&task))
}

/// Widens `params` to `k` classes, keeping its counts.
fn grow(params: &mut Params, k: u32) {
    if params.k >= k {
        return;
    }
    let mut counts = vec![0.0; (k * k) as usize];
    for truth in 0..params.k {
        for given in 0..params.k {
            counts[(truth * k + given) as usize] = params.counts[(truth * params.k + given) as usize];
        }
    }
    params.k = k;
    params.counts = counts;
}
