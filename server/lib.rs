//! Slipway: a self-service internal developer portal for delivering a Kubernetes microservices
//! platform in the cloud. See the README for what it does and `server/app/cli.rs` for how it starts.

pub mod app;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod client;
pub mod clock;
pub mod db;
pub mod define;
pub mod environments;
pub mod exploit;
pub mod http;
pub mod idempotency;
pub mod inbox;
pub mod jobs;
pub mod maintain;
pub mod outbound;
pub mod provision;
pub mod repositories;
pub mod search;
pub mod secret;
pub mod teams;
pub mod trace;
pub mod validation;

/// Chooses the TLS crypto provider (ring) for outgoing HTTPS, once per process. Must run before
/// any HTTPS client is built.
pub fn init_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider was installed first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
