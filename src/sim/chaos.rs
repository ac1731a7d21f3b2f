//! Arena 3, chaos: four faults, each injected once per run, and nothing acknowledged lost.
//!
//! 1. **SIGKILL**: a child `stemedb serve` is killed with SIGKILL while agents write to it over
//!    HTTP, then restarted on the same directory; every write it had acknowledged is there.
//! 2. **Corruption**: with the child stopped, random bytes of records in sealed journal
//!    segments are flipped and the state is deleted, so that a node rebuilds it from the
//!    journal. The rebuild must quarantine the damage (reports in `journal/quarantine/`), and
//!    every acknowledged record outside the quarantined regions must be present.
//! 3. **Disk full**: a node on a small tmpfs (when running as root; a fault-injecting layer
//!    that fails writes with ENOSPC otherwise) writes until the disk is full. Writes are then
//!    refused, not acknowledged; once space returns they succeed again.
//! 4. **fsync error**: the journal's fdatasync fails (injected). The journal poisons: that
//!    batch and every later write are refused. After a restart every write acknowledged before
//!    is present.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::arenas::{Ledger, agents, base_ms, node_dir, present, retry, start_node, timestamp};
use super::driver::{Ack, Driver, Refusal};
use super::{Fault, SimConfig, SimError};
use crate::Config;
use crate::protocol::{AgentKey, Assertion, Hash, ObjectValue};
use crate::storage::journal::{Defect, Faults, QUARANTINE_DIR};

const ARENA: u8 = 3;
/// Segment size of the chaos nodes: small, so that a short run seals several segments.
const SEGMENT_BYTES: u64 = 16 << 10;
/// Concurrent writers against the child.
const WRITERS: usize = 16;

pub(crate) async fn run(config: &SimConfig, ledger: &mut Ledger) -> Result<(), SimError> {
    let keys = agents(config, ARENA, WRITERS);
    let dir = node_dir(config, ARENA, "child");
    let acked = sigkill(config, ledger, &keys, &dir).await?;
    corruption(config, ledger, &dir, &acked).await?;
    disk_full(config, ledger, &keys).await?;
    fsync_error(config, ledger, &keys).await?;
    Ok(())
}

fn node_config() -> Config {
    let mut config = Config::default();
    config.journal.segment_size_bytes = SEGMENT_BYTES;
    config
}

fn claim(config: &SimConfig, key: &AgentKey, writer: usize, n: usize, base: u64) -> Assertion {
    let mut claim = Assertion::new(
        super::arenas::subject(config, ARENA, format!("w{writer}")),
        format!("p{}", n % 8),
        ObjectValue::Text(format!(
            "record {n} of writer {writer}, padded to a realistic size: {}",
            "x".repeat(64)
        )),
        0.5,
        timestamp(base, n, writer, WRITERS),
    );
    claim.sign(key);
    claim
}

/// A child `stemedb serve` on `dir`; killed (and waited for) if dropped still running, so an
/// arena that fails midway leaves no process holding the directory.
struct Served {
    child: Child,
    base: String,
    token: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn serve(config: &SimConfig, dir: &Path) -> Result<Served, SimError> {
    std::fs::create_dir_all(dir).map_err(|e| SimError::Setup(format!("create {}: {e}", dir.display())))?;
    let file = dir.with_extension("toml");
    let toml =
        format!("[journal]\nsegment_size_bytes = {SEGMENT_BYTES}\n\n[telemetry]\nlog_level = \"warn\"\n");
    std::fs::write(&file, toml).map_err(|e| SimError::Setup(format!("write {}: {e}", file.display())))?;
    let mut child = Command::new(&config.binary)
        .arg("--config")
        .arg(&file)
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| SimError::Setup(format!("cannot start {}: {e}", config.binary.display())))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| SimError::Setup("no stdout".into()))?;
    // The serving line, read on a thread of its own so that the wait has a deadline.
    let (lines, line) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        for text in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = text.find("serving http://") {
                let url = text[at + "serving ".len()..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default();
                let _ = lines.send(url.trim_end_matches("/v1").to_owned());
            }
        }
    });
    let base = match line.recv_timeout(config.deadline) {
        Ok(base) => base,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SimError::Timeout("the child node did not start serving".into()));
        }
    };
    let token = std::fs::read_to_string(dir.join("api").join("admin.token"))
        .map_err(|e| SimError::Setup(format!("the child's admin token: {e}")))?
        .trim()
        .to_owned();
    Ok(Served { child, base, token })
}

