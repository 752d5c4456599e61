//! The job kinds every Slipway worker runs: periodic cleanup of finished jobs, and a self-test
//! job operators enqueue to check that workers run and resume (`slipway admin selftest-job`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::queue::{self, EnqueueError, NewJob};
use super::{Handler, NoPayload, Registry, StepContext, StepError, StepFuture};

/// Deletes jobs that finished longer than the retention ago.
pub struct Cleanup {
    pub retention: Duration,
}

pub const CLEANUP: &str = "maintenance.cleanup";
pub const SELFTEST: &str = "slipway.selftest";
/// How often the cleanup runs.
const CLEANUP_EVERY: Duration = Duration::from_secs(3600);

impl Handler for Cleanup {
    type Payload = NoPayload;

    fn kind(&self) -> &'static str {
        CLEANUP
    }

    fn steps(&self, _: &NoPayload) -> Vec<String> {
        vec!["delete-finished-jobs".into()]
    }

    fn every(&self) -> Option<Duration> {
        Some(CLEANUP_EVERY)
    }

    fn run_step<'a>(
        &'a self,
        _: &'a str,
        _: &'a NoPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let retention =
                chrono::Duration::from_std(self.retention).unwrap_or(chrono::Duration::MAX);
            let deleted = sqlx::query(
                "DELETE FROM job WHERE state IN ('completed', 'cancelled', 'discarded') AND finished_at < now() - $1",
            )
            .bind(retention)
            .execute(&ctx.db)
            .await
            .map_err(|e| StepError::Transient(e.to_string()))?
            .rows_affected();
            ctx.log(&format!("deleted {deleted} finished jobs")).await
        })
    }
}

/// A job of `steps` steps that each wait `step_ms` and log which worker ran them.
pub struct SelfTest;

/// The payload of a self-test job.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfTestPayload {
    /// 1 to 10 steps.
    pub steps: u32,
    /// How long each step waits, up to a minute.
    pub step_ms: u64,
}

impl Handler for SelfTest {
    type Payload = SelfTestPayload;

    fn kind(&self) -> &'static str {
        SELFTEST
    }

    fn steps(&self, payload: &SelfTestPayload) -> Vec<String> {
        (1..=payload.steps.clamp(1, 10))
            .map(|n| format!("step-{n}"))
            .collect()
    }

    fn run_step<'a>(
        &'a self,
        step: &'a str,
        payload: &'a SelfTestPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let wait = payload.step_ms.min(60_000);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            ctx.log(&format!(
                "{step} done by worker process {} (attempt {})",
                std::process::id(),
                ctx.job.attempt
            ))
            .await
        })
    }
}

/// The built-in kinds.
pub fn registry(retention: Duration) -> Registry {
    Registry::default()
        .with(Cleanup { retention })
        .with(SelfTest)
}

/// Enqueues a self-test job; returns its id.
pub async fn enqueue_selftest(db: &PgPool, steps: u32, step_ms: u64) -> Result<i64, EnqueueError> {
    let mut tx = db.begin().await?;
    let payload = SelfTestPayload { steps, step_ms };
    let payload = serde_json::to_value(payload).expect("a self-test payload serialises");
    let mut job = NewJob::new(SELFTEST, payload);
    job.max_attempts = 5;
    let id = queue::enqueue(&mut tx, &job).await?;
    tx.commit().await?;
    Ok(id)
}
