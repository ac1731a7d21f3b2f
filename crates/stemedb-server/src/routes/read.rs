//! Reads: an assertion by hash, assertions by subject or (subject, predicate) with paging, and
//! the votes and totals of an assertion.

use actix_web::{HttpRequest, get, web};

use super::{ReadErrors, parse_hash};
use crate::Api;
use crate::auth::Caller;
use crate::keys::Role;
use crate::problem::ApiError;
use crate::types::{ListBody, ListParams, StoredAssertionBody, VotesBody, VotesParams};
use stemedb::node::{ListCursor, ListQuery};

/// Most items a page may ask for.
pub(crate) const PAGE_MAX: usize = 1000;
const PAGE_DEFAULT: usize = 100;

/// Checks a `limit` parameter against 1..=`PAGE_MAX`.
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(PAGE_DEFAULT) {
        n @ 1..=PAGE_MAX => Ok(n),
        n => Err(
            ApiError::unprocessable("limit", format!("limit {n} is outside 1..={PAGE_MAX}"))
                .limit(PAGE_MAX as u64),
        ),
    }
}

/// An assertion by its content hash.
#[utoipa::path(
    tag = "read",
    params(("hash" = inline(stemedb::protocol::Hash), Path, description = "Content hash, 64 hex digits")),
    responses((status = 200, description = "Stored", body = StoredAssertionBody), ReadErrors),
    security(("api_key" = []))
)]
#[get("/assertions/{hash}")]
pub async fn get_assertion(
    caller: Caller,
    api: web::Data<Api>,
    hash: web::Path<String>,
    req: HttpRequest,
) -> Result<web::Json<StoredAssertionBody>, ApiError> {
    caller.require(Role::Read)?;
    let hash = parse_hash(&api, &req, &hash)?;
    let stored = api
        .node
        .get(&hash)?
        .ok_or_else(|| ApiError::not_found(format!("no assertion {hash} is stored")))?;
    Ok(web::Json(stored.into()))
}

/// Assertions about a subject, or a (subject, predicate): heads by default, the whole history
/// with `history=true`; a page at a time.
#[utoipa::path(
    tag = "read",
    params(ListParams),
    responses((status = 200, description = "A page", body = ListBody, links(
            ("first" = (operation_id = "get_assertion", parameters(("hash" = "$response.body#/assertions/0/hash"))))
        )), ReadErrors),
    security(("api_key" = []))
)]
#[get("/assertions")]
pub async fn list_assertions(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<ListParams>,
) -> Result<web::Json<ListBody>, ApiError> {
    caller.require(Role::Read)?;
    let params = params.into_inner();
    let after = match &params.after {
        // An empty `after` is the first page, as no `after` is.
        None => None,
        Some(text) if text.is_empty() => None,
        Some(text) => Some(
            hex::decode(text)
                .ok()
                .and_then(|bytes| ListCursor::from_bytes(&bytes))
                .ok_or_else(|| {
                    ApiError::bad_request("`after` is not a cursor this API gave").field("after")
                })?,
        ),
    };
    let mut query = ListQuery {
        subject: params.subject,
        predicate: params.predicate,
        history: params.history.unwrap_or(false),
        limit: page_limit(params.limit)?,
        after,
    };
    let mut page = api.node.list(&query)?;
    let mut assertions: Vec<StoredAssertionBody> = page.assertions.into_iter().map(Into::into).collect();
    let (fits, cut) = crate::outbound::fit(&assertions, api.config.response_bytes_max);
    if cut {
        // Read the shorter page again: its `next` is right after the last one that fits.
        query.limit = fits;
        page = api.node.list(&query)?;
        assertions = page.assertions.into_iter().map(Into::into).collect();
    }
    Ok(web::Json(ListBody {
        assertions,
        next: page.next.map(|cursor| hex::encode(cursor.as_bytes())),
    }))
}

/// The live votes of an assertion and their totals.
#[utoipa::path(
    tag = "read",
    params(("hash" = inline(stemedb::protocol::Hash), Path, description = "Content hash, 64 hex digits"), VotesParams),
    responses((status = 200, description = "Votes and totals", body = VotesBody), ReadErrors),
    security(("api_key" = []))
)]
#[get("/assertions/{hash}/votes")]
pub async fn assertion_votes(
    caller: Caller,
    api: web::Data<Api>,
    hash: web::Path<String>,
    params: web::Query<VotesParams>,
    req: HttpRequest,
) -> Result<web::Json<VotesBody>, ApiError> {
    caller.require(Role::Read)?;
    let hash = parse_hash(&api, &req, &hash)?;
    let limit = page_limit(params.limit)?;
    if api.node.get(&hash)?.is_none() {
        return Err(ApiError::not_found(format!("no assertion {hash} is stored")));
    }
    let totals = api.node.vote_totals(&hash)?;
    let votes = api.node.votes(&hash, limit)?;
    Ok(web::Json(VotesBody {
        totals: totals.into(),
        votes: votes.into_iter().map(Into::into).collect(),
    }))
}
