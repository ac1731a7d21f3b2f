//! The tools' arguments, with the JSON schemas clients see (doc comments become descriptions),
//! and the request bodies they become. The node checks every value again; these types only
//! give assistants a precise shape to fill.

use rmcp::schemars::{self, JsonSchema};
use serde::{Deserialize, Serialize};

/// A claimed value: exactly one of its kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ObjectInput {
    /// UTF-8 text, e.g. `{"text": "Paris"}`.
    Text(String),
    /// A signed 64-bit integer, e.g. `{"integer": 2102650}`.
    Integer(i64),
    /// A finite number, e.g. `{"float": 2.5}`.
    Float(f64),
    /// A boolean, e.g. `{"bool": true}`.
    Bool(bool),
    /// A reference to another subject, e.g. `{"ref": "country:france"}`.
    Ref(String),
}

/// Where a claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum LifecycleInput {
    /// Put forward, not yet in force.
    Proposed,
    /// In force (the default).
    Active,
    /// Still valid but discouraged.
    Deprecated,
    /// Withdrawn: no longer a candidate.
    Retracted,
}

/// Arguments of `claim`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClaimParams {
    /// What the claim is about, e.g. `city:paris`.
    pub subject: String,
    /// Which property of the subject, e.g. `population`.
    pub predicate: String,
    /// The claimed value: one of text, integer, float, bool or ref.
    pub object: ObjectInput,
    /// How sure the claimant is, from 0 to 1.
    pub confidence: f32,
    /// The custodial agent of this session's API key to sign as (64 hex digits); the key's
    /// only agent when omitted.
    #[serde(default)]
    pub agent: Option<String>,
    /// Where the claim stands; `active` when omitted.
    #[serde(default)]
    pub lifecycle: Option<LifecycleInput>,
}

/// Arguments of `supersede`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SupersedeParams {
    /// The hash of the assertion this one replaces (it must be by the same agent).
    pub parent: String,
    /// The subject (the parent's).
    pub subject: String,
    /// The predicate (the parent's).
    pub predicate: String,
    /// The new value: one of text, integer, float, bool or ref.
    pub object: ObjectInput,
    /// How sure, from 0 to 1.
    pub confidence: f32,
    /// The custodial agent to sign as; the key's only agent when omitted.
    #[serde(default)]
    pub agent: Option<String>,
    /// Where the new claim stands (`retracted` withdraws the parent); `active` when omitted.
    #[serde(default)]
    pub lifecycle: Option<LifecycleInput>,
}

/// Arguments of `vote`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VoteParams {
    /// The hash of the assertion voted for.
    pub assertion: String,
    /// How much the vote counts: more than 0, at most the node's `vote_weight_max` (100 by
    /// default).
    pub weight: f32,
    /// The custodial agent to vote as; the key's only agent when omitted.
    #[serde(default)]
    pub agent: Option<String>,
}

/// Arguments of `resolve`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResolveParams {
    /// The subject.
    pub subject: String,
    /// The predicate.
    pub predicate: String,
    /// The lens: consensus (the default), learned, recency or confidence.
    #[serde(default)]
    pub lens: Option<String>,
    /// Record this resolution in the audit trail (default true), so `audit` can show it
    /// later.
    #[serde(default)]
    pub audit: Option<bool>,
}

/// Arguments of `history`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryParams {
    /// The subject.
    pub subject: String,
    /// The predicate.
    pub predicate: String,
    /// At most this many assertions (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next` cursor of a previous page.
    #[serde(default)]
    pub after: Option<String>,
}

/// Arguments of `as_of`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsOfParams {
    /// The subject.
    pub subject: String,
    /// The predicate.
    pub predicate: String,
    /// The lens: consensus (the default), learned, recency or confidence.
    #[serde(default)]
    pub lens: Option<String>,
    /// Resolve as the journal stood at this offset: the record at this offset and every one
    /// before it count (a write's receipt names its offset).
    #[serde(default)]
    pub offset: Option<u64>,
    /// Resolve as of this time, in milliseconds since the Unix epoch. With `offset` too, the
    /// earlier of the two points.
    #[serde(default)]
    pub at_ms: Option<u64>,
    /// Record this resolution in the audit trail (default true), so `audit` can show it
    /// later.
    #[serde(default)]
    pub audit: Option<bool>,
}

/// Arguments of `audit`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    /// One audit record by its id (as a resolution's `audit_id` names it). Without it,
    /// `subject` and `predicate` list the pair's records, newest first.
    #[serde(default)]
    pub id: Option<u64>,
    /// The subject whose resolutions to list.
    #[serde(default)]
    pub subject: Option<String>,
    /// The predicate whose resolutions to list.
    #[serde(default)]
    pub predicate: Option<String>,
    /// At most this many records (default 20).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next` cursor of a previous page.
    #[serde(default)]
    pub before: Option<u64>,
}

/// The body of `POST /v1/custodial/assertions`.
#[derive(Debug, Serialize)]
pub(crate) struct AssertionBody<'a> {
    pub subject: &'a str,
    pub predicate: &'a str,
    pub object: &'a ObjectInput,
    pub confidence: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleInput>,
}

impl<'a> From<&'a ClaimParams> for AssertionBody<'a> {
    fn from(p: &'a ClaimParams) -> Self {
        Self {
            subject: &p.subject,
            predicate: &p.predicate,
            object: &p.object,
            confidence: p.confidence,
            agent: p.agent.as_deref(),
            parent: None,
            lifecycle: p.lifecycle,
        }
    }
}

impl<'a> From<&'a SupersedeParams> for AssertionBody<'a> {
    fn from(p: &'a SupersedeParams) -> Self {
        Self {
            subject: &p.subject,
            predicate: &p.predicate,
            object: &p.object,
            confidence: p.confidence,
            agent: p.agent.as_deref(),
            parent: Some(&p.parent),
            lifecycle: p.lifecycle,
        }
    }
}

/// The body of `POST /v1/custodial/votes`.
#[derive(Debug, Serialize)]
pub(crate) struct VoteBody<'a> {
    pub assertion: &'a str,
    pub weight: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supersede_body_is_the_custodial_wire_form() {
        let params: SupersedeParams = serde_json::from_value(serde_json::json!({
            "parent": "ab", "subject": "s", "predicate": "p",
            "object": {"integer": 7}, "confidence": 0.5, "lifecycle": "retracted"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let body = serde_json::to_value(AssertionBody::from(&params)).unwrap_or_default();
        assert_eq!(
            body,
            serde_json::json!({
                "subject": "s", "predicate": "p", "object": {"integer": 7},
                "confidence": 0.5, "parent": "ab", "lifecycle": "retracted"
            })
        );
    }

    #[test]
    fn unknown_argument_is_refused() {
        let wrong = serde_json::json!({"subject": "s", "predicate": "p", "lense": "x"});
        assert!(serde_json::from_value::<ResolveParams>(wrong).is_err());
    }
}
