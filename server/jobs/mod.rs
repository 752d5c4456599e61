//! The durable job engine: a Postgres queue (`queue`), named steps whose progress survives any
//! crash (`steps`), and worker pools (`worker`) in `slipway serve` and `slipway worker`.
//!
//! A job kind is a [`Handler`]: its payload type, a list of step names and the code of each
//! step. Steps must be idempotent: after a crash the unfinished step runs again (completed ones
//! are skipped).

pub mod builtin;
pub mod control;
pub mod metrics;
pub mod progress;
pub mod queue;
pub mod steps;
pub mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::DeserializeOwned;

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
    /// What a job of this kind carries, read from `job.payload` once before its steps run; a
    /// payload that does not fit fails the job for good.
    type Payload: DeserializeOwned + Send + Sync + 'static;
    /// The kind name stored in `job.kind`, e.g. `provision.environment`.
    fn kind(&self) -> &'static str;
    /// The steps of a job with this payload, in order.
    fn steps(&self, payload: &Self::Payload) -> Vec<String>;
    /// Runs one step.
    fn run_step<'a>(
        &'a self,
        step: &'a str,
        payload: &'a Self::Payload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a>;
    /// Called once a job of this kind has ended without completing: discarded (out of attempts,
    /// or a permanent error) or cancelled. `error` says why. Not called for a job whose payload
    /// could not be read: it names nothing to tell.
    fn abandoned<'a>(
        &'a self,
        _db: &'a sqlx::PgPool,
        _job: &'a ClaimedJob,
        _payload: &'a Self::Payload,
        _error: &'a str,
    ) -> StepFuture<'a> {
        Box::pin(async { Ok(()) })
    }
    /// For periodic kinds: how often a job of this kind runs (with an empty payload).
    fn every(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The payload of a kind that needs none: `{}`, as periodic jobs are enqueued.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoPayload {}

/// A [`Handler`] whatever its payload type, as the registry keeps it.
pub trait AnyHandler: Send + Sync + 'static {
    fn kind(&self) -> &'static str;
    /// Reads `payload` into the kind's type: the job, ready to run its steps.
    fn read<'h>(&'h self, payload: &serde_json::Value) -> Result<Box<dyn ReadJob + 'h>, String>;
    fn abandoned<'a>(
        &'a self,
        db: &'a sqlx::PgPool,
        job: &'a ClaimedJob,
        error: &'a str,
    ) -> StepFuture<'a>;
    fn every(&self) -> Option<std::time::Duration>;
}

/// A job whose payload was read: its steps, and the code of each.
pub trait ReadJob: Send + Sync {
    fn steps(&self) -> Vec<String>;
    fn run_step<'a>(&'a self, step: &'a str, ctx: &'a StepContext) -> StepFuture<'a>;
}

struct WithPayload<'h, H: Handler> {
    handler: &'h H,
    payload: H::Payload,
}

impl<H: Handler> ReadJob for WithPayload<'_, H> {
    fn steps(&self) -> Vec<String> {
        self.handler.steps(&self.payload)
    }

    fn run_step<'a>(&'a self, step: &'a str, ctx: &'a StepContext) -> StepFuture<'a> {
        self.handler.run_step(step, &self.payload, ctx)
    }
}

impl<H: Handler> AnyHandler for H {
    fn kind(&self) -> &'static str {
        Handler::kind(self)
    }

    fn read<'h>(&'h self, payload: &serde_json::Value) -> Result<Box<dyn ReadJob + 'h>, String> {
        let payload = H::Payload::deserialize(payload).map_err(|e| {
            format!(
                "the payload does not fit a {} job: {e}",
                Handler::kind(self)
            )
        })?;
        Ok(Box::new(WithPayload {
            handler: self,
            payload,
        }))
    }

    fn abandoned<'a>(
        &'a self,
        db: &'a sqlx::PgPool,
        job: &'a ClaimedJob,
        error: &'a str,
    ) -> StepFuture<'a> {
        match H::Payload::deserialize(&job.payload) {
            Ok(payload) => {
                Box::pin(async move { Handler::abandoned(self, db, job, &payload, error).await })
            }
            Err(_) => Box::pin(async { Ok(()) }),
        }
    }

    fn every(&self) -> Option<std::time::Duration> {
        Handler::every(self)
    }
}

/// The job kinds a worker can run.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<&'static str, Arc<dyn AnyHandler>>,
}

impl Registry {
    pub fn with(mut self, handler: impl Handler) -> Self {
        self.handlers
            .insert(Handler::kind(&handler), Arc::new(handler));
        self
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn AnyHandler>> {
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
