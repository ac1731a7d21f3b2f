//! Operations: liveness, readiness, the OpenAPI document, and (admin) API keys and custodial
//! agents.

use std::sync::Arc;

use actix_web::{HttpResponse, delete, get, post, web};

use super::{AdminErrors, OpsErrors};
use crate::Api;
use crate::auth::Caller;
use crate::keys::{KeyInfo, KeyStore, KeyStoreError, Role};
use crate::problem::{ApiError, Problem, RETRY_UNAVAILABLE_S};
use crate::types::{CreatedAgent, CreatedKey, HealthBody, KeyList, NewKey, ReadyBody};

/// Liveness: the server answers.
#[utoipa::path(tag = "ops", responses((status = 200, description = "Alive", body = HealthBody), OpsErrors))]
#[get("/health")]
pub async fn health() -> web::Json<HealthBody> {
    web::Json(HealthBody {
        status: "ok".to_owned(),
    })
}

/// Readiness: the node has ingested everything durable and is not stalled (else 503).
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "Ready", body = ReadyBody),
        (status = 503, description = "Not ready: catching up or stalled", body = ReadyBody)
    )
)]
#[get("/ready")]
pub async fn ready(api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    let status = api.node.ingest_status();
    let durable_end = api.node.durable_end()?;
    // A replica that cannot fetch from its stream is not ready, though it applied all it has.
    let stalled = status.stalled.or(api.node.log_fault()?);
    let body = ReadyBody {
        ready: stalled.is_none() && status.cursor >= durable_end,
        cursor: status.cursor,
        durable_end,
        stalled,
    };
    Ok(if body.ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((actix_web::http::header::RETRY_AFTER, "1"))
            .json(body)
    })
}

/// This API's OpenAPI 3.1 document, generated from the handlers.
#[utoipa::path(tag = "ops", responses((status = 200, description = "The document", body = Object), OpsErrors))]
#[get("/openapi.json")]
pub async fn openapi(api: web::Data<Api>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(api.openapi_json.clone())
}

/// The node's metrics in the Prometheus text format, when this server serves them
/// (`telemetry.metrics`, on this address unless `telemetry.metrics_bind` names another).
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "The Prometheus text exposition format, version 0.0.4",
         body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 404, description = "Metrics are not served on this address",
         body = Problem, content_type = "application/problem+json"),
        OpsErrors
    )
)]
#[get("/metrics")]
pub async fn metrics(api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    let handle = api.metrics.as_ref().ok_or_else(|| {
        ApiError::not_found("metrics are not served here (telemetry.metrics, telemetry.metrics_bind)")
    })?;
    Ok(crate::observe::exposition(&api.node, handle))
}

fn key_problem(error: KeyStoreError) -> ApiError {
    use KeyStoreError as E;
    let detail = error.to_string();
    match error {
        E::UnknownKey(_) => ApiError::not_found(detail),
        E::UnknownAgent(_) | E::DuplicateAgent(_) => ApiError::unprocessable("agents", detail),
        E::TooManyAgents { max, .. } => ApiError::unprocessable("agents", detail).limit(max as u64),
        E::NoRoles | E::DuplicateRole(_) => ApiError::unprocessable("roles", detail),
        E::LabelTooLong { max, .. } => ApiError::unprocessable("label", detail).limit(max as u64),
        E::StoreFull { max } | E::AgentsFull { max } => ApiError::conflict(detail).limit(max as u64),
        E::LastAdmin(_) => ApiError::conflict(detail),
        E::Io { .. } | E::Damaged { .. } | E::Permissions { .. } | E::Random(_) => {
            ApiError::unavailable(detail, RETRY_UNAVAILABLE_S)
        }
    }
}

/// Runs a key store change on the blocking pool: it writes and fsyncs a file, which must not
/// hold up the worker's other requests.
async fn key_change<T: Send + 'static>(
    api: &Api,
    change: impl FnOnce(&KeyStore) -> Result<T, KeyStoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let keys = Arc::clone(&api.keys);
    web::block(move || change(&keys))
        .await
        .map_err(|e| {
            ApiError::unavailable(
                format!("the key store change did not run: {e}"),
                RETRY_UNAVAILABLE_S,
            )
        })?
        .map_err(key_problem)
}

/// Makes an API key; its token is in this answer only. A role or agent named twice, or more
/// than 64 agents, is refused (422 naming the field); a store of 1024 keys none of them
/// revoked is full (409). The key works once it is saved; a failed save answers 503 and
/// makes nothing.
#[utoipa::path(
    tag = "admin",
    request_body = NewKey,
    responses((status = 200, description = "Made", body = CreatedKey, links(
            ("revoke" = (operation_id = "revoke_key", parameters(("id" = "$response.body#/key/id"))))
        )), AdminErrors),
    security(("api_key" = []))
)]
#[post("/keys")]
pub async fn create_key(
    caller: Caller,
    api: web::Data<Api>,
    body: web::Json<NewKey>,
) -> Result<web::Json<CreatedKey>, ApiError> {
    caller.require(Role::Admin)?;
    let new = body.into_inner();
    let (token, key) = key_change(&api, move |keys| {
        keys.create_key(&new.label, new.roles, new.agents)
    })
    .await?;
    Ok(web::Json(CreatedKey { token, key }))
}

/// Every API key (never their secrets).
#[utoipa::path(
    tag = "admin",
    responses((status = 200, description = "The keys", body = KeyList), AdminErrors),
    security(("api_key" = []))
)]
#[get("/keys")]
pub async fn list_keys(caller: Caller, api: web::Data<Api>) -> Result<web::Json<KeyList>, ApiError> {
    caller.require(Role::Admin)?;
    Ok(web::Json(KeyList {
        keys: api.keys.keys(),
    }))
}

/// Revokes an API key: every later request with it is refused. The last unrevoked admin key
/// cannot be revoked (409). A revoked key is listed for 7 days, then dropped.
#[utoipa::path(
    tag = "admin",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, description = "Revoked", body = KeyInfo), AdminErrors),
    security(("api_key" = []))
)]
#[delete("/keys/{id}")]
pub async fn revoke_key(
    caller: Caller,
    api: web::Data<Api>,
    id: web::Path<String>,
) -> Result<web::Json<KeyInfo>, ApiError> {
    caller.require(Role::Admin)?;
    let id = id.into_inner();
    let revoked = key_change(&api, move |keys| keys.revoke(&id)).await?;
    tracing::info!(key = %revoked.id, by = %caller.key.id, "API key revoked");
    Ok(web::Json(revoked))
}

/// Makes a custodial agent: the server generates and keeps its signing key. Bind it to a key
/// (`POST /v1/keys` with `agents`) to submit plain records as it.
#[utoipa::path(
    tag = "admin",
    responses((status = 200, description = "Made", body = CreatedAgent), AdminErrors),
    security(("api_key" = []))
)]
#[post("/agents")]
pub async fn create_agent(caller: Caller, api: web::Data<Api>) -> Result<web::Json<CreatedAgent>, ApiError> {
    caller.require(Role::Admin)?;
    let agent = key_change(&api, KeyStore::create_agent).await?;
    Ok(web::Json(CreatedAgent { agent }))
}
