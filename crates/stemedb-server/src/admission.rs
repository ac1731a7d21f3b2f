//! Admission: what every request passes before a handler runs.
//!
//! 1. **Who.** The API key is checked once, here (`auth::identify`); the handler's
//!    [`Caller`](crate::auth::Caller) reads the verdict. A request without a valid key takes a
//!    token from its peer address's bucket (`http.unauthenticated_rate_per_s`), so
//!    unauthenticated traffic cannot crowd out the keys.
//! 2. **May it send a body.** A request that declares a body (`Content-Length` > 0, or
//!    chunked) needs a key with the role of the route it posts to before a byte of it is read:
//!    401 or 403 at once, so a key without the right cannot hold the shared body budget.
//! 3. **Its bytes.** The declared length (the body limit for a chunked body) is reserved from
//!    the key's share of the in-flight budget (`http.inflight_bytes_per_key_max`) and from the
//!    whole budget (`http.inflight_bytes_max`); past either, 503 before the body is read.
//! 4. **Its time.** The body must arrive within `http.body_timeout_ms` (408 after), and the
//!    whole request must be answered within `http.request_timeout_ms` (503 after).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{HttpMessage, HttpRequest};
use futures_util::Stream;
use parking_lot::Mutex;

use crate::auth::{self, Identity};
use crate::problem::{ApiError, RETRY_BUSY_S};
use crate::{Api, observe};
use stemedb::telemetry::catalog;

/// The request-body bytes being handled, over all requests and per key.
#[derive(Default)]
pub(crate) struct BodyBudget {
    total: AtomicUsize,
    by_key: Mutex<HashMap<String, usize>>,
}

impl BodyBudget {
    /// Bytes of request bodies being handled now.
    pub(crate) fn total(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }

    /// Reserves `bytes` for key `key` (or for an anonymous request, `None`), within its share
    /// and the whole budget.
    fn reserve(&self, api: &Api, key: Option<&str>, bytes: usize) -> Result<BodyReservation, ApiError> {
        let max = api.config.inflight_bytes_max;
        let share = api.config.inflight_bytes_share();
        if let Some(key) = key {
            let mut by_key = self.by_key.lock();
            let held = by_key.get(key).copied().unwrap_or(0);
            if held.saturating_add(bytes) > share {
                observe::rejected("busy");
                metrics::counter!(catalog::BUSY_REJECTIONS, "queue" => "http").increment(1);
                return Err(ApiError::unavailable(
                    format!(
                        "this API key has {held} bytes of request bodies being handled and {bytes} more \
                         would pass its share, http.inflight_bytes_per_key_max = {share}"
                    ),
                    RETRY_BUSY_S,
                )
                .limit(share as u64));
            }
            *by_key.entry(key.to_owned()).or_insert(0) += bytes;
        }
        let reserved = self.total.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            n.checked_add(bytes).filter(|total| *total <= max)
        });
        let reservation = BodyReservation {
            key: key.map(str::to_owned),
            bytes,
        };
        match reserved {
            Ok(_) => Ok(reservation),
            Err(held) => {
                // Give back the key's share only: the total was not taken.
                self.release_share(reservation.key.as_deref(), bytes);
                observe::rejected("busy");
                metrics::counter!(catalog::BUSY_REJECTIONS, "queue" => "http").increment(1);
                Err(ApiError::unavailable(
                    format!(
                        "the server is busy: {held} bytes of request bodies are being handled and \
                         {bytes} more would pass http.inflight_bytes_max = {max}"
                    ),
                    RETRY_BUSY_S,
                ))
            }
        }
    }

    fn release_share(&self, key: Option<&str>, bytes: usize) {
        let Some(key) = key else { return };
        let mut by_key = self.by_key.lock();
        if let Some(held) = by_key.get_mut(key) {
            *held = held.saturating_sub(bytes);
            if *held == 0 {
                by_key.remove(key);
            }
        }
    }
}

