//! Trace context across process and queue boundaries: a job keeps its enqueuer's context as a
//! W3C `traceparent` and its attempts continue that trace; log lines carry the trace id. All
//! no-ops while tracing is off (no `otlp_endpoint`).

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The current span's trace context as a W3C `traceparent`, to carry across the queue; `None`
/// without tracing.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    struct Carrier(Option<String>);
    impl Injector for Carrier {
        fn set(&mut self, key: &str, value: String) {
            if key == "traceparent" {
                self.0 = Some(value);
            }
        }
    }
    let mut carrier = Carrier(None);
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.0
}

/// Makes `span` a child of the context in `traceparent` (what [`current_traceparent`] kept).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    struct Carrier<'a>(Option<&'a str>);
    impl Extractor for Carrier<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            (key == "traceparent").then_some(self.0).flatten()
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent"]
        }
    }
    if traceparent.is_some() {
        let context = TraceContextPropagator::new().extract(&Carrier(traceparent));
        // Refused only when the span is not traced at all; nothing to link then.
        let _ = span.set_parent(context);
    }
}

/// Writes the span's trace id into its `trace_id` field, so every log line inside it carries
/// it; a no-op without tracing.
pub fn record_trace_id(span: &tracing::Span) {
    let id = span.context().span().span_context().trace_id();
    if id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(id));
    }
}
