//! The verifiable log: signed checkpoints, inclusion and consistency proofs, and the C2SP
//! tlog-tiles hash tiles, so that standard tlog tooling can audit the log.
//!
//! - `GET /v1/checkpoint` (also `/v1/log/checkpoint`, the tlog-tiles name): the newest signed
//!   checkpoint, as a C2SP signed note (`text/plain`). If the tree grew since the newest kept
//!   one, the node signs one now (a client never waits for the next period). `GET
//!   /v1/checkpoint/key`: the verifier key.
//! - `GET /v1/proofs/inclusion?index=I` and `GET /v1/proofs/inclusion/{hash}` (the record's
//!   first leaf), with `size=N` (default: the tree now).
//! - `GET /v1/proofs/consistency?old=M&new=N` (`new` default: the tree now).
//! - `GET /v1/log/tile/<L>/<N>[.p/<W>]`: hash tile `N` of level `L`, 32 bytes per hash, `N` in
//!   the tlog-tiles path form (`x001/x234/067`); a full tile only once it has 256 hashes, a
//!   partial one with exactly `W`. Entry bundles are not served: a bundle's 16-bit lengths
//!   cannot hold the records StemeDB admits (up to `limits.record_bytes_max`); records are read
//!   by content hash through the API.
//!
//! Hashes in JSON are lowercase hex, as every hash in this API.

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ReadErrors;
use crate::Api;
use crate::auth::Caller;
use crate::keys::Role;
use crate::problem::ApiError;
use stemedb::node::{LeafRef, NodeError, StateError, TILE_WIDTH};

/// The content type of a signed note.
const NOTE_TYPE: &str = "text/plain; charset=utf-8";

/// Maps a node's refusal about the tree: a leaf or size it lacks is 404, the caller's to fix.
fn tree_error(error: NodeError) -> ApiError {
    match error {
        NodeError::State(StateError::NotInTree(detail)) => ApiError::not_found(detail),
        other => other.into(),
    }
}

/// The newest signed checkpoint of the log's Merkle tree (a C2SP signed note).
#[utoipa::path(
    tag = "log",
    responses((status = 200, description = "The signed checkpoint note", body = String, content_type = "text/plain"), ReadErrors),
    security(("api_key" = []))
)]
#[get("/checkpoint")]
pub async fn checkpoint(caller: Caller, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    serve_checkpoint(caller, api).await
}

async fn serve_checkpoint(caller: Caller, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Read)?;
    let node = api.node.clone();
    let note = actix_web::rt::task::spawn_blocking(move || -> Result<String, NodeError> {
        let size = node.tree_head()?.size;
        match node.checkpoint(None)? {
            Some(kept) if kept.checkpoint.size == size => Ok(kept.note),
            _ => Ok(node.sign_checkpoint()?.note),
        }
    })
    .await
    .map_err(|e| ApiError::unavailable(e.to_string(), crate::problem::RETRY_UNAVAILABLE_S))?
    // A refusal to sign (the tree does not extend what the node signed before) or a tree that
    // does not cover the log is the node's condition, not the caller's: 503, with the reason.
    .map_err(tree_error)?;
    Ok(HttpResponse::Ok().content_type(NOTE_TYPE).body(note))
}

/// `/v1/log/checkpoint`: the same, at its tlog-tiles name.
#[utoipa::path(
    tag = "log",
    responses((status = 200, description = "The signed checkpoint note", body = String, content_type = "text/plain"), ReadErrors),
    security(("api_key" = []))
)]
#[get("/log/checkpoint")]
pub async fn log_checkpoint(caller: Caller, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    serve_checkpoint(caller, api).await
}

/// The verifier key of this node's checkpoints (C2SP note verifier key).
#[utoipa::path(
    tag = "log",
    responses((status = 200, description = "The verifier key", body = String, content_type = "text/plain"), ReadErrors),
    security(("api_key" = []))
)]
#[get("/checkpoint/key")]
pub async fn checkpoint_key(caller: Caller, api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Read)?;
    Ok(HttpResponse::Ok()
        .content_type(NOTE_TYPE)
        .body(format!("{}\n", api.node.checkpoint_verifier())))
}

