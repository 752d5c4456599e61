//! A worker pool: N concurrent job tasks in one process, woken by LISTEN/NOTIFY with a polling
//! fallback, claiming in batches, renewing leases by heartbeat, rescuing the jobs of dead
//! workers, and shutting down gracefully (stop claiming, let steps finish up to a deadline, hand
//! back the rest).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::Registry;
use super::queue::{self, CHANNEL, ClaimedJob};
use super::steps::{self, Outcome};
use crate::clock::Clock;

/// Timings and size of a pool. The defaults put a crashed worker's job back to work within
/// about 8 seconds: the lease (6 s) runs out, and the rescuer looks every 2 s.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub concurrency: usize,
    pub lease: Duration,
    pub heartbeat: Duration,
    pub rescue_every: Duration,
    /// How often to look for work when no notification came (scheduled and retried jobs).
    pub poll: Duration,
    /// How long a step that failed transiently waits before each run again within its attempt
    /// (see [`steps::run`]); the attempt fails after the last.
    pub step_retry_delays: Vec<Duration>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 8,
            lease: Duration::from_secs(6),
            heartbeat: Duration::from_secs(2),
            rescue_every: Duration::from_secs(2),
            poll: Duration::from_secs(1),
            // 15 s in all: past a burst of throttling or a service's brief fault, short enough
            // that a lasting one fails the attempt (and shows) within a minute.
            step_retry_delays: [1, 2, 4, 8].map(Duration::from_secs).to_vec(),
        }
    }
}

/// What the pool knows of a job it runs: its fence and whether a cancel was requested.
struct Held {
    fence: i64,
    cancel: Arc<AtomicBool>,
}

type HeldJobs = Arc<std::sync::Mutex<HashMap<i64, Held>>>;

/// A running pool; stop it with [`Workers::shutdown`].
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    held: HeldJobs,
    db: PgPool,
    pub id: String,
}

impl Workers {
    pub fn start(db: PgPool, registry: Registry, clock: Clock, config: WorkerConfig) -> Workers {
        let id = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let (stop, stopped) = watch::channel(false);
        let held: HeldJobs = Arc::default();
        let mut tasks = JoinSet::new();
        let wake = Arc::new(Notify::new());
        tasks.spawn(listen(db.clone(), wake.clone(), stopped.clone()));
        tasks.spawn(schedule(
            db.clone(),
            registry.periodic(),
            clock.clone(),
            stopped.clone(),
        ));
        tasks.spawn(dispatch(Dispatcher {
            db: db.clone(),
            registry,
            clock: clock.clone(),
            config: config.clone(),
            id: id.clone(),
            held: held.clone(),
            wake,
            stopped: stopped.clone(),
        }));
        tasks.spawn(heartbeat(
            db.clone(),
            clock.clone(),
            config.clone(),
            held.clone(),
            stopped.clone(),
        ));
        tasks.spawn(rescue(db.clone(), clock, config, stopped));
        tracing::info!(worker = %id, "job workers started");
        Workers {
            stop,
            tasks,
            held,
            db,
            id,
        }
    }

    /// Stops claiming, lets running jobs finish for at most `grace`, then hands back the jobs
    /// still running so another worker resumes them at their unfinished step.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            self.tasks.abort_all();
            while self.tasks.join_next().await.is_some() {}
        }
        let remaining: Vec<(i64, i64)> = self
            .held
            .lock()
            .expect("the held-jobs lock is never poisoned")
            .iter()
            .map(|(id, h)| (*id, h.fence))
            .collect();
        if !remaining.is_empty() {
            match queue::release(&self.db, &remaining).await {
                Ok(n) => tracing::info!(released = n, "handed back running jobs at shutdown"),
                Err(e) => tracing::warn!(error = %e, "could not hand back jobs; the rescuer will"),
            }
        }
        tracing::info!(worker = %self.id, "job workers stopped");
    }
}

