//! Segment files: naming, listing, creation (durably), and positional reads.
//!
//! A segment is named by its base global offset as 20 decimal digits plus `.wal`, so names
//! sort in offset order. A new segment's file and its directory entry are fsynced before the
//! first record goes into it, so a crash can never leave a later segment without its name.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::JournalError;

/// Bytes of zeros written per call when preallocating: large enough for few syscalls, small
/// enough to be a trivial allocation.
const PREALLOCATE_CHUNK_BYTES: usize = 1 << 20;
/// Name of the spare segment, zero-filled ahead of a roll; not a `.wal` file until installed.
const SPARE_NAME: &str = "spare-segment.tmp";

/// Suffix of segment files.
const SEGMENT_SUFFIX: &str = ".wal";
/// Digits of the base offset in a segment name (u64::MAX has 20).
const SEGMENT_NAME_DIGITS: usize = 20;

/// Returns the file name of the segment starting at `base`.
pub fn segment_file_name(base: u64) -> String {
    format!("{base:0width$}{SEGMENT_SUFFIX}", width = SEGMENT_NAME_DIGITS)
}

/// Parses a segment file name; `None` if the name is not one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Lists the segments of `dir` in base-offset order. A `.wal` file with a malformed name is an
/// error (it may be a renamed segment); other files are left alone.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let entries = std::fs::read_dir(dir).map_err(|e| JournalError::io("list", dir, e))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| JournalError::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(SEGMENT_SUFFIX) {
            continue;
        }
        match parse_segment_name(name) {
            Some(base) => segments.push((base, entry.path())),
            None => return Err(JournalError::UnexpectedFile(entry.path())),
        }
    }
    segments.sort_unstable_by_key(|(base, _)| *base);
    Ok(segments)
}

/// Fsyncs a directory, making creations and removals in it durable.
pub fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::io("fsync directory", dir, e))
}

/// Creates the empty segment starting at `base` and makes it durable (file and directory).
pub fn create_segment(dir: &Path, base: u64) -> Result<(File, PathBuf), JournalError> {
    let path = dir.join(segment_file_name(base));
    let file = create_new_rw(&path, "create segment")?;
    file.sync_all()
        .map_err(|e| JournalError::io("fsync new segment", &path, e))?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// An open segment shared by the writer and readers; reads are positional, so sharing needs
/// no lock.
#[derive(Debug)]
pub struct SegmentHandle {
    /// Global offset of the segment's first byte.
    pub base: u64,
    /// The file.
    pub path: PathBuf,
    file: File,
}

impl SegmentHandle {
    /// Opens an existing segment for reading.
    pub fn open(base: u64, path: PathBuf) -> Result<Self, JournalError> {
        let file = File::open(&path).map_err(|e| JournalError::io("open segment", &path, e))?;
        Ok(Self { base, path, file })
    }

    /// Reads up to `buf.len()` bytes at `position` within the segment; returns bytes read
    /// (fewer only at the end of the file).
    pub fn read_at(&self, position: u64, buf: &mut [u8]) -> Result<usize, JournalError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.file.read_at(&mut buf[filled..], position + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(JournalError::io("read segment", &self.path, e)),
            }
        }
        Ok(filled)
    }
}

/// Reserves `len` bytes for `file` by writing zeros (which read as end-of-log) and makes that
/// durable, so that later appends overwrite allocated, written blocks: each fdatasync then
/// writes data only, with no file size or extent change to commit. (`fallocate` would leave
/// unwritten extents whose conversion costs a metadata commit per fdatasync on ext4.)
///
/// Best effort: where the disk lacks the space, the segment simply grows as it is written (and
/// a full disk surfaces as `StorageFull` on that write). Returns true if and only if the space
/// was reserved.
pub fn preallocate(file: &File, path: &Path, len: u64) -> Result<bool, JournalError> {
    let current = file
        .metadata()
        .map_err(|e| JournalError::io("stat segment", path, e))?
        .len();
    if current >= len {
        return Ok(true);
    }
    let zeros = vec![0u8; PREALLOCATE_CHUNK_BYTES];
    let mut at = current;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        if let Err(e) = file.write_all_at(&zeros[..n], at) {
            let _ = file.set_len(current);
            return match e.kind() {
                std::io::ErrorKind::StorageFull => Ok(false),
                _ => Err(JournalError::io("preallocate segment", path, e)),
            };
        }
        at += n as u64;
    }
    file.sync_all()
        .map_err(|e| JournalError::io("fsync preallocated segment", path, e))?;
    Ok(true)
}

/// Creates a zero-filled, durable spare segment of `len` bytes in `dir`, replacing any stale
/// one; returns its path, or `StorageFull` (leaving no spare) where the space is lacking.
/// Runs off the commit path, so a roll costs only a rename.
pub fn prepare_spare(dir: &Path, len: u64) -> Result<PathBuf, JournalError> {
    let path = dir.join(SPARE_NAME);
    remove_if_exists(&path).map_err(|e| JournalError::io("remove stale spare", &path, e))?;
    let file = create_new_rw(&path, "create spare segment")?;
    if !preallocate(&file, &path, len)? {
        // A spare that holds no reservation is worthless, and its partial zeros take space
        // the active segment may need.
        let _ = std::fs::remove_file(&path);
        return Err(JournalError::StorageFull { path });
    }
    Ok(path)
}

/// Removes the segment file starting at `base`, if one exists (a leftover of a failed roll).
pub fn remove_orphan(dir: &Path, base: u64) -> Result<(), JournalError> {
    let path = dir.join(segment_file_name(base));
    match remove_if_exists(&path) {
        Ok(true) => sync_dir(dir),
        Ok(false) => Ok(()),
        Err(e) => Err(JournalError::io("remove orphan segment", &path, e)),
    }
}

/// Removes the spare segment of `dir`, if any, giving its space back.
pub fn remove_spare(dir: &Path) {
    // Best effort: a spare that cannot be removed is replaced at the next preparation.
    let _ = remove_if_exists(&dir.join(SPARE_NAME));
}

/// Removes `path`; returns whether it existed.
fn remove_if_exists(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates `path` for reading and writing; fails if anything exists there.
fn create_new_rw(path: &Path, op: &'static str) -> Result<File, JournalError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| JournalError::io(op, path, e))
}

/// Installs a prepared spare as the segment starting at `base` (rename, then fsync the
/// directory) and opens it for writing.
pub fn install_spare(dir: &Path, spare: &Path, base: u64) -> Result<(File, PathBuf), JournalError> {
    let path = dir.join(segment_file_name(base));
    if path.exists() {
        return Err(JournalError::UnexpectedFile(path));
    }
    std::fs::rename(spare, &path).map_err(|e| JournalError::io("install spare segment", &path, e))?;
    sync_dir(dir)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| JournalError::io("open installed segment", &path, e))?;
    Ok((file, path))
}

/// Name of the lock file in a journal directory.
const LOCK_NAME: &str = "LOCK";

/// Takes an exclusive, non-blocking `flock` on `dir/LOCK`; the lock lasts as long as the
/// returned file is open (and dies with the process).
pub fn lock_dir(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join(LOCK_NAME);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| JournalError::io("open lock file", &path, e))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => Err(JournalError::Locked(dir.to_owned())),
        Err(errno) => Err(JournalError::io("lock journal directory", &path, errno.into())),
    }
}

/// Creates `dir` (and missing parents) and fsyncs its parent, so that the directory itself
/// survives a crash.
pub fn create_dir_durably(dir: &Path) -> Result<(), JournalError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| JournalError::io("create directory", dir, e))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}
