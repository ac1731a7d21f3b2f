//! A child `stemedb serve` process: started on a data directory, stopped with SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::SEGMENT_BYTES;
use crate::{SimConfig, SimError};

/// A child `stemedb serve` on `dir`; killed (and waited for) if dropped still running, so an
/// arena that fails midway leaves no process holding the directory.
pub(super) struct Served {
    /// The process, until `stop` takes it.
    child: Option<Child>,
    /// Its base URL.
    pub(super) base: String,
    /// Its admin token.
    pub(super) token: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child
            && let Ok(None) = child.try_wait()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(super) fn serve(config: &SimConfig, dir: &Path) -> Result<Served, SimError> {
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
    Ok(Served {
        child: Some(child),
        base,
        token,
    })
}

/// Stops a child with SIGTERM and waits for it to exit, on a thread that blocks in `wait`,
/// for at most the deadline (then SIGKILL).
pub(super) fn stop(config: &SimConfig, mut served: Served) -> Result<(), SimError> {
    let Some(mut child) = served.child.take() else {
        return Ok(());
    };
    let pid = rustix::process::Pid::from_child(&child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let (exited, exit) = crossbeam_channel::bounded(1);
    let waiter = std::thread::spawn(move || {
        let _ = exited.send(child.wait());
    });
    let outcome = match exit.recv_timeout(config.deadline) {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(SimError::Node(format!(
            "the child exited with {status} on SIGTERM"
        ))),
        Ok(Err(e)) => Err(SimError::Setup(format!("waiting for the child: {e}"))),
        Err(_) => {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            Err(SimError::Timeout("the child did not stop on SIGTERM".into()))
        }
    };
    let _ = waiter.join();
    outcome
}

/// Kills a child with SIGKILL and reaps it.
pub(super) fn kill(served: &mut Served) {
    if let Some(child) = &mut served.child {
        let _ = child.kill();
        let _ = child.wait();
    }
}
