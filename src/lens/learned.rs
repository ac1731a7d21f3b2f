//! The `learned` lens: each candidate's posterior under the trust model the ingest learned
//! from the log, with the agents that counted most in its reason.

use std::collections::{BTreeMap, HashMap};

use crate::lens::{Candidate, Evidence, Lens, ResolveError, Score};
use crate::protocol::AgentId;
use crate::storage::state::LearnedSettings;
pub use crate::truth::*;

/// Agents named in a reason, at most.
const REASON_AGENTS_MAX: usize = 3;
/// Values whose reasons name agents, at most (the most probable ones).
const REASONS_DETAILED_MAX: usize = 8;

/// The candidate whose value is most probable under the learned trust model wins: each
/// agent's answer (its live votes and its signatures) counts by what its record says of it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Learned;

/// One agent's answer, weighed.
struct Weighed {
    agent: AgentId,
    unit: Unit,
    params: Params,
    class: u32,
}

impl Lens for Learned {
    fn name(&self) -> &str {
        "learned"
    }

    fn score(&self, candidates: &[Candidate], evidence: &Evidence<'_>) -> Result<Vec<Score>, ResolveError> {
        let (snapshot, end) = evidence.learned_source()?;
        let settings: LearnedSettings = snapshot
            .learned_settings()?
            .ok_or_else(unavailable("it is not kept"))?;
        let meta = snapshot.learned_meta()?;
        if meta.cursor < end {
            return Err(unavailable(&format!(
                "it covers the log to position {} only, the answer needs {end}",
                meta.cursor
            ))());
        }
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        // Each candidate's class; all of one predicate.
        let mut classes = Vec::with_capacity(candidates.len());
        let mut predicate = None;
        for candidate in candidates {
            let (p, class) = snapshot
                .learned_label(&candidate.hash)?
                .ok_or_else(unavailable("an assertion has no class"))?;
            predicate = Some(p);
            classes.push(class);
        }
        let Some(predicate) = predicate else {
            return Ok(Vec::new());
        };
        let weights = snapshot.learned_weights(&predicate, end)?.unwrap_or_default();
        // Answers: (agent, class), once each.
        let mut answers: BTreeMap<(AgentId, u32), ()> = BTreeMap::new();
        for (candidate, class) in candidates.iter().zip(&classes) {
            for signer in &candidate.signers {
                answers.insert((*signer, *class), ());
            }
            if candidate.votes.count > 0 {
                for (voter, _) in evidence.vote_weights(&candidate.hash)? {
                    answers.insert((voter, *class), ());
                }
            }
        }
        let mut priors: HashMap<AgentId, Option<(f64, f64)>> = HashMap::new();
        let mut weighed = Vec::with_capacity(answers.len());
        for (agent, class) in answers.into_keys() {
            let prior = match priors.get(&agent) {
                Some(prior) => *prior,
                None => {
                    let prior = settings.prior(evidence.journaled_trust(&agent)?);
                    priors.insert(agent, prior);
                    prior
                }
            };
            let Some((skill, strength)) = prior else { continue };
            let params = snapshot
                .learned_unit(&agent, &predicate, end)?
                .unwrap_or_else(Params::empty);
            weighed.push(Weighed {
                agent,
                unit: Unit {
                    predicate: 0,
                    skill,
                    strength,
                },
                params,
                class,
            });
        }
        let (all_classes, classes_max) = (weights.classes, settings.classes_max);
        let mut distinct = classes.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let views: Vec<(View<'_>, u32)> = weighed
            .iter()
            .map(|w| (view_of(w, all_classes, classes_max), w.class))
            .collect();
        let q = posterior(&distinct, &views, &weights.weights, settings.classes_max);
        let full = distinct.iter().all(|c| *c < settings.classes_max);
        let of = |class: u32| distinct.binary_search(&class).map_or(0.0, |i| q[i]);
        // The most probable values get the agents that counted in their reasons.
        let mut order: Vec<usize> = (0..distinct.len()).collect();
        order.sort_by(|a, b| q[*b].total_cmp(&q[*a]).then(a.cmp(b)));
        let explained: Vec<u32> = order
            .iter()
            .take(REASONS_DETAILED_MAX)
            .map(|i| distinct[*i])
            .collect();
        Ok(classes
            .iter()
            .map(|class| {
                let value = of(*class);
                if !explained.contains(class) {
                    return Score {
                        value,
                        reason: format!("probability {value:.3} under learned trust"),
                    };
                }
                // Against the most probable other value.
                let rival = distinct
                    .iter()
                    .filter(|c| *c != class)
                    .max_by(|a, b| of(**a).total_cmp(&of(**b)).then(b.cmp(a)))
                    .copied();
                Score {
                    value,
                    reason: reason(
                        *class,
                        value,
                        rival,
                        &weighed,
                        (all_classes, classes_max),
                        full,
                        distinct.len(),
                    ),
                }
            })
            .collect())
    }
}

fn view_of(w: &Weighed, classes: u32, classes_max: u32) -> View<'_> {
    View {
        unit: &w.unit,
        params: &w.params,
        classes,
        classes_max,
    }
}

fn unavailable(why: &str) -> impl FnOnce() -> ResolveError + '_ {
    move || ResolveError::ModelUnavailable(why.to_owned())
}

/// The words of one candidate's score: its posterior, and the agents that moved it most
/// against its rival, each with its learned reliability and its contribution in nats.
fn reason(
    class: u32,
    value: f64,
    rival: Option<u32>,
    weighed: &[Weighed],
    (classes, classes_max): (u32, u32),
    full: bool,
    candidates: usize,
) -> String {
    let mut out = format!("probability {value:.3} under learned trust");
    // Answers are per agent and value: an agent that backed two values is one agent.
    let agents = {
        let mut ids: Vec<&AgentId> = weighed.iter().map(|w| &w.agent).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    let Some(rival) = rival else {
        out.push_str(&format!("; the only value, answered by {agents} agent(s)"));
        return out;
    };
    let log = |v: &View<'_>, truth: u32, given: u32| -> f64 {
        if full {
            v.confusion(truth, given).ln()
        } else if truth == given {
            v.accuracy().ln()
        } else {
            ((1.0 - v.accuracy()) / (candidates.max(2) - 1) as f64).ln()
        }
    };
    // Each agent's contribution, summed over its answers (in the order `weighed` holds them,
    // grouped by agent).
    let mut contributions: Vec<(f64, &Weighed, f64)> = Vec::new();
    for w in weighed {
        let v = view_of(w, classes, classes_max);
        let part = log(&v, class, w.class) - log(&v, rival, w.class);
        match contributions.last_mut() {
            Some((sum, last, _)) if last.agent == w.agent => *sum += part,
            _ => contributions.push((part, w, v.accuracy())),
        }
    }
    contributions.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()).then(a.1.agent.cmp(&b.1.agent)));
    out.push_str(&format!("; {agents} agent(s) answered; counted most:"));
    for (contribution, w, reliability) in contributions.iter().take(REASON_AGENTS_MAX) {
        out.push_str(&format!(
            " {} (reliability {reliability:.3}, {} answers) {contribution:+.3}",
            w.agent,
            w.params.answers().round()
        ));
    }
    out
}
