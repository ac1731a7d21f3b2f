//! Arena 5, trust: adversaries against the `learned` lens (issue 26). Four seeded scenarios,
//! each on a predicate of its own. Established agents build a record on history tasks; then
//! the adversaries join on attack tasks:
//! - **trolls**: 30 colluding keys all back the same wrong value, against 20 established
//!   agents right 80% of the time;
//! - **spammers**: 40 keys answer at random among three values, beside 10 agents right 75%
//!   of the time, from the first task on;
//! - **sleepers**: 14 keys answer truthfully on the first attack tasks, then all back the same
//!   wrong value, against 10 agents right 90% of the time;
//! - **sybils**: 1,000 new keys all back the wrong value on 10 tasks, against 20 established
//!   agents right 85% of the time.
//!
//! A claim is made by the first agent to give its value; every answer is its agent's vote.
//! On the attacked tasks, the `learned` lens must pick the true value more often than the
//! consensus lens with uniform trust, and every acknowledged write is read back.

use std::collections::BTreeMap;
use std::time::Instant;

use futures_util::future::join_all;

use super::{Ledger, agents, base_ms, driver, node_dir, present, retry, start_node, subject, write};
use crate::{SimConfig, SimError, Target};
use stemedb::Config;
use stemedb::protocol::{AgentKey, Assertion, Hash, ObjectValue, Vote};

const ARENA: u8 = 5;

/// How the adversaries of a scenario answer.
#[derive(Debug, Clone, Copy)]
enum Attack {
    Trolls,
    Spammers,
    Sleepers { honest_tasks: usize },
    Sybils,
}

struct Scenario {
    name: &'static str,
    values: u64,
    established: usize,
    accuracy: f64,
    history_tasks: usize,
    attack_tasks: usize,
    adversaries: usize,
    attack: Attack,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "trolls",
        values: 2,
        established: 20,
        accuracy: 0.8,
        history_tasks: 40,
        attack_tasks: 20,
        adversaries: 30,
        attack: Attack::Trolls,
    },
    Scenario {
        name: "spammers",
        values: 3,
        established: 10,
        accuracy: 0.75,
        history_tasks: 0,
        attack_tasks: 60,
        adversaries: 40,
        attack: Attack::Spammers,
    },
    Scenario {
        name: "sleepers",
        values: 2,
        established: 10,
        accuracy: 0.9,
        history_tasks: 60,
        attack_tasks: 30,
        adversaries: 14,
        attack: Attack::Sleepers { honest_tasks: 5 },
    },
    Scenario {
        name: "sybils",
        values: 2,
        established: 20,
        accuracy: 0.85,
        history_tasks: 40,
        attack_tasks: 10,
        adversaries: 1000,
        attack: Attack::Sybils,
    },
];

/// A seeded generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1e6 < p
    }
}

pub(super) async fn run(config: &SimConfig, ledger: &mut Ledger) -> Result<(), SimError> {
    let node = match config.target {
        Target::Http { .. } => None,
        Target::Embedded => Some(start_node(
            config,
            Config::default(),
            &node_dir(config, ARENA, "node"),
        )?),
    };
    let most = SCENARIOS
        .iter()
        .map(|s| s.established + s.adversaries)
        .max()
        .unwrap_or(0);
    let keys = agents(config, ARENA, SCENARIOS.len() * most);
    let driver = driver(config, node.as_ref(), &keys).await?;
    let load = Instant::now();
    for (n, scenario) in SCENARIOS.iter().enumerate() {
        let keys = &keys[n * most..n * most + scenario.established + scenario.adversaries];
        let (learned, consensus, attacked) = play(config, ledger, &driver, scenario, keys, n as u64).await?;
        ledger.require(learned > consensus, || {
            format!(
                "{}: learned picked the truth on {learned} of {attacked} attacked tasks, consensus on {consensus}",
                scenario.name
            )
        })?;
        ledger.held(format!(
            "{}: learned right on {learned} of {attacked} attacked tasks, uniform consensus on {consensus}",
            scenario.name
        ));
    }
    ledger.load += load.elapsed();
    if let Some(node) = node {
        node.shutdown().await.map_err(|e| SimError::Node(e.to_string()))?;
    }
    Ok(())
}

