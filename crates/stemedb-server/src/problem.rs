//! Errors of the HTTP API as RFC 9457 problem details (`application/problem+json`): a stable
//! `type` per kind of problem, the HTTP status, a human-readable `detail`, and where it applies
//! the offending `field`, its `limit`, and `retry_after_s` (also sent as `Retry-After`).
//!
//! No input produces a 500: refusals are 4xx, overload and a node that cannot serve are 503
//! with `Retry-After`, a full disk is 507.

use actix_web::http::StatusCode;
use actix_web::http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use stemedb::lens::ResolveError;
use stemedb::log::{AppendError, LogError};
use stemedb::node::AuditError;
use stemedb::node::{NodeError, RejectReason, SubmitError, WaitError};
use stemedb::protocol::{NameTooLong, ValidationError};
use stemedb::storage::journal::JournalError;

/// `Retry-After` of a refusal that clears as soon as a queue drains or an ingest catches up,
/// in seconds: the shortest a header can say.
pub const RETRY_BUSY_S: u64 = 1;
/// `Retry-After` of a refusal that needs the node to recover (shutting down, a failed log, a
/// stalled ingest), in seconds: long enough not to hammer it meanwhile.
pub const RETRY_UNAVAILABLE_S: u64 = 5;

/// Longest `detail` a problem carries, in bytes: room for any message of ours with the input
/// it names, while a client that sends 50 KB of path or query gets a short answer, not its
/// own input echoed back. Longer details are cut at a character boundary and marked with `…`.
pub const DETAIL_BYTES_MAX: usize = 512;

/// `detail`, cut to [`DETAIL_BYTES_MAX`] bytes at a character boundary.
fn bounded(detail: String) -> String {
    if detail.len() <= DETAIL_BYTES_MAX {
        return detail;
    }
    let mut end = DETAIL_BYTES_MAX - '…'.len_utf8();
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = detail;
    cut.truncate(end);
    cut.push('…');
    cut
}

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem detail, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:stemedb:problem:<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The request field at fault, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The limit the field broke, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Seconds to wait before retrying (also the `Retry-After` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
}

/// An error answered as a [`Problem`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    detail: String,
    field: Option<String>,
    limit: Option<u64>,
    retry_after_s: Option<u64>,
    /// The methods the route has, for a 405's `Allow` header.
    allow: Option<Box<str>>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            detail: bounded(detail.into()),
            field: None,
            limit: None,
            retry_after_s: None,
            allow: None,
        }
    }

    /// Names the field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Names the limit the field broke.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }

    fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds.max(1));
        self
    }

    /// 400: the request is malformed (syntax, a bad parameter).
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 405: the path names a route that lacks the method; `allow` lists the methods it has.
    pub fn method_not_allowed(detail: impl Into<String>, allow: String) -> Self {
        let mut error = Self::new(StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", detail);
        error.allow = Some(allow.into_boxed_str());
        error
    }

    /// 408: the body did not arrive in time (`http.body_timeout_ms`).
    pub fn body_timeout(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request-timeout", detail).field("body")
    }

    /// 401: no API key, an unknown one, or a revoked one.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 403: the key lacks the role, or submits as an agent that is not its own.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404: nothing is stored under the name.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 409: the request is well-formed but conflicts with the server's state (the last admin
    /// key, a full key store).
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 413: the body is larger than `limit` bytes.
    pub fn too_large(detail: impl Into<String>, limit: u64) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", detail)
            .field("body")
            .limit(limit)
    }

    /// 415: the body is not `application/json`.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            detail,
        )
    }

    /// 422: the body is well-formed JSON but breaks a rule of the data model.
    pub fn unprocessable(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-record", detail).field(field)
    }

    /// 422 or 409, of type `urn:stemedb:problem:rejected`: the ingest refused a durable
    /// record when it indexed it (it stays in the journal, never in the state): 409 for a
    /// successor by someone who is not an author of its parent (it conflicts with what is
    /// stored), 422 for a record that names what is not stored or does not decode.
    pub fn rejected(reason: &RejectReason) -> Self {
        let detail = format!("journaled, then refused by the ingest: {reason}");
        let (status, field) = match reason {
            RejectReason::NotParentAuthor { .. } => (StatusCode::CONFLICT, "parent"),
            RejectReason::UnknownParent { .. } | RejectReason::ParentMismatch { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "parent")
            }
            RejectReason::UnknownAssertion { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "assertion"),
            RejectReason::Undecodable { .. }
            | RejectReason::Invalid { .. }
            | RejectReason::NotAdmin { .. }
            | RejectReason::UnknownTag { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "record"),
        };
        Self::new(status, "rejected", detail).field(field)
    }

    /// 429: the key's rate limit or quota is spent.
    pub fn too_many(kind: &'static str, detail: impl Into<String>, retry_after_s: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, kind, detail).retry_after(retry_after_s)
    }

    /// 503: the node is busy or cannot serve now; retry later.
    pub fn unavailable(detail: impl Into<String>, retry_after_s: u64) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail).retry_after(retry_after_s)
    }

    /// 507: the disk is full.
    pub fn storage_full(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INSUFFICIENT_STORAGE, "storage-full", detail).retry_after(10)
    }

    /// The problem as sent.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:stemedb:problem:{}", self.kind),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            field: self.field.clone(),
            limit: self.limit,
            retry_after_s: self.retry_after_s,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.kind, self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response.insert_header((CONTENT_TYPE, PROBLEM_JSON));
        if let Some(seconds) = self.retry_after_s {
            response.insert_header((RETRY_AFTER, seconds.to_string()));
        }
        if let Some(allow) = &self.allow {
            response.insert_header((ALLOW, &**allow));
        }
        let body = serde_json::to_string(&self.problem()).unwrap_or_default();
        response.body(body)
    }
}

