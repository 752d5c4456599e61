//! The job engine against real Postgres: enqueue in transactions, exactly-once execution by many
//! workers, retries with backoff on an injected clock, fencing of a worker that lost its lease,
//! cancel, unique keys, and resumption that skips completed steps.

mod support;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use slipway::clock::Clock;
use slipway::jobs::queue::{self, EnqueueError};
use slipway::jobs::steps::{self, Outcome};
use slipway::jobs::worker::{WorkerConfig, Workers};
use slipway::jobs::{Handler, NewJob, NoPayload, Registry, StepContext, StepError, StepFuture};
use sqlx::PgPool;
use support::TestDb;

/// A test job kind: `steps` steps; each records its run in `test_step_run`; a step named in
/// `fail` fails (transiently) until it has run `fail_times` times.
struct Recorder;

impl Handler for Recorder {
    // Free-form: each test shapes its job as it needs.
    type Payload = serde_json::Value;

    fn kind(&self) -> &'static str {
        "test.record"
    }

    fn steps(&self, payload: &serde_json::Value) -> Vec<String> {
        (1..=payload["steps"].as_u64().unwrap_or(1))
            .map(|n| format!("step-{n}"))
            .collect()
    }

    fn run_step<'a>(
        &'a self,
        step: &'a str,
        payload: &'a serde_json::Value,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let runs: i64 = sqlx::query_scalar("INSERT INTO test_step_run (job_id, step) VALUES ($1, $2) RETURNING (SELECT count(*) FROM test_step_run WHERE job_id = $1 AND step = $2) + 1")
                .bind(ctx.job.id)
                .bind(step)
                .fetch_one(&ctx.db)
                .await
                .map_err(|e| StepError::Transient(e.to_string()))?;
            ctx.log(&format!("{step} ran (time {runs})")).await?;
            if payload["fail"] == step && runs <= payload["fail_times"].as_i64().unwrap_or(0) {
                return Err(StepError::Transient(format!("{step} failed on purpose")));
            }
            Ok(())
        })
    }
}

async fn setup() -> (TestDb, PgPool) {
    let db = TestDb::migrated().await;
    let pool = db.pool().await;
    sqlx::query("CREATE TABLE test_step_run (job_id bigint NOT NULL, step text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())")
        .execute(&pool)
        .await
        .unwrap();
    (db, pool)
}

async fn enqueue(pool: &PgPool, job: NewJob) -> i64 {
    let mut tx = pool.begin().await.unwrap();
    let id = queue::enqueue(&mut tx, &job).await.unwrap();
    tx.commit().await.unwrap();
    id
}

