//! [`Limits`]: every bound that validation enforces, with safe defaults.
//!
//! The ceilings are hard: configuration may tighten a limit but never raise it past its
//! ceiling, because storage keys, record framing and memory budgets are sized for them.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Hard ceiling of `subject_bytes_max` and `predicate_bytes_max`: 1 KiB keeps index keys and
/// per-record memory small and is far beyond any sensible identifier.
pub const NAME_BYTES_CEILING: usize = 1024;
/// Hard ceiling of `object_text_bytes_max`: 16 MiB; larger blobs belong in a blob store, with
/// a `ref` or a hash in the object.
pub const OBJECT_TEXT_BYTES_CEILING: usize = 16 * 1024 * 1024;
/// Hard ceiling of `signatures_max`: 16 co-signers bound verification cost per record.
pub const SIGNATURES_CEILING: usize = 16;
/// Hard ceiling of `record_bytes_max`: 32 MiB, so one record always fits a journal batch.
pub const RECORD_BYTES_CEILING: usize = 32 * 1024 * 1024;

/// The validation limits. Field names carry their unit; defaults are stated per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest subject (and `ref` object), in UTF-8 bytes. Default 1024, the ceiling.
    pub subject_bytes_max: usize,
    /// Longest predicate, in UTF-8 bytes. Default 1024, the ceiling.
    pub predicate_bytes_max: usize,
    /// Longest text object, in UTF-8 bytes. Default 64 KiB: ample for prose, small enough that
    /// a burst of maximal records cannot exhaust memory.
    pub object_text_bytes_max: usize,
    /// Most signatures on one assertion. Default 16, the ceiling.
    pub signatures_max: usize,
    /// Largest vote weight; weights lie in (0, this]. Default 100.0, so a single vote can
    /// express strong but bounded conviction.
    pub vote_weight_max: f32,
    /// How far in the future a timestamp may lie, in milliseconds, to absorb clock skew
    /// between agents. Default 300,000 (5 minutes).
    pub clock_skew_ms_max: u64,
    /// Largest encoded record (canonical MessagePack with signatures), in bytes. Default
    /// 128 KiB: a maximal text object plus every signature, with headroom.
    pub record_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            subject_bytes_max: NAME_BYTES_CEILING,
            predicate_bytes_max: NAME_BYTES_CEILING,
            object_text_bytes_max: 64 * 1024,
            signatures_max: SIGNATURES_CEILING,
            vote_weight_max: 100.0,
            clock_skew_ms_max: 5 * 60 * 1000,
            record_bytes_max: 128 * 1024,
        }
    }
}

/// A [`Limits`] value outside what StemeDB supports.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("limits.{field} = {value} is out of range: {expected}")]
pub struct LimitsError {
    /// The offending field.
    pub field: &'static str,
    /// Its value, as text.
    pub value: String,
    /// The accepted range.
    pub expected: String,
}

/// A query named a subject or predicate longer than the node's limits allow
/// (`limits.subject_bytes_max`, `limits.predicate_bytes_max`): no record can have such a name,
/// so the query is refused before any work or storage.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the {field} is {bytes} bytes long; limits.{field}_bytes_max = {max}")]
pub struct NameTooLong {
    /// Which name: `"subject"` or `"predicate"`.
    pub field: &'static str,
    /// Its length, in UTF-8 bytes.
    pub bytes: usize,
    /// The limit, in UTF-8 bytes.
    pub max: usize,
}

impl Limits {
    /// Checks a queried `subject` and `predicate` against `subject_bytes_max` and
    /// `predicate_bytes_max`; returns the first that is too long.
    pub fn check_names(&self, subject: &str, predicate: &str) -> Result<(), NameTooLong> {
        for (field, name, max) in [
            ("subject", subject, self.subject_bytes_max),
            ("predicate", predicate, self.predicate_bytes_max),
        ] {
            if name.len() > max {
                return Err(NameTooLong {
                    field,
                    bytes: name.len(),
                    max,
                });
            }
        }
        Ok(())
    }

    /// Checks every limit against its range; returns the first violation.
    pub fn validate(&self) -> Result<(), LimitsError> {
        let sizes = [
            ("subject_bytes_max", self.subject_bytes_max, NAME_BYTES_CEILING),
            (
                "predicate_bytes_max",
                self.predicate_bytes_max,
                NAME_BYTES_CEILING,
            ),
            (
                "object_text_bytes_max",
                self.object_text_bytes_max,
                OBJECT_TEXT_BYTES_CEILING,
            ),
            ("signatures_max", self.signatures_max, SIGNATURES_CEILING),
            ("record_bytes_max", self.record_bytes_max, RECORD_BYTES_CEILING),
        ];
        for (field, value, ceiling) in sizes {
            if !(1..=ceiling).contains(&value) {
                return Err(LimitsError {
                    field,
                    value: value.to_string(),
                    expected: format!("1..={ceiling}"),
                });
            }
        }
        if !(self.vote_weight_max.is_finite() && self.vote_weight_max > 0.0) {
            return Err(LimitsError {
                field: "vote_weight_max",
                value: self.vote_weight_max.to_string(),
                expected: "a finite number > 0".to_owned(),
            });
        }
        Ok(())
    }
}
