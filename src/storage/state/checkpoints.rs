//! The node's signed checkpoints, kept by tree size (the newest `keep`): its own signatures,
//! not a function of the log, so the state digest leaves them out.

use super::{State, StateError};

impl State {
    /// Stores the signed checkpoint `note` of tree size `size`, and lets the oldest go so that
    /// at most `keep` remain.
    pub fn store_checkpoint(&self, size: u64, note: &str, keep: usize) -> Result<(), StateError> {
        self.write(|txn, dbs| {
            dbs.checkpoints
                .put(txn, &size.to_be_bytes(), note.as_bytes())
                .map_err(StateError::lmdb("store checkpoint"))?;
            let count = dbs.checkpoints.len(txn).map_err(StateError::lmdb("count checkpoints"))?;
            let excess = usize::try_from(count).unwrap_or(usize::MAX).saturating_sub(keep);
            for _ in 0..excess {
                let first = dbs.checkpoints.first(txn).map_err(StateError::lmdb("read checkpoint"))?;
                let Some((key, _)) = first else { break };
                let key = key.to_vec();
                dbs.checkpoints
                    .delete(txn, &key)
                    .map_err(StateError::lmdb("drop checkpoint"))?;
            }
            Ok(())
        })
    }

    /// Returns the newest kept checkpoint of at most `size` leaves (`None`: the newest), as
    /// (tree size, note).
    pub fn checkpoint(&self, size: Option<u64>) -> Result<Option<(u64, String)>, StateError> {
        self.read(|txn, dbs| {
            let upper = size.unwrap_or(u64::MAX).to_be_bytes();
            let range = (std::ops::Bound::Unbounded, std::ops::Bound::Included(&upper[..]));
            let mut entries = dbs
                .checkpoints
                .rev_range(txn, &range)
                .map_err(StateError::lmdb("read checkpoint"))?;
            let Some(entry) = entries.next() else {
                return Ok(None);
            };
            let (key, value) = entry.map_err(StateError::lmdb("read checkpoint"))?;
            let size = super::layout::decode_u64("checkpoint size", key)?;
            let note = String::from_utf8(value.to_vec()).map_err(|e| StateError::corrupt("checkpoint", e))?;
            Ok(Some((size, note)))
        })
    }
}
