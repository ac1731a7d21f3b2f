//! Truth-inference benchmark (issue 26): on each real crowdsourcing dataset of
//! `../shared/datasets/truth/` (or `STEMEDB_TRUTH_DIR`), the accuracy against the gold labels
//! of StemeDB's winners under the `learned` lens and under the consensus lens with uniform
//! trust, and of crowd-kit's Majority Vote, Wawa, Dawid–Skene, GLAD and MACE on the same
//! mapped answers, in the same run.
//!
//! # The mapping (one for every method)
//! - a task is a (subject, predicate): subject `task/<id>`, predicate `truth/<dataset>`;
//! - each distinct label of a task is an assertion (object: the label as text), signed by the
//!   first worker who gave it;
//! - each answer is its worker's signed vote (weight 1) for that assertion; each worker is an
//!   agent with its own key. A worker who gave the same label twice answered once.
//!
//! Records go to a real node (default configuration, real journal and LMDB) in file order,
//! in chunks of [`CHUNK_ROWS`] answers (the chunk's new assertions, then its votes), and every
//! gold task is resolved through `Node::resolve`. The answers as StemeDB holds them (distinct
//! task, worker, label) are written to a CSV that crowd-kit reads.
//!
//! # Printed
//! Per dataset: accuracy (percent of gold tasks with answers) of each method; for majority
//! vote and consensus, ties count as the expected accuracy of a random tie-break. Also the
//! expected calibration error (10 bins) of the `learned` lens's winning probability; the
//! ingest time with the model on and off (a second node, same records); and the time the node
//! spent keeping the model (`Node::learned_time`, measured inside the ingest transactions) per
//! answer, with the number of re-estimations: the cost of one update, amortized.
//!
//! crowd-kit 1.4.2 runs in a virtual environment the benchmark makes in
//! `target/truth-venv` (`python3 -m venv`, pip from PyPI); `STEMEDB_TRUTH_CROWDKIT=0` skips it.
//!
//! Run: `cargo bench --bench truth`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stemedb::lens::Query;
use stemedb::node::Node;
use stemedb::protocol::{AgentKey, Assertion, Hash, ObjectValue, Vote};
use tempfile::TempDir;

/// Answers per submission chunk.
const CHUNK_ROWS: usize = 1000;
/// Longest the ingest may take to catch up.
const INDEX_DEADLINE: Duration = Duration::from_secs(600);
/// crowd-kit's methods, as its script prints them.
const CROWDKIT: [&str; 5] = ["MajorityVote", "Wawa", "DawidSkene", "GLAD", "MACE"];

/// A dataset: its answers (task, worker, label) in file order, distinct, and gold labels.
struct Dataset {
    name: String,
    answers: Vec<(String, String, String)>,
    gold: BTreeMap<String, String>,
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
    let mut seen = std::collections::HashSet::new();
    let answers: Vec<(String, String, String)> = rows(&dir.join("answers.csv"))
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].clone()))
        .filter(|a| seen.insert(a.clone()))
        .collect();
    let tasks: std::collections::HashSet<&String> = answers.iter().map(|a| &a.0).collect();
    let gold = rows(&dir.join("truth.csv"))
        .into_iter()
        .filter(|r| tasks.contains(&r[0]))
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    Dataset {
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        answers,
        gold,
    }
}

/// The node's answer for one gold task: the learned winner and its probability, and the
/// consensus expected-correctness under a random tie-break.
struct Outcome {
    learned_right: bool,
    learned_probability: f64,
    consensus_expected: f64,
}

/// Feeds `data` to a node in `dir` with the learned model on or off; returns the node and the
/// ingest time (from the first submission to the last record indexed).
async fn feed(data: &Dataset, dir: &Path, learned: bool) -> (Node, Duration) {
    let started = Instant::now();
    let mut config = stemedb::Config::default();
    config.learned.enabled = learned;
    let node = Node::start(config, dir).expect("start node");
    let predicate = format!("truth/{}", data.name);
    let mut keys: HashMap<&str, AgentKey> = HashMap::new();
    let mut claims: HashMap<(&str, &str), Hash> = HashMap::new();
    let mut timestamp = stemedb::protocol::now_ms() - data.answers.len() as u64 - 10;
    let mut last = 0;
    for chunk in data.answers.chunks(CHUNK_ROWS) {
        let (mut assertions, mut votes) = (Vec::new(), Vec::new());
        for (task, worker, label) in chunk {
            let key = keys.entry(worker.as_str()).or_insert_with(|| {
                let seed = Hash::of(format!("truth worker {}/{worker}", data.name).as_bytes());
                AgentKey::from_secret_bytes(seed.as_bytes())
            });
            timestamp += 1;
            let hash = *claims.entry((task.as_str(), label.as_str())).or_insert_with(|| {
                let object = ObjectValue::Text(label.clone());
                let mut a = Assertion::new(format!("task/{task}"), predicate.clone(), object, 1.0, timestamp);
                a.sign(key);
                let hash = a.content_hash();
                assertions.push(a);
                hash
            });
            votes.push(Vote::sign(key, hash, 1.0, timestamp));
        }
        for receipts in [
            node.submit_many(assertions).await.expect("submit"),
            node.cast_votes(votes).await.expect("vote"),
        ] {
            for receipt in receipts {
                last = last.max(receipt.expect("accepted").offset);
            }
        }
    }
    node.wait_indexed(last, Instant::now() + INDEX_DEADLINE)
        .await
        .expect("indexed");
    (node, started.elapsed())
}

