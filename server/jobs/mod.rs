//! The durable job engine: a Postgres queue (`queue`), named steps whose progress survives any
//! crash (`steps`), and worker pools (`worker`) in `slipway serve` and `slipway worker`.
//!
//! A job kind is a [`Handler`]: a list of step names and the code of each step. Steps must be
//! idempotent: after a crash the unfinished step runs again (completed ones are skipped).

pub mod builtin;
pub mod metrics;
pub mod progress;
pub mod queue;
pub mod steps;
pub mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use queue::{ClaimedJob, JobState, NewJob};
pub use steps::StepContext;

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Worth another attempt (after a backoff): a timeout, a throttled API.
    #[error("{0}")]
    Transient(String),
    /// Will fail again whatever we do: bad input, a conflict that needs a person.
    #[error("{0}")]
    Permanent(String),
}

pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StepError>> + Send + 'a>>;

/// One kind of job.
pub trait Handler: Send + Sync + 'static {
    /// The kind name stored in `job.kind`, e.g. `provision.environment`.
    fn kind(&self) -> &'static str;
    /// The steps of a job with this payload, in order.
    fn steps(&self, payload: &serde_json::Value) -> Vec<String>;
    /// Runs one step.
    fn run_step<'a>(&'a self, step: &'a str, ctx: &'a StepContext) -> StepFuture<'a>;
    /// Called once a job of this kind has ended without completing: discarded (out of attempts,
    /// or a permanent error) or cancelled. `error` says why.
    fn abandoned<'a>(
        &'a self,
        _db: &'a sqlx::PgPool,
        _job: &'a ClaimedJob,
        _error: &'a str,
    ) -> StepFuture<'a> {
        Box::pin(async { Ok(()) })
    }
    /// For periodic kinds: how often a job of this kind runs (with an empty payload).
    fn every(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The job kinds a worker can run.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
}

impl Registry {
    pub fn with(mut self, handler: impl Handler) -> Self {
        self.handlers.insert(handler.kind(), Arc::new(handler));
        self
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(kind).cloned()
    }

    /// The periodic kinds and their intervals.
    pub fn periodic(&self) -> Vec<(&'static str, std::time::Duration)> {
        self.handlers
            .iter()
            .filter_map(|(kind, h)| h.every().map(|every| (*kind, every)))
            .collect()
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<&'static str> = self.handlers.keys().copied().collect();
        kinds.sort();
        kinds
    }
}
