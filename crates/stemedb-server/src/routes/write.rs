//! Writes: signed assertions (single and batch), votes and trust changes, and plain records
//! the server signs as a custodial agent. Each answers once the record is durable (or, with
//! `?wait=indexed`, indexed), with its hash and journal offset.

use std::time::{Duration, Instant};

use actix_web::{post, web};

use super::WriteErrors;
use crate::Api;
use crate::auth::Caller;
use crate::keys::Role;
use crate::problem::ApiError;
use crate::types::{BatchItem, BatchReceipt, PlainAssertion, PlainVote, Wait, WriteParams, WriteReceipt};
use stemedb::node::{Receipt, SubmitError};
use stemedb::protocol::{AgentId, AgentKey, Assertion, Lifecycle, TrustChange, Vote, now_ms};

/// Charges one record to the caller's quota, awaits `submission` (built, not yet run), gives
/// the quota back if it was refused, and answers once durable or, if asked, indexed.
async fn write_one(
    api: &Api,
    caller: &Caller,
    params: &WriteParams,
    submission: impl std::future::Future<Output = Result<Receipt, SubmitError>>,
) -> Result<web::Json<WriteReceipt>, ApiError> {
    caller.charge(api, 1)?;
    let receipt = submission.await.inspect_err(|_| caller.refund(api, 1))?;
    Ok(web::Json(answer(api, receipt, params).await?))
}

async fn answer(api: &Api, receipt: Receipt, params: &WriteParams) -> Result<WriteReceipt, ApiError> {
    let indexed = params.wait == Some(Wait::Indexed);
    if indexed && !receipt.duplicate {
        let deadline = Instant::now() + Duration::from_millis(api.config.wait_indexed_ms_max);
        api.node.wait_indexed(receipt.offset, deadline).await?;
        refused_by_ingest(api, receipt.offset)?;
    }
    Ok(receipt_body(receipt, indexed))
}

fn receipt_body(receipt: Receipt, indexed: bool) -> WriteReceipt {
    WriteReceipt {
        hash: receipt.hash,
        offset: receipt.offset,
        indexed: indexed || receipt.duplicate,
        duplicate: receipt.duplicate,
    }
}

/// The ingest's verdict on the indexed record at `offset`: an error if it refused it. A
/// durable record can still be refused when indexed, by a rule that needs the state (its
/// parent or voted assertion unknown, a successor by a non-author), so an answer that says
/// `indexed` must ask.
fn refused_by_ingest(api: &Api, offset: u64) -> Result<(), ApiError> {
    match api.node.rejection(offset)? {
        None => Ok(()),
        Some(rejection) => Err(ApiError::rejected(&rejection.reason)),
    }
}

fn check_batch(api: &Api, len: usize) -> Result<(), ApiError> {
    let max = api.config.batch_records_max;
    if len == 0 || len > max {
        if len > max {
            crate::observe::rejected("batch_too_large");
        }
        return Err(ApiError::unprocessable(
            "records",
            format!("a batch holds 1 to {max} records (http.batch_records_max); this one holds {len}"),
        )
        .limit(max as u64));
    }
    Ok(())
}

/// Answers a batch, item by item; refunds the quota of what was refused.
async fn answer_batch(
    api: &Api,
    caller: &Caller,
    results: Result<Vec<Result<Receipt, SubmitError>>, SubmitError>,
    params: &WriteParams,
    charged: u64,
) -> Result<BatchReceipt, ApiError> {
    let results = results.inspect_err(|_| caller.refund(api, charged))?;
    let refused = results.iter().filter(|r| r.is_err()).count() as u64;
    caller.refund(api, refused);
    let indexed = params.wait == Some(Wait::Indexed);
    if indexed {
        let last = results
            .iter()
            .flatten()
            .filter(|r| !r.duplicate)
            .map(|r| r.offset)
            .max();
        if let Some(last) = last {
            let deadline = Instant::now() + Duration::from_millis(api.config.wait_indexed_ms_max);
            api.node.wait_indexed(last, deadline).await?;
        }
    }
    let mut items = Vec::with_capacity(results.len());
    for result in results {
        // Indexed now: the ingest's verdict is known for every journaled item.
        let result = match result {
            Ok(receipt) if indexed && !receipt.duplicate => {
                refused_by_ingest(api, receipt.offset).map(|()| receipt)
            }
            Ok(receipt) => Ok(receipt),
            Err(error) => Err(ApiError::from(error)),
        };
        items.push(match result {
            Ok(receipt) => BatchItem {
                receipt: Some(receipt_body(receipt, indexed)),
                error: None,
            },
            Err(error) => BatchItem {
                receipt: None,
                error: Some(error.problem()),
            },
        });
    }
    let accepted = items.iter().filter(|i| i.receipt.is_some()).count();
    Ok(BatchReceipt {
        accepted,
        refused: items.len() - accepted,
        items,
    })
}