async fn judge(node: &Node, data: &Dataset) -> Vec<Outcome> {
    let predicate = format!("truth/{}", data.name);
    let mut out = Vec::with_capacity(data.gold.len());
    for (task, gold) in &data.gold {
        let subject = format!("task/{task}");
        let learned = node
            .resolve(Query::new(&subject, &predicate, "learned"))
            .await
            .expect("learned");
        let consensus = node
            .resolve(Query::new(&subject, &predicate, "consensus"))
            .await
            .expect("consensus");
        let object = |hash: &Hash| match node.get(hash).expect("get").map(|s| s.assertion.object) {
            Some(ObjectValue::Text(label)) => label,
            other => panic!("unexpected object {other:?}"),
        };
        let top = learned.ranked.first().expect("a candidate");
        let best = consensus.ranked.first().map_or(0.0, |s| s.score.value);
        let tied: Vec<&Hash> = consensus
            .ranked
            .iter()
            .filter(|s| s.score.value == best)
            .map(|s| &s.candidate.hash)
            .collect();
        let right = tied.iter().filter(|h| object(h) == *gold).count();
        out.push(Outcome {
            learned_right: object(&top.candidate.hash) == *gold,
            learned_probability: top.score.value,
            consensus_expected: right as f64 / tied.len() as f64,
        });
    }
    out
}

/// Expected calibration error over 10 equal-width bins of probability.
fn ece(outcomes: &[Outcome]) -> f64 {
    let mut bins = vec![(0usize, 0.0f64, 0.0f64); 10];
    for o in outcomes {
        let bin = ((o.learned_probability * 10.0) as usize).min(9);
        bins[bin].0 += 1;
        bins[bin].1 += o.learned_probability;
        bins[bin].2 += f64::from(u8::from(o.learned_right));
    }
    let n = outcomes.len() as f64;
    bins.iter()
        .filter(|b| b.0 > 0)
        .map(|(_, confidence, right)| (right - confidence).abs() / n)
        .sum()
}

/// Makes (once) the virtual environment with crowd-kit; `None` if that fails.
fn crowdkit_python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/truth-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".crowdkit-1.4.2");
    if ready.exists() {
        return Some(python);
    }
    let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status();
    let installed = made.is_ok_and(|s| s.success())
        && Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "crowd-kit==1.4.2",
                "scikit-learn<1.6",
                "pandas<3",
            ])
            .status()
            .is_ok_and(|s| s.success());
    if !installed {
        eprintln!(
            "truth: could not make the crowd-kit virtual environment in {}",
            venv.display()
        );
        return None;
    }
    std::fs::write(&ready, b"").ok()?;
    Some(python)
}

