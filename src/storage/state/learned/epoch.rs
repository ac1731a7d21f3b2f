//! Re-estimation: EM over every answer the model holds, at a point of the log that the answer
//! count alone decides; see the parent module.

use std::collections::HashMap;

use heed::RwTxn;

use super::apply::{TASK_CANDIDATES_MAX, log_answer, normalize, prior_of, put};
use super::codec::{TaskState, Weights, decode_answer, encode_params, encode_task, encode_weights};
use super::{LearnedMeta, LearnedSettings, PredicateDigest, key, tag, unit_as_of, weights_as_of};
use crate::protocol::AgentId;
use crate::storage::state::layout::PairId;
use crate::storage::state::{Databases, StateError};
use crate::truth::{Params, Problem, Task, Unit, View, estimate};

/// Re-estimation over every answer, from the model as it stands, written at `offset`.
pub(super) fn epoch(txn: &mut RwTxn<'_>, dbs: &Databases, settings: &LearnedSettings, meta: &mut LearnedMeta, offset: u64) -> Result<(), StateError> {
    let end = offset + 1;
    let mut predicates: Vec<PredicateDigest> = Vec::new();
    let mut predicate_index: HashMap<PredicateDigest, u32> = HashMap::new();
    let mut units: Vec<(AgentId, PredicateDigest)> = Vec::new();
    let mut unit_index: HashMap<(AgentId, u32), u32> = HashMap::new();
    let mut priors: HashMap<AgentId, Option<Unit>> = HashMap::new();
    let mut problem = Problem::default();
    let mut pairs: Vec<PairId> = Vec::new();
    {
        let mut current: Option<[u8; 64]> = None;
        let mut rows: Vec<(u32, u32)> = Vec::new();
        let close = |problem: &mut Problem, rows: &mut Vec<(u32, u32)>, predicate: u32| {
            rows.sort_unstable();
            rows.dedup();
            let mut classes: Vec<u32> = rows.iter().map(|(_, c)| *c).collect();
            classes.sort_unstable();
            classes.dedup();
            if classes.len() > TASK_CANDIDATES_MAX {
                // Too many values to weigh each against each: left out, and its state kept.
                rows.clear();
            }
            let start = problem.answers.len() as u32;
            problem.answers.append(rows);
            problem.tasks.push(Task {
                predicate,
                start,
                end: problem.answers.len() as u32,
            });
        };
        let mut current_predicate = 0u32;
        for entry in dbs
            .learned
            .prefix_iter(txn, &[tag::ANSWER])
            .map_err(StateError::lmdb("scan learned answers"))?
        {
            let (k, v) = entry.map_err(StateError::lmdb("scan learned answers"))?;
            if k.len() != 1 + 64 + 32 + 32 {
                return Err(StateError::corrupt("learned answer key", "malformed"));
            }
            let mut pair = [0u8; 64];
            pair.copy_from_slice(&k[1..65]);
            let mut agent = [0u8; 32];
            agent.copy_from_slice(&k[97..129]);
            let agent = AgentId::from_stored_bytes(agent);
            let (_, class) = decode_answer(v)?;
            if current != Some(pair) {
                if current.is_some() {
                    close(&mut problem, &mut rows, current_predicate);
                }
                current = Some(pair);
                pairs.push(PairId::from_stored_bytes(pair));
                let mut predicate = [0u8; 32];
                predicate.copy_from_slice(&pair[32..]);
                let next = predicates.len() as u32;
                current_predicate = *predicate_index.entry(predicate).or_insert_with(|| {
                    predicates.push(predicate);
                    next
                });
            }
            let prior = match priors.get(&agent) {
                Some(prior) => *prior,
                None => {
                    let prior = prior_of(txn, dbs, settings, &agent, end)?;
                    priors.insert(agent, prior);
                    prior
                }
            };
            let Some(mut prior) = prior else { continue };
            prior.predicate = current_predicate;
            let next = units.len() as u32;
            let unit = *unit_index.entry((agent, current_predicate)).or_insert_with(|| {
                units.push((agent, predicates[current_predicate as usize]));
                problem.units.push(prior);
                next
            });
            rows.push((unit, class));
        }
        if current.is_some() {
            close(&mut problem, &mut rows, current_predicate);
        }
    }
    let mut start = crate::truth::Model::default();
    let mut weights_now = Vec::with_capacity(predicates.len());
    for predicate in &predicates {
        let weights = weights_as_of(txn, dbs, predicate, u64::MAX)?.unwrap_or_default();
        problem.classes.push(weights.classes);
        start.class_weights.push(weights.weights.clone());
        weights_now.push(weights);
    }
    for (agent, predicate) in &units {
        start
            .units
            .push(unit_as_of(txn, dbs, agent, predicate, u64::MAX)?.unwrap_or_else(Params::empty));
    }
    let model = estimate(&problem, Some(&start), &settings.em());
    let at = offset.to_be_bytes();
    for (i, (agent, predicate)) in units.iter().enumerate() {
        if model.units[i] != start.units[i] {
            put(txn, dbs, &key(tag::UNIT, &[agent.as_bytes(), predicate, &at]), &encode_params(&model.units[i]))?;
        }
    }
    for (p, predicate) in predicates.iter().enumerate() {
        let weights = Weights {
            classes: weights_now[p].classes,
            weights: model.class_weights[p].clone(),
        };
        put(txn, dbs, &key(tag::WEIGHTS, &[predicate, &at]), &encode_weights(&weights))?;
        weights_now[p] = weights;
    }
    for (task, pair) in problem.tasks.iter().zip(&pairs) {
        if task.start == task.end {
            continue;
        }
        let answers = &problem.answers[task.start as usize..task.end as usize];
        let mut candidates: Vec<u32> = answers.iter().map(|(_, c)| *c).collect();
        candidates.sort_unstable();
        candidates.dedup();
        let full = candidates.iter().all(|c| *c < settings.classes_max);
        let weights = &weights_now[task.predicate as usize];
        if full {
            candidates = (0..weights.classes.min(settings.classes_max)).collect();
        }
        let mut state = TaskState {
            candidates: candidates.iter().map(|c| (*c, 0.0, 0.0)).collect(),
        };
        for (unit, given) in answers {
            let view = View {
                unit: &problem.units[*unit as usize],
                params: &model.units[*unit as usize],
                classes: weights.classes,
                classes_max: settings.classes_max,
            };
            for (truth, log, _) in &mut state.candidates {
                *log += log_answer(&view, *truth, *given, full, candidates.len());
            }
        }
        normalize(&mut state, weights, settings.classes_max);
        put(txn, dbs, &key(tag::TASK, &[pair.as_bytes()]), &encode_task(&state))?;
    }
    meta.epochs += 1;
    let growth = ((meta.answers as f64) * settings.epoch_growth).ceil() as u64;
    meta.next_epoch = meta.answers + growth.max(settings.epoch_answers_min);
    Ok(())
}