/// Submits one signed assertion. Its signers must all be agents of the API key.
#[utoipa::path(
    tag = "write",
    params(WriteParams),
    request_body = Assertion,
    responses((status = 200, description = "Durable", body = WriteReceipt, links(
            ("get" = (operation_id = "get_assertion", parameters(("hash" = "$response.body#/hash")))),
            ("votes" = (operation_id = "assertion_votes", parameters(("hash" = "$response.body#/hash"))))
        )), WriteErrors),
    security(("api_key" = []))
)]
#[post("/assertions")]
pub async fn submit_assertion(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<WriteParams>,
    body: web::Json<Assertion>,
) -> Result<web::Json<WriteReceipt>, ApiError> {
    caller.require(Role::Write)?;
    let assertion = body.into_inner();
    caller.require_agents(assertion.signatures.iter().map(|s| &s.agent))?;
    write_one(&api, &caller, &params, api.node.submit(assertion)).await
}

/// Submits a batch of signed assertions, verified together. Each item is answered on its own:
/// a refused item does not refuse the others.
#[utoipa::path(
    tag = "write",
    params(WriteParams),
    request_body = Vec<Assertion>,
    responses((status = 200, description = "Each item durable or refused", body = BatchReceipt, links(
            ("get_first" = (operation_id = "get_assertion", parameters(("hash" = "$response.body#/items/0/receipt/hash"))))
        )), WriteErrors),
    security(("api_key" = []))
)]
#[post("/assertions/batch")]
pub async fn submit_assertions(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<WriteParams>,
    body: web::Json<Vec<Assertion>>,
) -> Result<web::Json<BatchReceipt>, ApiError> {
    caller.require(Role::Write)?;
    let assertions = body.into_inner();
    check_batch(&api, assertions.len())?;
    caller.require_agents(
        assertions
            .iter()
            .flat_map(|a| a.signatures.iter().map(|s| &s.agent)),
    )?;
    let charged = assertions.len() as u64;
    caller.charge(&api, charged)?;
    let results = api.node.submit_many(assertions).await;
    Ok(web::Json(
        answer_batch(&api, &caller, results, &params, charged).await?,
    ))
}

/// Casts one signed vote. Its voter must be an agent of the API key.
#[utoipa::path(
    tag = "write",
    params(WriteParams),
    request_body = Vote,
    responses((status = 200, description = "Durable", body = WriteReceipt), WriteErrors),
    security(("api_key" = []))
)]
#[post("/votes")]
pub async fn submit_vote(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<WriteParams>,
    body: web::Json<Vote>,
) -> Result<web::Json<WriteReceipt>, ApiError> {
    caller.require(Role::Write)?;
    let vote = body.into_inner();
    caller.require_agents([&vote.voter])?;
    write_one(&api, &caller, &params, api.node.cast_vote(vote)).await
}

/// Casts a batch of signed votes; each item is answered on its own.
#[utoipa::path(
    tag = "write",
    params(WriteParams),
    request_body = Vec<Vote>,
    responses((status = 200, description = "Each item durable or refused", body = BatchReceipt), WriteErrors),
    security(("api_key" = []))
)]
#[post("/votes/batch")]
pub async fn submit_votes(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<WriteParams>,
    body: web::Json<Vec<Vote>>,
) -> Result<web::Json<BatchReceipt>, ApiError> {
    caller.require(Role::Write)?;
    let votes = body.into_inner();
    check_batch(&api, votes.len())?;
    caller.require_agents(votes.iter().map(|v| &v.voter))?;
    let charged = votes.len() as u64;
    caller.charge(&api, charged)?;
    let results = api.node.cast_votes(votes).await;
    Ok(web::Json(
        answer_batch(&api, &caller, results, &params, charged).await?,
    ))
}

