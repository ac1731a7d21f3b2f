//! Fault 1: SIGKILL of a child node under load, then a restart.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use super::child::{self, serve, stop};
use super::{WRITERS, claim};
use crate::arenas::{Ledger, base_ms, present};
use crate::driver::{Ack, Driver, Refusal};
use crate::{Fault, SimConfig, SimError};
use stemedb::protocol::AgentKey;
use stemedb::protocol::Hash;

/// Fault 1: SIGKILL under load, then a restart.
pub(super) async fn sigkill(
    config: &SimConfig,
    ledger: &mut Ledger,
    keys: &[AgentKey],
    dir: &Path,
) -> Result<Vec<Ack>, SimError> {
    let served = serve(config, dir)?;
    let driver = Driver::http(
        &served.base,
        &served.token,
        &keys.iter().map(AgentKey::agent_id).collect::<Vec<_>>(),
    )
    .await?;
    let kill_after = (config.agents * config.ticks).clamp(WRITERS * 40, 4000);
    let base = base_ms(0);
    let killed = AtomicBool::new(false);
    let count = AtomicUsize::new(0);
    let (ticker, mut ticks) = tokio::sync::watch::channel(0usize);
    let load = Instant::now();
    let writers = keys.iter().enumerate().map(|(writer, key)| {
        let (driver, killed, count, ticker) = (&driver, &killed, &count, &ticker);
        async move {
            let mut acks = Vec::new();
            let mut latencies = Vec::new();
            for n in 0.. {
                if killed.load(Ordering::Acquire) {
                    break;
                }
                let started = Instant::now();
                match driver.submit(&claim(config, key, writer, n, base)).await {
                    Ok(Ok(ack)) => {
                        acks.push(ack);
                        latencies.push(started.elapsed().as_micros() as u64);
                        ticker.send_replace(count.fetch_add(1, Ordering::AcqRel) + 1);
                    }
                    Ok(Err(Refusal::Busy)) => actix_rt::task::yield_now().await,
                    // After the kill: the connection died with the child; not acknowledged.
                    Ok(Err(_)) | Err(_) if killed.load(Ordering::Acquire) => break,
                    // Before it, any other answer is a failure of the node under test.
                    Ok(Err(refusal)) => {
                        return Err(SimError::Node(format!(
                            "a write before the kill was refused: {refusal:?}"
                        )));
                    }
                    Err(error) => return Err(error),
                }
            }
            Ok((acks, latencies))
        }
    });
    let mut served = served;
    let killer = async {
        let reached = actix_rt::time::timeout(config.deadline, ticks.wait_for(|n| *n >= kill_after)).await;
        // Marked first: a writer whose connection dies now knows why.
        killed.store(true, Ordering::Release);
        child::kill(&mut served);
        reached
            .map(|_| ())
            .map_err(|_| SimError::Timeout(format!("{kill_after} writes were not acknowledged")))
    };
    let (results, killed_in_time) = futures_util::join!(futures_util::future::join_all(writers), killer);
    killed_in_time?;
    ledger.load += load.elapsed();
    let mut acked = Vec::new();
    for result in results {
        let (acks, latencies) = result?;
        acked.extend(acks);
        ledger.latencies_us.extend(latencies);
    }
    ledger.written += acked.len() as u64;
    let restarted = serve(config, dir)?;
    let driver = Driver::http(
        &restarted.base,
        &restarted.token,
        &keys.iter().map(AgentKey::agent_id).collect::<Vec<_>>(),
    )
    .await?;
    let hashes: Vec<Hash> = acked.iter().map(|a| a.hash).collect();
    let found = present(&driver, &hashes).await?;
    stop(config, restarted)?;
    let survived = found == hashes.len() as u64;
    ledger.faults.push(Fault {
        kind: "sigkill".into(),
        detail: format!(
            "child killed after {} acknowledged writes; {found} found after the restart",
            hashes.len()
        ),
        survived,
    });
    ledger.require(survived, || {
        format!(
            "{} acknowledged writes lost to a SIGKILL",
            hashes.len() as u64 - found
        )
    })?;
    ledger.held("every write acknowledged before a SIGKILL is there after the restart (invariant 1)");
    Ok(acked)
}
