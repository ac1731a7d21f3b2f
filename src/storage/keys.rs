//! The composite-key codec: tuples of parts encoded into LMDB keys that are unambiguous for
//! any bytes and that support prefix scans.
//!
//! ```text
//! variable part:  [len: u16 big-endian][bytes: len]     e.g. a subject, a predicate
//! u64 part:       [value: u64 big-endian]                e.g. a timestamp, an offset
//! fixed part:     [bytes: N]                             e.g. a 32-byte hash
//! ```
//!
//! Invariants, for keys of one database (one fixed sequence of part kinds):
//! - **Unambiguous.** Every variable part states its length, so no choice of bytes — a `:`,
//!   a NUL, a part that looks like a length — can make two distinct tuples encode equal.
//! - **Prefix scans.** The encoding of the leading parts `(a, b)` of a tuple is a byte prefix
//!   of the encoding of `(a, b, ...)`, and a key starts with it if and only if its tuple starts
//!   with `(a, b)`. So "all assertions of subject S" is one LMDB prefix range.
//! - **Order.** LMDB compares keys bytewise. `u64` parts are big-endian, so keys sharing a
//!   prefix sort by that number (time and offset ranges scan in order). Variable parts sort by
//!   (length, bytes): equal parts are contiguous, which is all an equality scan needs.
//! - **Bounded.** An encoded key never exceeds [`KEY_BYTES_MAX`], LMDB's default key limit;
//!   callers hash a part (see [`Hash::of`](crate::protocol::Hash::of)) when it could exceed it.

use thiserror::Error;

/// Longest key LMDB accepts with its default build (`MDB_MAXKEYSIZE`), in bytes.
pub const KEY_BYTES_MAX: usize = 511;

/// Bytes of the length prefix of a variable part.
#[cfg_attr(not(feature = "test-support"), allow(dead_code, reason = "the state layout has no variable parts yet"))]
const LEN_PREFIX_BYTES: usize = size_of::<u16>();

/// A key that could not be built or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// The encoded key would exceed [`KEY_BYTES_MAX`].
    #[error("encoded key would be {len_bytes} bytes; LMDB keys are at most {KEY_BYTES_MAX} bytes")]
    TooLong {
        /// The length the key would have had.
        len_bytes: usize,
    },
    /// A key ended inside a part.
    #[error("key truncated: part {part} needs {needed} bytes, {available} remain")]
    Truncated {
        /// Index of the part being read.
        part: usize,
        /// Bytes the part needs.
        needed: usize,
        /// Bytes left in the key.
        available: usize,
    },
    /// Bytes remain after the last expected part.
    #[error("key has {trailing} bytes after its last part")]
    TrailingBytes {
        /// Bytes left over.
        trailing: usize,
    },
}

/// Builds a key part by part. Errors are kept until [`finish`](Self::finish), so building reads
/// as a chain.
#[derive(Debug, Clone, Default)]
pub struct KeyBuilder {
    bytes: Vec<u8>,
    /// Length the key would have had, once it has grown past [`KEY_BYTES_MAX`].
    overflow_len: Option<usize>,
}

impl KeyBuilder {
    /// Starts an empty key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a variable-length part.
    #[cfg_attr(not(feature = "test-support"), allow(dead_code, reason = "the state layout has no variable parts yet"))]
    pub fn bytes(mut self, part: &[u8]) -> Self {
        match u16::try_from(part.len()) {
            Ok(len) if self.fits(LEN_PREFIX_BYTES + part.len()) => {
                self.bytes.extend_from_slice(&len.to_be_bytes());
                self.bytes.extend_from_slice(part);
            }
            _ => self.overflow(LEN_PREFIX_BYTES + part.len()),
        }
        self
    }

    /// Appends a `u64` part, big-endian so that keys sort numerically by it.
    pub fn u64(mut self, value: u64) -> Self {
        if self.fits(size_of::<u64>()) {
            self.bytes.extend_from_slice(&value.to_be_bytes());
        } else {
            self.overflow(size_of::<u64>());
        }
        self
    }

    /// Appends a fixed-width part (its width is known to every reader of this database).
    pub fn fixed<const N: usize>(mut self, part: &[u8; N]) -> Self {
        if self.fits(N) {
            self.bytes.extend_from_slice(part);
        } else {
            self.overflow(N);
        }
        self
    }

    /// Returns the encoded key, or [`KeyError::TooLong`].
    pub fn finish(self) -> Result<Vec<u8>, KeyError> {
        match self.overflow_len {
            Some(len_bytes) => Err(KeyError::TooLong { len_bytes }),
            None => Ok(self.bytes),
        }
    }

    fn fits(&self, extra: usize) -> bool {
        self.overflow_len.is_none() && self.bytes.len() + extra <= KEY_BYTES_MAX
    }

    fn overflow(&mut self, extra: usize) {
        let current = self.overflow_len.unwrap_or(self.bytes.len());
        self.overflow_len = Some(current.saturating_add(extra));
    }
}

/// Reads a key's parts back in the order they were built. Never panics on malformed keys.
#[derive(Debug, Clone)]
pub struct KeyReader<'a> {
    rest: &'a [u8],
    part: usize,
}

impl<'a> KeyReader<'a> {
    /// Starts reading `key`.
    pub fn new(key: &'a [u8]) -> Self {
        Self { rest: key, part: 0 }
    }

    /// Reads a variable-length part.
    #[cfg_attr(not(feature = "test-support"), allow(dead_code, reason = "the state layout has no variable parts yet"))]
    pub fn bytes(&mut self) -> Result<&'a [u8], KeyError> {
        let mut prefix = [0u8; LEN_PREFIX_BYTES];
        prefix.copy_from_slice(self.take(LEN_PREFIX_BYTES)?);
        let part = self.take(usize::from(u16::from_be_bytes(prefix)))?;
        self.part += 1;
        Ok(part)
    }

    /// Reads a `u64` part.
    pub fn u64(&mut self) -> Result<u64, KeyError> {
        let bytes = self.fixed::<8>()?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// Reads a fixed-width part of `N` bytes.
    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N], KeyError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        self.part += 1;
        Ok(out)
    }

    /// Checks that every byte was consumed.
    pub fn finish(self) -> Result<(), KeyError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(KeyError::TrailingBytes {
                trailing: self.rest.len(),
            })
        }
    }

    fn take(&mut self, needed: usize) -> Result<&'a [u8], KeyError> {
        if self.rest.len() < needed {
            return Err(KeyError::Truncated {
                part: self.part,
                needed,
                available: self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(needed);
        self.rest = tail;
        Ok(head)
    }
}