/// Submits a signed trust change. Needs the admin role; its administrator must be an agent of
/// the key and listed in the node's `votes.admins`.
#[utoipa::path(
    tag = "write",
    params(WriteParams),
    request_body = TrustChange,
    responses((status = 200, description = "Durable", body = WriteReceipt), WriteErrors),
    security(("api_key" = []))
)]
#[post("/trust")]
pub async fn submit_trust(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<WriteParams>,
    body: web::Json<TrustChange>,
) -> Result<web::Json<WriteReceipt>, ApiError> {
    caller.require(Role::Admin)?;
    let change = body.into_inner();
    caller.require_agents([&change.admin])?;
    write_one(&api, &caller, &params, api.node.submit_trust(change)).await
}

/// The custodial agent a plain record is signed as: the one named, or the key's only agent.
fn custodial(api: &Api, caller: &Caller, named: Option<AgentId>) -> Result<AgentKey, ApiError> {
    let agent = match (named, caller.key.agents.as_slice()) {
        (Some(agent), _) => agent,
        (None, [only]) => *only,
        (None, agents) => {
            return Err(ApiError::unprocessable(
                "agent",
                format!(
                    "name the agent to sign as: API key {} has {} agents",
                    caller.key.id,
                    agents.len()
                ),
            ));
        }
    };
    caller.require_agents([&agent])?;
    api.keys.custodial(&agent).ok_or_else(|| {
        ApiError::forbidden(format!(
            "agent {agent} is not custodial: this server does not hold its key; submit records it signed itself"
        ))
        .field("agent")
    })
}

/// Submits a plain claim, signed by the server as one of the key's custodial agents.
#[utoipa::path(
    tag = "write",
    params(WriteParams),
    request_body = PlainAssertion,
    responses((status = 200, description = "Signed and durable", body = WriteReceipt, links(
            ("get" = (operation_id = "get_assertion", parameters(("hash" = "$response.body#/hash")))),
            ("votes" = (operation_id = "assertion_votes", parameters(("hash" = "$response.body#/hash"))))
        )), WriteErrors),
    security(("api_key" = []))
)]
#[post("/custodial/assertions")]
pub async fn submit_plain_assertion(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<WriteParams>,
    body: web::Json<PlainAssertion>,
) -> Result<web::Json<WriteReceipt>, ApiError> {
    caller.require(Role::Write)?;
    let plain = body.into_inner();
    let key = custodial(&api, &caller, plain.agent)?;
    let mut assertion = Assertion::new(
        plain.subject,
        plain.predicate,
        plain.object,
        plain.confidence,
        now_ms(),
    );
    assertion.parent = plain.parent;
    assertion.lifecycle = plain.lifecycle.unwrap_or(Lifecycle::Active);
    assertion.sign(&key);
    write_one(&api, &caller, &params, api.node.submit(assertion)).await
}

/// Casts a plain vote, signed by the server as one of the key's custodial agents.
#[utoipa::path(
    tag = "write",
    params(WriteParams),
    request_body = PlainVote,
    responses((status = 200, description = "Signed and durable", body = WriteReceipt), WriteErrors),
    security(("api_key" = []))
)]
#[post("/custodial/votes")]
pub async fn submit_plain_vote(
    caller: Caller,
    api: web::Data<Api>,
    params: web::Query<WriteParams>,
    body: web::Json<PlainVote>,
) -> Result<web::Json<WriteReceipt>, ApiError> {
    caller.require(Role::Write)?;
    let plain = body.into_inner();
    let key = custodial(&api, &caller, plain.agent)?;
    let vote = Vote::sign(&key, plain.assertion, plain.weight, now_ms());
    write_one(&api, &caller, &params, api.node.cast_vote(vote)).await
}
