//! [`LearnedConfig`]: the learned trust model (`[learned]`).

use serde::{Deserialize, Serialize};

use crate::storage::state::LearnedSettings;

/// The trust model the ingest learns from the log (`[learned]`); see
/// `storage::state::learned` and the `learned` lens. Every replica of a log must use the same
/// values: a state records those it was built with and refuses to open under others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearnedConfig {
    /// Keep the model (default true). Off, ingest skips it and the `learned` lens is refused;
    /// a model left behind stays behind (rebuild the state from the log to have it again).
    pub enabled: bool,
    /// Object values of a predicate that get a confusion matrix each; a task with a value past
    /// them is weighed by each agent's accuracy alone. 2 to 64.
    pub classes_max: u32,
    /// Prior skill of an agent no administrator rated, in [0, 1): 0 (chance) gives a new key
    /// no weight until its agreement with the evidence earns it some.
    pub skill_new: f64,
    /// Weight of that prior, in answers.
    pub strength: f64,
    /// Weight of an administrator's trust factor `f` (prior skill `f / (1 + f)`), in answers.
    pub admin_strength: f64,
    /// Answers before the first re-estimation by EM over every answer, and the fewest between
    /// two.
    pub epoch_answers_min: u64,
    /// Re-estimate again once the answers grew by this fraction.
    pub epoch_growth: f64,
    /// Most EM rounds per re-estimation.
    pub rounds_max: u32,
}

impl Default for LearnedConfig {
    fn default() -> Self {
        let s = LearnedSettings::default();
        Self {
            enabled: true,
            classes_max: s.classes_max,
            skill_new: s.skill_new,
            strength: s.strength,
            admin_strength: s.admin_strength,
            epoch_answers_min: s.epoch_answers_min,
            epoch_growth: s.epoch_growth,
            rounds_max: s.rounds_max,
        }
    }
}

impl LearnedConfig {
    /// The settings, if the model is kept.
    pub fn settings(&self) -> Option<LearnedSettings> {
        self.enabled.then_some(LearnedSettings {
            classes_max: self.classes_max,
            skill_new: self.skill_new,
            strength: self.strength,
            admin_strength: self.admin_strength,
            epoch_answers_min: self.epoch_answers_min,
            epoch_growth: self.epoch_growth,
            rounds_max: self.rounds_max,
        })
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        LearnedConfig {
            enabled: true,
            ..self.clone()
        }
        .settings()
        .map_or(Ok(()), |s| s.validate())
    }
}
