//! The seven tools. Each is one call to the node with the session's key; its answer goes back
//! as a short summary for people and the node's JSON for programs, and a failure as a tool
//! error with the problem's text.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use serde_json::Value;

use crate::error::CallError;
use crate::handler::Bridge;
use crate::params::{
    AsOfParams, AssertionBody, AuditParams, ClaimParams, HistoryParams, ResolveParams, SupersedeParams,
    VoteBody, VoteParams,
};

/// `?wait=indexed`: a write answers once it is indexed, so the next resolve sees it.
const WAIT_INDEXED: (&str, &str) = ("wait", "indexed");

/// Whether a resolution asked by a tool is recorded in the audit trail when the caller does
/// not say: an assistant's decisions should be traceable.
const AUDIT_DEFAULT: bool = true;

/// History page size when the caller names none: a screenful for an assistant.
const HISTORY_LIMIT_DEFAULT: u32 = 50;

/// Audit page size when the caller names none.
const AUDIT_LIMIT_DEFAULT: u32 = 20;

/// The tools' result: the success, or the failure as a tool error. Never a protocol error.
fn reply(result: Result<CallToolResult, CallError>) -> Result<CallToolResult, ErrorData> {
    Ok(result.unwrap_or_else(|error| error.to_tool_result()))
}

/// A success with a summary line and the node's JSON answer.
fn answer(summary: String, json: &Value) -> CallToolResult {
    CallToolResult::success(vec![
        ContentBlock::text(summary),
        ContentBlock::text(json.to_string()),
    ])
}

fn text_of<'a>(json: &'a Value, field: &str) -> &'a str {
    json.get(field).and_then(Value::as_str).unwrap_or("?")
}

/// A write receipt in words: `<what> <hash> at offset <n>`.
fn receipt_summary(what: &str, receipt: &Value) -> String {
    let duplicate = if receipt.get("duplicate").and_then(Value::as_bool) == Some(true) {
        " (already stored)"
    } else {
        ""
    };
    format!(
        "{what} {} at offset {}{duplicate}",
        text_of(receipt, "hash"),
        receipt.get("offset").and_then(Value::as_u64).unwrap_or_default()
    )
}

/// A resolution in words: the winner, then each candidate with its score and reason.
pub(crate) fn resolution_summary(resolution: &Value) -> String {
    let winner = resolution.get("winner").and_then(Value::as_str).unwrap_or("none");
    let mut text = format!(
        "winner {winner} under lens {} at offset {}",
        text_of(resolution, "lens"),
        resolution
            .get("offset")
            .and_then(Value::as_u64)
            .unwrap_or_default()
    );
    if let Some(id) = resolution.get("audit_id").and_then(Value::as_u64) {
        text.push_str(&format!(" (audit record {id})"));
    }
    let ranked = resolution.get("ranked").and_then(Value::as_array);
    for (rank, candidate) in ranked.into_iter().flatten().enumerate() {
        text.push_str(&format!(
            "\n{}. {} score {}: {}",
            rank + 1,
            text_of(candidate, "hash"),
            candidate.get("score").and_then(Value::as_f64).unwrap_or_default(),
            text_of(candidate, "reason")
        ));
    }
    text
}

fn pair_query(subject: &str, predicate: &str, lens: Option<&str>) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("subject", subject.to_owned()),
        ("predicate", predicate.to_owned()),
    ];
    if let Some(lens) = lens {
        query.push(("lens", lens.to_owned()));
    }
    query
}

