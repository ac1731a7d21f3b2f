//! Durable named cursors: how far each consumer has durably processed the log.
//!
//! Stored as `cursors.json` in the journal directory, replaced atomically (write a temporary
//! file, fsync, rename, fsync the directory), so a crash leaves either the old or the new set.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::JournalError;
use super::segment::sync_dir;

/// File name of the cursor set.
const CURSORS_FILE: &str = "cursors.json";
/// Longest cursor name, in bytes; names are identifiers, not data.
pub const CURSOR_NAME_BYTES_MAX: usize = 128;
/// Most cursors; each is a consumer, and there are few.
pub const CURSORS_MAX: usize = 256;

/// The set of cursors, persisted on every change.
#[derive(Debug)]
pub struct Cursors {
    path: PathBuf,
    dir: PathBuf,
    offsets: BTreeMap<String, u64>,
}

impl Cursors {
    /// Loads the cursor set of `dir` (empty if none was saved).
    pub fn load(dir: &Path) -> Result<Self, JournalError> {
        let path = dir.join(CURSORS_FILE);
        let offsets = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                JournalError::Config(format!("{} is not a valid cursor file: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(JournalError::io("read cursors", &path, e)),
        };
        Ok(Self {
            path,
            dir: dir.to_owned(),
            offsets,
        })
    }

    /// Sets cursor `name` to `offset` (creating it) and persists the set.
    pub fn set(&mut self, name: &str, offset: u64) -> Result<(), JournalError> {
        if name.is_empty() || name.len() > CURSOR_NAME_BYTES_MAX {
            return Err(JournalError::Config(format!(
                "cursor name must be 1..={CURSOR_NAME_BYTES_MAX} bytes"
            )));
        }
        if !self.offsets.contains_key(name) && self.offsets.len() >= CURSORS_MAX {
            return Err(JournalError::Config(format!("at most {CURSORS_MAX} cursors")));
        }
        // Persist first: the in-memory set (which garbage collection trusts) never runs ahead
        // of the saved one.
        let mut next = self.offsets.clone();
        next.insert(name.to_owned(), offset);
        self.save(&next)?;
        self.offsets = next;
        Ok(())
    }

    /// Returns the highest cursor, or `None` if there is none.
    pub fn max(&self) -> Option<u64> {
        self.offsets.values().copied().max()
    }

    /// Returns the offset of cursor `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.offsets.get(name).copied()
    }

    /// Returns the lowest cursor, or `None` if there is none.
    pub fn min(&self) -> Option<u64> {
        self.offsets.values().copied().min()
    }

    fn save(&self, offsets: &BTreeMap<String, u64>) -> Result<(), JournalError> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(offsets).map_err(|e| JournalError::Config(e.to_string()))?;
        let mut file = std::fs::File::create(&tmp).map_err(|e| JournalError::io("create", &tmp, e))?;
        file.write_all(&bytes)
            .map_err(|e| JournalError::io("write", &tmp, e))?;
        file.sync_all().map_err(|e| JournalError::io("fsync", &tmp, e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| JournalError::io("rename", &self.path, e))?;
        sync_dir(&self.dir)
    }
}