/// Stops a child with SIGTERM and waits for it (SIGKILL after the deadline).
fn stop(config: &SimConfig, served: Served) -> Result<(), SimError> {
    let mut served = served;
    let pid = rustix::process::Pid::from_child(&served.child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = config.deadline();
    loop {
        match served.child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(SimError::Node(format!(
                    "the child exited with {status} on SIGTERM"
                )));
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = served.child.kill();
                let _ = served.child.wait();
                return Err(SimError::Timeout("the child did not stop on SIGTERM".into()));
            }
            // A child's exit cannot be awaited with a deadline otherwise; this is its wait.
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(SimError::Setup(format!("waiting for the child: {e}"))),
        }
    }
}

/// Fault 1: SIGKILL under load, then a restart.
async fn sigkill(
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
        let _ = served.child.kill();
        let _ = served.child.wait();
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

/// Fault 2: bytes flipped in sealed segments, the state rebuilt from the journal.
async fn corruption(
    config: &SimConfig,
    ledger: &mut Ledger,
    dir: &Path,
    acked: &[Ack],
) -> Result<(), SimError> {
    let journal = dir.join(crate::node::JOURNAL_DIR);
    let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(&journal)
        .map_err(|e| SimError::Setup(format!("read {}: {e}", journal.display())))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let base = path.file_name()?.to_str()?.strip_suffix(".wal")?.parse().ok()?;
            Some((base, path))
        })
        .collect();
    segments.sort();
    let Some(&(active, _)) = segments.last() else {
        return Err(SimError::Setup("the child wrote no segment".into()));
    };
    // Records wholly inside sealed segments, each a candidate victim.
    let mut sealed: Vec<&Ack> = acked.iter().filter(|a| a.offset + 256 < active).collect();
    sealed.sort_by_key(|a| a.offset);
    ledger.require(!sealed.is_empty(), || {
        "no acknowledged record lies in a sealed segment".into()
    })?;
    let mut rng = fastrand::Rng::with_seed(config.seed ^ 0xC4A05);
    // Three distinct victims (a bit flipped twice would cancel out).
    let mut picks: Vec<usize> = (0..sealed.len()).collect();
    rng.shuffle(&mut picks);
    let mut flipped = Vec::new();
    for &pick in picks.iter().take(3) {
        let victim = sealed[pick];
        let (segment_base, path) = segments
            .iter()
            .rev()
            .find(|(b, _)| *b <= victim.offset)
            .cloned()
            .unwrap_or_default();
        let at = crate::storage::journal::layout::SEGMENT_HEADER_BYTES as u64 + victim.offset - segment_base
            + 24
            + rng.u64(..32);
        let mut bytes =
            std::fs::read(&path).map_err(|e| SimError::Setup(format!("read {}: {e}", path.display())))?;
        if let Some(byte) = bytes.get_mut(at as usize) {
            *byte ^= 1 << rng.u8(..8);
            flipped.push(victim.offset);
        }
        std::fs::write(&path, bytes)
            .map_err(|e| SimError::Setup(format!("write {}: {e}", path.display())))?;
    }
    // The state goes: a node rebuilds it from the journal, and so reads every record.
    let _ = std::fs::remove_dir_all(dir.join(crate::node::STATE_DIR));
    let node = start_node(config, node_config(), dir)?;
    node.wait_caught_up(config.deadline())
        .await
        .map_err(|e| SimError::Timeout(e.to_string()))?;
    let regions = quarantined(&journal)?;
    let destroyed: Vec<&Ack> = acked
        .iter()
        .filter(|a| {
            regions
                .iter()
                .any(|(start, len)| a.offset >= *start && a.offset < start + len)
        })
        .collect();
    let kept: Vec<Hash> = acked
        .iter()
        .filter(|a| !destroyed.iter().any(|d| d.offset == a.offset))
        .map(|a| a.hash)
        .collect();
    let driver = Driver::Embedded(node.clone());
    let found = present(&driver, &kept).await?;
    node.shutdown().await.map_err(|e| SimError::Node(e.to_string()))?;
    ledger.verified += found;
    ledger.destroyed += destroyed.len() as u64;
    // The damage is quarantined exactly: each flipped record lies in a region, each region
    // holds a flipped record, and no more records are lost than were flipped.
    let inside = |offset: u64| {
        regions
            .iter()
            .any(|(start, len)| offset >= *start && offset < start + len)
    };
    let every_flip_found = flipped.iter().all(|&offset| inside(offset));
    let every_region_flipped = regions.iter().all(|(start, len)| {
        flipped
            .iter()
            .any(|&offset| offset >= *start && offset < start + len)
    });
    let survived = !regions.is_empty()
        && every_flip_found
        && every_region_flipped
        && destroyed.len() <= flipped.len()
        && found == kept.len() as u64;
    ledger.faults.push(Fault {
        kind: "corruption".into(),
        detail: format!(
            "{} bytes flipped in sealed segments; {} regions quarantined with reports; {} records destroyed, {found} of the other {} present",
            flipped.len(),
            regions.len(),
            destroyed.len(),
            kept.len()
        ),
        survived,
    });
    ledger.require(!regions.is_empty() && every_flip_found, || {
        format!(
            "flipped records at {flipped:?}, quarantined regions {regions:?}: not every flip was quarantined"
        )
    })?;
    ledger.require(every_region_flipped && destroyed.len() <= flipped.len(), || {
        format!(
            "quarantined regions {regions:?} reach beyond the {} flipped records",
            flipped.len()
        )
    })?;
    ledger.require(found == kept.len() as u64, || {
        format!(
            "{} acknowledged records outside the damage are missing",
            kept.len() as u64 - found
        )
    })?;
    ledger.held("corruption is quarantined and reported; every other record is present (invariant 4)");
    Ok(())
}

