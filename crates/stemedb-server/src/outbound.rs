//! Answers on their way out: bounded in bytes and in time, so clients that never read what
//! they asked for cannot grow the server's memory.
//!
//! - **Size.** Lists that can be long are cut to `http.response_bytes_max` and say where the
//!   next page starts (see `fit`); no other answer comes near it.
//! - **Memory.** An answer larger than [`BUDGETED_BYTES_MIN`] holds its bytes of the outbound
//!   budget (`http.outbound_bytes_max` in all, `http.outbound_bytes_per_key_max` per key)
//!   until it is sent or its connection closes; past either, 503 before anything is sent.
//!   It is handed to the connection [`CHUNK_BYTES`] at a time, so the connection's buffer
//!   holds a chunk, not a second copy of the answer.
//! - **Time.** An answer must be sent within `http.send_timeout_ms`: the next chunk after
//!   that fails and the connection closes. A reader that stops reading altogether is found
//!   by the kernel: the standalone server sets `TCP_USER_TIMEOUT` to the same limit on every
//!   connection, so a peer that acknowledges nothing for that long is cut off.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{HttpMessage, ResponseError};
use parking_lot::Mutex;

use crate::auth::Identity;
use crate::problem::{ApiError, RETRY_BUSY_S};
use crate::{Api, observe};

/// Answers up to this size are not budgeted: a connection's own buffer holds that much
/// anyway, and counting them would cost every small answer a lock.
pub const BUDGETED_BYTES_MIN: usize = 64 * 1024;

/// Bytes handed to the connection at a time: a chunk sits in its buffer beside the answer.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// The outbound budget: bytes of answers not yet sent, in all and per key.
#[derive(Default)]
pub(crate) struct OutboundBudget {
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    total: usize,
    by_key: HashMap<String, usize>,
}

impl OutboundBudget {
    /// Bytes of answers being sent now.
    pub(crate) fn total(&self) -> usize {
        self.held.lock().total
    }

    fn reserve(self: &Arc<Self>, api: &Api, key: &str, bytes: usize) -> Result<Reservation, ApiError> {
        let max = api.config.outbound_bytes_max;
        let share = api.config.outbound_bytes_share();
        let mut held = self.held.lock();
        let of_key = held.by_key.get(key).copied().unwrap_or(0);
        if of_key.saturating_add(bytes) > share {
            observe::rejected("outbound");
            return Err(ApiError::unavailable(
                format!(
                    "this API key has {of_key} bytes of answers not yet read, and this one of {bytes} \
                     would pass its share, http.outbound_bytes_per_key_max = {share}: read them first"
                ),
                RETRY_BUSY_S,
            )
            .limit(share as u64));
        }
        if held.total.saturating_add(bytes) > max {
            observe::rejected("outbound");
            return Err(ApiError::unavailable(
                format!(
                    "the server is busy: {} bytes of answers are being sent, and this one of {bytes} \
                     would pass http.outbound_bytes_max = {max}",
                    held.total
                ),
                RETRY_BUSY_S,
            )
            .limit(max as u64));
        }
        held.total += bytes;
        *held.by_key.entry(key.to_owned()).or_insert(0) += bytes;
        Ok(Reservation {
            budget: self.clone(),
            key: key.to_owned(),
            bytes,
        })
    }
}

/// An answer's bytes of the budget; given back when the answer is dropped.
struct Reservation {
    budget: Arc<OutboundBudget>,
    key: String,
    bytes: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut held = self.budget.held.lock();
        held.total = held.total.saturating_sub(self.bytes);
        if let Some(of_key) = held.by_key.get_mut(&self.key) {
            *of_key = of_key.saturating_sub(self.bytes);
            if *of_key == 0 {
                held.by_key.remove(&self.key);
            }
        }
    }
}

/// The longest prefix of `items` whose JSON fits in `bytes_max` (at least one item, so a page
/// always moves on), and whether items were cut.
pub(crate) fn fit<T: serde::Serialize>(items: &[T], bytes_max: usize) -> (usize, bool) {
    let mut used = 0usize;
    for (index, item) in items.iter().enumerate() {
        // Serializing to a counter costs no allocation; an item that does not serialize is
        // answered as the handler's own serialization fails.
        let mut counter = ByteCounter(0);
        let size = serde_json::to_writer(&mut counter, item).map_or(0, |()| counter.0);
        used = used.saturating_add(size + 1);
        if used > bytes_max && index > 0 {
            return (index, true);
        }
    }
    (items.len(), false)
}

/// Counts the bytes written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The middleware: budgets, chunks and times every large answer; see the module docs.
pub(crate) async fn bound(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let api = req.app_data::<web::Data<Api>>().cloned();
    let response = next.call(req).await?.map_into_boxed_body();
    let Some(api) = api else { return Ok(response) };
    let BodySize::Sized(len) = response.response().body().size() else {
        // A stream (the winner feed): it bounds itself.
        return Ok(response);
    };
    if (len as usize) < BUDGETED_BYTES_MIN {
        return Ok(response);
    }
    let key = match response.request().extensions().get::<Identity>() {
        Some(Identity::Key(caller)) => caller.key.id.clone(),
        _ => String::new(),
    };
    let reservation = match api.outbound.reserve(&api, &key, len as usize) {
        Ok(reservation) => reservation,
        Err(error) => {
            let (request, _) = response.into_parts();
            return Ok(ServiceResponse::new(request, error.error_response()));
        }
    };
    let deadline = Instant::now() + Duration::from_millis(api.config.send_timeout_ms);
    Ok(response.map_body(|_, body| {
        match body.try_into_bytes() {
            Ok(bytes) => BoxBody::new(Chunked {
                bytes,
                deadline,
                _reservation: reservation,
            }),
            // Not whole in memory after all: sent as it is.
            Err(body) => body,
        }
    }))
}

/// An answer handed out a chunk at a time, by a deadline, holding its budget until dropped.
struct Chunked {
    bytes: Bytes,
    deadline: Instant,
    _reservation: Reservation,
}

impl MessageBody for Chunked {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.bytes.len() as u64)
    }

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        if self.bytes.is_empty() {
            return Poll::Ready(None);
        }
        if Instant::now() > self.deadline {
            observe::rejected("send_timeout");
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the answer was not read within http.send_timeout_ms",
            ))));
        }
        let take = self.bytes.len().min(CHUNK_BYTES);
        Poll::Ready(Some(Ok(self.bytes.split_to(take))))
    }
}

/// Sets `TCP_USER_TIMEOUT` on an accepted connection (see the module docs); a connection that
/// is not TCP is left alone.
pub(crate) fn on_connect(timeout: Duration) -> impl Fn(&dyn std::any::Any, &mut actix_web::dev::Extensions) {
    move |connection, _| {
        if let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>()
            && let Err(error) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout))
        {
            tracing::warn!(%error, "cannot set TCP_USER_TIMEOUT on a connection");
        }
    }
}
