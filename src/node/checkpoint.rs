//! Signed checkpoints: the node's Ed25519 checkpoint key, the checkpoints it signs of the
//! Merkle tree over the log (C2SP tlog-checkpoint bodies in C2SP signed notes; see
//! `protocol::note`), and its refusal to sign one inconsistent with one it signed before.
//!
//! - **The key** is made at first start (`checkpoint.key_file`, mode 0600, refused if group or
//!   others may read it), as C2SP signer key text; its verifier key is logged at every start,
//!   written next to it (`<key file>.pub`) and served.
//! - **Checkpoints** are signed every `checkpoint.interval_ms` if the tree grew, or once it grew
//!   by `checkpoint.records` leaves, and on demand; the newest `checkpoint.keep` are kept in the
//!   state.
//! - **Never a split view.** The latest checkpoint signed is kept next to the key
//!   (`<key file>.latest`, written and synced before the checkpoint is served). Before signing,
//!   the node checks that its tree extends that one: at least as large, with the same root at
//!   that size. A data directory replaced by an older copy (or fed another log) fails the check,
//!   and the node signs nothing until its tree is consistent again; [`CheckpointError::Inconsistent`]
//!   names both trees. The check protects what it can see: keep the key outside the data
//!   directory, or a copy that brings its own older key file back is not caught here (a client
//!   comparing checkpoints still catches it; see `stemedb checkpoint compare`).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::CheckpointConfig;
use crate::protocol::merkle::MerkleHash;
use crate::telemetry::catalog;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::protocol::note::{Checkpoint, NoteError, NoteSigner, NoteVerifier};
use crate::receipt::MAP_EXTENSION;
use crate::storage::state::tree::TreeHead;
use crate::storage::state::{State, StateError};

/// The key file in the data directory, unless `checkpoint.key_file` names another.
pub const CHECKPOINT_KEY_FILE: &str = "checkpoint.key";
/// Permission bits of group and others; the key file must have none of them.
const MODE_GROUP_OTHERS: u32 = 0o077;
/// Longest the checkpointer waits between looks at the tree.
const TICK_MAX: Duration = Duration::from_millis(100);

/// A checkpoint the node signed: the note, and its parsed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The signed note (body, blank line, signature line), as served.
    pub note: String,
    /// The checkpoint it signs.
    pub checkpoint: Checkpoint,
}

/// Why the node cannot sign a checkpoint, or its key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The key file cannot be read, written or trusted.
    #[error("checkpoint key {path}: {detail}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The tree does not extend the latest checkpoint this node signed.
    #[error(
        "refusing to sign: the tree ({size} leaves) is inconsistent with the checkpoint this node \
         signed at size {signed_size} ({detail}); was the data directory replaced by an older copy?"
    )]
    Inconsistent {
        /// The latest signed checkpoint's size.
        signed_size: u64,
        /// The tree's size now.
        size: u64,
        /// How they differ.
        detail: String,
    },
    /// The state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// A note could not be made.
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// The node's checkpoint signer.
pub(crate) struct Checkpointer {
    signer: NoteSigner,
    latest_path: PathBuf,
    /// The latest checkpoint signed (size, root): what the next must extend.
    latest: Mutex<Option<(u64, MerkleHash)>>,
    /// The tree size of the newest checkpoint kept: what waiters watch.
    kept: tokio::sync::watch::Sender<u64>,
    config: CheckpointConfig,
}