/// Plays one scenario; returns how many attacked tasks each lens got right, and how many.
async fn play(
    config: &SimConfig,
    ledger: &mut Ledger,
    driver: &crate::driver::Driver,
    scenario: &Scenario,
    keys: &[AgentKey],
    n: u64,
) -> Result<(usize, usize, usize), SimError> {
    let mut rng = Rng(config.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (n + 1) | 1);
    let (established, adversaries) = keys.split_at(scenario.established);
    let tasks = scenario.history_tasks + scenario.attack_tasks;
    let base = base_ms(tasks * keys.len() + 16);
    let predicate = format!("trust/{}", scenario.name);
    let mut claims: BTreeMap<(usize, u64), Hash> = BTreeMap::new();
    let mut cast: BTreeMap<Hash, u64> = BTreeMap::new();
    let mut attacked = Vec::new();
    for task in 0..tasks {
        let truth = rng.next() % scenario.values;
        let wrong = (truth + 1) % scenario.values;
        let attack_index = task.checked_sub(scenario.history_tasks);
        let mut answers: Vec<(&AgentKey, u64)> = Vec::new();
        for key in established {
            let right = rng.chance(scenario.accuracy);
            let other = (truth + 1 + rng.next() % (scenario.values - 1)) % scenario.values;
            answers.push((key, if right { truth } else { other }));
        }
        let mut lied = false;
        for key in adversaries {
            let value = match (scenario.attack, attack_index) {
                (Attack::Spammers, _) => Some(rng.next() % scenario.values),
                (_, None) => None,
                (Attack::Trolls | Attack::Sybils, Some(_)) => Some(wrong),
                (Attack::Sleepers { honest_tasks }, Some(i)) if i < honest_tasks => Some(truth),
                (Attack::Sleepers { .. }, Some(_)) => Some(wrong),
            };
            if let Some(value) = value {
                lied |= value != truth;
                answers.push((key, value));
            }
        }
        let subject = subject(config, ARENA, format!("{}-{task}", scenario.name));
        let ts = base + (task * keys.len()) as u64;
        let mut votes = Vec::with_capacity(answers.len());
        for (i, (key, value)) in answers.iter().enumerate() {
            let hash = match claims.get(&(task, *value)) {
                Some(hash) => *hash,
                None => {
                    let mut claim =
                        Assertion::new(&subject, &predicate, ObjectValue::Integer(*value as i64), 0.5, ts);
                    claim.sign(key);
                    let hash = write(driver, ledger, &claim).await?.hash;
                    claims.insert((task, *value), hash);
                    hash
                }
            };
            *cast.entry(hash).or_default() += 1;
            votes.push(Vote::sign(key, hash, 1.0, ts + i as u64));
        }
        let acks = join_all(votes.iter().map(|vote| async {
            let started = Instant::now();
            (retry(|| driver.vote(vote)).await, started)
        }))
        .await;
        for (ack, started) in acks {
            ack?;
            ledger.acked(started);
        }
        if attack_index.is_some() && lied {
            attacked.push((task, subject, claims.get(&(task, truth)).copied()));
        }
    }
    driver.wait_caught_up(config.deadline()).await?;
    let hashes: Vec<Hash> = claims.values().copied().collect();
    ledger.verified += present(driver, &hashes).await?;
    for (hash, count) in &cast {
        let (found, _) = driver.vote_totals(hash).await?;
        ledger.require(found == *count, || {
            format!("{hash}: {found} live votes, {count} cast")
        })?;
        ledger.verified += found;
    }
    let (mut learned, mut consensus) = (0, 0);
    for (_, subject, truth) in &attacked {
        let Some(truth) = truth else { continue };
        let winner = driver
            .resolve(subject, &predicate, "learned", None, false)
            .await?
            .winner;
        learned += usize::from(winner == Some(*truth));
        consensus += usize::from(
            driver
                .resolve(subject, &predicate, "consensus", None, false)
                .await?
                .winner
                == Some(*truth),
        );
    }
    Ok((learned, consensus, attacked.len()))
}
