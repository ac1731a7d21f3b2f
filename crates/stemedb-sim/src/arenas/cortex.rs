//! Arena 1, cortex: every agent grows a supersession chain, one link a tick, on a pair of its
//! own; some chains end deprecated or retracted. A stranger's attempt to supersede another's
//! assertion is journaled but refused by the ingest. Then, for every chain, the recency lens
//! must name its head as the winner (or no winner, when the head is deprecated or retracted),
//! and history mode must bring back every link of the chain that the lifecycle filter admits.

use std::collections::BTreeSet;
use std::time::Instant;

use super::{Ledger, agents, base_ms, driver, node_dir, present, start_node, subject, timestamp, write};
use crate::driver::Refusal;
use crate::{SimConfig, SimError, Target};
use stemedb::Config;
use stemedb::protocol::{Assertion, Hash, Lifecycle, ObjectValue};

const ARENA: u8 = 1;

pub(super) async fn run(config: &SimConfig, ledger: &mut Ledger) -> Result<(), SimError> {
    let keys = agents(config, ARENA, config.agents.max(2));
    let node = match config.target {
        Target::Embedded => Some(start_node(
            config,
            Config::default(),
            &node_dir(config, ARENA, "node"),
        )?),
        Target::Http { .. } => None,
    };
    let driver = driver(config, node.as_ref(), &keys).await?;
    let base = base_ms(config.ticks.max(2) * keys.len());
    let links = config.ticks.max(2);
    let mut chains: Vec<Vec<Assertion>> = vec![Vec::new(); keys.len()];
    let mut hashes: Vec<Hash> = Vec::new();
    let load = Instant::now();
    for tick in 0..links {
        for (agent, key) in keys.iter().enumerate() {
            let mut link = Assertion::new(
                subject(config, ARENA, format!("entity-{agent}")),
                "state",
                ObjectValue::Integer(tick as i64),
                0.6,
                timestamp(base, tick, agent, keys.len()),
            );
            link.parent = chains[agent].last().map(Assertion::content_hash);
            // Every third chain ends deprecated, every third retracted.
            if tick + 1 == links {
                link.lifecycle = match agent % 3 {
                    1 => Lifecycle::Deprecated,
                    2 => Lifecycle::Retracted,
                    _ => Lifecycle::Active,
                };
            }
            link.sign(key);
            let ack = write(&driver, ledger, &link).await?;
            hashes.push(ack.hash);
            chains[agent].push(link);
        }
    }
    // Strangers: agent i + 1 tries to supersede agent i's head. Journaled, then refused.
    let mut strangers = Vec::new();
    for (agent, chain) in chains.iter().enumerate() {
        let Some(head) = chain.last() else { continue };
        let mut forged = Assertion::new(
            head.subject.clone(),
            head.predicate.clone(),
            ObjectValue::Text("not yours".into()),
            0.9,
            head.timestamp_ms + 1,
        );
        forged.parent = Some(head.content_hash());
        forged.sign(&keys[(agent + 1) % keys.len()]);
        // Embedded, it is acknowledged and refused when indexed; over HTTP the answer waits for
        // the index and says so.
        match super::retry_busy(|| driver.submit(&forged)).await? {
            Ok(_) | Err(Refusal::Rejected(_)) => {}
            Err(other) => {
                return Err(SimError::Node(format!(
                    "a stranger's write was refused: {other:?}"
                )));
            }
        }
        ledger.refused_expected += 1;
        strangers.push(forged.content_hash());
    }
    ledger.load += load.elapsed();
    driver.wait_caught_up(config.deadline()).await?;
    let found = present(&driver, &hashes).await?;
    ledger.verified += found;
    ledger.require(found == hashes.len() as u64, || {
        format!("{found} of {} acknowledged links read back", hashes.len())
    })?;
    let stored_strangers = present(&driver, &strangers).await?;
    ledger.require(stored_strangers == 0, || {
        format!("{stored_strangers} supersessions by a stranger were stored")
    })?;
    ledger.held("a supersession by anyone but the parent's author is refused");
    for chain in &chains {
        let Some(head) = chain.last() else { continue };
        let now = driver
            .resolve(&head.subject, &head.predicate, "recency", None, false)
            .await?;
        let admitted = |a: &Assertion| matches!(a.lifecycle, Lifecycle::Active | Lifecycle::Proposed);
        let expected = admitted(head).then(|| head.content_hash());
        ledger.require(now.winner == expected, || {
            format!(
                "{}: the winner is {:?}, the chain's head gives {expected:?}",
                head.subject, now.winner
            )
        })?;
        ledger.require(now.ranked.len() <= 1, || {
            format!(
                "{}: superseded links compete without history: {:?}",
                head.subject, now.ranked
            )
        })?;
        let history = driver
            .resolve(&head.subject, &head.predicate, "recency", None, true)
            .await?;
        let got: BTreeSet<Hash> = history.ranked.iter().copied().collect();
        let want: BTreeSet<Hash> = chain
            .iter()
            .filter(|a| admitted(a))
            .map(Assertion::content_hash)
            .collect();
        ledger.require(got == want, || {
            format!(
                "{}: history brings back {} links, the chain has {} admitted",
                head.subject,
                got.len(),
                want.len()
            )
        })?;
    }
    ledger.held("each chain's head wins; deprecated and retracted heads are filtered out");
    ledger.held("history mode brings back every admitted link of each chain");
    if let Some(node) = node {
        node.shutdown().await.map_err(|e| SimError::Node(e.to_string()))?;
    }
    Ok(())
}