impl Checkpointer {
    /// Opens (making it at first start) the key of `config`, and reads the latest checkpoint
    /// signed with it.
    pub(crate) fn open(config: &CheckpointConfig, data_dir: &Path) -> Result<Self, CheckpointError> {
        let path = config
            .key_file
            .clone()
            .unwrap_or_else(|| data_dir.join(CHECKPOINT_KEY_FILE));
        let key_error = |detail: String| CheckpointError::Key {
            path: path.clone(),
            detail,
        };
        let signer = match std::fs::metadata(&path) {
            Ok(meta) => {
                let mode = meta.permissions().mode();
                if mode & MODE_GROUP_OTHERS != 0 {
                    return Err(key_error(format!(
                        "mode {:o} lets group or others read it; chmod 600",
                        mode & 0o7777
                    )));
                }
                let text = std::fs::read_to_string(&path).map_err(|e| key_error(e.to_string()))?;
                let signer = NoteSigner::parse(&text).map_err(|e| key_error(e.to_string()))?;
                if !config.origin.is_empty() && config.origin != signer.name() {
                    return Err(key_error(format!(
                        "the key is for origin {:?}, checkpoint.origin is {:?}",
                        signer.name(),
                        config.origin
                    )));
                }
                signer
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let (mut seed, mut tag) = ([0u8; 32], [0u8; 4]);
                getrandom::fill(&mut seed).map_err(|e| key_error(format!("no randomness: {e}")))?;
                getrandom::fill(&mut tag).map_err(|e| key_error(format!("no randomness: {e}")))?;
                let origin = match config.origin.is_empty() {
                    true => format!("stemedb-{}", hex::encode(tag)),
                    false => config.origin.clone(),
                };
                let signer = NoteSigner::new(&origin, &seed)?;
                write_synced(&path, signer.to_secret_string().as_bytes(), 0o600)
                    .map_err(|e| key_error(e.to_string()))?;
                write_synced(
                    &pub_path(&path),
                    format!("{}\n", signer.verifier()).as_bytes(),
                    0o644,
                )
                .map_err(|e| key_error(e.to_string()))?;
                tracing::info!(key = %path.display(), "made a checkpoint key");
                signer
            }
            Err(error) => return Err(key_error(error.to_string())),
        };
        let latest_path = sibling(&path, "latest");
        let latest = match std::fs::read_to_string(&latest_path) {
            Ok(note) => {
                let checkpoint =
                    Checkpoint::open(&note, &signer.verifier()).map_err(|e| CheckpointError::Key {
                        path: latest_path.clone(),
                        detail: format!("the latest signed checkpoint does not verify: {e}"),
                    })?;
                Some((checkpoint.size, checkpoint.root))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                return Err(CheckpointError::Key {
                    path: latest_path,
                    detail: error.to_string(),
                });
            }
        };
        tracing::info!(verifier = %signer.verifier(), "checkpoint verifier key");
        Ok(Self {
            signer,
            latest_path,
            latest: Mutex::new(latest),
            kept: tokio::sync::watch::Sender::new(0),
            config: config.clone(),
        })
    }

    /// A receiver of the tree size of the newest checkpoint kept since the node started.
    pub(crate) fn kept(&self) -> tokio::sync::watch::Receiver<u64> {
        self.kept.subscribe()
    }

    /// The verifier key of the node's checkpoints.
    pub(crate) fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// Signs a checkpoint of the tree now, with the map root, after checking that it extends
    /// the latest one signed; keeps it (in the state and as the latest) if `keep`.
    pub(crate) fn sign(&self, state: &State, keep: bool) -> Result<SignedCheckpoint, CheckpointError> {
        let (head, map_root) = state.checkpoint_head()?;
        self.sign_head(state, head, map_root, keep)
    }

    /// Signs a checkpoint of `head` (read by the caller, with `map_root` from the same
    /// transaction), after checking that it extends the latest one signed; keeps it if `keep`.
    pub(crate) fn sign_head(
        &self,
        state: &State,
        head: TreeHead,
        map_root: Option<MerkleHash>,
        keep: bool,
    ) -> Result<SignedCheckpoint, CheckpointError> {
        let mut latest = self.latest.lock();
        self.check_extends(state, *latest, head.size)?;
        let kind = if keep { "kept" } else { "receipt" };
        metrics::counter!(catalog::CHECKPOINTS_SIGNED, "kind" => kind).increment(1);
        let checkpoint = Checkpoint {
            origin: self.signer.name().to_owned(),
            size: head.size,
            root: head.root,
            extensions: map_root
                .map(|root| format!("{MAP_EXTENSION} {}", BASE64.encode(root)))
                .into_iter()
                .collect(),
        };
        let note = self.signer.sign(&checkpoint.to_text())?;
        if keep {
            // Synced before it is served: a restart never forgets what a client may have seen.
            write_synced(&self.latest_path, note.as_bytes(), 0o644).map_err(|e| CheckpointError::Key {
                path: self.latest_path.clone(),
                detail: e.to_string(),
            })?;
            state.store_checkpoint(head.size, &note, self.config.keep)?;
            self.kept.send_replace(head.size);
        }
        if latest.is_none_or(|(size, _)| size < head.size) || keep {
            *latest = Some((head.size, head.root));
        }
        Ok(SignedCheckpoint { note, checkpoint })
    }

