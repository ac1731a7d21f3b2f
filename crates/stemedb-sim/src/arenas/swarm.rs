//! Arena 4, swarm: at least 1,000 agents, all at once, every tick: each writes a claim on one
//! of a few shared pairs, votes for a claim of its pair, and resolves its pair. Each pair has a
//! watcher from before the first write. Afterwards every acknowledged write is found, every
//! assertion's totals equal a recount of the live votes, and each watcher's last reported
//! winner equals a fresh resolution of its pair.

use std::collections::BTreeMap;
use std::time::Instant;

use futures_util::future::join_all;

use super::{Ledger, agents, base_ms, driver, node_dir, present, retry, start_node, subject, timestamp};
use crate::driver::Feed;
use crate::{SimConfig, SimError, Target};
use stemedb::Config;
use stemedb::protocol::{AgentId, Assertion, Hash, ObjectValue, Vote};

const ARENA: u8 = 4;
/// The fewest agents a swarm runs with.
pub(crate) const AGENTS_MIN: usize = 1000;
/// Shared pairs.
const PAIRS: usize = 16;
const LENS: &str = "consensus";

pub(super) async fn run(config: &SimConfig, ledger: &mut Ledger) -> Result<(), SimError> {
    let count = config.agents.max(AGENTS_MIN);
    let keys = agents(config, ARENA, count);
    let node = match config.target {
        Target::Embedded => {
            let mut node_config = Config::default();
            // One watcher per pair must never lag: its buffer holds every change of a run.
            node_config.node.watch_buffer = 65_536;
            // Rings that long are counted in the views' bytes: room for one per pair.
            node_config.node.views_bytes_max = 1 << 30;
            Some(start_node(config, node_config, &node_dir(config, ARENA, "node"))?)
        }
        Target::Http { .. } => None,
    };
    let driver = driver(config, node.as_ref(), &keys).await?;
    let subjects: Vec<String> = (0..PAIRS)
        .map(|p| subject(config, ARENA, format!("pair-{p}")))
        .collect();
    let mut feeds: Vec<(Feed, Option<Hash>)> = Vec::new();
    for subject in &subjects {
        feeds.push((driver.watch(subject, "value", LENS).await?, None));
    }
    let base = base_ms(config.ticks.clamp(1, 1000) * count + 1);
    let mut claims: Vec<Hash> = Vec::new();
    let mut by_pair: Vec<Vec<Hash>> = vec![Vec::new(); PAIRS];
    let mut latest: BTreeMap<(AgentId, Hash), (Hash, f32)> = BTreeMap::new();
    let mut rng = fastrand::Rng::with_seed(config.seed ^ 0x5A4A);
    let ticks = config.ticks.clamp(1, 1000);
    let load = Instant::now();
    for tick in 0..ticks {
        // Each agent's move this tick, decided before any runs (so the run is seeded).
        let moves: Vec<(usize, Assertion, Option<Vote>)> = keys
            .iter()
            .enumerate()
            .map(|(agent, key)| {
                let pair = agent % PAIRS;
                let mut claim = Assertion::new(
                    subjects[pair].clone(),
                    "value",
                    ObjectValue::Integer(rng.i64(0..1000)),
                    0.5,
                    timestamp(base, tick, agent, count),
                );
                claim.sign(key);
                let vote = (!by_pair[pair].is_empty()).then(|| {
                    let target = by_pair[pair][rng.usize(..by_pair[pair].len())];
                    let weight = 1.0 + rng.u8(0..4) as f32;
                    Vote::sign(key, target, weight, timestamp(base, tick, agent, count) + 1)
                });
                (pair, claim, vote)
            })
            .collect();
        let outcomes = join_all(moves.iter().map(|(pair, claim, vote)| {
            let (driver, subject) = (&driver, &subjects[*pair]);
            async move {
                let started = Instant::now();
                let written = retry(|| driver.submit(claim)).await?;
                let wrote = started.elapsed();
                let voted = match vote {
                    Some(vote) => {
                        let started = Instant::now();
                        Some((retry(|| driver.vote(vote)).await?, started.elapsed()))
                    }
                    None => None,
                };
                driver.resolve(subject, "value", LENS, None, false).await?;
                Ok::<_, SimError>((written, wrote, voted))
            }
        }))
        .await;
        for ((pair, _, vote), outcome) in moves.iter().zip(outcomes) {
            let (written, wrote, voted) = outcome?;
            ledger.written += 1;
            ledger.latencies_us.push(wrote.as_micros() as u64);
            claims.push(written.hash);
            by_pair[*pair].push(written.hash);
            if let (Some(vote), Some((_, took))) = (vote, voted) {
                ledger.written += 1;
                ledger.latencies_us.push(took.as_micros() as u64);
                latest.insert((vote.voter, vote.assertion), (vote.content_hash(), vote.weight));
            }
        }
    }
    ledger.load += load.elapsed();
    driver.wait_caught_up(config.deadline()).await?;
    ledger.verified += present(&driver, &claims).await?;
    // Votes: each voter's newest vote on an assertion is live, and totals equal a recount.
    let votes_written = ledger.written - claims.len() as u64;
    let mut live = 0u64;
    for claim in &claims {
        let expected: Vec<(Hash, f32)> = latest
            .iter()
            .filter(|((_, t), _)| t == claim)
            .map(|(_, v)| *v)
            .collect();
        if expected.is_empty() {
            continue;
        }
        let (count, weight) = driver.vote_totals(claim).await?;
        let recount: f64 = expected.iter().map(|(_, w)| f64::from(*w)).sum();
        ledger.require(
            count == expected.len() as u64 && (weight - recount).abs() < 1e-6,
            || {
                format!(
                    "assertion {claim}: totals ({count}, {weight}) but a recount gives ({}, {recount})",
                    expected.len()
                )
            },
        )?;
        live += count;
    }
    ledger.require(live == latest.len() as u64, || {
        format!("{live} live votes, {} voters' newest", latest.len())
    })?;
    ledger.verified += live;
    ledger.replaced += votes_written - live;
    ledger.held(format!(
        "{count} concurrent agents: every write found, totals equal a recount (invariant 3)"
    ));
    // Each feed's last winner must become a fresh resolution's winner, by the deadline.
    let deadline = config.deadline();
    for ((feed, last), subject) in feeds.iter_mut().zip(&subjects) {
        let fresh = driver.resolve(subject, "value", LENS, None, false).await?;
        loop {
            // Take every change the feed already holds: the last one counts, not the first
            // that happens to match.
            while let Some(change) = feed.next(Instant::now()).await? {
                *last = change.new;
            }
            if *last == fresh.winner {
                break;
            }
            match feed.next(deadline).await? {
                Some(change) => *last = change.new,
                None => {
                    return Err(SimError::Timeout(format!(
                        "{subject}: the feed's last winner {last:?} never became {:?}",
                        fresh.winner
                    )));
                }
            }
        }
    }
    ledger.held(format!(
        "{PAIRS} watchers' last winners agree with fresh resolutions"
    ));
    if let Some(node) = node {
        drop(feeds);
        node.shutdown().await.map_err(|e| SimError::Node(e.to_string()))?;
        overload(config, ledger, &keys).await?;
    }
    Ok(())
}

