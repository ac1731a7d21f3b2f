//! Wire forms: canonical MessagePack (what is hashed, journaled and stored) and JSON (what the
//! HTTP API and the CLI speak).
//!
//! Canonical MessagePack is rmp-serde's compact form: structs as arrays in field order, enum
//! variants by their snake_case name, hashes, keys and signatures as `bin`. Decoding is strict:
//! bytes are accepted only if re-encoding the decoded value yields exactly the same bytes, so
//! every record has one encoding and hashing the stored bytes equals hashing the value.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::CodecError;

/// Encodes `value` in canonical MessagePack.
///
/// Infallible for the protocol types: rmp-serde fails only on I/O errors (a `Vec` never
/// fails) or on sequences of unknown length and custom serializers that error, which the
/// protocol types do not have.
pub(crate) fn to_canonical<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let result = value.serialize(&mut rmp_serde::Serializer::new(&mut out));
    debug_assert!(result.is_ok(), "canonical encoding failed: {result:?}");
    out
}

/// Decodes canonical MessagePack, refusing any non-canonical encoding (see the module docs).
pub(crate) fn from_canonical<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let value: T = rmp_serde::from_slice(bytes)?;
    let canonical = to_canonical(&value);
    if canonical != bytes {
        return Err(CodecError::NonCanonical {
            len: bytes.len(),
            canonical_len: canonical.len(),
        });
    }
    Ok(value)
}

/// Encodes `value` as compact JSON.
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<String, CodecError> {
    Ok(serde_json::to_string(value)?)
}

/// Decodes JSON; unknown fields are refused by the protocol types.
pub(crate) fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, CodecError> {
    Ok(serde_json::from_str(text)?)
}
