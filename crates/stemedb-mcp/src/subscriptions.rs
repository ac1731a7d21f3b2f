//! Subscriptions to winner resources: one node winner feed (`GET /v1/watch`) per subscribed
//! URI, turned into `notifications/resources/updated`.
//!
//! Invariants: a session follows at most [`SUBSCRIPTIONS_PER_SESSION_MAX`] URIs; each feed
//! stops when it is unsubscribed, when the session ends (its registry is dropped, and with it
//! every feed's cancellation guard), when the client can no longer be notified, or after
//! [`RECONNECTS_MAX`] failed reconnections in a row. A feed that broke and came back compares
//! the winner it reports with the last one seen, so a change during the gap is still notified.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::ResourceUpdatedNotificationParam;
use rmcp::service::Peer;
use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::error::CallError;
use crate::node::NodeClient;
use crate::session::ApiToken;
use crate::sse::SseParser;
use crate::uri::WinnerUri;

/// Most winner resources one session follows: each holds one of its key's winner feeds at
/// the node (`http.watchers_per_key_max`), which other sessions of the key share.
pub(crate) const SUBSCRIPTIONS_PER_SESSION_MAX: usize = 16;

/// Failed reconnections in a row after which a feed gives up (and logs why).
const RECONNECTS_MAX: u32 = 5;

/// Wait before reconnecting a broken feed: a node restarting comes back within seconds.
const RECONNECT_DELAY_MS: u64 = 1_000;

/// The feeds of one session, by resource URI.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    feeds: Mutex<HashMap<String, DropGuard>>,
}

/// A feed to follow: what, with which key, and whom to tell.
pub(crate) struct Follow {
    /// The node.
    pub node: NodeClient,
    /// The session's key.
    pub key: ApiToken,
    /// The resource URI as the client wrote it (notifications name it so).
    pub uri: String,
    /// The session's client.
    pub peer: Peer<RoleServer>,
}

impl Subscriptions {
    /// Subscribes to `follow.uri`: opens the node's feed (its refusal is the error) and
    /// follows it in a task. Subscribing again to a followed URI changes nothing.
    pub(crate) async fn subscribe(&self, follow: Follow) -> Result<(), CallError> {
        let winner: WinnerUri = follow
            .uri
            .parse()
            .map_err(|e: crate::uri::UriError| CallError::Input(e.to_string()))?;
        if self.lock().contains_key(&follow.uri) {
            return Ok(());
        }
        self.room()?;
        let query = watch_query(&winner);
        let response = follow.node.open_watch(&query, &follow.key).await?;
        let cancel = CancellationToken::new();
        let mut feeds = self.lock();
        if feeds.contains_key(&follow.uri) {
            return Ok(());
        }
        if feeds.len() >= SUBSCRIPTIONS_PER_SESSION_MAX {
            return Err(full());
        }
        feeds.insert(follow.uri.clone(), cancel.clone().drop_guard());
        drop(feeds);
        tokio::spawn(run(follow, query, response, cancel));
        Ok(())
    }

    /// Stops following `uri`; true if and only if it was followed.
    pub(crate) fn unsubscribe(&self, uri: &str) -> bool {
        // Dropping the guard cancels the feed's task.
        self.lock().remove(uri).is_some()
    }

    fn room(&self) -> Result<(), CallError> {
        if self.lock().len() >= SUBSCRIPTIONS_PER_SESSION_MAX {
            return Err(full());
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, DropGuard>> {
        self.feeds.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn full() -> CallError {
    CallError::Input(format!(
        "this session already follows {SUBSCRIPTIONS_PER_SESSION_MAX} resources, the most it \
         may; unsubscribe from one first"
    ))
}

fn watch_query(winner: &WinnerUri) -> Vec<(&'static str, String)> {
    let mut query = vec![
        ("subject", winner.subject.clone()),
        ("predicate", winner.predicate.clone()),
    ];
    if let Some(lens) = &winner.lens {
        query.push(("lens", lens.clone()));
    }
    query
}

/// Why reading a feed stopped.
enum FeedEnd {
    /// The client can no longer be notified: the subscription is over.
    ClientGone,
    /// The feed broke or ended; `events` says whether it delivered any first.
    Broken { reason: String, events: bool },
}

/// Follows one feed until cancelled, reconnecting a broken one a bounded number of times.
async fn run(
    follow: Follow,
    query: Vec<(&'static str, String)>,
    mut response: reqwest::Response,
    cancel: CancellationToken,
) {
    // The winner last reported (`Some(None)`: no winner); `None` until the first report.
    let mut last: Option<Option<String>> = None;
    let mut failures = 0;
    loop {
        let end = tokio::select! {
            () = cancel.cancelled() => return,
            end = read(&mut response, &mut last, &follow) => end,
        };
        let FeedEnd::Broken { reason, events } = end else {
            return;
        };
        failures = if events { 1 } else { failures + 1 };
        tracing::warn!(uri = %follow.uri, %reason, failures, "winner feed broke");
        loop {
            if failures > RECONNECTS_MAX {
                tracing::warn!(uri = %follow.uri, "winner feed given up");
                return;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(RECONNECT_DELAY_MS)) => {}
            }
            match follow.node.open_watch(&query, &follow.key).await {
                Ok(reopened) => {
                    response = reopened;
                    break;
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(uri = %follow.uri, %error, "winner feed did not reopen");
                }
            }
        }
    }
}

/// Reads a feed, notifying the client of each winner change, until it breaks.
async fn read(
    response: &mut reqwest::Response,
    last: &mut Option<Option<String>>,
    follow: &Follow,
) -> FeedEnd {
    let mut parser = SseParser::default();
    let mut events = false;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => return broken("the node closed the feed", events),
            Err(error) => return broken(&error.to_string(), events),
        };
        let parsed = match parser.push(&chunk) {
            Ok(parsed) => parsed,
            Err(error) => return broken(&error.to_string(), events),
        };
        for event in parsed {
            events = true;
            let winner = serde_json::from_str::<Value>(&event.data)
                .ok()
                .and_then(|data| data.get("new").and_then(Value::as_str).map(str::to_owned));
            let changed = match event.name.as_str() {
                // The winner when the feed (re)opened: a change only if one was seen before.
                "current" => last.as_ref().is_some_and(|seen| *seen != winner),
                // Changes were dropped: the client should read again.
                "winner" | "lagged" => true,
                _ => false,
            };
            if event.name != "lagged" {
                *last = Some(winner);
            }
            if changed {
                let note = ResourceUpdatedNotificationParam::new(follow.uri.clone());
                if follow.peer.notify_resource_updated(note).await.is_err() {
                    return FeedEnd::ClientGone;
                }
            }
        }
    }
}

fn broken(reason: &str, events: bool) -> FeedEnd {
    FeedEnd::Broken {
        reason: reason.to_owned(),
        events,
    }
}
