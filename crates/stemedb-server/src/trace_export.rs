//! Export of the process's `tracing` spans with OpenTelemetry (`telemetry.otlp_endpoint`),
//! and the W3C trace context of incoming requests.
//!
//! Off by default, and then free: no layer is installed, so the engine's `debug` spans stay
//! disabled and `observe` reads no header (one relaxed atomic load per request). On, a
//! `tracing-opentelemetry` layer with its own filter (`telemetry.otlp_level`) sends spans
//! through the SDK's batch processor (a thread of its own, a bounded queue that drops spans
//! rather than block) to an OTLP/HTTP exporter on reqwest's blocking client, without TLS.
//! [`TraceExport::shutdown`] sends what is queued before the process ends.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

use crate::TelemetryConfig;
use crate::telemetry_config::otlp_traces_url;

/// The W3C header that carries a caller's trace and span ids.
const TRACEPARENT: &str = "traceparent";

/// The longest one export may take, in milliseconds, before the batch is given up: a
/// collector that does not answer delays the next batch by at most this, and shutdown too.
const OTLP_EXPORT_TIMEOUT_MS: u64 = 5_000;

/// Set once an exporting layer is installed: `observe` then reads `traceparent`.
static PROPAGATING: AtomicBool = AtomicBool::new(false);

/// The running export; keep it until the server stops, then [`shutdown`](Self::shutdown) it.
#[derive(Debug)]
pub struct TraceExport {
    provider: SdkTracerProvider,
}

impl TraceExport {
    /// Sends the spans still queued and stops the exporter; blocks up to the export timeout.
    /// Call it outside the async runtime, once the server has stopped.
    pub fn shutdown(self) -> Result<(), String> {
        PROPAGATING.store(false, Ordering::Relaxed);
        self.provider
            .shutdown()
            .map_err(|e| format!("cannot flush the exported spans: {e}"))
    }
}

/// What could not start the export (the exporter's configuration or its HTTP client).
#[derive(Debug, thiserror::Error)]
#[error("telemetry.otlp_endpoint = {endpoint:?}: cannot start the exporter: {reason}")]
pub struct ExportError {
    endpoint: String,
    reason: String,
}

/// Builds the exporting layer for `config` (whose `otlp_endpoint` is set) with its filter,
/// and the handle that flushes it. The layer takes effect once installed; installing it turns
/// on `traceparent` propagation.
pub(crate) fn layer<S>(config: &TelemetryConfig) -> Result<(impl Layer<S> + use<S>, TraceExport), ExportError>
where
    S: tracing::Subscriber + for<'span> LookupSpan<'span>,
{
    let failed = |reason: String| ExportError {
        endpoint: config.otlp_endpoint.clone(),
        reason,
    };
    let url = otlp_traces_url(&config.otlp_endpoint).map_err(failed)?;
    let filter = EnvFilter::builder()
        .parse(&config.otlp_level)
        .map_err(|e| failed(format!("telemetry.otlp_level = {:?}: {e}", config.otlp_level)))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(std::time::Duration::from_millis(OTLP_EXPORT_TIMEOUT_MS))
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name(config.otlp_service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.otlp_sampling_ratio,
        ))))
        .with_resource(resource)
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("stemedb"))
        .with_filter(filter);
    Ok((layer, TraceExport { provider }))
}

/// Turns on `traceparent` propagation: called once the exporting layer is installed.
pub(crate) fn start_propagating() {
    PROPAGATING.store(true, Ordering::Relaxed);
}

/// Makes `span` a child of the caller's span named by the request's `traceparent`, if spans
/// are exported and the header is there and valid; otherwise leaves it a new trace. Never
/// fails: a bad header is the caller's problem, not the request's.
pub(crate) fn join_callers_trace(span: &tracing::Span, headers: &HeaderMap) {
    if !PROPAGATING.load(Ordering::Relaxed) || !headers.contains_key(TRACEPARENT) {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // Fails only if the span is not exported (filtered out) or already started: then it
    // simply stays in its own trace.
    let _ = span.set_parent(parent);
}

/// A request's headers, as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}
