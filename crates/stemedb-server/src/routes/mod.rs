//! The routes of the API, each an annotated handler: utoipa-actix-web collects the OpenAPI
//! document from the very services it registers, so the two cannot drift.

mod admin;
mod read;
mod resolve;
mod write;

use utoipa::IntoResponses;

use super::problem::{ApiError, Problem};
use stemedb::protocol::Hash;

/// Every route of the API but `/metrics`, in a scope at `/v1` (the routes' paths are relative
/// to it).
pub(crate) fn scope() -> utoipa_actix_web::scope::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    utoipa_actix_web::scope::scope("/v1")
        .service(write::submit_assertion)
        .service(write::submit_assertions)
        .service(write::submit_vote)
        .service(write::submit_votes)
        .service(write::submit_trust)
        .service(write::submit_plain_assertion)
        .service(write::submit_plain_vote)
        .service(read::get_assertion)
        .service(read::list_assertions)
        .service(read::assertion_votes)
        .service(resolve::resolve)
        .service(resolve::audit_by_id)
        .service(resolve::audit_by_pair)
        .service(resolve::watch)
        .service(admin::health)
        .service(admin::ready)
        .service(admin::openapi)
        .service(admin::create_key)
        .service(admin::list_keys)
        .service(admin::revoke_key)
        .service(admin::create_agent)
}

/// `/metrics`, outside the versioned API.
pub(crate) fn metrics_route() -> admin::metrics {
    admin::metrics
}

/// Parses a path's content hash (400 if it is not 64 hex digits).
pub(crate) fn parse_hash(text: &str) -> Result<Hash, ApiError> {
    text.parse::<Hash>()
        .map_err(|e| ApiError::bad_request(format!("{text:?} is not a content hash: {e}")).field("hash"))
}

/// The errors a write may answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum WriteErrors {
    /// Malformed JSON or parameters.
    #[response(
        status = 400,
        description = "Malformed request",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    /// No key, or an unknown or revoked one.
    #[response(
        status = 401,
        description = "No valid API key",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    /// The key lacks the role or the agent.
    #[response(
        status = 403,
        description = "Not allowed for this key",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    /// The body is over `http.body_bytes_max`, or can never fit a queue.
    #[response(
        status = 413,
        description = "Body too large",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    /// The body is not JSON.
    #[response(
        status = 415,
        description = "Not application/json",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(Problem),
    /// The record breaks a rule of the data model.
    #[response(
        status = 422,
        description = "Invalid record",
        content_type = "application/problem+json"
    )]
    Unprocessable(Problem),
    /// The key's rate limit or quota is spent.
    #[response(
        status = 429,
        description = "Rate limited",
        content_type = "application/problem+json"
    )]
    TooMany(Problem),
    /// The node is busy or cannot serve now.
    #[response(
        status = 503,
        description = "Busy; retry after Retry-After",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
    /// The disk is full.
    #[response(
        status = 507,
        description = "Storage full",
        content_type = "application/problem+json"
    )]
    StorageFull(Problem),
}

/// The errors a read may answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum ReadErrors {
    /// Malformed parameters.
    #[response(
        status = 400,
        description = "Malformed request",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    /// No key, or an unknown or revoked one.
    #[response(
        status = 401,
        description = "No valid API key",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    /// The key lacks the read role.
    #[response(
        status = 403,
        description = "Not allowed for this key",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    /// Nothing is stored under the name.
    #[response(
        status = 404,
        description = "Not found",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    /// A parameter is out of range.
    #[response(
        status = 422,
        description = "Parameter out of range",
        content_type = "application/problem+json"
    )]
    Unprocessable(Problem),
    /// The key's rate limit is spent.
    #[response(
        status = 429,
        description = "Rate limited",
        content_type = "application/problem+json"
    )]
    TooMany(Problem),
    /// The node cannot serve now.
    #[response(
        status = 503,
        description = "Unavailable; retry after Retry-After",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}

/// The errors an admin route may answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum AdminErrors {
    /// Malformed JSON or parameters.
    #[response(
        status = 400,
        description = "Malformed request",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    /// No key, or an unknown or revoked one.
    #[response(
        status = 401,
        description = "No valid API key",
        content_type = "application/problem+json"
    )]
    Unauthorized(Problem),
    /// The key lacks the admin role.
    #[response(
        status = 403,
        description = "Not allowed for this key",
        content_type = "application/problem+json"
    )]
    Forbidden(Problem),
    /// No such key.
    #[response(
        status = 404,
        description = "Not found",
        content_type = "application/problem+json"
    )]
    NotFound(Problem),
    /// The change conflicts with the store: the last admin key, a full store.
    #[response(
        status = 409,
        description = "Conflict",
        content_type = "application/problem+json"
    )]
    Conflict(Problem),
    /// The body is over `http.body_bytes_max`.
    #[response(
        status = 413,
        description = "Body too large",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    /// The body is not JSON.
    #[response(
        status = 415,
        description = "Not application/json",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(Problem),
    /// A field is invalid.
    #[response(
        status = 422,
        description = "Invalid field",
        content_type = "application/problem+json"
    )]
    Unprocessable(Problem),
    /// The key's rate limit is spent.
    #[response(
        status = 429,
        description = "Rate limited",
        content_type = "application/problem+json"
    )]
    TooMany(Problem),
    /// The key store cannot be written now; nothing changed.
    #[response(
        status = 503,
        description = "Unavailable",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}

/// The errors an unauthenticated operations route may answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub(crate) enum OpsErrors {
    /// Malformed request.
    #[response(
        status = 400,
        description = "Malformed request",
        content_type = "application/problem+json"
    )]
    BadRequest(Problem),
    /// The server is overloaded.
    #[response(
        status = 503,
        description = "Unavailable",
        content_type = "application/problem+json"
    )]
    Unavailable(Problem),
}
