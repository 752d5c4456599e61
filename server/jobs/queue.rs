//! The queue's SQL: enqueue (inside the caller's transaction), claim in batches with
//! `FOR UPDATE SKIP LOCKED`, fenced completion and failure, heartbeats, the rescuer, cancel and
//! manual retry. Times come from the caller's clock so tests need not sleep.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

/// The channel that wakes workers when a job becomes available.
pub const CHANNEL: &str = "slipway_jobs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Available,
    Running,
    Retryable,
    Completed,
    Cancelled,
    Discarded,
}

crate::text_column!(JobState, "job state");

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Discarded => "discarded",
        }
    }

    /// Completed, cancelled or discarded: no worker will run it again unless asked to.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Cancelled | JobState::Discarded
        )
    }

    pub fn parse(text: &str) -> Option<JobState> {
        Some(match text {
            "available" => JobState::Available,
            "running" => JobState::Running,
            "retryable" => JobState::Retryable,
            "completed" => JobState::Completed,
            "cancelled" => JobState::Cancelled,
            "discarded" => JobState::Discarded,
            _ => return None,
        })
    }
}

/// A job to put on the queue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: String,
    pub payload: serde_json::Value,
    pub priority: i16,
    pub max_attempts: i32,
    pub run_at: Option<DateTime<Utc>>,
    pub unique_key: Option<String>,
}

