//! The routes of the API, each an annotated handler: utoipa-actix-web collects the OpenAPI
//! document from the very services it registers, so the two cannot drift.

mod admin;
mod log;
mod read;
mod resolve;
mod write;

use utoipa::IntoResponses;

use super::keys::Role;
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
        .service(log::checkpoint)
        .service(log::log_checkpoint)
        .service(log::checkpoint_key)
        .service(log::inclusion)
        .service(log::inclusion_of)
        .service(log::consistency)
        .service(log::tile)
        .service(admin::health)
        .service(admin::ready)
        .service(admin::openapi)
        .service(admin::create_key)
        .service(admin::list_keys)
        .service(admin::revoke_key)
        .service(admin::create_agent)
}

/// The role a request must have to send a body to `path`: admin for trust changes, keys and
/// agents, write for every other route that takes one. Admission checks it before the body is
/// read; each handler checks its own role again.
pub(crate) fn body_role(path: &str) -> Role {
    const ADMIN_BODIES: [&str; 3] = ["/v1/trust", "/v1/keys", "/v1/agents"];
    if ADMIN_BODIES.contains(&path) {
        Role::Admin
    } else {
        Role::Write
    }
}

/// `/metrics`, outside the versioned API.
pub(crate) fn metrics_route() -> admin::metrics {
    admin::metrics
}

/// Parses a path's content hash (400 if it is not 64 hex digits). A path that is another
/// route's (a request with a method that route lacks) is answered 405 with its `Allow`.
pub(crate) fn parse_hash(
    api: &crate::Api,
    req: &actix_web::HttpRequest,
    text: &str,
) -> Result<Hash, ApiError> {
    text.parse::<Hash>()
        .map_err(|e| match api.methods.literal(req.path()) {
            Some(allow) => ApiError::method_not_allowed(
                format!(
                    "{} is not a method of {}; it has {allow}",
                    req.method(),
                    req.path()
                ),
                allow.to_owned(),
            ),
            None => ApiError::bad_request(format!("{text:?} is not a content hash: {e}")).field("hash"),
        })
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
    /// The body did not arrive within `http.body_timeout_ms`.
    #[response(
        status = 408,
        description = "Body too slow",
        content_type = "application/problem+json"
    )]
    BodyTimeout(Problem),
    /// The body is over `http.body_bytes_max`, or can never fit a queue.
    #[response(
        status = 413,
        description = "Body too large",
        content_type = "application/problem+json"
    )]
    TooLarge(Problem),
    /// With `wait=indexed`: the ingest refused the record, a successor whose signers did not
    /// sign its parent.
    #[response(
        status = 409,
        description = "Refused by the ingest: not an author of the parent",
        content_type = "application/problem+json"
    )]
    Conflict(Problem),
    /// The body is not JSON.
    #[response(
        status = 415,
        description = "Not application/json",
        content_type = "application/problem+json"
    )]
    UnsupportedMediaType(Problem),
    /// The record breaks a rule of the data model (with `wait=indexed`, also one the ingest
    /// found: an unknown parent or voted assertion).
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
    /// The body did not arrive within `http.body_timeout_ms`.
    #[response(
        status = 408,
        description = "Body too slow",
        content_type = "application/problem+json"
    )]
    BodyTimeout(Problem),
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

/// The methods of each route of the OpenAPI document, to answer a request whose path names a
/// route but whose method it lacks with 405 and `Allow` (RFC 9110 §15.5.6) rather than 404.
pub(crate) struct Methods {
    /// Per route: its path's segments (`None` for a `{parameter}`), its methods.
    routes: Vec<(Vec<Option<String>>, String)>,
}

impl Methods {
    /// The methods of every path of `document`.
    pub(crate) fn of(document: &utoipa::openapi::OpenApi) -> Self {
        let routes = document
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let segments = path
                    .split('/')
                    .map(|segment| (!segment.starts_with('{')).then(|| segment.to_owned()))
                    .collect();
                let methods = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ];
                let allow: Vec<&str> = methods
                    .into_iter()
                    .filter_map(|(name, has)| has.then_some(name))
                    .collect();
                (segments, allow.join(", "))
            })
            .collect();
        Self { routes }
    }

    /// The `Allow` value of the route without parameters that `path` names, if one does: such
    /// a path is that route's, never a parameter's value (`/v1/assertions/batch` is not an
    /// assertion's hash).
    pub(crate) fn literal(&self, path: &str) -> Option<&str> {
        self.routes.iter().find_map(|(segments, allow)| {
            let literal = segments.iter().all(Option::is_some)
                && segments.len() == path.split('/').count()
                && segments
                    .iter()
                    .zip(path.split('/'))
                    .all(|(want, got)| want.as_deref() == Some(got));
            literal.then_some(allow.as_str())
        })
    }

    /// The `Allow` value of the route `path` names, if it names one.
    pub(crate) fn allowed(&self, path: &str) -> Option<&str> {
        let asked: Vec<&str> = path.split('/').collect();
        self.routes.iter().find_map(|(segments, allow)| {
            let matches = segments.len() == asked.len()
                && segments.iter().zip(&asked).all(|(want, got)| match want {
                    Some(want) => want == got,
                    // A parameter is never empty.
                    None => !got.is_empty(),
                });
            matches.then_some(allow.as_str())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Methods;

    #[test]
    fn the_methods_of_a_path_come_from_the_document() {
        let methods = Methods::of(&crate::openapi());
        assert_eq!(methods.allowed("/v1/health"), Some("GET"));
        assert_eq!(methods.allowed("/v1/assertions"), Some("GET, POST"));
        assert_eq!(methods.allowed("/v1/assertions/abc/votes"), Some("GET"));
        assert_eq!(methods.allowed("/v1/keys/k1"), Some("DELETE"));
        assert_eq!(methods.allowed("/v1/assertions//votes"), None);
        assert_eq!(methods.allowed("/v1/nothing"), None);
        assert_eq!(methods.allowed("/metrics"), Some("GET"));
    }
}
