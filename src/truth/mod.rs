//! Truth inference: each source's reliability estimated from its agreement with the other
//! evidence, as a pure, deterministic function of the answers. What the learned trust model
//! (`storage::state::learned`) keeps and the `learned` lens resolves with.
//!
//! # The model
//! Dawid–Skene: every *unit* (an agent on one predicate) has a confusion matrix `π[c][l]`, the
//! probability that it answers `l` when the truth is `c`, over the predicate's *classes* (its
//! distinct object values, numbered in the order they first appear in the log); every
//! predicate has class weights `ρ[c]`. A task (a subject and predicate) with answers `l_u`
//! has the posterior `q(c) ∝ ρ[c] Π_u π_u[c][l_u]`. Estimation lets it range over every
//! modelled class of the predicate, as Dawid–Skene does, so that a value nobody opposes yet
//! earns its unit nothing unless the unit was known to be right; the `learned` lens ranks the
//! candidates (the values someone answered: a winner is always an assertion someone made) by
//! the same posterior, renormalized over them.
//!
//! Only the first [`EmConfig::classes_max`] classes of a predicate get matrices. A task with a
//! candidate past them (a predicate with open-ended values) uses the one-coin form of the same
//! unit: accuracy `a_u`, the rest spread evenly over the task's other candidates.
//!
//! # Priors
//! Each row of a matrix is smoothed by a Dirichlet prior of [`Unit::strength`] answers whose
//! mean is accuracy `1/K + skill (1 − 1/K)` on the diagonal and the rest spread evenly, with
//! `skill` from [`Unit::skill`]. At skill 0 (the default for agents nobody rated) a unit's
//! answers carry no weight until its agreement with the others earns it some: a thousand new
//! keys cannot outvote agents that proved themselves.
//!
//! # Estimation
//! Expectation–maximization: the E step computes each task's posterior from the matrices, the
//! M step the matrices (expected counts) and class weights from the posteriors. It starts from
//! a previous [`Model`] when one is given (units it lacks start at their prior), else from
//! majority vote; it stops after [`EmConfig::rounds_max`] rounds or once no posterior moves by
//! more than [`EmConfig::tolerance`]. Every loop runs in index order, so the same problem gives
//! the same model, bit for bit, on every machine.

mod em;
#[cfg(test)]
mod tests;

pub use em::{estimate, log_class_weight, majority, objective, objective_by_predicate, posterior};

/// A unit of reliability: one agent on one predicate, with its prior.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    /// The predicate, by index into [`Problem::classes`].
    pub predicate: u32,
    /// Prior skill in [0, 1): 0 is chance, 1 always right.
    pub skill: f64,
    /// Weight of the prior, in answers per row.
    pub strength: f64,
}

/// One task: a (subject, predicate) and its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    /// The predicate, by index.
    pub predicate: u32,
    /// Its answers: `Problem::answers[start..end]`.
    pub start: u32,
    /// See `start`.
    pub end: u32,
}

/// What estimation reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Problem {
    /// Classes seen, by predicate.
    pub classes: Vec<u32>,
    /// The units.
    pub units: Vec<Unit>,
    /// The tasks.
    pub tasks: Vec<Task>,
    /// (unit, class) answers, grouped by task; at most one per unit and class in a task.
    pub answers: Vec<(u32, u32)>,
}

/// The learned state of one unit: expected counts, which the prior smooths when used.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Classes modelled: `counts` is `k × k`, row = truth, column = answer.
    pub k: u32,
    /// Expected counts, row-major.
    pub counts: Vec<f64>,
    /// Expected right answers on tasks of the one-coin form.
    pub open_right: f64,
    /// Answers on tasks of the one-coin form.
    pub open_seen: f64,
}

impl Params {
    /// Params of a unit without answers.
    pub fn empty() -> Self {
        Self {
            k: 0,
            counts: Vec::new(),
            open_right: 0.0,
            open_seen: 0.0,
        }
    }

