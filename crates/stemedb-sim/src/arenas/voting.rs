//! Arena 2, voting: on each of a few pairs stand a claim backed by a handful of trusted voters
//! and a rival backed by a swarm of trolls whose trust an administrator lowered to 0.01 (a
//! journaled trust change). Every voter votes again every tick, so each voter's many votes
//! must count once. After every tick the consensus winner of each pair is recorded with the
//! offset of the tick's last write; at the end, resolving as of each recorded offset must give
//! the winner of that moment, the trusted claim must win, and every assertion's vote totals
//! must equal a recount of the live votes the agents cast.

use std::collections::BTreeMap;
use std::time::Instant;

use futures_util::future::join_all;

use super::{Ledger, agents, base_ms, driver, node_dir, present, retry, start_node, subject, write};
use crate::driver::{Ack, Driver};
use crate::{SimConfig, SimError, Target};
use stemedb::Config;
use stemedb::protocol::{AgentId, Assertion, Hash, ObjectValue, TrustChange, Vote};

const ARENA: u8 = 2;
/// Trusted voters per pair.
const TRUSTED: usize = 5;
/// The trolls' trust factor.
const TROLL_TRUST: f32 = 0.01;

pub(super) async fn run(config: &SimConfig, ledger: &mut Ledger) -> Result<(), SimError> {
    let http = matches!(config.target, Target::Http { .. });
    // Over HTTP no trust change can be made (the server's `votes.admins` is not ours), so the
    // trolls are fewer than the trusted voters there.
    let trolls = if http {
        TRUSTED - 1
    } else {
        (config.agents * 5).clamp(TRUSTED + 1, 500)
    };
    let pairs = (config.agents / 10).clamp(1, 8);
    let keys = agents(config, ARENA, 2 + TRUSTED + trolls);
    let (admin, author, rival) = (&keys[0], &keys[1], &keys[2]);
    let voters = &keys[2..];
    let swarm = &voters[TRUSTED..];
    let node = if http {
        None
    } else {
        let mut node_config = Config::default();
        node_config.votes.admins = vec![admin.agent_id().to_string()];
        Some(start_node(config, node_config, &node_dir(config, ARENA, "node"))?)
    };
    let driver = driver(config, node.as_ref(), &keys).await?;
    let base = base_ms((config.ticks + 2) * voters.len() + 16);
    let load = Instant::now();
    let mut claims = Vec::new();
    let mut assertions = Vec::new();
    for pair in 0..pairs {
        let pick = |key: &stemedb::protocol::AgentKey, value: i64, ts: u64| {
            let mut claim = Assertion::new(
                subject(config, ARENA, format!("pair-{pair}")),
                "value",
                ObjectValue::Integer(value),
                0.5,
                ts,
            );
            claim.sign(key);
            claim
        };
        let (truth, lie) = (pick(author, 1, base), pick(rival, 2, base + 1));
        assertions.push(write(&driver, ledger, &truth).await?.hash);
        assertions.push(write(&driver, ledger, &lie).await?.hash);
        claims.push((truth.content_hash(), lie.content_hash(), truth.subject.clone()));
    }
    let mut trust_written: Vec<(AgentId, Ack)> = Vec::new();
    // The latest vote of each (voter, assertion), and (offset, winners) after each tick.
    let mut latest: BTreeMap<(AgentId, Hash), (Hash, f32)> = BTreeMap::new();
    let mut votes_written = 0u64;
    let mut moments: Vec<(u64, Vec<Option<Hash>>)> = Vec::new();
    // Tick 0: only the trolls vote, at full trust, and the rival wins. Then the administrator
    // lowers their trust and everyone votes: the truth wins from then on. So the recorded
    // moments disagree, and resolving as of each must tell them apart.
    for tick in 0..=config.ticks.max(1) {
        if tick == 1 && !http {
            for troll in swarm {
                let change = TrustChange::sign(admin, troll.agent_id(), TROLL_TRUST, base);
                let started = Instant::now();
                let ack = retry(|| driver.trust(&change)).await?;
                ledger.acked(started);
                trust_written.push((troll.agent_id(), ack));
            }
        }
        let mut ballots = Vec::new();
        for (i, voter) in voters.iter().enumerate() {
            let honest = i < TRUSTED;
            if honest && tick == 0 {
                continue;
            }
            for (truth, lie, _) in &claims {
                let target = if honest { *truth } else { *lie };
                let weight = 1.0 + (tick % 3) as f32;
                let ts = base + 10 + (tick * voters.len() + i) as u64;
                ballots.push((
                    voter.agent_id(),
                    target,
                    weight,
                    Vote::sign(voter, target, weight, ts),
                ));
            }
        }
        let acks = join_all(ballots.iter().map(|(_, _, _, vote)| async {
            let started = Instant::now();
            (retry(|| driver.vote(vote)).await, started.elapsed())
        }))
        .await;
        let mut last = 0;
        for ((voter, target, weight, vote), (ack, took)) in ballots.iter().zip(acks) {
            let ack = ack?;
            ledger.written += 1;
            ledger.latencies_us.push(took.as_micros() as u64);
            votes_written += 1;
            last = last.max(ack.offset);
            latest.insert((*voter, *target), (vote.content_hash(), *weight));
        }
        driver.wait_caught_up(config.deadline()).await?;
        let mut winners = Vec::new();
        for (_, _, subject) in &claims {
            winners.push(
                driver
                    .resolve(subject, "value", "consensus", None, false)
                    .await?
                    .winner,
            );
        }
        moments.push((last, winners));
    }
    ledger.load += load.elapsed();
    driver.wait_caught_up(config.deadline()).await?;
    ledger.verified += present(&driver, &assertions).await?;
    check_votes(&driver, ledger, &claims, &latest, votes_written).await?;
    if let Some(node) = &node {
        for (agent, _) in &trust_written {
            let factor = node.trust(agent).map_err(|e| SimError::Node(e.to_string()))?;
            ledger.require((factor - TROLL_TRUST).abs() < f32::EPSILON, || {
                format!("agent {agent} has trust {factor}")
            })?;
            ledger.verified += 1;
        }
        ledger.held(format!(
            "{} journaled trust changes are applied",
            trust_written.len()
        ));
    } else {
        ledger.held("trust changes: not over HTTP (they need the server's votes.admins)");
    }
    for (truth, _, subject) in &claims {
        let now = driver.resolve(subject, "value", "consensus", None, false).await?;
        ledger.require(now.winner == Some(*truth), || {
            format!(
                "{subject}: {TRUSTED} trusted voters were outvoted by {trolls} trolls of trust {TROLL_TRUST}"
            )
        })?;
    }
    ledger.held(format!(
        "{TRUSTED} trusted voters are not outvoted by {trolls} trolls"
    ));
    let first: Vec<Option<Hash>> = claims.iter().map(|(_, lie, _)| Some(*lie)).collect();
    ledger.require(moments.first().is_some_and(|(_, w)| *w == first), || {
        format!(
            "with only the trolls voting, the rival should win: {:?}",
            moments.first()
        )
    })?;
    for (offset, winners) in &moments {
        for ((_, _, subject), winner) in claims.iter().zip(winners) {
            let then = driver
                .resolve(subject, "value", "consensus", Some(*offset), false)
                .await?;
            ledger.require(then.winner == *winner, || {
                format!(
                    "{subject} as of offset {offset}: {:?}, but {winner:?} won then",
                    then.winner
                )
            })?;
        }
    }
    ledger.held(format!(
        "resolving as of each of {} recorded offsets gives that moment's winner",
        moments.len()
    ));
    if let Some(node) = node {
        node.shutdown().await.map_err(|e| SimError::Node(e.to_string()))?;
    }
    Ok(())
}

