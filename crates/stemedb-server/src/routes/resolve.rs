//! Resolution: which competing assertion wins under a lens (as of a point, from a view when the
//! query accepts one), the audit trail, and the winner-change feed as Server-Sent Events.

use std::time::Duration;

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::web::Bytes;
use actix_web::{HttpResponse, get, web};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::ReadErrors;
use super::read::page_limit;
use crate::Api;
use crate::auth::Caller;
use crate::keys::Role;
use crate::problem::ApiError;
use crate::types::{
    AuditBody, AuditList, AuditParams, LaggedBody, ResolutionBody, ResolveParams, WatchParams,
    WinnerChangeBody,
};
use futures_util::future::{Either, select};
use stemedb::lens::{AsOf, MaxStale, Query};
use stemedb::node::WatchError;

const LENS_DEFAULT: &str = "consensus";
/// How often an open winner feed checks that its key is still valid and writes a comment line
/// if it has been quiet. Revoking a key ends its open feeds within one tick, and the write is
/// how the server notices a client that hung up (the connection is not read while the feed
/// waits), so a departed client's slot is freed within one or two ticks.
const TICK: Duration = Duration::from_secs(1);

/// Ticks of silence before a feed sends a comment line: the heartbeat, every tick, so that a
/// departed client is found within a second or two. Three bytes a second per open feed.
const QUIET_TICKS_MAX: u32 = 1;

/// An open winner feed: what its stream holds.
struct Feed {
    first: Option<Bytes>,
    feed: stemedb::node::Watch,
    slot: crate::feeds::FeedSlot,
    closing: tokio::sync::watch::Receiver<bool>,
    tick: actix_rt::time::Interval,
    quiet_ticks: u32,
    api: std::sync::Arc<Api>,
}

impl Feed {
    /// The next chunk of the stream, or `None` to end it: the server stops, the view went
    /// away, or the key was revoked.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            let next = Box::pin(self.feed.next());
            let closed = Box::pin(self.closing.wait_for(|closing| *closing));
            let tick = Box::pin(self.tick.tick());
            let change = match select(select(next, closed), tick).await {
                Either::Left((Either::Left((change, _)), _)) => change,
                Either::Left((Either::Right(_), _)) => return None,
                Either::Right(_) => {
                    if !self.api.keys.is_active(self.slot.key()) {
                        return None;
                    }
                    self.quiet_ticks += 1;
                    if self.quiet_ticks < QUIET_TICKS_MAX {
                        continue;
                    }
                    self.quiet_ticks = 0;
                    // A comment line: keeps proxies from closing an idle stream, and finds a
                    // client that went away (the write fails), which frees its slot.
                    return Some(Bytes::from_static(b":\n\n"));
                }
            };
            self.quiet_ticks = 0;
            return match change {
                Ok(change) => Some(event(
                    "winner",
                    &WinnerChangeBody {
                        old: change.old,
                        new: change.new,
                        offset: change.offset,
                    },
                )),
                Err(WatchError::Lagged(missed)) => Some(event("lagged", &LaggedBody { missed })),
                Err(WatchError::Closed) => None,
            };
        }
    }
}

/// Resolves the competing assertions about (subject, predicate) with a lens.
#[utoipa::path(
    tag = "resolve",
    params(ResolveParams),
    responses((status = 200, description = "The resolution", body = ResolutionBody, links(
            ("audit" = (operation_id = "audit_by_id", parameters(("id" = "$response.body#/audit_id"))))
        )), ReadErrors),
    security(("api_key" = []))
)]
#[get("/resolve")]
pub async fn resolve(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<ResolveParams>,
) -> Result<web::Json<ResolutionBody>, ApiError> {
    caller.require(Role::Read)?;
    let p = params.into_inner();
    let mut query = Query::new(
        p.subject,
        p.predicate,
        p.lens.unwrap_or_else(|| LENS_DEFAULT.to_owned()),
    );
    query.as_of = match (p.as_of_offset, p.as_of_ms) {
        (Some(offset), Some(time_ms)) => Some(AsOf::Both { offset, time_ms }),
        (Some(offset), None) => Some(AsOf::Offset(offset)),
        (None, Some(ms)) => Some(AsOf::TimeMs(ms)),
        (None, None) => None,
    };
    query.max_stale = match (p.max_stale_offsets, p.max_stale_ms) {
        (Some(offsets), Some(ms)) => Some(MaxStale::Both { offsets, ms }),
        (Some(offsets), None) => Some(MaxStale::Offsets(offsets)),
        (None, Some(ms)) => Some(MaxStale::Millis(ms)),
        (None, None) => None,
    };
    query.history = p.history.unwrap_or(false);
    if p.limit.is_some() {
        query.limit = page_limit(p.limit)?;
    }
    query.audit = p.audit.unwrap_or(false);
    query.requester = Some(requester_of(&caller));
    if !p.proof.unwrap_or(false) {
        let resolution = api.node.resolve(query).await?;
        return Ok(web::Json(ResolutionBody::from(&resolution)));
    }
    let (resolution, receipt) = api.node.resolve_verifiable(query).await?;
    let mut body = ResolutionBody::from(&resolution);
    // A receipt holds every record that counted: refused, not cut, past the answer bound.
    let bytes = serde_json::to_vec(&receipt).map_or(usize::MAX, |json| json.len());
    if bytes > api.config.response_bytes_max {
        return Err(ApiError::unprocessable(
            "proof",
            format!(
                "the receipt is {bytes} bytes, over http.response_bytes_max = {}",
                api.config.response_bytes_max
            ),
        )
        .limit(api.config.response_bytes_max as u64));
    }
    body.receipt = Some(receipt);
    Ok(web::Json(body))
}

