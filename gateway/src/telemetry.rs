//! Traces over OTLP/HTTP (`[telemetry]`), off unless `otlp_endpoint` is set.
//!
//! The gateway's `tracing` spans become OpenTelemetry spans (`tracing-opentelemetry`): the
//! request span of each HTTP request (continuing a caller's W3C `traceparent`), the delivery
//! span of each attempt, and the span of each call out (`hcc_adapters::http::send`, whose
//! `traceparent` header names it). The trace crosses the queue in the message itself
//! ([`current_traceparent`] at acceptance, [`continue_trace`] at delivery), so a delivery after
//! a restart, or by another instance, is still a child of the request that accepted it.
//!
//! Export is the gateway's own small batcher rather than the SDK's: finished spans go into a
//! bounded channel without waiting ([`ExportQueue`]), and one task posts them in batches with a
//! time limit. A full channel or a failed export drops spans and counts them
//! (`hcc_trace_spans_dropped_total{reason}`); nothing a request or a delivery does ever waits
//! for the collector. Before export every text in a span (its name, attributes, events, status)
//! has identity numbers masked, as log lines do (`crate::redact`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use hcc_config::TelemetrySettings;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Status, TraceContextExt, TracerProvider as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor, Tracer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::redact;

/// Spans posted in one request to the collector, at most.
const BATCH: usize = 512;
/// How long a finished span waits for its batch to fill before it is sent anyway.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// The longest text a span attribute keeps, in characters.
const MAX_ATTRIBUTE_CHARS: usize = 1024;

/// Whether traces are on in this process: set once by [`Telemetry::start`].
static ENABLED: AtomicBool = AtomicBool::new(false);

/// What became of finished spans, for `/metrics` (the same counters whether traces are on).
static COUNTERS: LazyLock<SpanCounters> = LazyLock::new(SpanCounters::default);

#[derive(Default)]
struct SpanCounters {
    exported: Counter,
    dropped: Family<DropReason, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropReason {
    /// `queue_full` (more finished spans waiting than `max_queued_spans`) or `export_failed`
    /// (the collector refused, was unreachable, or took longer than `export_timeout_ms`).
    reason: &'static str,
}

fn dropped(reason: &'static str, n: usize) {
    COUNTERS.dropped.get_or_create(&DropReason { reason }).inc_by(n as u64);
}

/// Registers the span counters with the gateway's metrics.
pub fn register(registry: &mut Registry) {
    for reason in ["queue_full", "export_failed"] {
        let _ = COUNTERS.dropped.get_or_create(&DropReason { reason });
    }
    registry.register(
        "hcc_trace_spans_exported",
        "Finished spans the OTLP collector took",
        COUNTERS.exported.clone(),
    );
    registry.register(
        "hcc_trace_spans_dropped",
        "Finished spans dropped, by reason: queue_full (the collector is behind) or export_failed (down, refusing or slow)",
        COUNTERS.dropped.clone(),
    );
}

/// Why traces cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry.otlp_endpoint: {0}")]
    Exporter(String),
}

/// Traces while the process runs: hand [`Telemetry::tracer`] to the log subscriber, and call
/// [`Telemetry::shutdown`] last, so that the spans of the shutdown itself are sent too.
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporter: tokio::task::JoinHandle<()>,
    timeout: Duration,
}

impl Telemetry {
    /// Starts the export task on the current Tokio runtime. `None` when traces are off.
    pub fn start(settings: &TelemetrySettings) -> Result<Option<Telemetry>, TelemetryError> {
        if !settings.enabled() {
            return Ok(None);
        }
        let timeout = Duration::from_millis(settings.export_timeout_ms);
        let client = hcc_adapters::http::client(timeout).map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_endpoint(settings.traces_url())
            .with_timeout(timeout)
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let instance = if settings.instance_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            settings.instance_id.clone()
        };
        let resource = Resource::builder()
            .with_service_name(settings.service_name.clone())
            .with_attributes([
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("service.instance.id", instance),
            ])
            .build();
        exporter.set_resource(&resource);
        let (tx, rx) = mpsc::channel(settings.max_queued_spans);
        let exporter = tokio::spawn(export_loop(exporter, rx, timeout));
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio))))
            .with_span_processor(ExportQueue { tx: Mutex::new(Some(tx)) })
            .build();
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Some(Telemetry {
            provider,
            exporter,
            timeout,
        }))
    }

    /// The tracer for `tracing-opentelemetry`'s layer (`crate::logging::init_with_traces`).
    pub fn tracer(&self) -> Tracer {
        self.provider.tracer("hcc-gateway")
    }

    /// Ends the export: spans finished until now are sent (within the export timeout), later
    /// ones are dropped.
    pub async fn shutdown(self) {
        ENABLED.store(false, Ordering::Relaxed);
        // Closes the channel: the export task sends what it holds and ends.
        let _ = self.provider.shutdown_with_timeout(self.timeout);
        let _ = tokio::time::timeout(self.timeout + Duration::from_secs(1), self.exporter).await;
    }
}

/// Whether traces are on in this process.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Hands finished spans to the export task without ever waiting: a full channel drops the span
/// and counts it.
#[derive(Debug)]
struct ExportQueue {
    /// Taken at shutdown, which closes the channel.
    tx: Mutex<Option<mpsc::Sender<SpanData>>>,
}

impl SpanProcessor for ExportQueue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = tx.as_ref() else {
            // Shut down: the span comes too late.
            return dropped("export_failed", 1);
        };
        match tx.try_send(span) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => dropped("queue_full", 1),
            Err(mpsc::error::TrySendError::Closed(_)) => dropped("export_failed", 1),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        // The export task sends within FLUSH_EVERY by itself.
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        Ok(())
    }
}

