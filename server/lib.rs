//! Slipway: a self-service internal developer portal for delivering a Kubernetes microservices
//! platform in the cloud. See the README for what it does and `server/cli.rs` for how it starts.

pub mod cli;
pub mod config;
pub mod db;
pub mod http;
pub mod telemetry;
