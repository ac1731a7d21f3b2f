//! Arena 0, spine: every agent writes every tick, all at once; every acknowledged write is read
//! back. Embedded, the node then restarts and everything is read back again, and a node
//! rebuilt from a copy of the journal alone holds exactly the same state (invariant 2).

use std::time::Instant;

use futures_util::future::join_all;

use super::{Ledger, agents, base_ms, driver, node_dir, present, start_node, subject, timestamp, write};
use crate::{SimConfig, SimError, Target};
use stemedb::Config;
use stemedb::protocol::{Assertion, Hash, ObjectValue};

const ARENA: u8 = 0;

pub(super) async fn run(config: &SimConfig, ledger: &mut Ledger) -> Result<(), SimError> {
    let keys = agents(config, ARENA, config.agents);
    let dir = node_dir(config, ARENA, "node");
    let node = match config.target {
        Target::Embedded => Some(start_node(config, Config::default(), &dir)?),
        Target::Http { .. } => None,
    };
    let driver = driver(config, node.as_ref(), &keys).await?;
    let base = base_ms(config.ticks * config.agents);
    let mut hashes: Vec<Hash> = Vec::with_capacity(config.agents * config.ticks);
    let load = Instant::now();
    for tick in 0..config.ticks {
        let claims: Vec<Assertion> = keys
            .iter()
            .enumerate()
            .map(|(agent, key)| {
                let mut claim = Assertion::new(
                    subject(config, ARENA, format!("agent-{agent}")),
                    format!("p{}", tick % 4),
                    ObjectValue::Integer((tick * config.agents + agent) as i64),
                    0.5,
                    timestamp(base, tick, agent, config.agents),
                );
                claim.sign(key);
                claim
            })
            .collect();
        // Every agent at once: one future each, driven together.
        let mut round = Vec::with_capacity(claims.len());
        for claim in &claims {
            round.push(async {
                let mut own = Ledger::default();
                let ack = write(&driver, &mut own, claim).await;
                (ack, own)
            });
        }
        for (ack, own) in join_all(round).await {
            let ack = ack?;
            ledger.written += own.written;
            ledger.latencies_us.extend(own.latencies_us);
            ledger.require(claims.iter().any(|c| c.content_hash() == ack.hash), || {
                format!("an acknowledgement names {} which no agent wrote", ack.hash)
            })?;
            hashes.push(ack.hash);
        }
    }
    ledger.load += load.elapsed();
    driver.wait_caught_up(config.deadline()).await?;
    let found = present(&driver, &hashes).await?;
    ledger.require(found == hashes.len() as u64, || {
        format!("{} of {} acknowledged writes read back", found, hashes.len())
    })?;
    ledger.held("every acknowledged write reads back by its hash");
    let Some(node) = node else {
        ledger.verified += found;
        ledger.held("restart: not in HTTP mode (the server is not the simulation's to restart)");
        return Ok(());
    };
    // Restart: everything again, after a clean shutdown.
    let before = node.dump().map_err(|e| SimError::Node(e.to_string()))?;
    let digest = node.state_digest().map_err(|e| SimError::Node(e.to_string()))?;
    node.shutdown().await.map_err(|e| SimError::Node(e.to_string()))?;
    let node = start_node(config, Config::default(), &dir)?;
    let driver = driver_of(&node);
    driver.wait_caught_up(config.deadline()).await?;
    let found = present(&driver, &hashes).await?;
    ledger.verified += found;
    let after = node.dump().map_err(|e| SimError::Node(e.to_string()))?;
    ledger.require(after == before, || {
        "the state after a restart differs from the state before".into()
    })?;
    ledger.held("after a restart, every write reads back and the state is unchanged");
    // A node fed only a copy of the journal rebuilds the same state.
    node.shutdown().await.map_err(|e| SimError::Node(e.to_string()))?;
    let rebuilt_dir = node_dir(config, ARENA, "rebuilt");
    copy_dir(
        &dir.join(stemedb::node::JOURNAL_DIR),
        &rebuilt_dir.join(stemedb::node::JOURNAL_DIR),
    )?;
    let rebuilt = start_node(config, Config::default(), &rebuilt_dir)?;
    driver_of(&rebuilt).wait_caught_up(config.deadline()).await?;
    let replayed = rebuilt.dump().map_err(|e| SimError::Node(e.to_string()))?;
    let replayed_digest = rebuilt
        .state_digest()
        .map_err(|e| SimError::Node(e.to_string()))?;
    rebuilt
        .shutdown()
        .await
        .map_err(|e| SimError::Node(e.to_string()))?;
    ledger.require(replayed == before, || {
        "a state rebuilt from the journal alone differs from the live state".into()
    })?;
    ledger.require(replayed_digest == digest, || {
        format!("the rebuilt state's digest {replayed_digest} differs from the live {digest}")
    })?;
    ledger.held(format!(
        "a state rebuilt from the journal alone equals the live one, digest {} (invariant 2)",
        digest.hash
    ));
    Ok(())
}

fn driver_of(node: &stemedb::node::Node) -> crate::driver::Driver {
    crate::driver::Driver::Embedded(node.clone())
}

/// Copies the files of `from` (one level, as a journal directory is) into `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<(), SimError> {
    let failed =
        |e: std::io::Error| SimError::Setup(format!("copy {} to {}: {e}", from.display(), to.display()));
    std::fs::create_dir_all(to).map_err(failed)?;
    for entry in std::fs::read_dir(from).map_err(failed)? {
        let path = entry.map_err(failed)?.path();
        if path.is_file()
            && path
                .file_name()
                .is_some_and(|n| n != "LOCK" && !n.to_string_lossy().ends_with(".tmp"))
        {
            std::fs::copy(&path, to.join(path.file_name().unwrap_or_default())).map_err(failed)?;
        }
    }
    Ok(())
}