#[tool_router(vis = "pub(crate)")]
impl Bridge {
    /// `claim`: a new assertion, signed by the node as a custodial agent of the session's key.
    #[tool(
        description = "Claim a value for a subject's predicate (subject · predicate · object, with \
                       confidence). The node signs it as a custodial agent of this session's API \
                       key. Answers the assertion's hash, which votes and supersede name."
    )]
    async fn claim(
        &self,
        Parameters(p): Parameters<ClaimParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        reply(
            self.write_assertion("claimed", AssertionBody::from(&p), &context)
                .await,
        )
    }

    /// `supersede`: a new assertion replacing one of the same agent's.
    #[tool(
        description = "Replace an earlier assertion of the same agent (its hash as `parent`) with a \
                       new value; lifecycle `retracted` withdraws it."
    )]
    async fn supersede(
        &self,
        Parameters(p): Parameters<SupersedeParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        reply(
            self.write_assertion("superseded by", AssertionBody::from(&p), &context)
                .await,
        )
    }

    /// `vote`: a weighted endorsement of an assertion.
    #[tool(
        description = "Endorse an assertion (by hash) with a weighted vote, signed as a \
                          custodial agent of this session's API key."
    )]
    async fn vote(
        &self,
        Parameters(p): Parameters<VoteParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let body = VoteBody {
            assertion: &p.assertion,
            weight: p.weight,
            agent: p.agent.as_deref(),
        };
        reply(
            async {
                let key = self.key.key(&context.extensions)?;
                let json = serde_json::to_value(body).map_err(|e| CallError::Input(e.to_string()))?;
                let query = [(WAIT_INDEXED.0, WAIT_INDEXED.1.to_owned())];
                let receipt = self.node.post("/custodial/votes", &query, &json, &key).await?;
                let summary = receipt_summary(&format!("voted for {} with vote", p.assertion), &receipt);
                Ok(answer(summary, &receipt))
            }
            .await,
        )
    }

    /// `resolve`: the winner now, with every candidate's score and reason.
    #[tool(
        description = "Resolve the competing assertions about a subject's predicate with a \
                          lens: the winner, and every candidate's score and the reason for it."
    )]
    async fn resolve(
        &self,
        Parameters(p): Parameters<ResolveParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut query = pair_query(&p.subject, &p.predicate, p.lens.as_deref());
        query.push(("audit", p.audit.unwrap_or(AUDIT_DEFAULT).to_string()));
        reply(self.resolution(query, &context).await)
    }

    /// `history`: every assertion of the pair, superseded ones included.
    #[tool(
        description = "List every assertion about a subject's predicate, superseded and \
                          retracted ones included, a page at a time (`next` continues)."
    )]
    async fn history(
        &self,
        Parameters(p): Parameters<HistoryParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let mut query = pair_query(&p.subject, &p.predicate, None);
        query.push(("history", "true".to_owned()));
        query.push(("limit", p.limit.unwrap_or(HISTORY_LIMIT_DEFAULT).to_string()));
        if let Some(after) = p.after {
            query.push(("after", after));
        }
        reply(
            async {
                let key = self.key.key(&context.extensions)?;
                let list = self.node.get("/assertions", &query, &key).await?;
                let count = list
                    .get("assertions")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                Ok(answer(format!("{count} assertion(s)"), &list))
            }
            .await,
        )
    }

    /// `as_of`: the resolution as it stood at an offset or a time.
    #[tool(
        description = "Resolve a subject's predicate as it stood at a journal offset and/or a \
                          time (milliseconds since the epoch): the winner then, with reasons."
    )]
    async fn as_of(
        &self,
        Parameters(p): Parameters<AsOfParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if p.offset.is_none() && p.at_ms.is_none() {
            return reply(Err(CallError::Input(
                "as_of needs `offset`, `at_ms` or both; `resolve` answers for now".to_owned(),
            )));
        }
        let mut query = pair_query(&p.subject, &p.predicate, p.lens.as_deref());
        if let Some(offset) = p.offset {
            query.push(("as_of_offset", offset.to_string()));
        }
        if let Some(at_ms) = p.at_ms {
            query.push(("as_of_ms", at_ms.to_string()));
        }
        query.push(("audit", p.audit.unwrap_or(AUDIT_DEFAULT).to_string()));
        reply(self.resolution(query, &context).await)
    }

    /// `audit`: the recorded resolutions of a pair, or one by id.
    #[tool(
        description = "Read the audit trail: one record by `id`, or the resolutions of a \
                          subject's predicate (newest first, `next` continues via `before`)."
    )]
    async fn audit(
        &self,
        Parameters(p): Parameters<AuditParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let (path, query) = match (p.id, p.subject, p.predicate) {
            (Some(id), None, None) => (format!("/audit/{id}"), Vec::new()),
            (None, Some(subject), Some(predicate)) => {
                let mut query = pair_query(&subject, &predicate, None);
                query.push(("limit", p.limit.unwrap_or(AUDIT_LIMIT_DEFAULT).to_string()));
                if let Some(before) = p.before {
                    query.push(("before", before.to_string()));
                }
                ("/audit".to_owned(), query)
            }
            _ => {
                return reply(Err(CallError::Input(
                    "audit needs either `id`, or `subject` and `predicate`".to_owned(),
                )));
            }
        };
        reply(
            async {
                let key = self.key.key(&context.extensions)?;
                let json = self.node.get(&path, &query, &key).await?;
                let count = json.get("records").and_then(Value::as_array).map_or(1, Vec::len);
                Ok(answer(format!("{count} audit record(s)"), &json))
            }
            .await,
        )
    }
}

impl Bridge {
    async fn write_assertion(
        &self,
        what: &str,
        body: AssertionBody<'_>,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, CallError> {
        let key = self.key.key(&context.extensions)?;
        let json = serde_json::to_value(body).map_err(|e| CallError::Input(e.to_string()))?;
        let query = [(WAIT_INDEXED.0, WAIT_INDEXED.1.to_owned())];
        let receipt = self
            .node
            .post("/custodial/assertions", &query, &json, &key)
            .await?;
        Ok(answer(receipt_summary(what, &receipt), &receipt))
    }

    async fn resolution(
        &self,
        query: Vec<(&'static str, String)>,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, CallError> {
        let key = self.key.key(&context.extensions)?;
        let resolution = self.node.get("/resolve", &query, &key).await?;
        Ok(answer(resolution_summary(&resolution), &resolution))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_summary_names_winner_and_reasons() {
        let resolution = serde_json::json!({
            "winner": "aa", "lens": "consensus", "offset": 9,
            "ranked": [
                {"hash": "aa", "score": 3.0, "reason": "2 votes"},
                {"hash": "bb", "score": 1.0, "reason": "no votes"}
            ]
        });
        assert_eq!(
            resolution_summary(&resolution),
            "winner aa under lens consensus at offset 9\n1. aa score 3: 2 votes\n\
             2. bb score 1: no votes"
        );
    }
}
