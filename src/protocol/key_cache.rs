//! A bounded memo of agent keys already checked: decompressed, and not of small order.
//!
//! Checking a key costs a point decompression (several microseconds), and the same few agents
//! sign most records: every decode of a record and every signature verification would pay it
//! again. Whether 32 bytes are a valid, non-weak key never changes, so the answer can be kept.
//! The memo is global, holds at most [`KEY_CACHE_ENTRIES_MAX`] keys, and is cleared when full
//! (refilling costs one decompression per key, the cost without a memo). Only valid keys are
//! kept, so bad bytes from the wire cannot fill it.

use std::collections::HashMap;
use std::sync::LazyLock;

use ed25519_dalek::VerifyingKey;
use parking_lot::Mutex;

use super::agent::AGENT_ID_LEN;

/// Most keys remembered: 16,384 keys of about 200 bytes each, some 3 MiB.
pub const KEY_CACHE_ENTRIES_MAX: usize = 16_384;

static CACHE: LazyLock<Mutex<HashMap<[u8; AGENT_ID_LEN], VerifyingKey>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Returns the decompressed key, or why the bytes are not an acceptable agent key.
pub(crate) fn checked_key(bytes: &[u8; AGENT_ID_LEN]) -> Result<VerifyingKey, &'static str> {
    if let Some(key) = CACHE.lock().get(bytes) {
        return Ok(*key);
    }
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| "not a curve point")?;
    if key.is_weak() {
        return Err("small-order (weak) key");
    }
    let mut cache = CACHE.lock();
    if cache.len() >= KEY_CACHE_ENTRIES_MAX {
        cache.clear();
    }
    cache.insert(*bytes, key);
    Ok(key)
}
