//! Truth inference (issue 26, first step): estimating each source's reliability from its
//! agreement with the other evidence, and the answers that follow, as a pure, deterministic
//! function of the answers.
//!
//! The model is the one-coin Dawid–Skene model: worker `w` answers a task correctly with
//! probability `p_w`, and otherwise picks one of the task's other candidate labels uniformly.
//! Expectation–maximization alternates:
//! - **E step**: each task's posterior over its candidates, `q_t(l) ∝ Π_w p_w` if `w` said
//!   `l`, else `(1 − p_w) / (K_t − 1)`, with `K_t` the task's candidates (at least 2);
//! - **M step**: `p_w = (Σ_t q_t(a_tw) + α) / (n_w + α + β)`: the expected number of tasks `w`
//!   got right, smoothed by a Beta(α, β) prior whose mean is the reliability a worker with no
//!   history gets ([`Prior`]). A new key thus starts at the prior, and a swarm of new keys
//!   cannot outweigh workers whose agreement with the rest earned them more.
//!
//! It starts from majority vote and runs a fixed number of rounds, stopping early once no
//! posterior moves by more than [`EmConfig::tolerance`]. Every loop runs over tasks and
//! workers in index order, so the result is the same on every replica for the same answers.

/// One answer: a worker's label for a task (indices into the caller's tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Answer {
    /// The task.
    pub task: usize,
    /// The worker.
    pub worker: usize,
    /// The label chosen.
    pub label: usize,
}

/// The reliability a worker with no history gets, and how many answers' worth of evidence
/// that belief is: Beta(`mean × strength`, `(1 − mean) × strength`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    /// Mean reliability, in (0, 1).
    pub mean: f64,
    /// Weight, in answers.
    pub strength: f64,
}

impl Default for Prior {
    fn default() -> Self {
        Self {
            mean: 0.7,
            strength: 2.0,
        }
    }
}

/// How EM runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmConfig {
    /// The prior of every worker.
    pub prior: Prior,
    /// Most rounds.
    pub rounds_max: usize,
    /// Stop once no posterior moves by more than this.
    pub tolerance: f64,
}

impl Default for EmConfig {
    fn default() -> Self {
        Self {
            prior: Prior::default(),
            rounds_max: 100,
            tolerance: 1e-9,
        }
    }
}

/// What inference found.
#[derive(Debug, Clone, PartialEq)]
pub struct Inference {
    /// Each worker's estimated reliability, by index (the prior's mean for a worker without
    /// answers).
    pub reliability: Vec<f64>,
    /// Each task's winning label and its posterior probability (`None` for a task without
    /// answers). Ties go to the smaller label.
    pub winners: Vec<Option<(usize, f64)>>,
    /// Rounds run.
    pub rounds: usize,
}

/// One task's candidate labels (sorted), and its answers as (worker, candidate position).
type TaskAnswers = (Vec<usize>, Vec<(usize, usize)>);

/// The answers grouped by task.
struct Tasks {
    tasks: Vec<TaskAnswers>,
}

impl Tasks {
    fn of(answers: &[Answer], tasks: usize) -> Self {
        let mut sorted = answers.to_vec();
        sorted.sort_unstable();
        let mut out: Vec<TaskAnswers> = vec![(Vec::new(), Vec::new()); tasks];
        for a in &sorted {
            let (labels, _) = &mut out[a.task];
            if labels.binary_search(&a.label).is_err() {
                let at = labels.partition_point(|l| *l < a.label);
                labels.insert(at, a.label);
            }
        }
        for a in &sorted {
            let (labels, given) = &mut out[a.task];
            let position = labels.partition_point(|l| *l < a.label);
            given.push((a.worker, position));
        }
        Self { tasks: out }
    }
}

/// Majority vote: each task's most answered label (ties to the smaller) and its share.
pub fn majority(answers: &[Answer], tasks: usize) -> Vec<Option<(usize, f64)>> {
    let grouped = Tasks::of(answers, tasks);
    grouped
        .tasks
        .iter()
        .map(|(labels, given)| {
            let mut counts = vec![0usize; labels.len()];
            for (_, position) in given {
                counts[*position] += 1;
            }
            best(&counts.iter().map(|c| *c as f64).collect::<Vec<_>>())
                .map(|(i, count)| (labels[i], count / given.len() as f64))
        })
        .collect()
}

/// The index and value of the greatest of `values` (the first of equals); `None` if empty.
fn best(values: &[f64]) -> Option<(usize, f64)> {
    let mut out: Option<(usize, f64)> = None;
    for (i, v) in values.iter().enumerate() {
        if out.is_none_or(|(_, b)| *v > b) {
            out = Some((i, *v));
        }
    }
    out
}

