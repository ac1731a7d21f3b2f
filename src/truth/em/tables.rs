//! EM's per-round tables: what a model says, in logs, for the E step of every task.

use std::collections::HashMap;

use super::log_weight;
use crate::truth::{EmConfig, Model, Problem, Unit, View};

/// Per-round tables: each unit's log confusion matrix and log one-coin accuracy. The matrices
/// are laid end to end in one vector, so a round allocates a few vectors, not one per unit.
pub(super) struct Tables {
    /// Per unit: `k` and where its `k × k` log π starts in `log_pi_values`.
    pub(super) log_pi: Vec<(u32, usize)>,
    log_pi_values: Vec<f64>,
    /// Per unit: ln a and ln (1 − a).
    pub(super) log_accuracy: Vec<(f64, f64)>,
    /// Per predicate: log class weight per class.
    pub(super) log_weight: Vec<Vec<f64>>,
}

impl Tables {
    pub(super) fn of(problem: &Problem, model: &Model, config: &EmConfig) -> Self {
        let mut log_pi = Vec::with_capacity(problem.units.len());
        let k_of = |unit: &Unit| problem.classes[unit.predicate as usize].min(config.classes_max) as usize;
        let values: usize = problem
            .units
            .iter()
            .take(model.units.len())
            .map(|u| k_of(u) * k_of(u))
            .sum();
        let mut log_pi_values = Vec::with_capacity(values);
        let mut log_accuracy = Vec::with_capacity(problem.units.len());
        // A unit with no counts in its matrix has its prior's table: made once per prior and
        // size, then copied.
        let mut priors: HashMap<(u64, u64, u32), usize> = HashMap::new();
        for (unit, params) in problem.units.iter().zip(&model.units) {
            let classes = problem.classes[unit.predicate as usize];
            let view = View {
                unit,
                params,
                classes,
                classes_max: config.classes_max,
            };
            let k = classes.min(config.classes_max);
            let start = log_pi_values.len();
            if params.counts.iter().all(|c| *c == 0.0) {
                let prior = (unit.skill.to_bits(), unit.strength.to_bits(), classes);
                match priors.get(&prior) {
                    Some(&made) => log_pi_values.extend_from_within(made..made + (k * k) as usize),
                    None => {
                        view.log_table_into(k, &mut log_pi_values);
                        priors.insert(prior, start);
                    }
                }
            } else {
                view.log_table_into(k, &mut log_pi_values);
            }
            log_pi.push((k, start));
            let accuracy = view.accuracy();
            log_accuracy.push((accuracy.ln(), (1.0 - accuracy).ln()));
        }
        let log_weight = model
            .class_weights
            .iter()
            .map(|weights| {
                (0..weights.len() as u32)
                    .map(|c| log_weight(weights, c))
                    .collect()
            })
            .collect();
        Self {
            log_pi,
            log_pi_values,
            log_accuracy,
            log_weight,
        }
    }

    /// A unit's `k` and its `k × k` log π, row-major.
    pub(super) fn log_pi(&self, unit: usize) -> (u32, &[f64]) {
        let (k, start) = self.log_pi[unit];
        (k, &self.log_pi_values[start..start + (k * k) as usize])
    }
}
