#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// Seeded xorshift.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// `tasks` tasks of one predicate with `classes` classes (truth `task % classes`), answered by
/// `reliable` units right 90% of the time and `spammers` answering at random.
fn synthetic(tasks: u32, classes: u32, reliable: u32, spammers: u32, seed: u64) -> Problem {
    let mut rng = Rng(seed);
    let units = (0..reliable + spammers)
        .map(|_| Unit {
            predicate: 0,
            skill: 0.0,
            strength: 2.0,
        })
        .collect();
    let mut problem = Problem {
        classes: vec![classes],
        units,
        ..Problem::default()
    };
    for task in 0..tasks {
        let start = problem.answers.len() as u32;
        for unit in 0..reliable + spammers {
            let class = if unit < reliable && !rng.next().is_multiple_of(10) {
                task % classes
            } else {
                (rng.next() % u64::from(classes)) as u32
            };
            problem.answers.push((unit, class));
        }
        problem.tasks.push(Task {
            predicate: 0,
            start,
            end: problem.answers.len() as u32,
        });
    }
    problem
}

fn winners(posteriors: &[(Vec<u32>, Vec<f64>)]) -> Vec<u32> {
    posteriors
        .iter()
        .map(|(candidates, q)| {
            let mut best = 0;
            for i in 1..q.len() {
                if q[i] > q[best] {
                    best = i;
                }
            }
            candidates[best]
        })
        .collect()
}

fn accuracy(winners: &[u32], classes: u32) -> f64 {
    let right = winners
        .iter()
        .enumerate()
        .filter(|(task, w)| **w == *task as u32 % classes)
        .count();
    right as f64 / winners.len() as f64
}

fn model_posteriors(problem: &Problem, model: &Model, config: &EmConfig) -> Vec<(Vec<u32>, Vec<f64>)> {
    problem
        .tasks
        .iter()
        .map(|task| {
            let answers = &problem.answers[task.start as usize..task.end as usize];
            let mut candidates: Vec<u32> = answers.iter().map(|(_, c)| *c).collect();
            candidates.sort_unstable();
            candidates.dedup();
            let views: Vec<(View<'_>, u32)> = answers
                .iter()
                .map(|(unit, class)| {
                    (
                        View {
                            unit: &problem.units[*unit as usize],
                            params: &model.units[*unit as usize],
                            classes: problem.classes[task.predicate as usize],
                            classes_max: config.classes_max,
                        },
                        *class,
                    )
                })
                .collect();
            let q = posterior(
                &candidates,
                &views,
                &model.class_weights[task.predicate as usize],
                config.classes_max,
            );
            (candidates, q)
        })
        .collect()
}

#[test]
fn em_outvotes_spammers_that_majority_follows_and_learns_who_is_reliable() {
    let (tasks, classes, reliable, spammers) = (400, 4, 3, 6);
    let problem = synthetic(tasks, classes, reliable, spammers, 7);
    let config = EmConfig::default();
    let majority = accuracy(&winners(&majority(&problem)), classes);
    let model = estimate(&problem, None, &config);
    let learned = accuracy(&winners(&model_posteriors(&problem, &model, &config)), classes);
    assert!(
        learned > majority + 0.05,
        "EM {learned:.3} against majority {majority:.3}"
    );
    assert!(learned > 0.95, "EM {learned:.3}");
    let view = |u: usize| View {
        unit: &problem.units[u],
        params: &model.units[u],
        classes,
        classes_max: config.classes_max,
    };
    for u in 0..reliable as usize {
        assert!(
            view(u).accuracy() > 0.8,
            "reliable unit {u}: {}",
            view(u).accuracy()
        );
    }
    for u in reliable as usize..(reliable + spammers) as usize {
        assert!(view(u).accuracy() < 0.45, "spammer {u}: {}", view(u).accuracy());
    }
}

#[test]
fn the_same_problem_gives_the_same_model_and_a_unit_without_answers_has_its_prior() {
    let mut problem = synthetic(200, 2, 4, 3, 11);
    problem.units.push(Unit {
        predicate: 0,
        skill: 0.0,
        strength: 2.0,
    });
    let config = EmConfig::default();
    let a = estimate(&problem, None, &config);
    let b = estimate(&problem.clone(), None, &config);
    assert_eq!(a, b, "bit for bit");
    let silent = View {
        unit: &problem.units[7],
        params: &a.units[7],
        classes: 2,
        classes_max: config.classes_max,
    };
    assert!(
        (silent.confusion(0, 0) - 0.5).abs() < 1e-12,
        "{}",
        silent.confusion(0, 0)
    );
    assert!((silent.confusion(1, 0) - 0.5).abs() < 1e-12);
    // Warm started from its own result, the model stays put.
    let again = estimate(&problem, Some(&a), &config);
    for (x, y) in again.units.iter().zip(&a.units) {
        for (p, q) in x.counts.iter().zip(&y.counts) {
            assert!((p - q).abs() < 1e-3, "{p} against {q}");
        }
    }
}

#[test]
fn new_units_at_skill_zero_cannot_outvote_established_ones() {
    // 20 established units answer 300 tasks (90% right); then 200 new units answer the first
    // 50 tasks, all wrongly.
    let (classes, established, sybils) = (2u32, 20u32, 200u32);
    let mut problem = synthetic(300, classes, established, 0, 5);
    let model = estimate(&problem, None, &EmConfig::default());
    let mut answers = Vec::new();
    for task in problem.tasks.clone().iter().enumerate() {
        let (i, task) = task;
        let mut rows: Vec<(u32, u32)> = problem.answers[task.start as usize..task.end as usize].to_vec();
        if i < 50 {
            for s in 0..sybils {
                rows.push((established + s, (i as u32 + 1) % classes));
            }
        }
        answers.push(rows);
    }
    for _ in 0..sybils {
        problem.units.push(Unit {
            predicate: 0,
            skill: 0.0,
            strength: 2.0,
        });
    }
    problem.answers.clear();
    for (task, rows) in problem.tasks.iter_mut().zip(answers) {
        task.start = problem.answers.len() as u32;
        problem.answers.extend(rows);
        task.end = problem.answers.len() as u32;
    }
    let config = EmConfig::default();
    let majority = accuracy(&winners(&majority(&problem))[..50], classes);
    assert!(majority < 0.1, "the swarm carries majority vote: {majority}");
    let warm = estimate(&problem, Some(&model), &config);
    let learned = accuracy(
        &winners(&model_posteriors(&problem, &warm, &config))[..50],
        classes,
    );
    assert!(learned > 0.9, "learned {learned:.3} on the attacked tasks");
}
