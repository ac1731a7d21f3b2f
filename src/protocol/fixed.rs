//! Fixed-size byte strings (hashes, keys, signatures) in their two wire forms.
//!
//! Binary encoders (MessagePack, the canonical form) carry them as a `bin` of exactly `N`
//! bytes; human-readable encoders (JSON) carry them as lowercase hex of exactly `2N` digits.
//! Decoding accepts exactly those forms and nothing else, so a value has one encoding per format.

use std::fmt;

use serde::de::{self, Visitor};
use serde::ser;
use serde::{Deserializer, Serializer};

use super::error::ParseError;

/// The longest fixed-size value, in bytes (a signature).
const FIXED_BYTES_MAX: usize = 64;

/// Serializes `bytes` as hex for human-readable formats and as raw bytes otherwise. The hex
/// is written to a stack buffer: no allocation (JSON answers carry many hashes).
pub(crate) fn serialize<S: Serializer, const N: usize>(
    bytes: &[u8; N],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    const {
        assert!(
            N <= FIXED_BYTES_MAX,
            "a fixed-size value longer than FIXED_BYTES_MAX"
        )
    };
    if serializer.is_human_readable() {
        let mut buf = [0u8; 2 * FIXED_BYTES_MAX];
        let digits = &mut buf[..2 * N];
        hex::encode_to_slice(bytes, digits).map_err(ser::Error::custom)?;
        serializer.serialize_str(std::str::from_utf8(digits).map_err(ser::Error::custom)?)
    } else {
        serializer.serialize_bytes(bytes)
    }
}

/// Deserializes what [`serialize`] wrote; `what` names the value in error messages.
pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
    deserializer: D,
    what: &'static str,
) -> Result<[u8; N], D::Error> {
    if deserializer.is_human_readable() {
        deserializer.deserialize_str(FixedVisitor::<N> { what })
    } else {
        deserializer.deserialize_bytes(FixedVisitor::<N> { what })
    }
}

/// Parses exactly `2N` hex digits into `N` bytes.
pub(crate) fn parse_hex<const N: usize>(text: &str, what: &'static str) -> Result<[u8; N], ParseError> {
    let mut out = [0u8; N];
    if text.len() != 2 * N {
        return Err(ParseError::HexLength {
            what,
            expected: 2 * N,
            actual: text.len(),
        });
    }
    hex::decode_to_slice(text, &mut out).map_err(|e| ParseError::Hex {
        what,
        reason: e.to_string(),
    })?;
    Ok(out)
}

struct FixedVisitor<const N: usize> {
    what: &'static str,
}

impl<const N: usize> Visitor<'_> for FixedVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} of {} bytes ({} hex digits)", self.what, N, 2 * N)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        parse_hex(text, self.what).map_err(E::custom)
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
        <[u8; N]>::try_from(bytes).map_err(|_| E::invalid_length(bytes.len(), &self))
    }
}