/// Query parameters of `GET /v1/proofs/inclusion`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InclusionParams {
    /// The leaf index.
    #[param(minimum = 0, format = "uint64", maximum = 18446744073709551615_u64)]
    pub index: u64,
    /// The tree size (default: the tree now).
    #[param(minimum = 0, format = "uint64", maximum = 18446744073709551615_u64)]
    pub size: Option<u64>,
}

/// Query parameters of `GET /v1/proofs/inclusion/{hash}`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SizeParams {
    /// The tree size (default: the tree now).
    #[param(minimum = 0, format = "uint64", maximum = 18446744073709551615_u64)]
    pub size: Option<u64>,
}

/// An inclusion proof (RFC 9162 §2.1.3).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InclusionBody {
    /// The leaf index.
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    pub index: u64,
    /// The tree size.
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    pub size: u64,
    /// The leaf hash, hex.
    pub leaf_hash: String,
    /// The log position of the leaf's record.
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    pub offset: u64,
    /// The root of the tree of `size` leaves, hex.
    pub root: String,
    /// The audit path, bottom up, hex.
    pub path: Vec<String>,
}

/// The inclusion proof of the leaf at `index` in the tree.
#[utoipa::path(
    tag = "log",
    params(InclusionParams),
    responses((status = 200, description = "The proof", body = InclusionBody), ReadErrors),
    security(("api_key" = []))
)]
#[get("/proofs/inclusion")]
pub async fn inclusion(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<InclusionParams>,
) -> Result<web::Json<InclusionBody>, ApiError> {
    caller.require(Role::Read)?;
    inclusion_body(&api, LeafRef::Index(params.index), params.size)
}

/// The inclusion proof of the record with content hash `hash` (its first leaf) in the tree.
#[utoipa::path(
    tag = "log",
    params(("hash" = inline(stemedb::protocol::Hash), Path, description = "Content hash, 64 hex digits"), SizeParams),
    responses((status = 200, description = "The proof", body = InclusionBody), ReadErrors),
    security(("api_key" = []))
)]
#[get("/proofs/inclusion/{hash}")]
pub async fn inclusion_of(
    caller: Caller,
    api: web::Data<Api>,
    hash: web::Path<String>,
    params: web::Query<SizeParams>,
    req: HttpRequest,
) -> Result<web::Json<InclusionBody>, ApiError> {
    caller.require(Role::Read)?;
    let hash = super::parse_hash(&api, &req, &hash)?;
    inclusion_body(&api, LeafRef::Content(hash), params.size)
}

fn inclusion_body(api: &Api, leaf: LeafRef, size: Option<u64>) -> Result<web::Json<InclusionBody>, ApiError> {
    let proof = api.node.inclusion_proof(leaf, size).map_err(tree_error)?;
    let root = api.node.tree_root(proof.size).map_err(tree_error)?;
    Ok(web::Json(InclusionBody {
        index: proof.index,
        size: proof.size,
        leaf_hash: hex::encode(proof.leaf),
        offset: proof.offset,
        root: hex::encode(root),
        path: proof.path.iter().map(hex::encode).collect(),
    }))
}

/// Query parameters of `GET /v1/proofs/consistency`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyParams {
    /// The older tree size.
    #[param(minimum = 0, format = "uint64", maximum = 18446744073709551615_u64)]
    pub old: u64,
    /// The newer tree size (default: the tree now).
    #[param(minimum = 0, format = "uint64", maximum = 18446744073709551615_u64)]
    pub new: Option<u64>,
}

/// A consistency proof (RFC 9162 §2.1.4).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyBody {
    /// The older size.
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    pub old: u64,
    /// The newer size.
    #[schema(format = "uint64", maximum = 18446744073709551615_u64)]
    pub new: u64,
    /// The older root, hex.
    pub old_root: String,
    /// The newer root, hex.
    pub new_root: String,
    /// The proof, hex.
    pub path: Vec<String>,
}

