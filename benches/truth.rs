//! Truth-inference benchmark (issue 26, first step): on each real crowdsourcing dataset of
//! `../shared/datasets/truth/` (or `STEMEDB_TRUTH_DIR`), the accuracy against the gold labels
//! of majority vote and of the one-coin Dawid–Skene EM of `stemedb::lens::learned`, and the
//! time EM takes. Accuracy counts the gold tasks that have at least one answer.
//!
//! Run: `cargo bench --bench truth`. The comparison with crowd-kit and the `learned` lens over
//! a node come with the next steps of the issue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use stemedb::lens::learned::{Answer, EmConfig, majority, one_coin_em};

/// A dataset mapped to indices.
struct Dataset {
    name: String,
    answers: Vec<Answer>,
    tasks: usize,
    workers: usize,
    /// Gold label index by task index.
    gold: HashMap<usize, usize>,
}

fn index(map: &mut HashMap<String, usize>, key: &str) -> usize {
    let next = map.len();
    *map.entry(key.to_owned()).or_insert(next)
}

fn rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split(',').map(|f| f.trim().to_owned()).collect())
        .collect()
}

fn load(dir: &Path) -> Dataset {
    let (mut tasks, mut workers, mut labels) = (HashMap::new(), HashMap::new(), HashMap::new());
    let mut answers = Vec::new();
    for row in rows(&dir.join("answers.csv")) {
        let (task, worker, label) = (&row[0], &row[1], &row[2]);
        answers.push(Answer {
            task: index(&mut tasks, task),
            worker: index(&mut workers, worker),
            label: index(&mut labels, label),
        });
    }
    let mut gold = HashMap::new();
    for row in rows(&dir.join("truth.csv")) {
        if let Some(task) = tasks.get(&row[0]) {
            gold.insert(*task, index(&mut labels, &row[1]));
        }
    }
    Dataset {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        answers,
        tasks: tasks.len(),
        workers: workers.len(),
        gold,
    }
}

fn accuracy(winners: &[Option<(usize, f64)>], gold: &HashMap<usize, usize>) -> f64 {
    let right = gold
        .iter()
        .filter(|(task, label)| winners[**task].map(|(l, _)| l) == Some(**label))
        .count();
    100.0 * right as f64 / gold.len() as f64
}

fn main() {
    let dir = std::env::var_os("STEMEDB_TRUTH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/truth"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        println!("truth: no datasets at {} (set STEMEDB_TRUTH_DIR)", dir.display());
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("answers.csv").is_file() && p.join("truth.csv").is_file())
        .collect();
    dirs.sort();
    println!(
        "{:<12} {:>8} {:>8} {:>8} {:>10} {:>10} {:>7} {:>9}",
        "dataset", "answers", "tasks", "gold", "majority%", "em%", "rounds", "em ms"
    );
    let (mut sum_mv, mut sum_em) = (0.0, 0.0);
    for path in &dirs {
        let data = load(path);
        let mv = accuracy(&majority(&data.answers, data.tasks), &data.gold);
        let start = Instant::now();
        let em = one_coin_em(&data.answers, data.tasks, data.workers, &EmConfig::default());
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let em_accuracy = accuracy(&em.winners, &data.gold);
        sum_mv += mv;
        sum_em += em_accuracy;
        println!(
            "{:<12} {:>8} {:>8} {:>8} {:>10.2} {:>10.2} {:>7} {:>9.1}",
            data.name,
            data.answers.len(),
            data.tasks,
            data.gold.len(),
            mv,
            em_accuracy,
            em.rounds,
            ms
        );
    }
    if !dirs.is_empty() {
        let n = dirs.len() as f64;
        println!("{:<12} {:>46.2} {:>10.2}", "mean", sum_mv / n, sum_em / n);
    }
}