/// One-coin Dawid–Skene EM over `answers` of `tasks` tasks by `workers` workers; see the
/// module docs.
pub fn one_coin_em(answers: &[Answer], tasks: usize, workers: usize, config: &EmConfig) -> Inference {
    let grouped = Tasks::of(answers, tasks);
    let (alpha, beta) = (
        config.prior.mean * config.prior.strength,
        (1.0 - config.prior.mean) * config.prior.strength,
    );
    // Posteriors, from majority vote.
    let mut posteriors: Vec<Vec<f64>> = grouped
        .tasks
        .iter()
        .map(|(labels, given)| {
            let mut q = vec![0.0; labels.len()];
            for (_, position) in given {
                q[*position] += 1.0;
            }
            let total: f64 = q.iter().sum();
            if total > 0.0 {
                q.iter_mut().for_each(|v| *v /= total);
            }
            q
        })
        .collect();
    let mut reliability = vec![config.prior.mean; workers];
    let mut rounds = 0;
    while rounds < config.rounds_max {
        rounds += 1;
        // M step.
        let mut right = vec![0.0f64; workers];
        let mut seen = vec![0.0f64; workers];
        for ((_, given), q) in grouped.tasks.iter().zip(&posteriors) {
            for (worker, position) in given {
                right[*worker] += q[*position];
                seen[*worker] += 1.0;
            }
        }
        for w in 0..workers {
            reliability[w] = ((right[w] + alpha) / (seen[w] + alpha + beta)).clamp(1e-6, 1.0 - 1e-6);
        }
        // E step.
        let mut moved = 0.0f64;
        for ((labels, given), q) in grouped.tasks.iter().zip(posteriors.iter_mut()) {
            if labels.is_empty() {
                continue;
            }
            let wrong_ways = (labels.len().max(2) - 1) as f64;
            let mut log = vec![0.0f64; labels.len()];
            for (worker, position) in given {
                let p = reliability[*worker];
                let (yes, no) = (p.ln(), ((1.0 - p) / wrong_ways).ln());
                for (l, value) in log.iter_mut().enumerate() {
                    *value += if l == *position { yes } else { no };
                }
            }
            let top = log.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let total: f64 = log.iter().map(|v| (v - top).exp()).sum();
            for (value, old) in log.iter().zip(q.iter_mut()) {
                let new = (value - top).exp() / total;
                moved = moved.max((new - *old).abs());
                *old = new;
            }
        }
        if moved <= config.tolerance {
            break;
        }
    }
    let winners = grouped
        .tasks
        .iter()
        .zip(&posteriors)
        .map(|((labels, _), q)| best(q).map(|(i, p)| (labels[i], p)))
        .collect();
    Inference {
        reliability,
        winners,
        rounds,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Answers of `reliable` workers right 90% of the time and `spammers` answering at random,
    /// on `tasks` tasks of `classes` classes whose truth is `task % classes`; a seeded
    /// generator.
    fn synthetic(tasks: usize, classes: usize, reliable: usize, spammers: usize, seed: u64) -> Vec<Answer> {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut answers = Vec::new();
        for task in 0..tasks {
            let truth = task % classes;
            for worker in 0..reliable + spammers {
                let label = if worker < reliable && next() % 10 != 0 {
                    truth
                } else {
                    (next() % classes as u64) as usize
                };
                answers.push(Answer { task, worker, label });
            }
        }
        answers
    }

    fn accuracy(winners: &[Option<(usize, f64)>], classes: usize) -> f64 {
        let right = winners
            .iter()
            .enumerate()
            .filter(|(task, w)| w.map(|(label, _)| label) == Some(task % classes))
            .count();
        right as f64 / winners.len() as f64
    }

    #[test]
    fn em_outvotes_spammers_that_majority_follows_and_learns_who_is_reliable() {
        let (tasks, classes, reliable, spammers) = (400, 4, 3, 6);
        let answers = synthetic(tasks, classes, reliable, spammers, 7);
        let majority = accuracy(&majority(&answers, tasks), classes);
        let em = one_coin_em(&answers, tasks, reliable + spammers, &EmConfig::default());
        let learned = accuracy(&em.winners, classes);
        assert!(
            learned > majority + 0.05,
            "EM {learned:.3} against majority {majority:.3}"
        );
        assert!(learned > 0.95, "EM {learned:.3}");
        for w in 0..reliable {
            assert!(
                em.reliability[w] > 0.8,
                "reliable worker {w}: {}",
                em.reliability[w]
            );
        }
        for w in reliable..reliable + spammers {
            assert!(em.reliability[w] < 0.4, "spammer {w}: {}", em.reliability[w]);
        }
    }

    #[test]
    fn the_result_depends_on_the_answers_not_their_order_and_new_workers_get_the_prior() {
        let answers = synthetic(200, 2, 4, 3, 11);
        let mut shuffled = answers.clone();
        shuffled.reverse();
        shuffled.swap(3, 150);
        let config = EmConfig::default();
        let a = one_coin_em(&answers, 200, 9, &config);
        let b = one_coin_em(&shuffled, 200, 9, &config);
        assert_eq!(a, b, "bit for bit, whatever the order");
        // Workers 7 and 8 gave no answers: the prior's mean.
        for w in [7, 8] {
            assert!(
                (a.reliability[w] - config.prior.mean).abs() < 1e-12,
                "{}",
                a.reliability[w]
            );
        }
        // A task nobody answered has no winner.
        let sparse = one_coin_em(&answers[..10], 200, 9, &config);
        assert_eq!(sparse.winners[199], None);
    }
}
