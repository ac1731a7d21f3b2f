//! Estimation: expectation–maximization over a [`Problem`], and the posterior of one task.

mod tables;

use super::{EmConfig, Model, Params, Problem, Task, View};
use tables::Tables;

/// The distinct classes answered in `answers` (sorted) into `out`.
fn candidates_of(answers: &[(u32, u32)], out: &mut Vec<u32>) {
    out.clear();
    out.extend(answers.iter().map(|(_, class)| *class));
    out.sort_unstable();
    out.dedup();
}

/// One task's posterior over `candidates` (sorted, distinct) into `out`, from the
/// log-probability of each answer under each truth: `log_answer(answer index, truth, full)`,
/// and the log class weight `log_weight(class)` (used in the full form only). The full form
/// applies when every candidate is below `classes_max`.
fn task_posterior(
    candidates: &[u32],
    answers: usize,
    classes_max: u32,
    log_answer: impl Fn(usize, u32, bool) -> f64,
    log_weight: impl Fn(u32) -> f64,
    out: &mut Vec<f64>,
) -> f64 {
    out.clear();
    let full = candidates.iter().all(|c| *c < classes_max);
    for truth in candidates {
        let mut value = if full { log_weight(*truth) } else { 0.0 };
        for a in 0..answers {
            value += log_answer(a, *truth, full);
        }
        out.push(value);
    }
    let top = out.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = out.iter().map(|v| (v - top).exp()).sum();
    for v in out.iter_mut() {
        *v = (*v - top).exp() / total;
    }
    top + total.ln()
}

