//! Fault 2: bytes flipped in sealed segments, the state rebuilt from the journal.

use std::path::Path;

use super::node_config;
use crate::arenas::{Ledger, present, start_node};
use crate::driver::{Ack, Driver};
use crate::{Fault, SimConfig, SimError};
use stemedb::protocol::Hash;
use stemedb::storage::journal::{Defect, QUARANTINE_DIR, list_segments};

/// Fault 2: bytes flipped in sealed segments, the state rebuilt from the journal.
pub(super) async fn corruption(
    config: &SimConfig,
    ledger: &mut Ledger,
    dir: &Path,
    acked: &[Ack],
) -> Result<(), SimError> {
    let journal = dir.join(stemedb::node::JOURNAL_DIR);
    let segments = list_segments(&journal).map_err(|e| SimError::Setup(e.to_string()))?;
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
        let at = stemedb::storage::journal::SEGMENT_HEADER_BYTES as u64 + victim.offset - segment_base
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
    let _ = std::fs::remove_dir_all(dir.join(stemedb::node::STATE_DIR));
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
