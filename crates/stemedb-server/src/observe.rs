//! What the API records of each request: a `tracing` span from arrival to the response head
//! (in the caller's trace when its `traceparent` is exported to), the request count by route,
//! method and status, its latency, and refusals by limit.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use std::net::SocketAddr;

use actix_web::{App, HttpResponse, HttpServer, web};
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::Instrument;

use stemedb::node::Node;
use stemedb::telemetry::catalog;

/// The `route` label of a path no route matches: one value, however many such paths come.
const UNMATCHED: &str = "unmatched";

/// Counts a request refused by a limit; `reason` is one of
/// [`catalog::HTTP_REJECTION_REASONS`].
pub(crate) fn rejected(reason: &'static str) {
    metrics::counter!(catalog::HTTP_REJECTIONS, "reason" => reason).increment(1);
}

/// The `method` label: the standard methods by name, anything else as `other`, so a client
/// cannot mint label values.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The outermost middleware (inside CORS): spans, counts and times every request, those that
/// admission refuses included.
pub(crate) async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    // The pattern of the route that matches, found in the app's resource map (routing itself
    // has not run yet): a fixed set of values, never the path with its parameters.
    let route = req.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned());
    let method = method_label(req.method());
    let api = req.app_data::<web::Data<crate::Api>>().cloned();
    let span = tracing::info_span!(
        "http.request",
        method,
        route = %route,
        status = tracing::field::Empty,
        latency_us = tracing::field::Empty,
    );
    // With export on, a request's `traceparent` makes its span part of the caller's trace.
    crate::trace_export::join_callers_trace(&span, req.headers());
    let outcome = next.call(req).instrument(span.clone()).await;
    let status = match &outcome {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    let elapsed = started.elapsed();
    span.record("status", status.as_u16());
    span.record("latency_us", elapsed.as_micros() as u64);
    metrics::counter!(
        catalog::HTTP_REQUESTS,
        "route" => route.clone(),
        "method" => method,
        "status" => status.as_str().to_owned(),
    )
    .increment(1);
    metrics::histogram!(catalog::HTTP_REQUEST_SECONDS, "route" => route, "method" => method).record(elapsed);
    if let Some(api) = api {
        // The body budget as this request leaves it: exact whenever the server is idle.
        metrics::gauge!(catalog::QUEUE_BYTES, "queue" => "http").set(api.bodies.total() as f64);
        metrics::gauge!(catalog::QUEUE_BYTES_MAX, "queue" => "http")
            .set(api.config.inflight_bytes_max as f64);
        metrics::gauge!(catalog::QUEUE_BYTES, "queue" => "http_out").set(api.outbound.total() as f64);
        metrics::gauge!(catalog::QUEUE_BYTES_MAX, "queue" => "http_out")
            .set(api.config.outbound_bytes_max as f64);
    }
    outcome
}

/// The `/metrics` answer: the node's gauges sampled (unless sampled within the last 100 ms),
/// then everything `handle` holds.
pub(crate) fn exposition(node: &Node, handle: &PrometheusHandle) -> HttpResponse {
    node.refresh_gauges(std::time::Duration::from_millis(100));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle.render())
}

/// Serves `/metrics` alone on `listener` (bound to `telemetry.metrics_bind`), with one worker
/// and no authentication, like most exporters; returns the addresses it listens on and the
/// server.
pub fn serve_metrics(
    listener: std::net::TcpListener,
    node: Node,
    handle: PrometheusHandle,
) -> std::io::Result<(Vec<SocketAddr>, actix_web::dev::Server)> {
    let server = HttpServer::new(move || {
        let (node, handle) = (node.clone(), handle.clone());
        App::new().route(
            "/metrics",
            web::get().to(move || {
                let response = exposition(&node, &handle);
                async move { response }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?;
    let addrs = server.addrs();
    Ok((addrs, server.run()))
}

/// Builds (without installing) the Prometheus recorder for the node's metrics: every histogram
/// of the catalog with its explicit buckets. Install it with [`metrics::set_global_recorder`]
/// and render it with the [`PrometheusHandle`](metrics_exporter_prometheus::PrometheusHandle)
/// from [`PrometheusRecorder::handle`](metrics_exporter_prometheus::PrometheusRecorder::handle).
pub fn prometheus_recorder() -> metrics_exporter_prometheus::PrometheusRecorder {
    let mut builder = metrics_exporter_prometheus::PrometheusBuilder::new();
    for spec in catalog::METRICS
        .iter()
        .filter(|spec| spec.kind == catalog::Kind::Histogram)
    {
        builder = match builder.set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(spec.name.to_owned()),
            spec.buckets,
        ) {
            Ok(builder) => builder,
            // Only an empty bucket list is refused, and the catalog's test rules that out.
            Err(_) => unreachable!("histogram {} has no buckets", spec.name),
        };
    }
    builder.build_recorder()
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use actix_web::http::Method;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let custom = Method::from_bytes(b"BREW").expect("a token");
        assert_eq!(method_label(&custom), "other");
    }
}
