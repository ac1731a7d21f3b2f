//! Fault injection for the writer's I/O, for tests that prove what happens when a write or an
//! fdatasync fails (disk full, EIO) — failures a real disk produces only rarely.
//!
//! Production code uses [`NoFaults`]; each hook runs just before the real call and, by
//! returning an error, makes that call fail without being made.

use std::io;
use std::path::Path;

/// Hooks called by the journal writer before each write and fdatasync.
pub trait Faults: Send + Sync + std::fmt::Debug {
    /// Called before writing `len` bytes to `segment`; an error fails the write.
    fn before_write(&self, segment: &Path, len: usize) -> io::Result<()>;
    /// Called before the fdatasync of `segment`; an error fails the fdatasync.
    fn before_sync(&self, segment: &Path) -> io::Result<()>;
}

/// No faults: every call goes through.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFaults;

impl Faults for NoFaults {
    fn before_write(&self, _segment: &Path, _len: usize) -> io::Result<()> {
        Ok(())
    }

    fn before_sync(&self, _segment: &Path) -> io::Result<()> {
        Ok(())
    }
}