/// Every written vote is accounted for (live, or replaced by a newer vote of its voter), and
/// each assertion's totals equal a recount of the live votes.
async fn check_votes(
    driver: &Driver,
    ledger: &mut Ledger,
    claims: &[(Hash, Hash, String)],
    latest: &BTreeMap<(AgentId, Hash), (Hash, f32)>,
    votes_written: u64,
) -> Result<(), SimError> {
    let mut live_found = 0u64;
    for (truth, lie, _) in claims {
        for target in [truth, lie] {
            let expected: Vec<(Hash, f32)> = latest
                .iter()
                .filter(|((_, t), _)| t == target)
                .map(|(_, v)| *v)
                .collect();
            let live = driver.live_votes(target).await?;
            let missing = expected.iter().filter(|(hash, _)| !live.contains(hash)).count();
            ledger.require(missing == 0 && live.len() == expected.len(), || {
                format!(
                    "assertion {target}: {} live votes, {} expected, {missing} missing",
                    live.len(),
                    expected.len()
                )
            })?;
            live_found += live.len() as u64;
            let (count, weight) = driver.vote_totals(target).await?;
            let recount: f64 = expected.iter().map(|(_, w)| f64::from(*w)).sum();
            ledger.require(
                count == expected.len() as u64 && (weight - recount).abs() < 1e-6,
                || {
                    format!(
                        "assertion {target}: totals ({count}, {weight}) but a recount gives ({}, {recount})",
                        expected.len()
                    )
                },
            )?;
        }
    }
    // Each live vote stands for every vote its voter cast on that assertion: the older ones
    // were replaced by it, as they should be.
    ledger.require(live_found == latest.len() as u64, || {
        "live votes do not match the voters".into()
    })?;
    // Each live vote was found; every other acknowledged vote was replaced by its voter's
    // newer one, which was found in its place.
    ledger.verified += live_found;
    ledger.replaced += votes_written - live_found;
    ledger.held("each voter's many votes count once (only the newest is live)");
    ledger.held("vote totals equal a recount of the live votes (invariant 3)");
    Ok(())
}