impl NewJob {
    pub fn new(kind: &str, payload: serde_json::Value) -> Self {
        NewJob {
            kind: kind.to_owned(),
            payload,
            priority: 0,
            max_attempts: 10,
            run_at: None,
            unique_key: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error("an active job with the key {0} already exists")]
    Duplicate(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Enqueues inside the caller's transaction: the job exists (and workers are woken) only if the
/// transaction commits.
pub async fn enqueue(tx: &mut PgConnection, job: &NewJob) -> Result<i64, EnqueueError> {
    let inserted = sqlx::query_scalar(
        "INSERT INTO job (kind, payload, priority, max_attempts, run_at, unique_key, trace_parent)
         VALUES ($1, $2, $3, $4, coalesce($5, now()), $6, $7) RETURNING id",
    )
    .bind(&job.kind)
    .bind(&job.payload)
    .bind(job.priority)
    .bind(job.max_attempts)
    .bind(job.run_at)
    .bind(&job.unique_key)
    .bind(crate::trace::current_traceparent())
    .fetch_one(&mut *tx)
    .await;
    let id = match inserted {
        Ok(id) => id,
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("job_unique_active") => {
            return Err(EnqueueError::Duplicate(
                job.unique_key.clone().unwrap_or_default(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    // NOTIFY is delivered at commit, never for a rolled-back enqueue.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut *tx)
        .await?;
    Ok(id)
}

/// Makes sure the next run of periodic `kind` is scheduled, `every` from now: one at a time,
/// by its unique key, however many workers ask.
pub async fn schedule_periodic(
    db: &PgPool,
    kind: &str,
    every: Duration,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    let mut job = NewJob::new(kind, serde_json::json!({}));
    job.unique_key = Some(format!("periodic:{kind}"));
    job.run_at = Some(now + chrono::Duration::from_std(every).unwrap_or_default());
    match enqueue(&mut tx, &job).await {
        Ok(_) => tx.commit().await,
        Err(EnqueueError::Duplicate(_)) => Ok(()),
        Err(EnqueueError::Db(e)) => Err(e),
    }
}

/// A job as a worker holds it: `fence` proves which attempt it is.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    /// When it became due (claim latency is measured from here).
    pub run_at: DateTime<Utc>,
    pub payload: serde_json::Value,
    pub attempt: i32,
    pub max_attempts: i32,
    pub fence: i64,
    pub priority: i16,
    /// The enqueuer's trace context, continued by each attempt.
    pub trace_parent: Option<String>,
}

/// A position in the claim order (priority descending, then due time, then id): where the last
/// claim stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimCursor {
    priority: i16,
    run_at: DateTime<Utc>,
    id: i64,
}

impl ClaimCursor {
    /// The last of `jobs` in the claim order, if any.
    pub fn after(jobs: &[ClaimedJob]) -> Option<ClaimCursor> {
        jobs.iter()
            .map(|job| ClaimCursor {
                priority: job.priority,
                run_at: job.run_at,
                id: job.id,
            })
            .max_by_key(|c| (std::cmp::Reverse(c.priority), c.run_at, c.id))
    }
}

/// The claim, with `{after}` for an optional condition on where the scan starts.
const CLAIM: &str = "WITH next AS (
         SELECT id, run_at FROM job
         WHERE state IN ('available', 'retryable') AND run_at <= $1 AND kind = ANY($5) {after}
         ORDER BY priority DESC, run_at, id
         LIMIT $2
         FOR UPDATE SKIP LOCKED
     )
     UPDATE job SET state = 'running', attempt = job.attempt + 1, fence = job.fence + 1,
         locked_by = $3, lease_until = $1 + $4, heartbeat_at = $1,
         started_at = coalesce(job.started_at, $1)
     FROM next WHERE job.id = next.id
     RETURNING job.id, job.kind, next.run_at, job.payload, job.attempt, job.max_attempts, job.fence,
         job.priority, job.trace_parent";

/// Claims up to `limit` runnable jobs of the given `kinds` for `worker`, holding each for
/// `lease`, first in the claim order. Jobs of kinds a worker does not know wait for one that
/// does (a newer version).
pub async fn claim(
    db: &PgPool,
    worker: &str,
    kinds: &[&str],
    limit: i64,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<ClaimedJob>, sqlx::Error> {
    claim_query(
        CLAIM.replace("{after}", ""),
        worker,
        kinds,
        limit,
        lease,
        now,
    )
    .fetch_all(db)
    .await
}

/// Like [`claim`], but only jobs of the cursor's priority that come after it. A claimed job
/// leaves a dead entry at the front of the claimable index until VACUUM removes it, and a
/// claim from the front reads past all of them: its cost grows with the jobs claimed since the
/// last vacuum. This one starts its index scan at the cursor, past them, at a cost that does
/// not depend on the backlog. It does not see jobs that sort before the cursor (a higher
/// priority, an earlier due time, one skipped while locked), so the caller claims from the
/// front as well when this finds too few, and regularly.
pub async fn claim_after(
    db: &PgPool,
    worker: &str,
    kinds: &[&str],
    limit: i64,
    lease: Duration,
    now: DateTime<Utc>,
    cursor: ClaimCursor,
) -> Result<Vec<ClaimedJob>, sqlx::Error> {
    let after = "AND priority = $6 AND (run_at, id) > ($7, $8)";
    claim_query(
        CLAIM.replace("{after}", after),
        worker,
        kinds,
        limit,
        lease,
        now,
    )
    .bind(cursor.priority)
    .bind(cursor.run_at)
    .bind(cursor.id)
    .fetch_all(db)
    .await
}

/// Where one pool of workers claims. Each claim starts past the jobs the pool claimed before
/// ([`claim_after`]), at a cost that does not depend on the backlog. A claim from the front of
/// the queue ([`claim`]) finds the jobs that sort before the cursor (a higher priority, a due
/// time in the past, one skipped while another pool held it); it is due when a claim past the
/// cursor comes back short and at least once per `full_every`, and the pool runs it beside the
/// claims past the cursor, never in front of them. So a job past the cursor never waits for the
/// slower claim from the front, and one before it waits for at most that claim (or
/// `full_every` while a large backlog drains).
#[derive(Debug)]
pub struct Claimer {
    cursor: Option<ClaimCursor>,
    full_every: chrono::Duration,
    next_full: Option<DateTime<Utc>>,
    /// The last claim past the cursor found fewer jobs than it asked for: what is left of its
    /// priority may sort before the cursor.
    short: bool,
    /// A claim past the cursor came back short since the last claim from the front started.
    front_wanted: bool,
}

impl Claimer {
    pub fn new(full_every: Duration) -> Claimer {
        Claimer {
            cursor: None,
            full_every: chrono::Duration::from_std(full_every).unwrap_or(chrono::Duration::MAX),
            next_full: None,
            short: false,
            front_wanted: false,
        }
    }

    /// Whether a claim from the front of the queue is due.
    pub fn front_due(&self, now: DateTime<Utc>) -> bool {
        self.cursor.is_none() || self.front_wanted || self.next_full.is_none_or(|due| now >= due)
    }

    /// How many of `free` slots a claim from the front may take: all of them before there is a
    /// cursor, else half, so that claims past the cursor go on beside it.
    pub fn front_limit(&self, free: usize) -> usize {
        if self.cursor.is_none() {
            free
        } else {
            free.div_ceil(2)
        }
    }

    /// Claims up to `limit` jobs past the cursor; none before there is one (the first claim
    /// from the front sets it).
    pub async fn claim(
        &mut self,
        db: &PgPool,
        worker: &str,
        kinds: &[&str],
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<ClaimedJob>, sqlx::Error> {
        let Some(cursor) = self.cursor else {
            return Ok(Vec::new());
        };
        let jobs = claim_after(db, worker, kinds, limit as i64, lease, now, cursor).await?;
        self.short = jobs.len() < limit;
        self.front_wanted |= self.short;
        self.cursor = ClaimCursor::after(&jobs).or(self.cursor);
        Ok(jobs)
    }

    /// Notes that a claim from the front starts: the next is due in `full_every`, or sooner
    /// when a claim past the cursor comes back short again.
    pub fn front_started(&mut self, now: DateTime<Utc>) {
        self.front_wanted = false;
        self.next_full = Some(now + self.full_every);
    }

    /// Moves the cursor after what a claim from the front found: to a higher priority that
    /// came in, to a lower one once the cursor's runs out past it (the front found none of it),
    /// and within one priority only forward, so that no claim reads again past the entries the
    /// cursor has left behind.
    pub fn front_claimed(&mut self, jobs: &[ClaimedJob]) {
        let Some(front) = ClaimCursor::after(jobs) else {
            return;
        };
        let moves = match self.cursor {
            None => true,
            Some(cursor) if front.priority > cursor.priority => true,
            Some(cursor) if front.priority < cursor.priority => self.short,
            Some(cursor) => (front.run_at, front.id) > (cursor.run_at, cursor.id),
        };
        if moves {
            self.cursor = Some(front);
        }
    }
}

fn claim_query<'q>(
    sql: String,
    worker: &'q str,
    kinds: &'q [&'q str],
    limit: i64,
    lease: Duration,
    now: DateTime<Utc>,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, ClaimedJob, sqlx::postgres::PgArguments> {
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(now)
        .bind(limit)
        .bind(worker)
        .bind(chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX))
        .bind(kinds)
}

/// Marks the attempt completed; `false` when the lease was lost (another attempt owns it).
pub async fn complete(
    db: &PgPool,
    job: &ClaimedJob,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    end(db, job, JobState::Completed, now).await
}

/// Ends a running attempt in `state`, if this attempt still owns the job.
async fn end(
    db: &PgPool,
    job: &ClaimedJob,
    state: JobState,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE job SET state = $3, finished_at = $4, locked_by = NULL, lease_until = NULL
         WHERE id = $1 AND fence = $2 AND state = 'running'",
    )
    .bind(job.id)
    .bind(job.fence)
    .bind(state)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks many attempts completed in one statement; returns how many were still owned.
pub async fn complete_many(
    db: &PgPool,
    jobs: &[(i64, i64)],
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let (ids, fences): (Vec<i64>, Vec<i64>) = jobs.iter().copied().unzip();
    let done = sqlx::query(
        "UPDATE job SET state = 'completed', finished_at = $3, locked_by = NULL, lease_until = NULL
         FROM unnest($1::bigint[], $2::bigint[]) AS done(id, fence)
         WHERE job.id = done.id AND job.fence = done.fence AND job.state = 'running'",
    )
    .bind(&ids)
    .bind(&fences)
    .bind(now)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// How long to wait before attempt `attempt + 1`: exponential (2^attempt seconds, at most an
/// hour) with up to 10% random jitter so failed jobs do not retry in lockstep.
pub fn backoff(attempt: i32, jitter: f64) -> Duration {
    let base = 2f64.powi(attempt.clamp(0, 12)).min(3600.0);
    Duration::from_secs_f64(base * (1.0 + 0.1 * jitter.clamp(0.0, 1.0)))
}

/// Whether a failure of this attempt ends the job (`discarded`) rather than retrying it.
pub fn discards(job: &ClaimedJob, permanent: bool) -> bool {
    permanent || job.attempt >= job.max_attempts
}

/// Records a failed attempt: `retryable` after a backoff, or `discarded` when attempts are used
/// up (also when `permanent`). `false` when the lease was lost.
pub async fn fail(
    db: &PgPool,
    job: &ClaimedJob,
    error: &str,
    permanent: bool,
    now: DateTime<Utc>,
    jitter: f64,
) -> Result<bool, sqlx::Error> {
    let discard = discards(job, permanent);
    let run_at = now + chrono::Duration::from_std(backoff(job.attempt, jitter)).unwrap_or_default();
    let done = sqlx::query(
        "UPDATE job SET state = CASE WHEN $3 THEN 'discarded' ELSE 'retryable' END,
             run_at = CASE WHEN $3 THEN run_at ELSE $4 END,
             finished_at = CASE WHEN $3 THEN $5 ELSE NULL END,
             last_error = $6, locked_by = NULL, lease_until = NULL
         WHERE id = $1 AND fence = $2 AND state = 'running'",
    )
    .bind(job.id)
    .bind(job.fence)
    .bind(discard)
    .bind(run_at)
    .bind(now)
    .bind(error.chars().take(4000).collect::<String>())
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a running job that honoured a cancel request between steps.
pub async fn mark_cancelled(
    db: &PgPool,
    job: &ClaimedJob,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    end(db, job, JobState::Cancelled, now).await
}

/// Renews the leases of jobs this worker still holds; returns `(id, cancel_requested)` of those
/// it still owns (a job missing from the answer was taken away).
pub async fn heartbeat(
    db: &PgPool,
    jobs: &[(i64, i64)],
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<(i64, bool)>, sqlx::Error> {
    let (ids, fences): (Vec<i64>, Vec<i64>) = jobs.iter().copied().unzip();
    sqlx::query_as(
        "UPDATE job SET lease_until = $3 + $4, heartbeat_at = $3
         FROM unnest($1::bigint[], $2::bigint[]) AS held(id, fence)
         WHERE job.id = held.id AND job.fence = held.fence AND job.state = 'running'
         RETURNING job.id, job.cancel_requested",
    )
    .bind(&ids)
    .bind(&fences)
    .bind(now)
    .bind(chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX))
    .fetch_all(db)
    .await
}

/// Returns jobs whose lease expired (their worker died) to `retryable`, to run at once; the
/// fence of the dead attempt stops it from writing anything if it was only slow.
pub async fn rescue(db: &PgPool, now: DateTime<Utc>) -> Result<Vec<i64>, sqlx::Error> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "UPDATE job SET state = 'retryable', run_at = $1, locked_by = NULL, lease_until = NULL,
             last_error = 'the worker running it stopped responding (lease expired)'
         WHERE state = 'running' AND lease_until < $1 RETURNING id",
    )
    .bind(now)
    .fetch_all(db)
    .await?;
    if !ids.is_empty() {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(db)
            .await?;
    }
    Ok(ids)
}

/// Hands back jobs of a worker that is shutting down, to run again at once elsewhere.
pub async fn release(db: &PgPool, jobs: &[(i64, i64)]) -> Result<u64, sqlx::Error> {
    let (ids, fences): (Vec<i64>, Vec<i64>) = jobs.iter().copied().unzip();
    let done = sqlx::query(
        "UPDATE job SET state = 'retryable', run_at = now(), locked_by = NULL, lease_until = NULL,
             attempt = greatest(job.attempt - 1, 0)
         FROM unnest($1::bigint[], $2::bigint[]) AS held(id, fence)
         WHERE job.id = held.id AND job.fence = held.fence AND job.state = 'running'",
    )
    .bind(&ids)
    .bind(&fences)
    .execute(db)
    .await?;
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no such job")]
    NotFound,
    #[error("the job is {0}")]
    WrongState(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

async fn state_of(db: &PgPool, id: i64) -> ControlError {
    match sqlx::query_scalar::<_, String>("SELECT state FROM job WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
    {
        Ok(Some(state)) => ControlError::WrongState(state),
        Ok(None) => ControlError::NotFound,
        Err(e) => e.into(),
    }
}

/// The kind and state of job `id`, if it exists.
pub async fn kind_and_state(
    conn: &mut PgConnection,
    id: i64,
) -> Result<Option<(String, JobState)>, sqlx::Error> {
    sqlx::query_as("SELECT kind, state FROM job WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Cancels a job: at once when it waits; a running one stops cooperatively between steps.
pub async fn cancel(db: &PgPool, id: i64) -> Result<JobState, ControlError> {
    let state: Option<JobState> = sqlx::query_scalar(
        "UPDATE job SET
             state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
             cancel_requested = true,
             finished_at = CASE WHEN state = 'running' THEN finished_at ELSE now() END
         WHERE id = $1 AND state IN ('available', 'retryable', 'running') RETURNING state",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    match state {
        Some(state) => Ok(state),
        None => Err(state_of(db, id).await),
    }
}

/// Runs a discarded or cancelled job again, from its first unfinished step.
pub async fn retry(db: &PgPool, id: i64) -> Result<(), ControlError> {
    let mut conn = db.acquire().await?;
    if !requeue(&mut conn, id).await? {
        return Err(state_of(db, id).await);
    }
    Ok(())
}

/// Makes a discarded or cancelled job available again (inside the caller's transaction, if
/// any) and wakes the workers; `false` when the job is in another state.
pub async fn requeue(conn: &mut PgConnection, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE job SET state = 'available', run_at = now(), cancel_requested = false,
             max_attempts = greatest(max_attempts, attempt + 1), finished_at = NULL
         WHERE id = $1 AND state IN ('discarded', 'cancelled')",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        assert_eq!(backoff(1, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(4, 0.0), Duration::from_secs(16));
        assert_eq!(backoff(4, 1.0), Duration::from_secs_f64(17.6));
        assert_eq!(
            backoff(30, 0.0),
            Duration::from_secs(3600),
            "capped at an hour"
        );
    }
}

/// A job as pages and the API show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobView {
    pub id: i64,
    pub kind: String,
    pub state: JobState,
    /// What the job works on; each kind has its own (free-form by contract).
    pub payload: serde_json::Value,
    pub priority: i16,
    pub attempt: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub unique_key: Option<String>,
    pub locked_by: Option<String>,
    pub cancel_requested: bool,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StepView {
    pub name: String,
    pub state: String,
    pub attempt: i32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The cloud ids the step created or found; each step has its own (free-form by contract).
    pub external_ids: serde_json::Value,
    pub log: Vec<String>,
    pub error: Option<String>,
}

const VIEW: &str = "SELECT id, kind, state, payload, priority, attempt, max_attempts, run_at, unique_key, locked_by,
    cancel_requested, last_error, created_at, started_at, finished_at FROM job";

/// Newest first, before the keyset cursor `before` (a job id), filtered by state and kind.
/// Each filter is written into the SQL only when given, so each combination gets its own plan:
/// the cursor bounds the primary key's scan, and a failed state uses `job_failed_idx`.
pub async fn list(
    db: &PgPool,
    state: Option<JobState>,
    kind: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<JobView>, sqlx::Error> {
    let mut query = sqlx::QueryBuilder::new(format!("{VIEW} WHERE true"));
    if let Some(state) = state {
        // One of six constant names, never the caller's text; a literal lets the planner match
        // the partial index's predicate.
        query.push(format!(" AND state = '{}'", state.as_str()));
    }
    if let Some(kind) = kind {
        query.push(" AND kind = ").push_bind(kind);
    }
    if let Some(before) = before {
        query.push(" AND id < ").push_bind(before);
    }
    query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    query.build_query_as().fetch_all(db).await
}

pub async fn get(db: &PgPool, id: i64) -> Result<Option<(JobView, Vec<StepView>)>, sqlx::Error> {
    let job: Option<JobView> = sqlx::query_as(sqlx::AssertSqlSafe(format!("{VIEW} WHERE id = $1")))
        .bind(id)
        .fetch_optional(db)
        .await?;
    let Some(job) = job else { return Ok(None) };
    Ok(Some((job, steps(db, id).await?)))
}

/// A job's steps in order (none for an unknown job), for a page that shows them without the job.
pub async fn steps(db: &PgPool, id: i64) -> Result<Vec<StepView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, state, attempt, started_at, finished_at, external_ids, log, error
         FROM job_step WHERE job_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(db)
    .await
}

/// Jobs waiting, running or failed, for the jobs page and `/metrics`. Completed jobs are
/// history, not depth, and are not counted: each state counted here is covered by a partial
/// index (`job_claimable_idx`, `job_lease_idx`, `job_failed_idx`), so the count reads those
/// indexes and costs what the backlog and the failures cost, never the retained history of
/// completed jobs. `/metrics` answers without sign-in, so it must not scan the job table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct Depth {
    pub available: i64,
    pub running: i64,
    pub retryable: i64,
    pub cancelled: i64,
    pub discarded: i64,
}

impl Depth {
    pub fn by_state(&self) -> [(JobState, i64); 5] {
        [
            (JobState::Available, self.available),
            (JobState::Running, self.running),
            (JobState::Retryable, self.retryable),
            (JobState::Cancelled, self.cancelled),
            (JobState::Discarded, self.discarded),
        ]
    }
}

pub async fn depth(db: impl sqlx::PgExecutor<'_>) -> Result<Depth, sqlx::Error> {
    // One statement, one snapshot: the three indexes are read at the same moment. Each
    // predicate is written as its index's, so the planner can answer from that index alone.
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM job WHERE state IN ('available', 'retryable'))
                    - count(*) FILTER (WHERE state = 'retryable') AS available,
                (SELECT count(*) FROM job WHERE state = 'running') AS running,
                count(*) FILTER (WHERE state = 'retryable') AS retryable,
                count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
                count(*) FILTER (WHERE state = 'discarded') AS discarded
         FROM job WHERE state IN ('retryable', 'cancelled', 'discarded')",
    )
    .fetch_one(db)
    .await
}