/// One task's posterior over `candidates` (sorted, distinct classes), given each answer as the
/// answering unit's [`View`] and its class, and the predicate's class weights: what the
/// `learned` lens computes for one (subject, predicate).
pub fn posterior(
    candidates: &[u32],
    answers: &[(View<'_>, u32)],
    class_weights: &[f64],
    classes_max: u32,
) -> Vec<f64> {
    if !candidates.iter().all(|c| *c < classes_max) {
        // The one-coin form, in one pass: every answer is "wrong" for every candidate but its
        // own, so each candidate's score is a common base plus what its own answers add.
        let wrong_ways = (candidates.len().max(2) - 1) as f64;
        let mut logs = vec![0.0; candidates.len()];
        for (view, answer) in answers {
            let accuracy = view.accuracy();
            let wrong = ((1.0 - accuracy) / wrong_ways).ln();
            if let Ok(i) = candidates.binary_search(answer) {
                logs[i] += accuracy.ln() - wrong;
            }
        }
        let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = logs.iter().map(|v| (v - top).exp()).sum();
        return logs.iter().map(|v| (v - top).exp() / total).collect();
    }
    let mut out = Vec::with_capacity(candidates.len());
    let k = candidates.len().max(2) as f64;
    task_posterior(
        candidates,
        answers.len(),
        classes_max,
        |a, truth, full| {
            let (view, answer) = &answers[a];
            if full {
                view.confusion(truth, *answer).ln()
            } else {
                let accuracy = view.accuracy();
                if truth == *answer {
                    accuracy.ln()
                } else {
                    ((1.0 - accuracy) / (k - 1.0)).ln()
                }
            }
        },
        |class| log_weight(class_weights, class),
        &mut out,
    );
    out
}

/// The objective EM climbs: the log-likelihood of the answers under `model`, plus the log
/// density of its priors (up to a constant). Of two estimates, the greater is the better fit.
pub fn objective(problem: &Problem, model: &Model, config: &EmConfig) -> f64 {
    objective_by_predicate(problem, model, config).iter().sum()
}

/// [`objective`], per predicate: predicates share no unit and no task, so each has its own.
pub fn objective_by_predicate(problem: &Problem, model: &Model, config: &EmConfig) -> Vec<f64> {
    let tables = Tables::of(problem, model, config);
    let mut total = vec![0.0; problem.classes.len()];
    let (mut candidates, mut scratch) = (Vec::new(), Vec::new());
    for task in &problem.tasks {
        truths_of(problem, task, config.classes_max, &mut candidates);
        total[task.predicate as usize] += expect(
            problem,
            &tables,
            task,
            &candidates,
            config.classes_max,
            &mut scratch,
        );
    }
    for (index, unit) in problem.units.iter().enumerate().take(tables.log_pi.len()) {
        let (k, table) = tables.log_pi(index);
        let k_f = f64::from(k.max(2));
        let chance = 1.0 / k_f;
        let mean = chance + unit.skill.clamp(0.0, 0.999) * (1.0 - chance);
        for truth in 0..k {
            for answer in 0..k {
                let prior = if truth == answer {
                    mean
                } else {
                    (1.0 - mean) / (k_f - 1.0)
                };
                total[unit.predicate as usize] +=
                    unit.strength * prior * table[(truth * k + answer) as usize];
            }
        }
    }
    for (total, weights) in total.iter_mut().zip(&tables.log_weight) {
        *total += weights.iter().sum::<f64>();
    }
    total
}

/// The log of a class's weight among a predicate's `weights`, smoothed (add one).
pub fn log_class_weight(weights: &[f64], class: u32) -> f64 {
    log_weight(weights, class)
}

fn log_weight(weights: &[f64], class: u32) -> f64 {
    let total: f64 = weights.iter().sum();
    let weight = weights.get(class as usize).copied().unwrap_or(0.0);
    ((weight + 1.0) / (total + weights.len().max(1) as f64)).ln()
}

/// The truths a task's posterior ranges over, into `out`: in the full form (every answer
/// below `classes_max`), every modelled class of its predicate, as Dawid–Skene has it, so that
/// an answer nobody opposes yet earns its unit nothing unless the unit was known to be right;
/// in the one-coin form, the values answered.
fn truths_of(problem: &Problem, task: &Task, classes_max: u32, out: &mut Vec<u32>) {
    candidates_of(&problem.answers[task.start as usize..task.end as usize], out);
    if out.iter().all(|c| *c < classes_max) {
        let k = problem.classes[task.predicate as usize].min(classes_max);
        out.clear();
        out.extend(0..k);
    }
}

/// Majority vote over each task's truths ([`truths_of`]): the starting point of a cold EM.
/// With `known`, only the answers of known units count, on tasks that have some.
fn majority_over(problem: &Problem, classes_max: u32, known: Option<&[bool]>) -> Vec<(Vec<u32>, Vec<f64>)> {
    problem
        .tasks
        .iter()
        .map(|task| {
            let mut truths = Vec::new();
            truths_of(problem, task, classes_max, &mut truths);
            let answers = &problem.answers[task.start as usize..task.end as usize];
            let counted: Vec<(u32, u32)> = match known {
                Some(known) if answers.iter().any(|(u, _)| known[*u as usize]) => answers
                    .iter()
                    .filter(|(u, _)| known[*u as usize])
                    .copied()
                    .collect(),
                _ => answers.to_vec(),
            };
            let q = shares(&truths, &counted);
            (truths, q)
        })
        .collect()
}

/// Majority vote: each task's posterior is its answers' shares. Returns, per task, the
/// candidates and posterior.
pub fn majority(problem: &Problem) -> Vec<(Vec<u32>, Vec<f64>)> {
    problem
        .tasks
        .iter()
        .map(|task| {
            let answers = &problem.answers[task.start as usize..task.end as usize];
            let mut candidates = Vec::new();
            candidates_of(answers, &mut candidates);
            let q = shares(&candidates, answers);
            (candidates, q)
        })
        .collect()
}

fn shares(candidates: &[u32], answers: &[(u32, u32)]) -> Vec<f64> {
    let mut q = vec![0.0; candidates.len()];
    for (_, class) in answers {
        if let Ok(i) = candidates.binary_search(class) {
            q[i] += 1.0;
        }
    }
    let total: f64 = q.iter().sum();
    if total > 0.0 {
        q.iter_mut().for_each(|v| *v /= total);
    }
    q
}

/// The M step: expected counts and class weights from the posteriors.
fn maximize(problem: &Problem, posteriors: &[(Vec<u32>, Vec<f64>)], config: &EmConfig) -> Model {
    let k_of = |predicate: u32| problem.classes[predicate as usize].min(config.classes_max);
    // A unit's matrix is made on its first answer to a task of the full form.
    let mut units: Vec<Params> = problem.units.iter().map(|_| Params::empty()).collect();
    let mut class_weights: Vec<Vec<f64>> = (0..problem.classes.len() as u32)
        .map(|p| vec![0.0; k_of(p) as usize])
        .collect();
    for (task, (candidates, q)) in problem.tasks.iter().zip(posteriors) {
        let full = candidates.iter().all(|c| *c < config.classes_max);
        let answers = &problem.answers[task.start as usize..task.end as usize];
        if full {
            let weights = &mut class_weights[task.predicate as usize];
            for (truth, p) in candidates.iter().zip(q) {
                weights[*truth as usize] += p;
            }
        }
        for (unit, answer) in answers {
            let params = &mut units[*unit as usize];
            if full {
                if params.counts.is_empty() {
                    let k = k_of(task.predicate);
                    params.k = k;
                    params.counts = vec![0.0; (k * k) as usize];
                }
                for (truth, p) in candidates.iter().zip(q) {
                    params.counts[(truth * params.k + answer) as usize] += p;
                }
            } else {
                params.open_seen += 1.0;
                if let Ok(i) = candidates.binary_search(answer) {
                    params.open_right += q[i];
                }
            }
        }
    }
    Model {
        units,
        class_weights,
        rounds: 0,
    }
}

/// The E step of one task into `out`.
fn expect(
    problem: &Problem,
    tables: &Tables,
    task: &Task,
    candidates: &[u32],
    classes_max: u32,
    out: &mut Vec<f64>,
) -> f64 {
    let answers = &problem.answers[task.start as usize..task.end as usize];
    let others = (candidates.len().max(2) - 1) as f64;
    let weights = &tables.log_weight[task.predicate as usize];
    task_posterior(
        candidates,
        answers.len(),
        classes_max,
        |a, truth, full| {
            let (unit, answer) = answers[a];
            if full {
                let (k, table) = tables.log_pi(unit as usize);
                table[(truth * k + answer) as usize]
            } else {
                let (right, wrong) = tables.log_accuracy[unit as usize];
                if truth == answer {
                    right
                } else {
                    wrong - others.ln()
                }
            }
        },
        |class| weights.get(class as usize).copied().unwrap_or(0.0),
        out,
    )
}

/// Estimates a model of `problem`, starting from `start` (a model of an earlier problem whose
/// units and predicates keep their indices; newer ones start at their prior) or, without one,
/// from majority vote; see the module docs.
pub fn estimate(problem: &Problem, start: Option<&Model>, config: &EmConfig) -> Model {
    let classes_max = config.classes_max.min(super::CLASSES_MAX);
    let config = EmConfig {
        classes_max,
        ..*config
    };
    let Some(start) = start else {
        return climb(problem, majority_over(problem, classes_max, None), &config);
    };
    // The majority vote of the agents the previous model knew (with answers behind them), on
    // the tasks they answered: a crowd of keys nobody knew that agrees with itself (a thousand
    // fresh keys) does not make the starting point of the estimate.
    let known: Vec<bool> = (0..problem.units.len())
        .map(|u| start.units.get(u).is_some_and(|p| p.answers() >= KNOWN_ANSWERS))
        .collect();
    let cold = climb(
        problem,
        majority_over(problem, classes_max, Some(&known)),
        &config,
    );
    let warm = climb(problem, warm_posteriors(problem, start, &config), &config);
    // EM finds a local optimum: of the one reached from the previous model and the one
    // reached from that majority vote, keep the better fit, predicate by predicate.
    let (warm_fit, cold_fit) = (
        objective_by_predicate(problem, &warm, &config),
        objective_by_predicate(problem, &cold, &config),
    );
    // Relabelling every value (a permutation of the truths) fits the answers exactly as well
    // under priors at chance: a tie, to rounding, goes to the estimate anchored on the
    // majority, never to one that may have drifted to the values' labels swapped.
    let cold_wins = |p: usize| cold_fit[p] >= warm_fit[p] - 1e-9 * warm_fit[p].abs().max(1.0);
    let mut out = warm;
    for (unit, (mine, theirs)) in problem.units.iter().zip(out.units.iter_mut().zip(cold.units)) {
        if cold_wins(unit.predicate as usize) {
            *mine = theirs;
        }
    }
    for (p, (mine, theirs)) in out.class_weights.iter_mut().zip(cold.class_weights).enumerate() {
        if cold_wins(p) {
            *mine = theirs;
        }
    }
    out.rounds = out.rounds.max(cold.rounds);
    out
}

/// Answers behind a unit the previous model knew.
const KNOWN_ANSWERS: f64 = 5.0;

/// Posteriors = each task's truths and their probabilities.
type Posteriors = Vec<(Vec<u32>, Vec<f64>)>;

/// Each task's posterior under `start`, its units and class weights carried over. In a
/// predicate the start knows nothing of (no task's answers move its posterior), tasks keep
/// their majority vote.
fn warm_posteriors(problem: &Problem, start: &Model, config: &EmConfig) -> Posteriors {
    let classes_max = config.classes_max;
    let mut posteriors = majority_over(problem, classes_max, None);
    let mut informed = vec![false; problem.classes.len()];
    {
        let mut warm = maximize(problem, &posteriors, config);
        for (params, old) in warm.units.iter_mut().zip(&start.units) {
            *params = old.clone();
        }
        for unit in warm.units.iter_mut().skip(start.units.len()) {
            *unit = Params::empty();
        }
        for (weights, old) in warm.class_weights.iter_mut().zip(&start.class_weights) {
            for (w, o) in weights.iter_mut().zip(old) {
                *w = *o;
            }
        }
        let tables = Tables::of(problem, &warm, config);
        // What the answers alone say under the start, without the class weights.
        warm.class_weights.iter_mut().for_each(Vec::clear);
        let bare = Tables::of(problem, &warm, config);
        let mut scratch = Vec::new();
        for (task, (truths, _)) in problem.tasks.iter().zip(&posteriors) {
            expect(problem, &bare, task, truths, classes_max, &mut scratch);
            let spread = scratch.iter().copied().fold(0.0f64, f64::max)
                - scratch.iter().copied().fold(1.0f64, f64::min);
            if spread >= UNINFORMED_SPREAD {
                informed[task.predicate as usize] = true;
            }
        }
        // In a predicate the start knows, every task starts from the start's posterior: one
        // answered only by agents it does not know starts at the class weights, and earns them
        // nothing. In one it knows nothing of, majority vote, so that EM there starts where a
        // cold start would and cannot settle on the values' labels swapped.
        for (task, (truths, q)) in problem.tasks.iter().zip(posteriors.iter_mut()) {
            if informed[task.predicate as usize] {
                expect(problem, &tables, task, truths, classes_max, q);
            }
        }
    }
    posteriors
}

/// A predicate none of whose tasks' answers move their posterior under the start by this much
/// is one the start knows nothing of.
const UNINFORMED_SPREAD: f64 = 0.05;

/// EM from `posteriors`.
fn climb(problem: &Problem, mut posteriors: Vec<(Vec<u32>, Vec<f64>)>, config: &EmConfig) -> Model {
    let classes_max = config.classes_max;
    let mut rounds = 0;
    let mut model = maximize(problem, &posteriors, config);
    let mut scratch = Vec::new();
    while rounds < config.rounds_max {
        rounds += 1;
        let tables = Tables::of(problem, &model, config);
        let mut moved = 0.0f64;
        for (task, (candidates, q)) in problem.tasks.iter().zip(posteriors.iter_mut()) {
            expect(problem, &tables, task, candidates, classes_max, &mut scratch);
            for (old, new) in q.iter_mut().zip(&scratch) {
                moved = moved.max((new - *old).abs());
                *old = *new;
            }
        }
        model = maximize(problem, &posteriors, config);
        if moved <= config.tolerance {
            break;
        }
    }
    model.rounds = rounds;
    model
}
