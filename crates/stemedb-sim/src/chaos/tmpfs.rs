//! [`Tmpfs`]: a size-limited tmpfs for the chaos arena's full disk (and the disk-full tests),
//! when running as root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a directory; unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on `path`, creating it; `None`
    /// when not running as root or when mounting fails.
    pub fn mount(path: &Path, size: &str) -> Option<Self> {
        if !rustix::process::geteuid().is_root() || std::fs::create_dir_all(path).is_err() {
            return None;
        }
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Self {
                path: path.to_owned(),
            }),
            Ok(output) => {
                tracing::warn!(stderr = %String::from_utf8_lossy(&output.stderr).trim(), "cannot mount a tmpfs");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "cannot run mount");
                None
            }
        }
    }
}

impl Tmpfs {
    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.path).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}
