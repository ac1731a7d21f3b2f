//! Shared by the tests that run the `stemedb` binary: the command, key files made by
//! `stemedb keygen`, and a configuration file naming administrators.

use std::path::PathBuf;

use assert_cmd::Command;
use tempfile::TempDir;

/// The `stemedb` binary built with the tests.
pub fn stemedb() -> Command {
    Command::cargo_bin("stemedb").unwrap()
}

/// Runs `stemedb keygen --out DIR/name`; returns the key file and the agent id it printed.
pub fn keygen(dir: &TempDir, name: &str) -> (PathBuf, String) {
    let path = dir.path().join(name);
    let out = stemedb().arg("keygen").arg("--out").arg(&path).assert().success();
    let agent = String::from_utf8(out.get_output().stdout.clone())
        .unwrap()
        .trim()
        .to_owned();
    (path, agent)
}

/// Writes DIR/name, a configuration file whose `votes.admins` lists `admins` (agent ids).
pub fn admins_config(dir: &TempDir, name: &str, admins: &[&str]) -> PathBuf {
    let path = dir.path().join(name);
    let list: Vec<String> = admins.iter().map(|admin| format!("{admin:?}")).collect();
    std::fs::write(&path, format!("[votes]\nadmins = [{}]\n", list.join(", "))).unwrap();
    path
}
