//! Segment files: naming, listing, creation (durably), and positional reads.
//!
//! A segment is named by its base global offset as 20 decimal digits plus `.wal`, so names
//! sort in offset order; its layout (header, records, trailer) is drawn in `layout`. A new
//! segment's header, file and directory entry are fsynced before the first record goes into
//! it, so a crash can never leave a later segment without its name or its header.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::error::JournalError;
use super::format::JournalId;
use super::layout::{self, SEGMENT_HEADER_BYTES};

/// Bytes of zeros written per call when preallocating: large enough for few syscalls, small
/// enough to be a trivial allocation.
const PREALLOCATE_CHUNK_BYTES: usize = 1 << 20;
/// Name of the spare segment, zero-filled ahead of a roll; not a `.wal` file until installed.
const SPARE_NAME: &str = "spare-segment.tmp";

/// The path of the spare segment prepared in `dir` for the next roll (it may not exist).
pub fn spare_path(dir: &Path) -> PathBuf {
    dir.join(SPARE_NAME)
}

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

/// Creates the segment starting at `base`, with its header, and makes it durable (file and
/// directory).
pub fn create_segment(dir: &Path, id: JournalId, base: u64) -> Result<(File, PathBuf), JournalError> {
    let path = dir.join(segment_file_name(base));
    let file = create_new_rw(&path, "create segment")?;
    file.write_all_at(&layout::encode_header(id, base), 0)
        .map_err(|e| JournalError::io("write segment header", &path, e))?;
    file.sync_all()
        .map_err(|e| JournalError::io("fsync new segment", &path, e))?;
    sync_dir(dir)?;
    Ok((file, path))
}

/// Most segment files held open for reading at once, across all readers: enough for the
/// segments being read and written, while a journal of years of history (thousands of
/// segments) never holds thousands of descriptors.
pub const OPEN_SEGMENT_FILES_MAX: usize = 32;

/// The segment files open for reading: opened on first use, the least recently used closed
/// when more than [`OPEN_SEGMENT_FILES_MAX`] would be open.
#[derive(Debug, Default)]
pub struct OpenFiles {
    inner: Mutex<OpenFilesInner>,
}

#[derive(Debug, Default)]
struct OpenFilesInner {
    tick: u64,
    /// (base, file, last use).
    files: Vec<(u64, Arc<File>, u64)>,
}

impl OpenFiles {
    /// Returns the open file of the segment at `base`, opening `path` if needed.
    fn get(&self, base: u64, path: &Path) -> Result<Arc<File>, JournalError> {
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(entry) = inner.files.iter_mut().find(|(b, _, _)| *b == base) {
            entry.2 = tick;
            return Ok(Arc::clone(&entry.1));
        }
        let file = Arc::new(File::open(path).map_err(|e| JournalError::io("open segment", path, e))?);
        if inner.files.len() >= OPEN_SEGMENT_FILES_MAX
            && let Some(oldest) = (0..inner.files.len()).min_by_key(|&i| inner.files[i].2)
        {
            inner.files.swap_remove(oldest);
        }
        inner.files.push((base, Arc::clone(&file), tick));
        Ok(file)
    }

    /// Closes the file of the segment at `base` (it is being removed).
    pub fn forget(&self, base: u64) {
        self.inner.lock().files.retain(|(b, _, _)| *b != base);
    }

    /// Returns how many files are open.
    pub fn count(&self) -> usize {
        self.inner.lock().files.len()
    }
}

/// A segment shared by the writer and readers. Its file is opened lazily through
/// [`OpenFiles`]; reads are positional, so sharing needs no lock.
#[derive(Debug)]
pub struct SegmentHandle {
    /// Global offset of the segment's first record.
    pub base: u64,
    /// The file.
    pub path: PathBuf,
    files: Arc<OpenFiles>,
}

impl SegmentHandle {
    /// Describes an existing segment; nothing is opened yet.
    pub fn new(base: u64, path: PathBuf, files: Arc<OpenFiles>) -> Self {
        Self { base, path, files }
    }

    /// Returns when this sealed segment was sealed, from its trailer (the newest of its
    /// records is no younger). A missing or damaged trailer is an error.
    pub fn sealed_ms(&self, seed: super::format::Seed) -> Result<u64, JournalError> {
        let file = self.files.get(self.base, &self.path)?;
        let len = file
            .metadata()
            .map_err(|e| JournalError::io("stat segment", &self.path, e))?
            .len();
        let mut bytes = [0u8; layout::SEGMENT_TRAILER_BYTES];
        let at = len.saturating_sub(bytes.len() as u64);
        read_full_at(&file, &self.path, at, &mut bytes)?;
        layout::Trailer::decode(&bytes, seed)
            .map(|t| t.sealed_ms)
            .ok_or_else(|| JournalError::BadSegmentHeader {
                path: self.path.clone(),
                reason: "no valid trailer".to_owned(),
            })
    }

    /// Reads up to `buf.len()` bytes of records at `position` (bytes past the segment's base);
    /// returns bytes read (fewer only at the end of the file).
    pub fn read_at(&self, position: u64, buf: &mut [u8]) -> Result<usize, JournalError> {
        let file = self.files.get(self.base, &self.path)?;
        read_full_at(&file, &self.path, SEGMENT_HEADER_BYTES as u64 + position, buf)
    }
}

/// Reads up to `buf.len()` bytes at file position `at`; fewer only at the end of the file.
pub fn read_full_at(file: &File, path: &Path, at: u64, buf: &mut [u8]) -> Result<usize, JournalError> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], at + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(JournalError::io("read segment", path, e)),
        }
    }
    Ok(filled)
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

/// Installs a prepared spare as the segment starting at `base`: writes its header and makes it
/// durable, then renames it into place and fsyncs the directory, so a segment is never named
/// without its header.
pub fn install_spare(
    dir: &Path,
    spare: &Path,
    id: JournalId,
    base: u64,
) -> Result<(File, PathBuf), JournalError> {
    let path = dir.join(segment_file_name(base));
    if path.exists() {
        return Err(JournalError::UnexpectedFile(path));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(spare)
        .map_err(|e| JournalError::io("open spare segment", spare, e))?;
    file.write_all_at(&layout::encode_header(id, base), 0)
        .and_then(|()| file.sync_data())
        .map_err(|e| JournalError::io("write segment header", spare, e))?;
    std::fs::rename(spare, &path).map_err(|e| JournalError::io("install spare segment", &path, e))?;
    sync_dir(dir)?;
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
