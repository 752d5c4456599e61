//! Running a job's steps: each step's state, timestamps, attempt, external ids and log lines are
//! written as they happen (fenced by the attempt), and completed steps are skipped on resume.

use std::time::Duration;

use sqlx::PgPool;
use tracing::Instrument;

use super::queue::ClaimedJob;
use super::{AnyHandler, StepError};

/// What a step can do besides its own work: log and record the ids of what it created.
pub struct StepContext {
    pub db: PgPool,
    pub job: ClaimedJob,
    pub step: String,
}

impl StepContext {
    /// Appends a log line to the step (kept with the job, shown on its page).
    pub async fn log(&self, line: &str) -> Result<(), StepError> {
        sqlx::query(
            "UPDATE job_step s SET log = array_append(s.log, $3)
             FROM job j WHERE s.job_id = $1 AND s.name = $2 AND j.id = s.job_id AND j.fence = $4",
        )
        .bind(self.job.id)
        .bind(&self.step)
        .bind(log_line(line))
        .bind(self.job.fence)
        .execute(&self.db)
        .await
        .map_err(|e| StepError::Transient(format!("writing the step log failed: {e}")))?;
        Ok(())
    }

    /// Notes that the step failed transiently and runs again after `delay`: the error beside
    /// it, and a log line saying when. `false` when this attempt no longer owns the job.
    async fn retrying(&self, error: &str, delay: Duration) -> Result<bool, sqlx::Error> {
        let line = format!("failed, trying again in {} s: {error}", delay.as_secs_f64());
        let noted = sqlx::query(
            "UPDATE job_step s SET error = $3, log = array_append(s.log, $4)
             FROM job j WHERE s.job_id = $1 AND s.name = $2 AND j.id = s.job_id AND j.fence = $5 AND j.state = 'running'",
        )
        .bind(self.job.id)
        .bind(&self.step)
        .bind(error)
        .bind(log_line(&line))
        .bind(self.job.fence)
        .execute(&self.db)
        .await?;
        Ok(noted.rows_affected() == 1)
    }

    /// Records an external id (an account id, a cluster ARN) before or after creating it, so a
    /// re-run finds and adopts it instead of creating a second one.
    pub async fn record(&self, key: &str, value: &str) -> Result<(), StepError> {
        sqlx::query(
            "UPDATE job_step s SET external_ids = s.external_ids || jsonb_build_object($3::text, $4::text)
             FROM job j WHERE s.job_id = $1 AND s.name = $2 AND j.id = s.job_id AND j.fence = $5",
        )
        .bind(self.job.id)
        .bind(&self.step)
        .bind(key)
        .bind(value)
        .bind(self.job.fence)
        .execute(&self.db)
        .await
        .map_err(|e| StepError::Transient(format!("recording an external id failed: {e}")))?;
        Ok(())
    }

    /// Drops a recorded external id that no longer leads anywhere (a request that failed), so
    /// the next attempt starts afresh instead of following it again.
    pub async fn forget(&self, key: &str) -> Result<(), StepError> {
        sqlx::query(
            "UPDATE job_step s SET external_ids = s.external_ids - $3::text
             FROM job j WHERE s.job_id = $1 AND s.name = $2 AND j.id = s.job_id AND j.fence = $4",
        )
        .bind(self.job.id)
        .bind(&self.step)
        .bind(key)
        .bind(self.job.fence)
        .execute(&self.db)
        .await
        .map_err(|e| StepError::Transient(format!("forgetting an external id failed: {e}")))?;
        Ok(())
    }

    /// External ids recorded by any step of this job (also by earlier attempts).
    pub async fn recorded(&self, key: &str) -> Result<Option<String>, StepError> {
        sqlx::query_scalar(
            "SELECT external_ids->>$2 FROM job_step WHERE job_id = $1 AND external_ids ? $2 LIMIT 1",
        )
        .bind(self.job.id)
        .bind(key)
        .fetch_optional(&self.db)
        .await
        .map(Option::flatten)
        .map_err(|e| StepError::Transient(format!("reading external ids failed: {e}")))
    }
}