/// The quarantined regions of a journal directory, from its reports.
fn quarantined(journal: &Path) -> Result<Vec<(u64, u64)>, SimError> {
    let dir = journal.join(QUARANTINE_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut regions = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "json") {
            let bytes =
                std::fs::read(&path).map_err(|e| SimError::Setup(format!("read {}: {e}", path.display())))?;
            let defect: Defect = serde_json::from_slice(&bytes).map_err(|e| {
                SimError::Invariant(format!("an unreadable quarantine report {}: {e}", path.display()))
            })?;
            if !defect.tail {
                regions.push((defect.offset, defect.length));
            }
        }
    }
    Ok(regions)
}

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
async fn disk_full(config: &SimConfig, ledger: &mut Ledger, keys: &[AgentKey]) -> Result<(), SimError> {
    let dir = node_dir(config, ARENA, "full");
    // The journal alone on the small tmpfs: the state's own writes never meet the full disk.
    let mount = super::chaos_disk::Tmpfs::mount(&dir.join("data").join(crate::node::JOURNAL_DIR), "12m");
    let faults = Arc::new(Injected::default());
    let on_tmpfs = mount.is_some();
    let node = match &mount {
        Some(_) => start_node(config, node_config(), &dir.join("data"))?,
        None => crate::node::Node::start_with_faults(node_config(), dir.join("data"), faults.clone())
            .map_err(|e| SimError::Node(e.to_string()))?,
    };
    let driver = Driver::Embedded(node.clone());
    // Room to give back once the disk is full: a filler file on the tmpfs.
    let filler = dir.join("data").join(crate::node::JOURNAL_DIR).join("filler");
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
    ledger
        .held("a full disk refuses writes without acknowledging them, and writes resume when space returns");
    Ok(())
}

/// Fault 4: an fdatasync fails; the journal poisons.
async fn fsync_error(config: &SimConfig, ledger: &mut Ledger, keys: &[AgentKey]) -> Result<(), SimError> {
    let dir = node_dir(config, ARENA, "fsync");
    let faults = Arc::new(Injected::default());
    let node = crate::node::Node::start_with_faults(node_config(), &dir, faults.clone())
        .map_err(|e| SimError::Node(e.to_string()))?;
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
    ledger.held("after a failed fdatasync the journal poisons and acknowledges nothing more");
    Ok(())
}
