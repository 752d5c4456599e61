//! Structured logs with `tracing`: readable lines for people, JSON lines for log shippers; and,
//! when `otlp_endpoint` is set, OpenTelemetry traces over OTLP/HTTP: a span per HTTP request,
//! per job attempt and step, and per cloud call (AWS operation, Kubernetes verb and kind),
//! linked across the queue by the trace context each job keeps from its enqueuer.

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::app::config::{Config, LogFormat};

/// What must outlive the command: the trace exporter, flushed by [`Telemetry::shutdown`].
#[must_use = "call shutdown() at exit, or the last spans are lost"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered; at exit.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(e) = provider.shutdown()
        {
            eprintln!("warning: the last traces could not be sent: {e}");
        }
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the `log_level` setting, as
/// Rust developers expect. A second initialisation (tests running several apps in one process)
/// keeps the first.
pub fn init(config: &Config) -> Telemetry {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&config.log_level));
    let logs = match config.log_format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let traces =
        config
            .otlp_endpoint
            .as_deref()
            .and_then(|endpoint| match tracer_provider(endpoint) {
                Ok(provider) => Some(provider),
                Err(e) => {
                    eprintln!("warning: no traces: the OTLP exporter for {endpoint} failed: {e}");
                    None
                }
            });
    let otel = traces.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("slipway"))
            .with_filter(traced())
    });
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init()
        .is_ok();
    Telemetry {
        traces: traces.filter(|_| installed),
    }
}

fn tracer_provider(endpoint: &str) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    crate::init_tls();
    let http = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(http)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name("slipway")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// What becomes a span: spans and events at info and above (cloud calls have info spans of
/// their own: see `provision::aws::traced_operations`). A plain level: with a per-target or
/// dynamic filter here beside the logs' `EnvFilter`, tracing-subscriber 0.3 left the spans of
/// spawned job tasks out of the trace (found by the trace test).
fn traced() -> tracing_subscriber::filter::LevelFilter {
    tracing_subscriber::filter::LevelFilter::INFO
}