async fn state(pool: &PgPool, id: i64) -> String {
    sqlx::query_scalar("SELECT state FROM job WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn runs(pool: &PgPool, id: i64, step: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM test_step_run WHERE job_id = $1 AND step = $2")
        .bind(id)
        .bind(step)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits (with a deadline) until no job is waiting or running: a condition, not a timing guess.
async fn drained(pool: &PgPool, deadline: Duration) {
    let start = std::time::Instant::now();
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM job WHERE state IN ('available', 'running', 'retryable')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if open == 0 {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "{open} jobs still open after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

fn registry() -> Registry {
    Registry::default().with(Recorder)
}

#[tokio::test]
async fn a_rolled_back_enqueue_leaves_nothing_and_a_committed_one_runs_once() {
    let (_db, pool) = setup().await;
    let mut tx = pool.begin().await.unwrap();
    queue::enqueue(&mut tx, &NewJob::new("test.record", json!({"steps": 1})))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM job")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 0);

    let id = enqueue(&pool, NewJob::new("test.record", json!({"steps": 2}))).await;
    let workers = Workers::start(
        pool.clone(),
        registry(),
        Clock::system(),
        WorkerConfig::default(),
    );
    drained(&pool, Duration::from_secs(20)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(state(&pool, id).await, "completed");
    assert_eq!(
        (
            runs(&pool, id, "step-1").await,
            runs(&pool, id, "step-2").await
        ),
        (1, 1)
    );
    let log: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(log) FROM job_step WHERE job_id = $1 AND name = 'step-2'",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(log, ["step-2 ran (time 1)"]);
}

/// A throttled call or a lost answer costs the step a short wait and another run within the
/// same attempt, shown while it waits; only when every retry failed does the attempt fail (and
/// the job back off, using one of its attempts).
#[tokio::test]
async fn a_transient_step_failure_runs_the_step_again_within_its_attempt() {
    let (_db, pool) = setup().await;
    let config = WorkerConfig {
        step_retry_delays: vec![Duration::from_millis(10), Duration::from_millis(10)],
        ..WorkerConfig::default()
    };
    let passes = enqueue(
        &pool,
        NewJob::new(
            "test.record",
            json!({"steps": 2, "fail": "step-2", "fail_times": 2}),
        ),
    )
    .await;
    let mut exhausts = NewJob::new(
        "test.record",
        json!({"steps": 1, "fail": "step-1", "fail_times": 3}),
    );
    exhausts.max_attempts = 1;
    let exhausts = enqueue(&pool, exhausts).await;
    let workers = Workers::start(pool.clone(), registry(), Clock::system(), config);
    drained(&pool, Duration::from_secs(20)).await;
    workers.shutdown(Duration::from_secs(5)).await;

    let (state, attempt): (String, i32) =
        sqlx::query_as("SELECT state, attempt FROM job WHERE id = $1")
            .bind(passes)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), attempt),
        ("completed", 1),
        "no attempt was used up"
    );
    assert_eq!(
        (
            runs(&pool, passes, "step-1").await,
            runs(&pool, passes, "step-2").await
        ),
        (1, 3),
        "only the failing step ran again"
    );
    let (log, error): (Vec<String>, Option<String>) =
        sqlx::query_as("SELECT log, error FROM job_step WHERE job_id = $1 AND name = 'step-2'")
            .bind(passes)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        log,
        [
            "step-2 ran (time 1)",
            "failed, trying again in 0.01 s: step-2 failed on purpose",
            "step-2 ran (time 2)",
            "failed, trying again in 0.01 s: step-2 failed on purpose",
            "step-2 ran (time 3)",
        ]
    );
    assert_eq!(error, None, "the step's error is cleared once it completes");

    let (state, error): (String, Option<String>) =
        sqlx::query_as("SELECT state, last_error FROM job WHERE id = $1")
            .bind(exhausts)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, "discarded", "three runs failed: the attempt failed");
    assert_eq!(
        error.as_deref(),
        Some("step step-1: step-1 failed on purpose")
    );
    assert_eq!(runs(&pool, exhausts, "step-1").await, 3);
}

