//! Faults 3 and 4: a full disk, and a failing fdatasync.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::tmpfs::Tmpfs;
use super::{ARENA, claim, node_config};
use crate::arenas::{Ledger, base_ms, node_dir, present, retry, start_node};
use crate::driver::{Driver, Refusal};
use crate::{Fault, SimConfig, SimError};
use stemedb::protocol::AgentKey;
use stemedb::storage::journal::Faults;

/// A fault layer: ENOSPC on writes while `full`, EIO on fdatasync once `fail_sync` is set.
#[derive(Debug, Default)]
struct Injected {
    full: AtomicBool,
    fail_sync: AtomicBool,
}

impl Faults for Injected {
    fn before_write(&self, _segment: &Path, _len: usize) -> std::io::Result<()> {
        if self.full.load(Ordering::Acquire) {
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        Ok(())
    }

    fn before_sync(&self, _segment: &Path) -> std::io::Result<()> {
        if self.fail_sync.load(Ordering::Acquire) {
            return Err(std::io::Error::other("injected EIO on fdatasync"));
        }
        Ok(())
    }
}

/// Fault 3: the disk fills, then space returns.
pub(super) async fn disk_full(
    config: &SimConfig,
    ledger: &mut Ledger,
    keys: &[AgentKey],
) -> Result<(), SimError> {
    let dir = node_dir(config, ARENA, "full");
    // The journal alone on the small tmpfs: the state's own writes never meet the full disk.
    let mount = Tmpfs::mount(&dir.join("data").join(stemedb::node::JOURNAL_DIR), "12m");
    let faults = Arc::new(Injected::default());
    let on_tmpfs = mount.is_some();
    let node = match &mount {
        Some(_) => start_node(config, node_config(), &dir.join("data"))?,
        None => start_with_faults(dir.join("data"), faults.clone())?,
    };
    let driver = Driver::Embedded(node.clone());
    // Room to give back once the disk is full: a filler file on the tmpfs.
    let filler = dir.join("data").join(stemedb::node::JOURNAL_DIR).join("filler");
    if mount.is_some() {
        std::fs::write(&filler, vec![1u8; 3 << 20]).map_err(|e| SimError::Setup(format!("filler: {e}")))?;
    }
    let base = base_ms(0);
    let mut hashes = Vec::new();
    let mut refused = 0u64;
    let mut n = 0;
    let limit = 200_000;
    while refused == 0 && n < limit {
        if mount.is_none() && n == 200 {
            faults.full.store(true, Ordering::Release);
        }
        let started = Instant::now();
        match driver
            .submit(&claim(config, &keys[n % keys.len()], n % keys.len(), n, base))
            .await?
        {
            Ok(ack) => {
                ledger.acked(started);
                hashes.push(ack.hash);
            }
            Err(Refusal::Full) => refused += 1,
            Err(other) => {
                return Err(SimError::Node(format!(
                    "a write on a filling disk was refused with {other:?}"
                )));
            }
        }
        n += 1;
    }
    ledger.require(refused > 0, || format!("the disk never filled in {limit} writes"))?;
    ledger.refused_expected += refused;
    // Space returns; writes succeed again.
    if mount.is_some() {
        std::fs::remove_file(&filler).map_err(|e| SimError::Setup(format!("remove filler: {e}")))?;
    } else {
        faults.full.store(false, Ordering::Release);
    }
    for m in 0..20 {
        let started = Instant::now();
        let record = claim(config, &keys[m % keys.len()], m % keys.len(), n + m, base);
        let ack = retry(|| driver.submit(&record)).await?;
        ledger.acked(started);
        hashes.push(ack.hash);
    }
    node.wait_caught_up(config.deadline())
        .await
        .map_err(|e| SimError::Timeout(e.to_string()))?;
    let found = present(&driver, &hashes).await?;
    node.shutdown().await.map_err(|e| SimError::Node(e.to_string()))?;
    drop(mount);
    ledger.verified += found;
    let survived = found == hashes.len() as u64;
    ledger.faults.push(Fault {
        kind: "disk_full".into(),
        detail: format!(
            "{} ({refused} writes refused as storage full); after space returned, {} writes in all, {found} present",
            if on_tmpfs { "a 12 MiB tmpfs" } else { "injected ENOSPC (not root: no tmpfs)" },
            hashes.len()
        ),
        survived,
    });
    ledger.require(survived, || {
        format!("{} writes lost on a filling disk", hashes.len() as u64 - found)
    })?;
    ledger
        .held("a full disk refuses writes without acknowledging them, and writes resume when space returns");
    Ok(())
}

/// Fault 4: an fdatasync fails; the journal poisons.
pub(super) async fn fsync_error(
    config: &SimConfig,
    ledger: &mut Ledger,
    keys: &[AgentKey],
) -> Result<(), SimError> {
    let dir = node_dir(config, ARENA, "fsync");
    let faults = Arc::new(Injected::default());
    let node = start_with_faults(dir.clone(), faults.clone())?;
    let driver = Driver::Embedded(node.clone());
    let base = base_ms(0);
    let mut hashes = Vec::new();
    let before = (config.ticks * 4).max(10);
    for n in 0..before {
        let started = Instant::now();
        let record = claim(config, &keys[n % keys.len()], n % keys.len(), n, base);
        let ack = retry(|| driver.submit(&record)).await?;
        ledger.acked(started);
        hashes.push(ack.hash);
    }
    faults.fail_sync.store(true, Ordering::Release);
    let mut refused = 0;
    for n in before..before + 10 {
        match driver
            .submit(&claim(config, &keys[n % keys.len()], n % keys.len(), n, base))
            .await?
        {
            Ok(ack) => {
                return Err(SimError::Invariant(format!(
                    "a write was acknowledged after an fdatasync failed: {}",
                    ack.hash
                )));
            }
            Err(Refusal::Unavailable(_)) => refused += 1,
            Err(other) => {
                return Err(SimError::Invariant(format!(
                    "after a failed fdatasync a write was refused as {other:?}"
                )));
            }
        }
    }
    // Even once fdatasync works again, the poisoned journal acknowledges nothing.
    faults.fail_sync.store(false, Ordering::Release);
    if let Ok(ack) = driver
        .submit(&claim(config, &keys[0], 0, before + 10, base))
        .await?
    {
        return Err(SimError::Invariant(format!(
            "a poisoned journal acknowledged {}",
            ack.hash
        )));
    }
    refused += 1;
    ledger.refused_expected += refused;
    let _ = node.shutdown().await;
    let node = start_node(config, node_config(), &dir)?;
    node.wait_caught_up(config.deadline())
        .await
        .map_err(|e| SimError::Timeout(e.to_string()))?;
    let found = present(&Driver::Embedded(node.clone()), &hashes).await?;
    node.shutdown().await.map_err(|e| SimError::Node(e.to_string()))?;
    ledger.verified += found;
    let survived = found == hashes.len() as u64;
    ledger.faults.push(Fault {
        kind: "fsync_error".into(),
        detail: format!("fdatasync failed after {} writes; {refused} later writes refused; {found} present after a restart", hashes.len()),
        survived,
    });
    ledger.require(survived, || {
        format!(
            "{} writes lost to a failed fdatasync",
            hashes.len() as u64 - found
        )
    })?;
    ledger.held("after a failed fdatasync the journal poisons and acknowledges nothing more");
    Ok(())
}

/// Starts an embedded node on `dir` whose journal's writes and fdatasyncs go through `faults`.
fn start_with_faults(dir: std::path::PathBuf, faults: Arc<Injected>) -> Result<stemedb::Node, SimError> {
    let config = node_config();
    let journal = stemedb::log::LocalJournal::new(config.journal.clone()).with_faults(faults);
    stemedb::Node::start_with_log(config, dir, journal).map_err(|e| SimError::Node(e.to_string()))
}