async fn listen(db: PgPool, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>) {
    let mut listener = match PgListener::connect_with(&db).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "LISTEN unavailable; workers poll for jobs");
            return;
        }
    };
    if let Err(e) = listener.listen(CHANNEL).await {
        tracing::warn!(error = %e, "LISTEN failed; workers poll for jobs");
        return;
    }
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            received = listener.recv() => match received {
                Ok(_) => wake.notify_one(),
                // The listener reconnects by itself; polling covers the gap.
                Err(e) => {
                    if db.is_closed() {
                        return;
                    }
                    tracing::debug!(error = %e, "job notification listener interrupted");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// A completed attempt waiting to be written with others in one statement.
type Completion = (i64, i64);

/// Writes completions in batches: whatever arrived while the previous batch was being written.
async fn complete_in_batches(
    db: PgPool,
    clock: Clock,
    mut completions: tokio::sync::mpsc::UnboundedReceiver<Completion>,
) {
    let mut batch = Vec::new();
    while let Some(first) = completions.recv().await {
        batch.push(first);
        while batch.len() < 1000 {
            match completions.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        match queue::complete_many(&db, &batch, clock.now()).await {
            Ok(written) if written < batch.len() as u64 => {
                tracing::warn!(
                    lost = batch.len() as u64 - written,
                    "lease lost for some completed jobs; their results were not written"
                )
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "recording completed jobs failed; they will be retried")
            }
        }
        batch.clear();
    }
}

struct Dispatcher {
    db: PgPool,
    registry: Registry,
    clock: Clock,
    config: WorkerConfig,
    id: String,
    held: HeldJobs,
    wake: Arc<Notify>,
    stopped: watch::Receiver<bool>,
}

/// What a job task needs besides its job: shared by every job the dispatcher starts.
#[derive(Clone)]
struct JobContext {
    db: PgPool,
    registry: Registry,
    clock: Clock,
    held: HeldJobs,
    freed: Arc<Notify>,
    completions: tokio::sync::mpsc::UnboundedSender<Completion>,
    retry_delays: Arc<[Duration]>,
}

impl JobContext {
    /// Runs a claimed job in its slot (`permit`), holding it until the job ends.
    fn start(&self, running: &mut JoinSet<()>, job: ClaimedJob, permit: OwnedSemaphorePermit) {
        super::metrics::claimed((self.clock.now() - job.run_at).to_std().unwrap_or_default());
        let cancel = Arc::new(AtomicBool::new(false));
        self.held
            .lock()
            .expect("the held-jobs lock is never poisoned")
            .insert(
                job.id,
                Held {
                    fence: job.fence,
                    cancel: cancel.clone(),
                },
            );
        let cx = self.clone();
        running.spawn(async move {
            run_job(
                &cx.db,
                &cx.registry,
                &cx.clock,
                &cx.retry_delays,
                &job,
                &cancel,
                &cx.completions,
            )
            .await;
            cx.held
                .lock()
                .expect("the held-jobs lock is never poisoned")
                .remove(&job.id);
            drop(permit);
            cx.freed.notify_one();
        });
    }
}

/// A claim from the front of the queue, running beside the dispatcher: what it claimed and the
/// slots it holds for them.
type FrontClaim = (Result<Vec<ClaimedJob>, sqlx::Error>, OwnedSemaphorePermit);

async fn dispatch(mut d: Dispatcher) {
    let slots = Arc::new(Semaphore::new(d.config.concurrency));
    let mut running = JoinSet::new();
    let mut fronts: JoinSet<FrontClaim> = JoinSet::new();
    let (completions, pending) = tokio::sync::mpsc::unbounded_channel();
    let completer = tokio::spawn(complete_in_batches(d.db.clone(), d.clock.clone(), pending));
    let cx = JobContext {
        db: d.db.clone(),
        registry: d.registry.clone(),
        clock: d.clock.clone(),
        held: d.held.clone(),
        freed: Arc::new(Notify::new()),
        completions,
        retry_delays: d.config.step_retry_delays.clone().into(),
    };
    let kinds = d.registry.kinds();
    let mut claimer = queue::Claimer::new(d.config.poll);
    // Once a claim has filled every free slot there may be more waiting: the next claim comes
    // when a quarter of the slots are free, so a busy queue is claimed in batches rather than
    // one job per query.
    let batch = (d.config.concurrency / 4).max(1);
    let mut saturated = false;
    let mut claim_now = true;
    // Only this task takes slots, so the free slots it counts are there when it takes them.
    let take = |slots: &Arc<Semaphore>| {
        slots
            .clone()
            .try_acquire_owned()
            .expect("the dispatcher alone takes slots")
    };
    loop {
        if *d.stopped.borrow() {
            break;
        }
        if claim_now {
            let free = slots.available_permits();
            if free > 0 {
                match claimer
                    .claim(&d.db, &d.id, &kinds, free, d.config.lease, d.clock.now())
                    .await
                {
                    Ok(jobs) => {
                        saturated = jobs.len() == free;
                        for job in jobs {
                            cx.start(&mut running, job, take(&slots));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming jobs failed"),
                }
            }
            let free = slots.available_permits();
            let now = d.clock.now();
            if fronts.is_empty() && free > 0 && claimer.front_due(now) {
                let limit = claimer.front_limit(free);
                let held = slots
                    .clone()
                    .try_acquire_many_owned(limit as u32)
                    .expect("the dispatcher alone takes slots");
                claimer.front_started(now);
                let (db, worker, kinds, lease) =
                    (d.db.clone(), d.id.clone(), kinds.clone(), d.config.lease);
                fronts.spawn(async move {
                    let jobs = queue::claim(&db, &worker, &kinds, limit as i64, lease, now).await;
                    (jobs, held)
                });
            }
        }
        // Reap finished tasks so the set does not grow.
        while running.try_join_next().is_some() {}
        let idle = !saturated && slots.available_permits() > 0;
        tokio::select! {
            _ = d.wake.notified(), if idle => claim_now = true,
            _ = tokio::time::sleep(d.config.poll), if idle => claim_now = true,
            _ = cx.freed.notified(), if !idle => {
                claim_now = !saturated || slots.available_permits() >= batch;
            }
            Some(front) = fronts.join_next() => {
                claim_now = false;
                match front {
                    Ok((Ok(jobs), held)) => {
                        claim_now = jobs.len() == held.num_permits();
                        drop(held);
                        claimer.front_claimed(&jobs);
                        for job in jobs {
                            cx.start(&mut running, job, take(&slots));
                        }
                    }
                    Ok((Err(e), _)) => tracing::warn!(error = %e, "claiming jobs failed"),
                    Err(e) => tracing::warn!(error = %e, "the claim from the front did not finish"),
                }
            }
            _ = d.stopped.changed() => {}
        }
    }
    // Jobs a claim from the front took while the pool stopped go back at once.
    while let Some(front) = fronts.join_next().await {
        if let Ok((Ok(jobs), _)) = front {
            let taken: Vec<(i64, i64)> = jobs.iter().map(|j| (j.id, j.fence)).collect();
            if let Err(e) = queue::release(&d.db, &taken).await {
                tracing::warn!(error = %e, "could not hand back claimed jobs; the rescuer will");
            }
        }
    }
    // Let running steps finish; the caller bounds this with its grace period. Then the last
    // completions are written.
    while running.join_next().await.is_some() {}
    drop(cx);
    let _ = completer.await;
}

/// Tells the handler its job ended unfinished; a failure here is only logged (the periodic
/// reconciliation of the kind, if any, catches up).
async fn abandoned(db: &PgPool, handler: &dyn super::AnyHandler, job: &ClaimedJob, error: &str) {
    if let Err(e) = handler.abandoned(db, job, error).await {
        tracing::warn!(job = job.id, kind = %job.kind, error = %e, "handling an abandoned job failed");
    }
}

async fn run_job(
    db: &PgPool,
    registry: &Registry,
    clock: &Clock,
    retry_delays: &[Duration],
    job: &ClaimedJob,
    cancel: &AtomicBool,
    completions: &tokio::sync::mpsc::UnboundedSender<Completion>,
) {
    let jitter = f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0;
    let Some(handler) = registry.get(&job.kind) else {
        let message = format!("no worker knows the job kind `{}`", job.kind);
        if let Err(e) = queue::fail(db, job, &message, true, clock.now(), jitter).await {
            tracing::warn!(job = job.id, error = %e, "recording a failure failed");
        }
        return;
    };
    let started = std::time::Instant::now();
    let span = tracing::info_span!(
        "job",
        otel.name = %format!("job {}", job.kind),
        job.id = job.id,
        job.kind = %job.kind,
        job.attempt = job.attempt,
        trace_id = tracing::field::Empty,
    );
    crate::trace::continue_trace(&span, job.trace_parent.as_deref());
    crate::trace::record_trace_id(&span);
    let outcome = steps::run(db, handler.as_ref(), job, retry_delays, || {
        cancel.load(Ordering::Relaxed)
    })
    .instrument(span)
    .await;
    super::metrics::finished(started.elapsed(), matches!(outcome, Ok(Outcome::Completed)));
    let now = clock.now();
    let written = match &outcome {
        Ok(Outcome::Completed) => {
            // Written with others by the completer; a send fails only when shutting down.
            if completions.send((job.id, job.fence)).is_err() {
                let _ = queue::complete(db, job, now).await;
            }
            return;
        }
        Ok(Outcome::Failed {
            step,
            error,
            permanent,
        }) => {
            tracing::info!(job = job.id, kind = %job.kind, %step, %error, "job step failed");
            let error = format!("step {step}: {error}");
            let written = queue::fail(db, job, &error, *permanent, now, jitter).await;
            if matches!(written, Ok(true)) && queue::discards(job, *permanent) {
                abandoned(db, handler.as_ref(), job, &error).await;
            }
            written
        }
        Ok(Outcome::Unreadable { error }) => {
            tracing::warn!(job = job.id, kind = %job.kind, %error, "job payload unreadable");
            let written = queue::fail(db, job, error, true, now, jitter).await;
            if matches!(written, Ok(true)) {
                abandoned(db, handler.as_ref(), job, error).await;
            }
            written
        }
        Ok(Outcome::Cancelled) => {
            let written = queue::mark_cancelled(db, job, now).await;
            if matches!(written, Ok(true)) {
                abandoned(db, handler.as_ref(), job, "the job was cancelled").await;
            }
            written
        }
        Ok(Outcome::LostLease) => Ok(false),
        Err(e) => {
            // The database is unreachable: the lease runs out and the job is retried.
            tracing::warn!(job = job.id, error = %e, "running a job failed");
            return;
        }
    };
    match written {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            job = job.id,
            "lease lost: another worker owns this job now; its results were not written"
        ),
        Err(e) => tracing::warn!(job = job.id, error = %e, "recording a job's outcome failed"),
    }
}

async fn heartbeat(
    db: PgPool,
    clock: Clock,
    config: WorkerConfig,
    held: HeldJobs,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(config.heartbeat) => {}
        }
        let jobs: Vec<(i64, i64)> = held
            .lock()
            .expect("the held-jobs lock is never poisoned")
            .iter()
            .map(|(id, h)| (*id, h.fence))
            .collect();
        if jobs.is_empty() {
            continue;
        }
        match queue::heartbeat(&db, &jobs, config.lease, clock.now()).await {
            Ok(owned) => {
                let held = held.lock().expect("the held-jobs lock is never poisoned");
                for (id, cancel_requested) in owned {
                    if cancel_requested && let Some(h) = held.get(&id) {
                        h.cancel.store(true, Ordering::Relaxed);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing job leases failed"),
        }
    }
}

/// How often a pool checks that the next run of each periodic kind is scheduled.
const SCHEDULE_EVERY: Duration = Duration::from_secs(30);

async fn schedule(
    db: PgPool,
    periodic: Vec<(&'static str, Duration)>,
    clock: Clock,
    mut stopped: watch::Receiver<bool>,
) {
    if periodic.is_empty() {
        return;
    }
    loop {
        for (kind, every) in &periodic {
            if let Err(e) = queue::schedule_periodic(&db, kind, *every, clock.now()).await {
                tracing::warn!(kind, error = %e, "scheduling a periodic job failed");
            }
        }
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(SCHEDULE_EVERY) => {}
        }
    }
}

async fn rescue(
    db: PgPool,
    clock: Clock,
    config: WorkerConfig,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = tokio::time::sleep(config.rescue_every) => {}
        }
        match queue::rescue(&db, clock.now()).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::warn!(jobs = ?ids, "rescued jobs of a worker that stopped responding")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "rescuing jobs failed"),
        }
    }
}