#[tokio::test]
async fn many_workers_run_every_job_exactly_once() {
    let (_db, pool) = setup().await;
    let mut tx = pool.begin().await.unwrap();
    for _ in 0..2000 {
        queue::enqueue(&mut tx, &NewJob::new("test.record", json!({"steps": 1})))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    // Four pools of eight tasks, each with its own connections, as four processes would be.
    let mut pools = Vec::new();
    for _ in 0..4 {
        let own = sqlx::postgres::PgPoolOptions::new()
            .max_connections(6)
            .connect_with(pool.connect_options().as_ref().clone())
            .await
            .unwrap();
        pools.push(Workers::start(
            own,
            registry(),
            Clock::system(),
            WorkerConfig::default(),
        ));
    }
    drained(&pool, Duration::from_secs(90)).await;
    for workers in pools {
        workers.shutdown(Duration::from_secs(5)).await;
    }
    let (total, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT job_id) FROM test_step_run")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((total, distinct), (2000, 2000), "every job ran, none twice");
    let completed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job WHERE state = 'completed' AND attempt = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(completed, 2000);
}

#[tokio::test]
async fn failures_back_off_then_the_job_is_discarded_with_its_last_error() {
    let (_db, pool) = setup().await;
    let mut job = NewJob::new(
        "test.record",
        json!({"steps": 1, "fail": "step-1", "fail_times": 99}),
    );
    job.max_attempts = 3;
    job.run_at = Some(at(0));
    let id = enqueue(&pool, job).await;
    let lease = Duration::from_secs(6);
    let mut now = at(0);
    for attempt in 1..=3 {
        let claimed = queue::claim(&pool, "w", &["test.record"], 10, lease, now)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "attempt {attempt} is due at {now}");
        let job = &claimed[0];
        assert_eq!(job.attempt, attempt);
        let outcome = steps::run(&pool, &Recorder, job, &[], || false)
            .await
            .unwrap();
        let Outcome::Failed {
            error, permanent, ..
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert!(!permanent);
        assert!(
            queue::fail(&pool, job, &error, false, now, 0.0)
                .await
                .unwrap()
        );
        if attempt < 3 {
            assert_eq!(state(&pool, id).await, "retryable");
            let run_at: DateTime<Utc> = sqlx::query_scalar("SELECT run_at FROM job WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap();
            let wait = 2i64.pow(attempt as u32);
            assert_eq!(
                run_at,
                now + chrono::Duration::seconds(wait),
                "exponential backoff"
            );
            // Not before its time.
            assert!(
                queue::claim(
                    &pool,
                    "w",
                    &["test.record"],
                    10,
                    lease,
                    run_at - chrono::Duration::seconds(1)
                )
                .await
                .unwrap()
                .is_empty()
            );
            now = run_at;
        }
    }
    assert_eq!(state(&pool, id).await, "discarded");
    let last_error: String = sqlx::query_scalar("SELECT last_error FROM job WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(last_error, "step-1 failed on purpose");

    // A manual retry runs it again.
    queue::retry(&pool, id).await.unwrap();
    assert_eq!(state(&pool, id).await, "available");
}

#[tokio::test]
async fn a_worker_that_lost_its_lease_cannot_write_late_results() {
    let (_db, pool) = setup().await;
    let id = enqueue(&pool, NewJob::new("test.record", json!({"steps": 1}))).await;
    let lease = Duration::from_secs(6);
    let slow = queue::claim(&pool, "slow-worker", &["test.record"], 1, lease, Utc::now())
        .await
        .unwrap()
        .remove(0);
    // Its lease runs out; the rescuer hands the job to another worker.
    let later = Utc::now() + chrono::Duration::seconds(7);
    assert_eq!(queue::rescue(&pool, later).await.unwrap(), [id]);
    let fresh = queue::claim(&pool, "fresh-worker", &["test.record"], 1, lease, later)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(fresh.fence, slow.fence + 1);
    // The slow worker wakes up: its step and its completion are refused.
    assert_eq!(
        steps::run(&pool, &Recorder, &slow, &[], || false)
            .await
            .unwrap(),
        Outcome::LostLease
    );
    assert!(!queue::complete(&pool, &slow, later).await.unwrap());
    assert_eq!(
        runs(&pool, id, "step-1").await,
        0,
        "the slow worker's step never started"
    );
    // The owner of the current attempt finishes normally.
    assert_eq!(
        steps::run(&pool, &Recorder, &fresh, &[], || false)
            .await
            .unwrap(),
        Outcome::Completed
    );
    assert!(queue::complete(&pool, &fresh, later).await.unwrap());
    assert_eq!(state(&pool, id).await, "completed");
}

#[tokio::test]
async fn a_resumed_job_skips_the_steps_it_completed() {
    let (_db, pool) = setup().await;
    let id = enqueue(
        &pool,
        NewJob::new(
            "test.record",
            json!({"steps": 3, "fail": "step-2", "fail_times": 1}),
        ),
    )
    .await;
    let lease = Duration::from_secs(6);
    let first = queue::claim(&pool, "w", &["test.record"], 1, lease, at(0))
        .await
        .unwrap()
        .remove(0);
    let Outcome::Failed { step, error, .. } = steps::run(&pool, &Recorder, &first, &[], || false)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(step, "step-2");
    queue::fail(&pool, &first, &error, false, at(0), 0.0)
        .await
        .unwrap();
    let second = queue::claim(&pool, "w", &["test.record"], 1, lease, at(10))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        steps::run(&pool, &Recorder, &second, &[], || false)
            .await
            .unwrap(),
        Outcome::Completed
    );
    assert_eq!(
        (
            runs(&pool, id, "step-1").await,
            runs(&pool, id, "step-2").await,
            runs(&pool, id, "step-3").await
        ),
        (1, 2, 1)
    );
    let attempts: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT name, state, attempt FROM job_step WHERE job_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        attempts,
        [
            ("step-1".into(), "completed".into(), 1),
            ("step-2".into(), "completed".into(), 2),
            ("step-3".into(), "completed".into(), 2)
        ]
    );
}

#[tokio::test]
async fn cancel_stops_a_queued_job_at_once_and_a_running_one_between_steps() {
    let (_db, pool) = setup().await;
    let queued = enqueue(&pool, NewJob::new("test.record", json!({"steps": 1}))).await;
    assert_eq!(
        queue::cancel(&pool, queued).await.unwrap(),
        queue::JobState::Cancelled
    );
    assert!(
        queue::claim(
            &pool,
            "w",
            &["test.record"],
            10,
            Duration::from_secs(6),
            Utc::now()
        )
        .await
        .unwrap()
        .is_empty()
    );

    let running = enqueue(&pool, NewJob::new("test.record", json!({"steps": 3}))).await;
    let job = queue::claim(
        &pool,
        "w",
        &["test.record"],
        1,
        Duration::from_secs(6),
        Utc::now(),
    )
    .await
    .unwrap()
    .remove(0);
    assert_eq!(
        queue::cancel(&pool, running).await.unwrap(),
        queue::JobState::Running
    );
    // The worker learns it between steps (from its heartbeat); here after the first step.
    let owned = queue::heartbeat(
        &pool,
        &[(job.id, job.fence)],
        Duration::from_secs(6),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(owned, [(running, true)]);
    let done_steps = std::sync::atomic::AtomicUsize::new(0);
    let outcome = steps::run(&pool, &Recorder, &job, &[], || {
        done_steps.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await
    .unwrap();
    assert_eq!(outcome, Outcome::Cancelled);
    assert!(
        queue::mark_cancelled(&pool, &job, Utc::now())
            .await
            .unwrap()
    );
    assert_eq!(state(&pool, running).await, "cancelled");
    assert_eq!(
        (
            runs(&pool, running, "step-1").await,
            runs(&pool, running, "step-2").await
        ),
        (1, 0)
    );
    assert!(
        matches!(queue::cancel(&pool, running).await, Err(queue::ControlError::WrongState(s)) if s == "cancelled")
    );
}

#[tokio::test]
async fn a_unique_key_allows_one_active_job() {
    let (_db, pool) = setup().await;
    let mut job = NewJob::new("test.record", json!({"steps": 1}));
    job.unique_key = Some("provision:env-1".into());
    let first = enqueue(&pool, job.clone()).await;
    let mut tx = pool.begin().await.unwrap();
    assert!(
        matches!(queue::enqueue(&mut tx, &job).await, Err(EnqueueError::Duplicate(k)) if k == "provision:env-1")
    );
    drop(tx);
    // Once the first is finished, the key is free again.
    let claimed = queue::claim(
        &pool,
        "w",
        &["test.record"],
        1,
        Duration::from_secs(6),
        Utc::now(),
    )
    .await
    .unwrap()
    .remove(0);
    assert_eq!(claimed.id, first);
    steps::run(&pool, &Recorder, &claimed, &[], || false)
        .await
        .unwrap();
    queue::complete(&pool, &claimed, Utc::now()).await.unwrap();
    enqueue(&pool, job).await;
}

#[tokio::test]
async fn a_job_of_a_kind_no_worker_knows_waits_untouched_for_one_that_does() {
    let (_db, pool) = setup().await;
    let unknown = enqueue(&pool, NewJob::new("test.nobody_handles_this", json!({}))).await;
    let known = enqueue(&pool, NewJob::new("test.record", json!({"steps": 1}))).await;
    let workers = Workers::start(
        pool.clone(),
        registry(),
        Clock::system(),
        WorkerConfig::default(),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while state(&pool, known).await != "completed" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the known job never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(state(&pool, unknown).await, "available");
    let attempts: i32 = sqlx::query_scalar("SELECT attempt FROM job WHERE id = $1")
        .bind(unknown)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        attempts, 0,
        "never claimed, so never counted as a failed attempt"
    );
}

/// A periodic kind that does nothing but be counted.
struct Tick;

impl Handler for Tick {
    type Payload = NoPayload;

    fn kind(&self) -> &'static str {
        "test.tick"
    }
    fn steps(&self, _: &NoPayload) -> Vec<String> {
        vec!["tick".into()]
    }
    fn run_step<'a>(
        &'a self,
        _: &'a str,
        _: &'a NoPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move { ctx.log("tick").await })
    }
    fn every(&self) -> Option<Duration> {
        Some(Duration::from_millis(200))
    }
}

#[tokio::test]
async fn periodic_kinds_are_scheduled_once_however_many_pools_run() {
    let (_db, pool) = setup().await;
    let pools: Vec<Workers> = (0..3)
        .map(|_| {
            Workers::start(
                pool.clone(),
                Registry::default().with(Tick),
                Clock::system(),
                WorkerConfig::default(),
            )
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let done: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM job WHERE kind = 'test.tick' AND state = 'completed'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if done >= 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the periodic job never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for workers in pools {
        workers.shutdown(Duration::from_secs(5)).await;
    }
    let waiting: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job WHERE kind = 'test.tick' AND state IN ('available', 'running', 'retryable')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        waiting <= 1,
        "at most one pending run of a periodic kind, not one per pool: {waiting}"
    );
}

#[tokio::test]
async fn a_payload_that_does_not_fit_its_kind_discards_the_job_at_once_saying_why() {
    let (_db, pool) = setup().await;
    // A self-test job without `step_ms`: no default stands in for it.
    let mut job = NewJob::new(slipway::jobs::builtin::SELFTEST, json!({"steps": 2}));
    job.max_attempts = 5;
    let id = enqueue(&pool, job).await;
    let workers = Workers::start(
        pool.clone(),
        Registry::default().with(slipway::jobs::builtin::SelfTest),
        Clock::system(),
        WorkerConfig::default(),
    );
    drained(&pool, Duration::from_secs(20)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    let (state, attempt, error): (String, i32, Option<String>) =
        sqlx::query_as("SELECT state, attempt, last_error FROM job WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), attempt), ("discarded", 1), "not retried");
    let error = error.unwrap_or_default();
    assert!(
        error.contains("slipway.selftest") && error.contains("missing field `step_ms`"),
        "{error}"
    );
    let steps: i64 = sqlx::query_scalar("SELECT count(*) FROM job_step WHERE job_id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(steps, 0, "no step ran");
}

/// Ids of claimed jobs, in id order.
fn ids(jobs: &[queue::ClaimedJob]) -> Vec<i64> {
    let mut ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
    ids.sort();
    ids
}

/// A claim from the front of the queue as the worker pool runs it, beside its claims past the
/// cursor.
async fn claim_from_front(
    claimer: &mut queue::Claimer,
    pool: &PgPool,
    limit: usize,
    now: DateTime<Utc>,
) -> Vec<queue::ClaimedJob> {
    claimer.front_started(now);
    let jobs = queue::claim(
        pool,
        "w",
        &["test.record"],
        limit as i64,
        Duration::from_secs(600),
        now,
    )
    .await
    .unwrap();
    claimer.front_claimed(&jobs);
    jobs
}

/// A pool claims past what it claimed before (so a claim does not read through the entries
/// claimed jobs leave behind), yet a job that sorts before it — a higher priority, a due time
/// in the past — is not left behind: the claim from the front finds it, and is due when the
/// claim past the cursor finds too few and at least once per interval. The claim past the
/// cursor never waits for it.
#[tokio::test]
async fn a_claimer_goes_on_past_its_cursor_and_still_finds_jobs_that_sort_before_it() {
    let (_db, pool) = setup().await;
    let mut backlog = Vec::new();
    for _ in 0..8 {
        let mut job = NewJob::new("test.record", json!({}));
        job.run_at = Some(at(0));
        backlog.push(enqueue(&pool, job).await);
    }
    let lease = Duration::from_secs(600);
    let kinds = ["test.record"];
    let mut claimer = queue::Claimer::new(Duration::from_secs(1));
    assert!(
        claimer.front_due(at(1)),
        "without a cursor the front is due"
    );
    assert_eq!(
        claimer.front_limit(8),
        8,
        "the first claim from the front may take every slot"
    );
    let nothing = claimer
        .claim(&pool, "w", &kinds, 3, lease, at(1))
        .await
        .unwrap();
    assert!(
        nothing.is_empty(),
        "no claim past a cursor before there is one"
    );
    let first = claim_from_front(&mut claimer, &pool, 3, at(1)).await;
    assert_eq!(
        ids(&first),
        backlog[..3],
        "the first claim is from the front"
    );
    assert_eq!(
        claimer.front_limit(8),
        4,
        "with a cursor the front takes half the slots, the rest go on past the cursor"
    );

    let mut urgent = NewJob::new("test.record", json!({}));
    urgent.priority = 5;
    urgent.run_at = Some(at(0));
    let urgent = enqueue(&pool, urgent).await;
    let within = at(1) + chrono::Duration::milliseconds(500);
    let next = claimer
        .claim(&pool, "w", &kinds, 3, lease, within)
        .await
        .unwrap();
    assert_eq!(
        ids(&next),
        backlog[3..6],
        "within the interval the claim goes on past the cursor"
    );
    assert!(
        !claimer.front_due(within),
        "a full claim past the cursor within the interval needs no claim from the front"
    );

    assert!(
        claimer.front_due(at(2)),
        "once per interval the front is due"
    );
    let rest = claimer
        .claim(&pool, "w", &kinds, 3, lease, at(2))
        .await
        .unwrap();
    assert_eq!(
        ids(&rest),
        backlog[6..],
        "the claim past the cursor goes on while the front is due"
    );
    let front = claim_from_front(&mut claimer, &pool, 3, at(2)).await;
    assert_eq!(ids(&front), [urgent], "the front finds the urgent job");
    assert!(!claimer.front_due(at(2)));

    // The cursor went to the urgent job's priority, where nothing is left; a job due in the past
    // of the usual priority is found by the claim from the front that the empty claim calls for,
    // and the claims past the cursor go on from there.
    let mut late = NewJob::new("test.record", json!({}));
    late.run_at = Some(at(-60));
    let late = enqueue(&pool, late).await;
    let now = at(2) + chrono::Duration::milliseconds(10);
    let none = claimer
        .claim(&pool, "w", &kinds, 3, lease, now)
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(claimer.front_due(now), "an empty claim calls for the front");
    let front = claim_from_front(&mut claimer, &pool, 3, now).await;
    assert_eq!(ids(&front), [late]);

    // A job past the cursor is handed out at once; the job due earlier still is found by the
    // claim from the front that comes beside it, which leaves the cursor where it was.
    let mut after = NewJob::new("test.record", json!({}));
    after.run_at = Some(at(1));
    let after = enqueue(&pool, after).await;
    let mut earlier = NewJob::new("test.record", json!({}));
    earlier.run_at = Some(at(-120));
    let earlier = enqueue(&pool, earlier).await;
    let soon = at(2) + chrono::Duration::milliseconds(20);
    let found = claimer
        .claim(&pool, "w", &kinds, 3, lease, soon)
        .await
        .unwrap();
    assert_eq!(ids(&found), [after]);
    assert!(
        claimer.front_due(soon),
        "a short claim past the cursor calls for the front"
    );
    let front = claim_from_front(&mut claimer, &pool, 3, soon).await;
    assert_eq!(ids(&front), [earlier]);
    let mut last = NewJob::new("test.record", json!({}));
    last.run_at = Some(at(-90));
    let last = enqueue(&pool, last).await;
    let later = soon + chrono::Duration::milliseconds(10);
    let none = claimer
        .claim(&pool, "w", &kinds, 3, lease, later)
        .await
        .unwrap();
    assert!(
        none.is_empty(),
        "the cursor stayed after the job past it, not after the earlier one"
    );
    let front = claim_from_front(&mut claimer, &pool, 3, later).await;
    assert_eq!(ids(&front), [last]);
}

#[tokio::test]
async fn queue_depth_counts_waiting_running_and_failed_jobs_without_reading_the_history() {
    let (_db, pool) = setup().await;
    // The retained history (14 days of completed jobs by default) beside a few jobs in each
    // counted state. A lease is what makes a job running (the table's CHECK).
    sqlx::query(
        "INSERT INTO job (kind, state, locked_by, lease_until)
         SELECT 'test.record', s.state, CASE WHEN s.state = 'running' THEN 'w1' END,
                CASE WHEN s.state = 'running' THEN now() + interval '1 minute' END
         FROM (VALUES ('available', 3), ('running', 2), ('retryable', 1), ('cancelled', 4),
                      ('discarded', 5), ('completed', 20000)) AS s (state, n),
              generate_series(1, s.n)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE job").execute(&pool).await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    let depth = queue::depth(&mut *tx).await.unwrap();
    assert_eq!(
        depth,
        queue::Depth {
            available: 3,
            running: 2,
            retryable: 1,
            cancelled: 4,
            discarded: 5,
        }
    );
    // `/metrics` answers anyone, so the count must not cost a scan of the history: it reads
    // the partial indexes of the counted states, and no row of the job table in sequence.
    let (seq_scans, index_scans): (i64, i64) = sqlx::query_as(
        "SELECT seq_scan, idx_scan FROM pg_stat_xact_user_tables WHERE relname = 'job'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(seq_scans, 0, "the job table was scanned");
    assert!(index_scans >= 3, "{index_scans} index scans");
}