/// `record` as `caller` may see it: who asked is shown to that key itself and to admins only,
/// so that a read key does not learn the ids of other keys.
fn shown_to(caller: &Caller, record: stemedb::node::AuditRecord) -> AuditBody {
    let mut body = AuditBody::from(record);
    let own = body.requester.as_deref() == Some(requester_of(caller).as_str());
    if !own && !caller.key.roles.contains(&Role::Admin) {
        body.requester = body.requester.map(|_| REDACTED.to_owned());
    }
    body
}

/// What an audit record shows in place of another key's id.
const REDACTED: &str = "(another API key)";

/// How an audit record names the key that asked.
fn requester_of(caller: &Caller) -> String {
    format!("api-key:{}", caller.key.id)
}

/// An audit record by id.
#[utoipa::path(
    tag = "resolve",
    params(("id" = u64, Path, description = "Audit record id")),
    responses((status = 200, description = "The record", body = AuditBody), ReadErrors),
    security(("api_key" = []))
)]
#[get("/audit/{id}")]
pub async fn audit_by_id(
    caller: Caller,
    api: web::Data<Api>,
    id: web::Path<u64>,
) -> Result<web::Json<AuditBody>, ApiError> {
    caller.require(Role::Read)?;
    let id = id.into_inner();
    let record = api
        .node
        .audit(id)?
        .ok_or_else(|| ApiError::not_found(format!("no audit record {id} is kept")))?;
    Ok(web::Json(shown_to(&caller, record)))
}

/// The audit records of (subject, predicate), newest first.
#[utoipa::path(
    tag = "resolve",
    params(AuditParams),
    responses((status = 200, description = "The records", body = AuditList, links(
            ("first" = (operation_id = "audit_by_id", parameters(("id" = "$response.body#/records/0/id"))))
        )), ReadErrors),
    security(("api_key" = []))
)]
#[get("/audit")]
pub async fn audit_by_pair(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<AuditParams>,
) -> Result<web::Json<AuditList>, ApiError> {
    caller.require(Role::Read)?;
    let limit = page_limit(params.limit)?;
    let mut records: Vec<AuditBody> = api
        .node
        .audits_before(&params.subject, &params.predicate, params.before, limit)?
        .into_iter()
        .map(|record| shown_to(&caller, record))
        .collect();
    let full = records.len() == limit;
    let (fits, cut) = crate::outbound::fit(&records, api.config.response_bytes_max);
    records.truncate(fits);
    // More may follow a full or a cut page: the next starts below its last id.
    let next = (full || cut)
        .then(|| records.last().map(|record| record.id))
        .flatten();
    Ok(web::Json(AuditList { records, next }))
}

/// The schema of one event of the winner feed (`text/event-stream`): its `event` name and its
/// `data`, a JSON document whose schema the name selects. `current` carries `null` when the
/// node holds no view of the feed's query at that moment.
pub(crate) struct WatchEvent;

impl WatchEvent {
    fn kind(name: &str, data: impl Into<RefOr<Schema>>, description: &str) -> ObjectBuilder {
        ObjectBuilder::new()
            .description(Some(description))
            .property(
                "event",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([name])),
            )
            .required("event")
            .property(
                "data",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .content_media_type("application/json")
                    .content_schema(Some(data)),
            )
            .required("data")
    }
}

impl PartialSchema for WatchEvent {
    fn schema() -> RefOr<Schema> {
        let change = || Ref::from_schema_name(WinnerChangeBody::name());
        let current = OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .item(change());
        OneOfBuilder::new()
            .item(Self::kind(
                "current",
                current,
                "The winner when the feed opened; sent first.",
            ))
            .item(Self::kind("winner", change(), "The winner changed."))
            .item(Self::kind(
                "lagged",
                Ref::from_schema_name(LaggedBody::name()),
                "The client fell behind: changes were dropped.",
            ))
            .into()
    }
}

impl ToSchema for WatchEvent {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((WinnerChangeBody::name().into_owned(), WinnerChangeBody::schema()));
        WinnerChangeBody::schemas(schemas);
        schemas.push((LaggedBody::name().into_owned(), LaggedBody::schema()));
        LaggedBody::schemas(schemas);
    }
}

fn event(name: &str, data: &impl serde::Serialize) -> Bytes {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "null".to_owned());
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// The winner-change feed of (subject, predicate, lens), as Server-Sent Events: first a
/// `current` event (the winner now), then a `winner` event per change ({old, new, offset}), and
/// a `lagged` event ({missed}) if the client fell behind and changes were dropped. A quiet feed
/// sends a comment line (`: keep-alive`) every 15 s.
#[utoipa::path(
    tag = "resolve",
    params(WatchParams),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = WatchEvent),
        ReadErrors
    ),
    security(("api_key" = []))
)]
#[get("/watch")]
pub async fn watch(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<WatchParams>,
) -> Result<HttpResponse, ApiError> {
    caller.require(Role::Read)?;
    let slot = api.feed_slot(&caller.key.id)?;
    let p = params.into_inner();
    let lens = p.lens.unwrap_or_else(|| LENS_DEFAULT.to_owned());
    let feed = api.node.watch(&p.subject, &p.predicate, &lens).await?;
    let current = api
        .node
        .view_status(&p.subject, &p.predicate, &lens)
        .map(|status| WinnerChangeBody {
            old: None,
            new: status.winner,
            offset: status.offset,
        });
    let state = Feed {
        first: Some(event("current", &current)),
        feed,
        slot,
        closing: api.closing(),
        tick: actix_rt::time::interval(TICK),
        quiet_ticks: 0,
        api: api.into_inner(),
    };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        let chunk = state.next().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), state))
    });
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/event-stream"))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .streaming(stream))
}
