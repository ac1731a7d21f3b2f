//! Keys of the state databases.
//!
//! ```text
//! assertions            hash[32]                                  -> offset u64 BE, record bytes
//! by_subject            subject_digest[32] ts u64 BE hash[32]     -> ()
//! by_subject_predicate  pair_digest[32]    ts u64 BE hash[32]     -> ()
//! supersession          parent[32] child[32]                      -> ()
//! rejected              offset u64 BE                             -> Rejection (MessagePack)
//! meta                  name                                      -> value
//! ```
//!
//! A subject or predicate may be 1024 bytes, more than an LMDB key holds, so index keys carry a
//! fixed-width blake3 digest of the name instead of the name: fixed width keeps the key
//! unambiguous, and a digest computed over length-prefixed parts keeps `("a:b", "c")` and
//! `("a", "b:c")` apart. Reads compare the stored names too, so even a digest collision could
//! not return a wrong assertion. Within one name, keys sort by timestamp, then hash.

use crate::protocol::{Assertion, HASH_LEN, Hash};
use crate::storage::keys::{KeyBuilder, KeyError};

/// Bytes of a name digest.
pub const DIGEST_BYTES: usize = 32;
/// Bytes of an index key: digest, timestamp, hash.
pub const INDEX_KEY_BYTES: usize = DIGEST_BYTES + size_of::<u64>() + HASH_LEN;

/// blake3 key-derivation contexts: each digest kind has its own, so they never coincide.
const SUBJECT_CONTEXT: &str = "stemedb 2026-11 index subject";
const PAIR_CONTEXT: &str = "stemedb 2026-11 index subject+predicate";

/// Returns the digest under which `subject` is indexed.
pub fn subject_digest(subject: &str) -> [u8; DIGEST_BYTES] {
    blake3::derive_key(SUBJECT_CONTEXT, subject.as_bytes())
}

/// Returns the digest under which the pair (`subject`, `predicate`) is indexed.
pub fn pair_digest(subject: &str, predicate: &str) -> [u8; DIGEST_BYTES] {
    let mut hasher = blake3::Hasher::new_derive_key(PAIR_CONTEXT);
    // Length-prefixed parts: no split of the same bytes between the two names hashes alike.
    hasher.update(&(subject.len() as u64).to_le_bytes());
    hasher.update(subject.as_bytes());
    hasher.update(&(predicate.len() as u64).to_le_bytes());
    hasher.update(predicate.as_bytes());
    *hasher.finalize().as_bytes()
}

/// Returns an index key: `digest`, then the timestamp, then the hash.
pub fn index_key(digest: &[u8; DIGEST_BYTES], timestamp_ms: u64, hash: &Hash) -> Result<Vec<u8>, KeyError> {
    KeyBuilder::new()
        .fixed(digest)
        .u64(timestamp_ms)
        .fixed(hash.as_bytes())
        .finish()
}

/// Returns the `by_subject` key of an assertion.
pub fn subject_key(assertion: &Assertion, hash: &Hash) -> Result<Vec<u8>, KeyError> {
    index_key(&subject_digest(&assertion.subject), assertion.timestamp_ms, hash)
}

/// Returns the `by_subject_predicate` key of an assertion.
pub fn pair_key(assertion: &Assertion, hash: &Hash) -> Result<Vec<u8>, KeyError> {
    let digest = pair_digest(&assertion.subject, &assertion.predicate);
    index_key(&digest, assertion.timestamp_ms, hash)
}

/// Returns the `supersession` key: `child` supersedes `parent`.
pub fn supersession_key(parent: &Hash, child: &Hash) -> Result<Vec<u8>, KeyError> {
    KeyBuilder::new()
        .fixed(parent.as_bytes())
        .fixed(child.as_bytes())
        .finish()
}

/// Splits an index key into (timestamp, hash); `None` if it is not one.
pub(crate) fn split_index_key(key: &[u8]) -> Option<(u64, Hash)> {
    if key.len() != INDEX_KEY_BYTES {
        return None;
    }
    let mut reader = crate::storage::keys::KeyReader::new(key);
    let _digest: [u8; DIGEST_BYTES] = reader.fixed().ok()?;
    let timestamp_ms = reader.u64().ok()?;
    let hash: [u8; HASH_LEN] = reader.fixed().ok()?;
    reader.finish().ok()?;
    Some((timestamp_ms, Hash::from_bytes(hash)))
}