/// A request's bytes of the body budget; given back when the request is answered.
struct BodyReservation {
    key: Option<String>,
    bytes: usize,
}

/// Releases a reservation against the API's budget when the request ends.
struct Held<'a> {
    api: &'a Api,
    reservation: Option<BodyReservation>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(reservation) = self.reservation.take() {
            let budget = &self.api.bodies;
            budget.total.fetch_sub(reservation.bytes, Ordering::AcqRel);
            budget.release_share(reservation.key.as_deref(), reservation.bytes);
        }
    }
}

/// The bytes a request's headers say its body has: its `Content-Length`, the body limit for a
/// chunked body, else none.
fn declared_bytes(req: &ServiceRequest, body_max: usize) -> Result<usize, ApiError> {
    let length = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match length {
        Some(len) if len > body_max => {
            observe::rejected("body_too_large");
            Err(ApiError::too_large(
                format!("the body is {len} bytes; the limit is {body_max} bytes (http.body_bytes_max)"),
                body_max as u64,
            ))
        }
        Some(len) => Ok(len),
        // A chunked body may grow to the limit.
        None if req.headers().contains_key(TRANSFER_ENCODING) => Ok(body_max),
        None => Ok(0),
    }
}

/// The admission middleware; see the module docs.
pub(crate) async fn admit(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let Some(api) = req.app_data::<web::Data<Api>>().cloned() else {
        return next.call(req).await;
    };
    let bytes = declared_bytes(&req, api.config.body_bytes_max)?;
    let identity = auth::identify(&api, req.request());
    if !matches!(identity, Identity::Key(_)) {
        api.meters.take_anonymous(req.peer_addr().map(|addr| addr.ip()))?;
    }
    let mut held = Held {
        api: &api,
        reservation: None,
    };
    if bytes > 0 {
        let caller = match &identity {
            Identity::Key(caller) => caller,
            Identity::Anonymous(error) | Identity::Refused(error) => return Err(error.clone().into()),
        };
        caller.require(crate::routes::body_role(req.path()))?;
        let reservation = tracing::debug_span!("http.admission", bytes)
            .in_scope(|| api.bodies.reserve(&api, Some(&caller.key.id), bytes))?;
        held.reservation = Some(reservation);
        let limit = Duration::from_millis(api.config.body_timeout_ms);
        let payload = req.take_payload();
        let timed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(BodyDeadline {
            body: payload,
            deadline: Box::pin(actix_rt::time::sleep(limit)),
            limit,
        });
        req.set_payload(Payload::from(timed));
    }
    req.extensions_mut().insert(identity);
    let timeout = Duration::from_millis(api.config.request_timeout_ms);
    let outcome = actix_rt::time::timeout(timeout, next.call(req)).await;
    drop(held);
    match outcome {
        Ok(response) => response,
        Err(_) => Err({
            observe::rejected("timeout");
            ApiError::unavailable(
                format!(
                    "the request took longer than http.request_timeout_ms = {}",
                    api.config.request_timeout_ms
                ),
                RETRY_BUSY_S,
            )
        }
        .into()),
    }
}

/// The identity admission found for `req`, if admission ran.
pub(crate) fn identity_of(req: &HttpRequest) -> Option<Identity> {
    req.extensions().get::<Identity>().cloned()
}

/// A request body that must arrive whole by a deadline: past it, the next read fails with
/// [`io::ErrorKind::TimedOut`], which the JSON extractor answers with 408.
struct BodyDeadline {
    body: Payload,
    deadline: Pin<Box<actix_rt::time::Sleep>>,
    limit: Duration,
}

impl Stream for BodyDeadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            let message = format!(
                "the body did not arrive within http.body_timeout_ms = {}",
                self.limit.as_millis()
            );
            return Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                message,
            )))));
        }
        Pin::new(&mut self.body).poll_next(cx)
    }
}
