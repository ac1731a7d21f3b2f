//! The object of an assertion ([`ObjectValue`]) and an assertion's [`Lifecycle`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// The object of "subject · predicate · object".
///
/// JSON form: a one-key object naming the kind, e.g. `{"text": "Paris"}`, `{"integer": 42}`,
/// `{"float": 2.5}`, `{"bool": true}`, `{"ref": "city/paris"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ObjectValue {
    /// UTF-8 text, bounded by `object_text_bytes_max`.
    Text(String),
    /// A signed 64-bit integer.
    Integer(i64),
    /// A finite 64-bit float (NaN and infinities are refused by validation).
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A reference to another subject; it obeys the same rules as a subject.
    Ref(String),
}

impl fmt::Display for ObjectValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => write!(f, "{text:?}"),
            Self::Integer(value) => write!(f, "{value}"),
            Self::Float(value) => write!(f, "{value}"),
            Self::Bool(value) => write!(f, "{value}"),
            Self::Ref(subject) => write!(f, "ref({subject:?})"),
        }
    }
}

/// Where an assertion stands in its life.
///
/// Lifecycle is part of the signed body: changing it means publishing a new assertion that
/// supersedes the old one through `parent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    /// Put forward, not yet endorsed as current.
    Proposed,
    /// Current.
    Active,
    /// Still true but discouraged.
    Deprecated,
    /// Withdrawn by its authors.
    Retracted,
}

impl Lifecycle {
    /// Every lifecycle, in order.
    pub const ALL: [Lifecycle; 4] = [
        Lifecycle::Proposed,
        Lifecycle::Active,
        Lifecycle::Deprecated,
        Lifecycle::Retracted,
    ];

    /// The lowercase name used in JSON and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Proposed => "proposed",
            Self::Active => "active",
            Self::Deprecated => "deprecated",
            Self::Retracted => "retracted",
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