/// The consistency proof between two sizes of the tree.
#[utoipa::path(
    tag = "log",
    params(ConsistencyParams),
    responses((status = 200, description = "The proof", body = ConsistencyBody), ReadErrors),
    security(("api_key" = []))
)]
#[get("/proofs/consistency")]
pub async fn consistency(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<ConsistencyParams>,
) -> Result<web::Json<ConsistencyBody>, ApiError> {
    caller.require(Role::Read)?;
    let new = match params.new {
        Some(new) => new,
        None => api.node.tree_head().map_err(tree_error)?.size,
    };
    let path = api
        .node
        .consistency_proof(params.old, Some(new))
        .map_err(tree_error)?;
    Ok(web::Json(ConsistencyBody {
        old: params.old,
        new,
        old_root: hex::encode(api.node.tree_root(params.old).map_err(tree_error)?),
        new_root: hex::encode(api.node.tree_root(new).map_err(tree_error)?),
        path: path.iter().map(hex::encode).collect(),
    }))
}

/// Parses a tlog-tiles tile path after `tile/`: `<L>/<N>[.p/<W>]`, `N` in groups of three
/// digits, all but the last led by `x`. Returns (level, index, width of a partial tile).
pub fn parse_tile_path(path: &str) -> Option<(u8, u64, Option<u64>)> {
    let (path, width) = match path.rsplit_once(".p/") {
        Some((path, width)) => {
            let width: u64 = parse_digits(width)?;
            ((1..TILE_WIDTH).contains(&width)).then_some(())?;
            (path, Some(width))
        }
        None => (path, None),
    };
    let mut segments = path.split('/');
    let level: u8 = parse_digits(segments.next()?)?.try_into().ok()?;
    let groups: Vec<&str> = segments.collect();
    let (last, leading) = groups.split_last()?;
    let mut index: u64 = 0;
    for group in leading {
        let digits = group.strip_prefix('x')?;
        (digits.len() == 3).then_some(())?;
        index = index.checked_mul(1000)?.checked_add(parse_digits(digits)?)?;
    }
    (last.len() == 3).then_some(())?;
    index = index.checked_mul(1000)?.checked_add(parse_digits(last)?)?;
    Some((level, index, width))
}

fn parse_digits(text: &str) -> Option<u64> {
    (!text.is_empty() && text.len() <= 20 && text.bytes().all(|b| b.is_ascii_digit())).then_some(())?;
    text.parse().ok()
}

/// A hash tile of the tree (C2SP tlog-tiles): 32 bytes per hash.
#[utoipa::path(
    tag = "log",
    params(("path" = String, Path, description = "`<L>/<N>[.p/<W>]`, as tlog-tiles names tiles")),
    responses((status = 200, description = "The tile's hashes: 32 bytes each (application/octet-stream)"), ReadErrors),
    security(("api_key" = []))
)]
#[get("/log/tile/{path:.*}")]
pub async fn tile(
    caller: Caller,
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Read)?;
    let (level, index, width) = parse_tile_path(&path)
        .ok_or_else(|| ApiError::not_found(format!("{path:?} is not a tile path (<L>/<N>[.p/<W>])")))?;
    let hashes = api.node.tile(level, index, None).map_err(tree_error)?;
    let wanted = width.unwrap_or(TILE_WIDTH) as usize;
    if hashes.len() < wanted {
        return Err(ApiError::not_found(format!(
            "tile {level}/{index} has {} of the {wanted} hashes asked for",
            hashes.len()
        )));
    }
    let body: Vec<u8> = hashes[..wanted].iter().flatten().copied().collect();
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            "Cache-Control",
            match width {
                // A full tile never changes; a partial one is replaced by a wider one.
                None => "public, max-age=31536000, immutable",
                Some(_) => "no-cache",
            },
        ))
        .body(body))
}