/// Gathers finished spans into batches (full, or [`FLUSH_EVERY`] old) and posts each one,
/// masked, within `timeout`. Ends when the channel closes, after sending what it holds.
async fn export_loop(exporter: opentelemetry_otlp::SpanExporter, mut rx: mpsc::Receiver<SpanData>, timeout: Duration) {
    let mut up = true;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let open = match rx.recv().await {
            Some(span) => {
                batch.push(span);
                // Gather more for a while, without waiting past the deadline.
                let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
                let mut open = true;
                while batch.len() < BATCH {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(span)) => batch.push(span),
                        Ok(None) => {
                            open = false;
                            break;
                        }
                        Err(_) => break,
                    }
                }
                open
            }
            None => false,
        };
        if !batch.is_empty() {
            let spans: Vec<SpanData> = batch.drain(..).map(masked).collect();
            let n = spans.len();
            match tokio::time::timeout(timeout, exporter.export(spans)).await {
                Ok(Ok(())) => {
                    COUNTERS.exported.inc_by(n as u64);
                    if !up {
                        tracing::info!("the trace collector takes spans again");
                        up = true;
                    }
                }
                failed => {
                    dropped("export_failed", n);
                    if up {
                        // Once per outage: the collector's absence is not the gateway's failure.
                        let why = match failed {
                            Ok(Err(e)) => redact::clean(&e.to_string(), 300),
                            _ => format!("no answer within {} ms", timeout.as_millis()),
                        };
                        tracing::warn!(error = %why, "cannot send spans to the trace collector; spans are dropped (hcc_trace_spans_dropped_total) until it answers");
                        up = false;
                    }
                }
            }
        }
        if !open {
            return;
        }
    }
}

/// `span` with identity numbers masked in every text it carries, and long texts cut.
fn masked(mut span: SpanData) -> SpanData {
    if let Some(m) = changed(&span.name) {
        span.name = m.into();
    }
    mask_attributes(&mut span.attributes);
    for event in span.events.events.iter_mut() {
        if let Some(m) = changed(&event.name) {
            event.name = m.into();
        }
        mask_attributes(&mut event.attributes);
    }
    if let Status::Error { description } = &span.status
        && let Some(m) = changed(description)
    {
        span.status = Status::Error { description: m.into() };
    }
    span
}

fn mask_attributes(attributes: &mut [KeyValue]) {
    for kv in attributes.iter_mut() {
        let text = match &kv.value {
            Value::String(s) => s.as_str().to_string(),
            // Arrays and numbers: the gateway records no identity number as either.
            _ => continue,
        };
        if let Some(m) = changed(&text) {
            kv.value = Value::String(m.into());
        }
    }
}

/// `text` masked and cut, when that changes it.
fn changed(text: &str) -> Option<String> {
    let mut m = redact::mask_identity_numbers(text);
    if m.chars().count() > MAX_ATTRIBUTE_CHARS {
        m = m.chars().take(MAX_ATTRIBUTE_CHARS).chain(['…']).collect();
    }
    (m != text).then_some(m)
}

/// The W3C `traceparent` of the current span, while traces are on: what a queued message
/// keeps, so that its delivery continues the trace (and its sampling decision).
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    traceparent_of(&tracing::Span::current())
}

/// The W3C `traceparent` naming `span`. A span of a trace that is not sampled has one too
/// (flags `00`): passed on, it keeps the caller's decision not to record the trace, here after
/// the queue and at the counterparts.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the span `traceparent` names (a caller's header, or the one kept
/// with a message). A malformed or invalid `traceparent` is ignored: `span` starts a trace.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    if !enabled() || traceparent.len() > 128 {
        return;
    }
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_numbers_are_masked_in_every_text_of_a_span() {
        let mut attrs = vec![
            KeyValue::new("path", "/v1/dossiers/H46-001?cccd=001203004567"),
            KeyValue::new("attempt", 3i64),
        ];
        mask_attributes(&mut attrs);
        let Value::String(path) = &attrs[0].value else {
            panic!("still a string")
        };
        assert!(!path.as_str().contains("001203004567"), "{path}");
        assert!(path.as_str().contains("H46-001"), "the dossier code stays: {path}");
        assert_eq!(attrs[1].value, Value::I64(3));
        assert_eq!(changed("delivered"), None, "plain text is left as it is");
        let long = "x".repeat(MAX_ATTRIBUTE_CHARS + 10);
        assert_eq!(changed(&long).map(|c| c.chars().count()), Some(MAX_ATTRIBUTE_CHARS + 1));
    }

    #[test]
    fn a_full_export_queue_drops_and_counts_instead_of_waiting() {
        use opentelemetry::trace::{Span as _, Tracer as _};
        let (tx, mut rx) = mpsc::channel(2);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(ExportQueue { tx: Mutex::new(Some(tx)) })
            .build();
        let tracer = provider.tracer("test");
        let full = || COUNTERS.dropped.get_or_create(&DropReason { reason: "queue_full" }).get();
        let before = full();
        for _ in 0..5 {
            tracer.start("span").end();
        }
        assert_eq!(full() - before, 3, "two fit, three are dropped and counted");
        assert!(rx.try_recv().is_ok() && rx.try_recv().is_ok() && rx.try_recv().is_err());
    }

    #[test]
    fn nothing_is_read_or_continued_while_traces_are_off() {
        // ENABLED is false in unit tests: no span, no header, no parent.
        assert_eq!(current_traceparent(), None);
        let span = tracing::info_span!("x");
        continue_trace(&span, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(traceparent_of(&span), None);
    }
}
