//! The application: configuration, the command line, the shared state, the router and the
//! server loop. Everything else is a domain module (`define`, `environments`, `jobs`,
//! `provision`, `auth`, `audit`) or the HTTP layer over them (`http`).

pub mod cli;
pub mod config;
pub mod router;
pub mod server;
pub mod state;
pub mod telemetry;

pub use state::AppState;
