//! The command-line client: `slipway login`, `platforms`, `envs`, `env …`, `jobs`, `backlog`. It
//! speaks only the public API (API.md) over HTTP, so anything it does a script can do with curl,
//! and it runs against any Slipway it can reach. A leaf: it shares no code with the server.

mod api;
mod commands;
mod credentials;
mod output;
mod watch;

pub use commands::{ClientCommand, EnvCommand, run};

/// Why a client command failed, and the exit status a script can branch on (README, "The
/// command-line client").
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "not signed in: run `slipway login --url URL --token TOKEN` (or set SLIPWAY_URL and SLIPWAY_TOKEN)"
    )]
    NotSignedIn,
    #[error("{0}")]
    Usage(String),
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{}", api_message(*status, title, detail, errors))]
    Api {
        status: u16,
        title: String,
        detail: String,
        errors: Vec<(String, String)>,
    },
    #[error("{0}")]
    Ended(String),
    #[error("timed out after {0} s")]
    TimedOut(u64),
    #[error("{0}")]
    Local(String),
}

fn api_message(status: u16, title: &str, detail: &str, errors: &[(String, String)]) -> String {
    let mut text = if detail.is_empty() {
        format!("{title} ({status})")
    } else {
        format!("{detail} ({status})")
    };
    for (field, message) in errors {
        text.push_str(&format!("\n  {field}: {message}"));
    }
    text
}

impl ClientError {
    /// 2 usage, 3 not signed in or token refused, 4 forbidden, 5 not found, 6 conflict (wrong
    /// state), 7 invalid input, 8 server unreachable or unavailable (try again), 9 the watched
    /// environment ended other than hoped, 10 timed out, 1 anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Usage(_) => 2,
            ClientError::NotSignedIn => 3,
            ClientError::Api { status, .. } => match status {
                401 => 3,
                403 => 4,
                404 => 5,
                409 => 6,
                400 | 413 | 422 => 7,
                429 | 502..=504 => 8,
                _ => 1,
            },
            ClientError::Unreachable { .. } => 8,
            ClientError::Ended(_) => 9,
            ClientError::TimedOut(_) => 10,
            ClientError::Local(_) => 1,
        }
    }
}
