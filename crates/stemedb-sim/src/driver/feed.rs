//! [`Feed`]: a winner-change feed, from the embedded node or the HTTP API's Server-Sent
//! Events, read the same way.

use std::time::Instant;

use stemedb::node::{Watch, WatchError};
use stemedb::protocol::Hash;
use stemedb_server::types::WinnerChangeBody;

use crate::SimError;

/// A winner change as a feed reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The winner now.
    pub new: Option<Hash>,
    /// The ingest cursor of the resolution that found it.
    pub offset: u64,
}

/// The body of an SSE response.
type BodyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>>>>;

/// A winner-change feed.
pub enum Feed {
    /// Embedded.
    Embedded(Watch),
    /// Server-Sent Events.
    Http {
        /// The response body being read.
        body: BodyStream,
        /// Bytes read and not yet parsed.
        buffer: Vec<u8>,
    },
}

impl Feed {
    /// The next winner change, or `None` by `deadline`. A lagged feed is an error: the arenas
    /// size buffers so that their watchers keep up.
    pub async fn next(&mut self, deadline: Instant) -> Result<Option<Change>, SimError> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self {
            Self::Embedded(watch) => match actix_rt::time::timeout(left, watch.next()).await {
                Err(_) => Ok(None),
                Ok(Ok(change)) => Ok(Some(Change {
                    new: change.new,
                    offset: change.offset,
                })),
                Ok(Err(WatchError::Lagged(missed))) => Err(SimError::Invariant(format!(
                    "a watcher lagged and missed {missed} winner changes"
                ))),
                Ok(Err(WatchError::Closed)) => Err(SimError::Node("the feed closed".into())),
            },
            Self::Http { body, buffer } => loop {
                if let Some(change) = take_event(buffer)? {
                    return Ok(Some(change));
                }
                use futures_util::StreamExt;
                let left = deadline.saturating_duration_since(Instant::now());
                match actix_rt::time::timeout(left, body.next()).await {
                    Err(_) => return Ok(None),
                    Ok(None) => return Err(SimError::Http("the feed ended".into())),
                    Ok(Some(Err(e))) => return Err(SimError::Http(format!("the feed failed: {e}"))),
                    Ok(Some(Ok(bytes))) => {
                        buffer.extend_from_slice(&bytes);
                        if buffer.len() > 1 << 20 {
                            return Err(SimError::Http("an SSE event over 1 MiB".into()));
                        }
                    }
                }
            },
        }
    }
}

/// Takes the first complete `winner` event out of `buffer`, skipping others (the `current`
/// event, comments); `None` until one is complete.
fn take_event(buffer: &mut Vec<u8>) -> Result<Option<Change>, SimError> {
    loop {
        let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") else {
            return Ok(None);
        };
        let event: Vec<u8> = buffer.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&event);
        let mut kind = "";
        let mut data = "";
        for line in text.lines() {
            if let Some(value) = line.strip_prefix("event:") {
                kind = value.trim();
            } else if let Some(value) = line.strip_prefix("data:") {
                data = value.trim();
            }
        }
        match kind {
            "winner" => {
                let body: WinnerChangeBody =
                    serde_json::from_str(data).map_err(|e| SimError::Http(format!("a winner event: {e}")))?;
                return Ok(Some(Change {
                    new: body.new,
                    offset: body.offset,
                }));
            }
            "lagged" => return Err(SimError::Invariant(format!("an SSE watcher lagged: {data}"))),
            _ => {}
        }
    }
}