impl From<&ValidationError> for ApiError {
    fn from(error: &ValidationError) -> Self {
        use ValidationError as V;
        let detail = error.to_string();
        let (field, limit): (String, Option<u64>) = match error {
            V::Empty { field } | V::ControlCharacter { field, .. } => (field.to_string(), None),
            V::TooLong { field, max_bytes, .. } => (field.to_string(), Some(*max_bytes as u64)),
            V::ConfidenceNotFinite { .. } | V::ConfidenceOutOfRange { .. } => ("confidence".into(), None),
            V::FloatNotFinite { .. } => ("object.float".into(), None),
            V::WeightNotFinite { .. } => ("weight".into(), None),
            V::WeightOutOfRange { max, .. } => ("weight".into(), Some(max.ceil() as u64)),
            V::TrustFactorNotFinite { .. } | V::TrustFactorOutOfRange { .. } => ("factor".into(), None),
            V::TimestampInFuture { skew_ms_max, .. } => ("timestamp_ms".into(), Some(*skew_ms_max)),
            V::NoSignatures | V::DuplicateSigner { .. } | V::BadSignature { .. } => {
                ("signatures".into(), None)
            }
            V::TooManySignatures { max, .. } => ("signatures".into(), Some(*max as u64)),
            V::RecordTooLarge { max_bytes, .. } => ("record".into(), Some(*max_bytes as u64)),
        };
        let problem = Self::unprocessable(field, detail);
        match limit {
            Some(limit) => problem.limit(limit),
            None => problem,
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match &error {
            SubmitError::Invalid(invalid) => invalid.into(),
            SubmitError::NotAdmin { .. } => Self::forbidden(error.to_string()),
            SubmitError::Busy { .. } => Self::unavailable(error.to_string(), RETRY_BUSY_S),
            SubmitError::TooLargeForQueue { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                error.to_string(),
            ),
            SubmitError::BatchTooLarge { max, .. } => {
                Self::unprocessable("records", error.to_string()).limit(*max as u64)
            }
            SubmitError::Log(append) => append_problem(append, error.to_string()),
            SubmitError::Closed => Self::unavailable(error.to_string(), RETRY_UNAVAILABLE_S),
        }
    }
}

/// The problem for a record the log did not store; `message` is the submitter's error.
fn append_problem(error: &AppendError, message: String) -> ApiError {
    match error {
        AppendError::StorageFull(_) => ApiError::storage_full(message),
        AppendError::RecordTooLarge { max, .. } => {
            ApiError::unprocessable("record", message).limit(*max as u64)
        }
        // Not acknowledged in time, or refused for now: a resend is safe and may succeed soon.
        AppendError::NotAcknowledged(_) | AppendError::Unavailable(_) | AppendError::Busy(_) => {
            ApiError::unavailable(message, RETRY_BUSY_S)
        }
        AppendError::TooLargeForQueue(_) | AppendError::Failed(_) | AppendError::Closed => {
            ApiError::unavailable(message, RETRY_UNAVAILABLE_S)
        }
    }
}

impl From<NodeError> for ApiError {
    fn from(error: NodeError) -> Self {
        match &error {
            NodeError::Log(LogError::Journal(JournalError::StorageFull { .. })) => {
                Self::storage_full(error.to_string())
            }
            // The caller's input: asking again cannot help, so no Retry-After.
            NodeError::BadCursor => Self::bad_request(error.to_string()).field("after"),
            NodeError::NameTooLong(name) => name_too_long(name),
            _ => Self::unavailable(error.to_string(), RETRY_UNAVAILABLE_S),
        }
    }
}

impl From<ResolveError> for ApiError {
    fn from(error: ResolveError) -> Self {
        match &error {
            ResolveError::UnknownLens { .. } => Self::not_found(error.to_string()),
            ResolveError::NameTooLong(name) => name_too_long(name),
            // This query's audit record alone is over the store's budget: asking again cannot
            // help; asking without `audit`, or with a lower `limit`, can.
            ResolveError::Audit(AuditError::TooLarge { max, .. }) => {
                Self::unprocessable("audit", error.to_string()).limit(*max)
            }
            ResolveError::AsOfUnsupported { .. } => Self::unprocessable("as_of", error.to_string()),
            // A lens no verifier replays, or a node without its tree or map: not transient.
            ResolveError::Unprovable(_) => Self::unprocessable("proof", error.to_string()),
            // Not kept, or behind the log: asking again cannot help.
            ResolveError::ModelUnavailable(_) => Self::unprocessable("lens", error.to_string()),
            ResolveError::ViewsFull { max } => {
                Self::unavailable(error.to_string(), RETRY_UNAVAILABLE_S).limit(*max as u64)
            }
            _ => Self::unavailable(error.to_string(), RETRY_UNAVAILABLE_S),
        }
    }
}

/// 422 for a query name longer than a record's may be.
fn name_too_long(name: &NameTooLong) -> ApiError {
    ApiError::unprocessable(name.field, name.to_string()).limit(name.max as u64)
}

impl From<WaitError> for ApiError {
    fn from(error: WaitError) -> Self {
        Self::unavailable(format!("durable, but not yet indexed: {error}"), RETRY_BUSY_S)
    }
}