/// crowd-kit's accuracies on the mapped answers in `csv`, by method.
fn crowdkit(python: &Path, csv: &Path, gold: &Path) -> HashMap<String, f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/truth/aggregate.py");
    let output = Command::new(python)
        .arg(script)
        .arg(csv)
        .arg(gold)
        .output()
        .expect("run crowd-kit");
    if !output.status.success() {
        eprintln!(
            "truth: crowd-kit failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return HashMap::new();
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
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
    let python = match std::env::var("STEMEDB_TRUTH_CROWDKIT").as_deref() {
        Ok("0") => None,
        _ => crowdkit_python(),
    };
    let work = TempDir::new().expect("temp dir");
    println!(
        "{:<10} {:>7} {:>5} | {:>8} {:>9} | {:>6} {:>6} {:>6} {:>6} {:>6} | {:>6} {:>6} | {:>7} {:>7} {:>8}",
        "dataset",
        "answers",
        "gold",
        "learned",
        "consensus",
        "MV",
        "Wawa",
        "DS",
        "GLAD",
        "MACE",
        "best",
        "gap",
        "ECE",
        "on s",
        "us/ans"
    );
    println!(
        "(on s, off s: ingest time with the model on, off; us/ans: model time per answer; epochs: re-estimations)"
    );
    let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
    let mut summary = Vec::new();
    for path in &dirs {
        let data = load(path);
        let (outcomes, on, off, spent, meta) = actix::System::new().block_on(async {
            let on_dir = TempDir::new_in(work.path()).unwrap();
            let (node, on) = feed(&data, on_dir.path(), true).await;
            let (spent, meta) = (node.learned_time().unwrap(), node.learned_meta().unwrap());
            let outcomes = judge(&node, &data).await;
            node.shutdown().await.expect("shutdown");
            let off_dir = TempDir::new_in(work.path()).unwrap();
            let (node, off) = feed(&data, off_dir.path(), false).await;
            node.shutdown().await.expect("shutdown");
            (outcomes, on, off, spent, meta)
        });
        let n = outcomes.len() as f64;
        let learned = 100.0 * outcomes.iter().filter(|o| o.learned_right).count() as f64 / n;
        let consensus = 100.0 * outcomes.iter().map(|o| o.consensus_expected).sum::<f64>() / n;
        let mut ck = HashMap::new();
        if let Some(python) = &python {
            let csv = work.path().join(format!("{}.csv", data.name));
            let gold = work.path().join(format!("{}.gold.csv", data.name));
            let mut text = String::from("task,worker,label\n");
            for (t, w, l) in &data.answers {
                text.push_str(&format!("{t},{w},{l}\n"));
            }
            std::fs::write(&csv, text).unwrap();
            let mut text = String::from("task,label\n");
            for (t, l) in &data.gold {
                text.push_str(&format!("{t},{l}\n"));
            }
            std::fs::write(&gold, text).unwrap();
            ck = crowdkit(python, &csv, &gold);
        }
        let best = CROWDKIT
            .iter()
            .filter_map(|m| ck.get(*m))
            .copied()
            .fold(f64::NAN, f64::max);
        let cell = |m: &str| ck.get(m).map_or("-".to_owned(), |v| format!("{v:.2}"));
        let per_answer_us = spent.as_secs_f64() * 1e6 / meta.answers.max(1) as f64;
        println!(
            "{:<10} {:>7} {:>5} | {:>8.2} {:>9.2} | {:>6} {:>6} {:>6} {:>6} {:>6} | {:>6.2} {:>+6.2} | {:>7.4} {:>7.2} {:>8.1}  off {:.2} s, {} epochs",
            data.name,
            data.answers.len(),
            data.gold.len(),
            learned,
            consensus,
            cell("MajorityVote"),
            cell("Wawa"),
            cell("DawidSkene"),
            cell("GLAD"),
            cell("MACE"),
            best,
            learned - best,
            ece(&outcomes),
            on.as_secs_f64(),
            per_answer_us,
            off.as_secs_f64(),
            meta.epochs,
        );
        *sums.entry("learned").or_default() += learned;
        *sums.entry("consensus").or_default() += consensus;
        for m in CROWDKIT {
            *sums.entry(m).or_default() += ck.get(m).copied().unwrap_or(f64::NAN);
        }
        summary.push((data.name.clone(), learned, best, off.as_secs_f64()));
    }
    if dirs.is_empty() {
        return;
    }
    let n = dirs.len() as f64;
    println!(
        "{:<10} {:>13} | {:>8.2} {:>9.2} | {:>6.2} {:>6.2} {:>6.2} {:>6.2} {:>6.2}",
        "mean",
        "",
        sums["learned"] / n,
        sums["consensus"] / n,
        sums["MajorityVote"] / n,
        sums["Wawa"] / n,
        sums["DawidSkene"] / n,
        sums["GLAD"] / n,
        sums["MACE"] / n,
    );
    if summary.iter().any(|(_, _, b, _)| b.is_nan()) {
        println!("target: not compared (crowd-kit did not run)");
        return;
    }
    let within = summary.iter().filter(|(_, l, b, _)| *l >= b - 0.5).count();
    let best_mean = summary.iter().map(|(_, _, b, _)| b).sum::<f64>() / n;
    println!(
        "target: learned at least the best crowd-kit method or within 0.5 points on every dataset: {within} of {} datasets; mean {:.2} against the best method of each dataset {best_mean:.2} and Dawid-Skene {:.2}",
        summary.len(),
        sums["learned"] / n,
        sums["DawidSkene"] / n,
    );
}