/// Invariant 5: the whole swarm submits at once, without retrying, to a node whose
/// verification queue holds a few dozen submissions. The excess is refused as busy (a clear
/// status), not absorbed; every acknowledged write is there.
async fn overload(
    config: &SimConfig,
    ledger: &mut Ledger,
    keys: &[stemedb::protocol::AgentKey],
) -> Result<(), SimError> {
    let mut node_config = Config::default();
    node_config.node.submit_queue_depth_max = 32;
    let node = start_node(config, node_config, &node_dir(config, ARENA, "overload"))?;
    let driver = crate::driver::Driver::Embedded(node.clone());
    let base = base_ms(keys.len());
    let claims: Vec<Assertion> = keys
        .iter()
        .enumerate()
        .map(|(agent, key)| {
            let mut claim = Assertion::new(
                subject(config, ARENA, "overload"),
                "value",
                ObjectValue::Integer(agent as i64),
                0.5,
                timestamp(base, 0, agent, keys.len()),
            );
            claim.sign(key);
            claim
        })
        .collect();
    let outcomes = join_all(claims.iter().map(|claim| driver.submit(claim))).await;
    let (mut acked, mut busy) = (Vec::new(), 0u64);
    for outcome in outcomes {
        match outcome? {
            Ok(ack) => acked.push(ack.hash),
            Err(crate::driver::Refusal::Busy) => busy += 1,
            Err(other) => {
                return Err(SimError::Invariant(format!(
                    "overload answered {other:?}, not busy"
                )));
            }
        }
    }
    ledger.written += acked.len() as u64;
    ledger.refused_expected += busy;
    driver.wait_caught_up(config.deadline()).await?;
    ledger.verified += present(&driver, &acked).await?;
    node.shutdown().await.map_err(|e| SimError::Node(e.to_string()))?;
    ledger.require(busy > 0, || {
        format!(
            "{} submissions at once were all absorbed by a queue of 32",
            claims.len()
        )
    })?;
    ledger.held(format!(
        "overload: {} submissions at once to a queue of 32: {} acknowledged, {busy} refused as busy (invariant 5)",
        claims.len(),
        acked.len()
    ));
    Ok(())
}
