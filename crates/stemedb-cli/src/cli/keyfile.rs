//! Agent key files: `stemedb keygen` writes them, `stemedb sign` reads them.
//!
//! A key file is a small JSON object: `{"format": "stemedb-agent-key-v1", "agent": <hex
//! public key>, "secret_key": <hex 32-byte seed>}`. It is created with mode 0600 and never
//! overwritten; reading refuses a file that other users can read (as ssh does), and a file
//! whose public key does not match its secret (a corrupted or hand-edited file).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use stemedb::protocol::{AgentId, AgentKey, SECRET_KEY_LEN};

use super::CliError;

/// The `format` tag of version 1 key files.
const KEY_FILE_FORMAT: &str = "stemedb-agent-key-v1";
/// Permission bits a key file may not have: any access for group or others.
const KEY_FILE_FORBIDDEN_MODE: u32 = 0o077;
/// Largest key file read, in bytes; a real one is under 200 bytes.
const KEY_FILE_BYTES_MAX: u64 = 4096;

/// Arguments of `stemedb keygen`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the new key file; must not exist yet.
    #[arg(long, short, value_name = "PATH")]
    out: PathBuf,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    format: String,
    agent: AgentId,
    secret_key: String,
}

/// A key file that could not be written or used.
#[derive(Debug, Error)]
pub(crate) enum KeyFileError {
    #[error("key file {0} already exists; refusing to overwrite it")]
    Exists(PathBuf),
    #[error("key file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("key file {path} is accessible by other users (mode {mode:04o}); run: chmod 600 {path}")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("key file {path} is not a valid stemedb key file: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("the operating system's random source failed: {0}")]
    Random(getrandom::Error),
}

/// Runs `stemedb keygen`: prints the new agent id on success.
pub(crate) fn keygen(args: &KeygenArgs) -> Result<(), CliError> {
    let key = AgentKey::generate().map_err(KeyFileError::Random)?;
    write_key_file(&args.out, &key)?;
    println!("{}", key.agent_id());
    eprintln!(
        "stemedb: wrote key file {} (agent {})",
        args.out.display(),
        key.agent_id()
    );
    Ok(())
}

fn write_key_file(path: &Path, key: &AgentKey) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let contents = KeyFile {
        format: KEY_FILE_FORMAT.to_owned(),
        agent: key.agent_id(),
        secret_key: hex::encode(key.secret_bytes()),
    };
    let text = serde_json::to_string_pretty(&contents).map_err(|e| KeyFileError::Malformed {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    // create_new is atomic: it fails if anything (file, link) exists at `path`.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => KeyFileError::Exists(path.to_owned()),
            _ => io(source),
        })?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

/// Reads and checks a key file.
pub(crate) fn read_key_file(path: &Path) -> Result<AgentKey, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let malformed = |reason: String| KeyFileError::Malformed {
        path: path.to_owned(),
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & KEY_FILE_FORBIDDEN_MODE != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    if metadata.len() > KEY_FILE_BYTES_MAX {
        return Err(malformed(format!(
            "{} bytes is too large for a key file",
            metadata.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    let file: KeyFile = serde_json::from_str(&text).map_err(|e| malformed(e.to_string()))?;
    if file.format != KEY_FILE_FORMAT {
        return Err(malformed(format!(
            "unknown format {:?}, expected {KEY_FILE_FORMAT:?}",
            file.format
        )));
    }
    let mut secret = [0u8; SECRET_KEY_LEN];
    hex::decode_to_slice(&file.secret_key, &mut secret)
        .map_err(|e| malformed(format!("secret_key is not {} hex bytes: {e}", SECRET_KEY_LEN)))?;
    let key = AgentKey::from_secret_bytes(&secret);
    secret.fill(0);
    if key.agent_id() != file.agent {
        return Err(malformed(format!(
            "agent {} does not match the public key of secret_key ({})",
            file.agent,
            key.agent_id()
        )));
    }
    Ok(key)
}