/// A log line as stored: at most 2,000 characters, so one chatty line cannot bloat the step.
fn log_line(line: &str) -> String {
    line.chars().take(2000).collect()
}

/// How a run of a job's steps ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed {
        step: String,
        error: String,
        permanent: bool,
    },
    /// A cancel request was honoured between steps.
    Cancelled,
    /// Another attempt owns the job now; nothing more may be written.
    LostLease,
    /// The payload does not fit the job's kind: no step ran, and none would on a retry.
    Unreadable {
        error: String,
    },
}

/// Runs the job's steps in order, skipping completed ones. `cancelled` is asked between steps.
/// A step that fails transiently runs again after each of `retry_delays` before the attempt
/// fails (steps are idempotent): a throttled or lost call costs seconds, not one of the job's
/// attempts and its growing backoff. Meanwhile the step shows the error and its log says when
/// it tries again.
pub async fn run(
    db: &PgPool,
    handler: &dyn AnyHandler,
    job: &ClaimedJob,
    retry_delays: &[Duration],
    cancelled: impl Fn() -> bool,
) -> Result<Outcome, sqlx::Error> {
    let read = match handler.read(&job.payload) {
        Ok(read) => read,
        Err(error) => return Ok(Outcome::Unreadable { error }),
    };
    let names = read.steps();
    if names.is_empty() {
        return Ok(Outcome::Completed);
    }
    // The step rows exist from the first attempt on; later attempts find them.
    sqlx::query(
        "INSERT INTO job_step (job_id, position, name)
         SELECT $1, p.position, p.name FROM unnest($2::text[]) WITH ORDINALITY AS p(name, position)
         ON CONFLICT (job_id, name) DO NOTHING",
    )
    .bind(job.id)
    .bind(&names)
    .execute(db)
    .await?;
    for name in names {
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM job_step WHERE job_id = $1 AND name = $2")
                .bind(job.id)
                .bind(&name)
                .fetch_optional(db)
                .await?;
        if state.as_deref() == Some("completed") {
            continue;
        }
        if cancelled() {
            return Ok(Outcome::Cancelled);
        }
        let started = sqlx::query(
            "UPDATE job_step s SET state = 'running', attempt = j.attempt, started_at = now(), finished_at = NULL, error = NULL
             FROM job j WHERE s.job_id = $1 AND s.name = $2 AND j.id = s.job_id AND j.fence = $3 AND j.state = 'running'",
        )
        .bind(job.id)
        .bind(&name)
        .bind(job.fence)
        .execute(db)
        .await?;
        if started.rows_affected() == 0 {
            return Ok(Outcome::LostLease);
        }
        let ctx = StepContext {
            db: db.clone(),
            job: job.clone(),
            step: name.clone(),
        };
        let span =
            tracing::info_span!("step", otel.name = %format!("step {name}"), step.name = %name);
        let mut delays = retry_delays.iter();
        let result = loop {
            let result = read.run_step(&name, &ctx).instrument(span.clone()).await;
            let (Err(StepError::Transient(error)), Some(delay)) = (&result, delays.next()) else {
                break result;
            };
            if cancelled() {
                break result;
            }
            if !ctx.retrying(error, *delay).await? {
                return Ok(Outcome::LostLease);
            }
            tokio::time::sleep(*delay).await;
        };
        let (state, error) = match &result {
            Ok(()) => ("completed", None),
            Err(e) => ("failed", Some(e.to_string())),
        };
        let written = sqlx::query(
            "UPDATE job_step s SET state = $4, finished_at = now(), error = $5
             FROM job j WHERE s.job_id = $1 AND s.name = $2 AND j.id = s.job_id AND j.fence = $3 AND j.state = 'running'",
        )
        .bind(job.id)
        .bind(&name)
        .bind(job.fence)
        .bind(state)
        .bind(&error)
        .execute(db)
        .await?;
        if written.rows_affected() == 0 {
            return Ok(Outcome::LostLease);
        }
        if let Err(e) = result {
            return Ok(Outcome::Failed {
                step: name,
                permanent: matches!(e, StepError::Permanent(_)),
                error: e.to_string(),
            });
        }
    }
    Ok(Outcome::Completed)
}