    /// Signs a checkpoint of the tree's first `size` leaves, whose root is `root` (a past size:
    /// what an answer about the past is proven against), without the map; the tree now must
    /// extend the latest checkpoint signed, and so every prefix of it does.
    pub(crate) fn sign_past(
        &self,
        state: &State,
        now: u64,
        size: u64,
        root: MerkleHash,
    ) -> Result<SignedCheckpoint, CheckpointError> {
        let latest = self.latest.lock();
        self.check_extends(state, *latest, now)?;
        metrics::counter!(catalog::CHECKPOINTS_SIGNED, "kind" => "receipt").increment(1);
        let checkpoint = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root,
            extensions: Vec::new(),
        };
        let note = self.signer.sign(&checkpoint.to_text())?;
        Ok(SignedCheckpoint { note, checkpoint })
    }

    /// Signs `text` (a note body) with the checkpoint key: the node's signature of a receipt.
    pub(crate) fn sign_text(&self, text: &str) -> Result<String, CheckpointError> {
        Ok(self.signer.sign(text)?)
    }

    /// Refuses if the tree of `size` leaves does not extend `latest`.
    fn check_extends(
        &self,
        state: &State,
        latest: Option<(u64, MerkleHash)>,
        size: u64,
    ) -> Result<(), CheckpointError> {
        if let Some((signed_size, signed_root)) = latest {
            let inconsistent = |detail: String| CheckpointError::Inconsistent {
                signed_size,
                size,
                detail,
            };
            if size < signed_size {
                metrics::counter!(catalog::CHECKPOINT_REFUSALS).increment(1);
                return Err(inconsistent("the tree is smaller".to_owned()));
            }
            if state.tree_root(signed_size)? != signed_root {
                metrics::counter!(catalog::CHECKPOINT_REFUSALS).increment(1);
                return Err(inconsistent(format!("its root at size {signed_size} differs")));
            }
        }
        Ok(())
    }

    /// Signs and keeps checkpoints as the tree grows (see the module docs), until `stop` is
    /// dropped.
    pub(crate) fn run(self: Arc<Self>, state: State, stop: crossbeam_channel::Receiver<()>) {
        let interval = Duration::from_millis(self.config.interval_ms);
        let tick = interval.min(TICK_MAX);
        let mut signed = state.checkpoint(None).ok().flatten().map_or(0, |(size, _)| size);
        let mut since = Instant::now();
        let mut reported = String::new();
        loop {
            match stop.recv_timeout(tick) {
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            let Ok(head) = state.tree_head() else { continue };
            metrics::gauge!(catalog::TREE_LEAVES).set(head.size as f64);
            let grown = head.size.saturating_sub(signed);
            if grown == 0 || (grown < self.config.records && since.elapsed() < interval) {
                continue;
            }
            match self.sign(&state, true) {
                Ok(checkpoint) => {
                    (signed, since) = (checkpoint.checkpoint.size, Instant::now());
                    reported.clear();
                }
                Err(error) => {
                    let message = error.to_string();
                    if message != reported {
                        tracing::error!(%error, "no checkpoint signed");
                        reported = message;
                    }
                    since = Instant::now();
                }
            }
        }
    }
}

fn sibling(path: &Path, extension: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".");
    name.push(extension);
    path.with_file_name(name)
}

fn pub_path(path: &Path) -> PathBuf {
    sibling(path, "pub")
}

/// Writes `bytes` to `path` atomically (a temporary file, synced, renamed, the directory
/// synced), with `mode`.
fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let temporary = sibling(path, "tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(&dir)?.sync_all()
}
