//! Structured logs with `tracing`: readable lines for people, JSON lines for log shippers.

use tracing_subscriber::EnvFilter;

use crate::app::config::{Config, LogFormat};

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the `log_level` setting, as
/// Rust developers expect.
pub fn init(config: &Config) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests running several apps in one process) keeps the first.
    let _ = match config.log_format {
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