    fn count(&self, truth: u32, answer: u32) -> f64 {
        if truth < self.k && answer < self.k {
            self.counts[(truth * self.k + answer) as usize]
        } else {
            0.0
        }
    }

    /// Answers the unit gave.
    pub fn answers(&self) -> f64 {
        self.counts.iter().sum::<f64>() + self.open_seen
    }
}

/// A learned model: per unit and per predicate, in the problem's indices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    /// Per unit.
    pub units: Vec<Params>,
    /// Per predicate: expected tasks per class (its first `classes_max` classes).
    pub class_weights: Vec<Vec<f64>>,
    /// Rounds run.
    pub rounds: usize,
}

/// How estimation runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmConfig {
    /// Classes of a predicate that get a matrix (at most 64).
    pub classes_max: u32,
    /// Most rounds.
    pub rounds_max: usize,
    /// Stop once no posterior moves by more than this.
    pub tolerance: f64,
}

impl Default for EmConfig {
    fn default() -> Self {
        Self {
            classes_max: 8,
            rounds_max: 100,
            tolerance: 1e-6,
        }
    }
}

/// Largest `classes_max`.
pub const CLASSES_MAX: u32 = 64;

/// What one unit's answer does to a task: the log-probability of the answer under each
/// candidate truth. Also what the `learned` lens reports per agent.
pub struct View<'a> {
    /// The unit.
    pub unit: &'a Unit,
    /// Its params.
    pub params: &'a Params,
    /// Classes of its predicate (all seen).
    pub classes: u32,
    /// `classes_max`.
    pub classes_max: u32,
}

impl View<'_> {
    fn k(&self) -> u32 {
        self.classes.min(self.classes_max).max(2)
    }

    fn mean(&self, k: u32) -> f64 {
        let chance = 1.0 / f64::from(k);
        chance + self.unit.skill.clamp(0.0, 0.999) * (1.0 - chance)
    }

    /// `π[truth][answer]`, smoothed by the prior (both below `classes_max`).
    pub fn confusion(&self, truth: u32, answer: u32) -> f64 {
        let k = self.k();
        let mean = self.mean(k);
        let prior = if truth == answer {
            mean
        } else {
            (1.0 - mean) / f64::from(k - 1)
        };
        let row: f64 = (0..self.params.k).map(|l| self.params.count(truth, l)).sum();
        (self.params.count(truth, answer) + self.unit.strength * prior) / (row + self.unit.strength)
    }

    /// The `k × k` table of `ln π[truth][answer]`, row-major (each row's count summed once).
    pub fn log_table(&self, k: u32) -> Vec<f64> {
        let mut table = Vec::with_capacity((k * k) as usize);
        self.log_table_into(k, &mut table);
        table
    }

    /// [`log_table`](Self::log_table), appended to `out` (which EM reuses round after round).
    pub fn log_table_into(&self, k: u32, out: &mut Vec<f64>) {
        let mean = self.mean(self.k());
        let k_prior = f64::from(self.k() - 1);
        for truth in 0..k {
            let row: f64 = (0..self.params.k).map(|l| self.params.count(truth, l)).sum();
            for answer in 0..k {
                let prior = if truth == answer {
                    mean
                } else {
                    (1.0 - mean) / k_prior
                };
                out.push(
                    ((self.params.count(truth, answer) + self.unit.strength * prior)
                        / (row + self.unit.strength))
                        .ln(),
                );
            }
        }
    }

    /// The one-coin accuracy: right answers over all answers, smoothed by the prior.
    pub fn accuracy(&self) -> f64 {
        let diagonal: f64 = (0..self.params.k).map(|c| self.params.count(c, c)).sum();
        let total = self.params.counts.iter().sum::<f64>() + self.params.open_seen;
        let mean = self.mean(2);
        ((diagonal + self.params.open_right + self.unit.strength * mean) / (total + self.unit.strength))
            .clamp(1e-9, 1.0 - 1e-9)
    }
}
