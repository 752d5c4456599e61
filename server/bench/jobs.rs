//! `slipway bench jobs`: the job engine's throughput and enqueue → start latency for no-op jobs
//! on a PostgreSQL server, measured side by side with graphile-worker (npm) and River (Go) on
//! the same server, with the same protocol, in one run.
//!
//! Protocol: drain a backlog of `jobs` no-op jobs with `concurrency` workers (jobs per second),
//! then enqueue `latency_jobs` jobs one at a time to idle workers (p50/p99 from enqueue to start).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::clock::Clock;
use crate::jobs::queue::{self, NewJob};
use crate::jobs::worker::{WorkerConfig, Workers};
use crate::jobs::{Handler, NoPayload, Registry, StepContext, StepFuture};

/// A job with no steps: what is measured is the engine, not the work.
struct Noop;

impl Handler for Noop {
    type Payload = NoPayload;

    fn kind(&self) -> &'static str {
        "bench.noop"
    }
    fn steps(&self, _: &NoPayload) -> Vec<String> {
        // Asked when the job starts: the moment the latency figures measure to, as the peers'
        // programs take it when their handler runs.
        if MEASURING.load(std::sync::atomic::Ordering::Relaxed) {
            *STARTED_AT.lock().expect("never poisoned") = Some(chrono::Utc::now());
            STARTED.notify_one();
        }
        Vec::new()
    }
    fn run_step<'a>(&'a self, _: &'a str, _: &'a NoPayload, _: &'a StepContext) -> StepFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

/// Set while latency is measured: then each no-op job records when its handler started.
static MEASURING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static STARTED_AT: std::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>> =
    std::sync::Mutex::new(None);
static STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub jobs: u32,
    pub concurrency: usize,
    pub latency_jobs: u32,
    /// Runs of each engine on each backlog, interleaved (Slipway, graphile-worker, River, then
    /// again), so that a machine slower for a while slows every engine alike.
    pub runs: u32,
}

#[derive(Debug, Clone, Copy, serde::Deserialize)]
pub struct Figures {
    pub jobs_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// One engine's figures over the runs of one backlog.
#[derive(Debug, Clone, Default)]
pub struct Runs(Vec<Figures>);

impl Runs {
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The median throughput (of an even count, the lower of the middle two).
    pub fn jobs_per_second(&self) -> f64 {
        median(self.0.iter().map(|f| f.jobs_per_second))
    }

    /// The lowest and the highest throughput.
    pub fn jobs_per_second_range(&self) -> (f64, f64) {
        let each = || self.0.iter().map(|f| f.jobs_per_second);
        (
            each().fold(f64::INFINITY, f64::min),
            each().fold(0.0, f64::max),
        )
    }

    /// The median of the runs' p50 latencies.
    pub fn p50_ms(&self) -> f64 {
        median(self.0.iter().map(|f| f.p50_ms))
    }

    /// The highest of the runs' p99 latencies: a latency goal has to hold in every run.
    pub fn p99_ms(&self) -> f64 {
        self.0.iter().map(|f| f.p99_ms).fold(0.0, f64::max)
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0.0)
}

/// A scratch database on the server of `admin`, dropped afterwards.
pub(crate) async fn scratch(
    admin: &PgConnectOptions,
    name: &str,
) -> anyhow::Result<PgConnectOptions> {
    let mut conn = PgConnection::connect_with(admin)
        .await
        .context("connecting to the benchmark's PostgreSQL")?;
    // Names carry the process id, so a leftover can only be from a crashed run of this pid.
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if exists {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
    }
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    Ok(admin.clone().database(name))
}

/// Runs `body` on a fresh, migrated scratch database (a pool of `connections`), dropped
/// afterwards whatever `body` returned.
pub(crate) async fn on_scratch<T>(
    admin: &PgConnectOptions,
    name: &str,
    connections: u32,
    body: impl AsyncFnOnce(PgPool) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let options = scratch(admin, name).await?;
    let result = async {
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await?;
        crate::db::migrate(&pool).await?;
        body(pool).await
    }
    .await;
    drop_scratch(admin, name).await;
    result
}

pub(crate) async fn drop_scratch(admin: &PgConnectOptions, name: &str) {
    if let Ok(mut conn) = PgConnection::connect_with(admin).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

/// Whether any job is still waiting or running. Each half matches a partial index; it still
/// reads past the dead entries that claimed jobs leave in the index, so it is asked only once
/// this process's counter says all jobs ran (polling the database through the run would slow
/// down what it measures).
async fn unfinished(pool: &PgPool) -> anyhow::Result<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM job WHERE state IN ('available', 'retryable'))
             OR EXISTS (SELECT 1 FROM job WHERE state = 'running')",
    )
    .fetch_one(pool)
    .await?)
}

/// What every engine's program does between queueing its backlog and starting the clock:
/// vacuum and analyse the scratch database, as autovacuum would have while a real backlog built
/// up, then checkpoint, so that every drain starts a checkpoint cycle of its own. Unsettled, a
/// 5,000-job drain found its pages' full-page images already in the WAL its seed wrote, and one
/// of 500,000 also paid for vacuuming its seed's rows. `tests/bench/graphile.mjs` and
/// `tests/bench/river/main.go` run the same two statements.
const SETTLE: [&str; 2] = ["VACUUM (ANALYZE)", "CHECKPOINT"];

async fn settle(pool: &PgPool) -> anyhow::Result<()> {
    for statement in SETTLE {
        sqlx::query(statement)
            .execute(pool)
            .await
            .with_context(|| format!("settling the backlog ({statement})"))?;
    }
    Ok(())
}

/// Slipway's own engine.
pub async fn slipway(admin: &PgConnectOptions, settings: Settings) -> anyhow::Result<Figures> {
    let name = format!("slipway_bench_{}", std::process::id());
    on_scratch(
        admin,
        &name,
        settings.concurrency as u32 + 4,
        async |pool| {
            sqlx::query("INSERT INTO job (kind) SELECT 'bench.noop' FROM generate_series(1, $1)")
                .bind(settings.jobs as i64)
                .execute(&pool)
                .await?;
            settle(&pool).await?;
            let config = WorkerConfig {
                concurrency: settings.concurrency,
                ..WorkerConfig::default()
            };
            let start = Instant::now();
            let workers = Workers::start(
                pool.clone(),
                Registry::default().with(Noop),
                Clock::system(),
                config,
            );
            let target = crate::jobs::metrics::completed() + u64::from(settings.jobs);
            while crate::jobs::metrics::completed() < target {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // The completions are written in batches; the run ends when the last one is.
            while unfinished(&pool).await? {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let seconds = start.elapsed().as_secs_f64();

            MEASURING.store(true, std::sync::atomic::Ordering::Relaxed);
            let mut started = Vec::new();
            for _ in 0..settings.latency_jobs {
                let mut tx = pool.begin().await?;
                let id = queue::enqueue(&mut tx, &NewJob::new("bench.noop", serde_json::json!({})))
                    .await?;
                tx.commit().await?;
                tokio::time::timeout(Duration::from_secs(30), STARTED.notified())
                    .await
                    .context("a latency job did not start within 30 s")?;
                let at = STARTED_AT.lock().expect("never poisoned").take();
                started.push((id, at.context("a latency job started without its time")?));
                // One at a time: the next is enqueued once this one is done.
                loop {
                    let done: bool =
                        sqlx::query_scalar("SELECT state = 'completed' FROM job WHERE id = $1")
                            .bind(id)
                            .fetch_one(&pool)
                            .await?;
                    if done {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            MEASURING.store(false, std::sync::atomic::Ordering::Relaxed);
            workers.shutdown(Duration::from_secs(10)).await;
            // From the database's enqueue time (created_at) to the handler's start.
            let mut latencies = Vec::new();
            for (id, at) in started {
                let created: chrono::DateTime<chrono::Utc> =
                    sqlx::query_scalar("SELECT created_at FROM job WHERE id = $1")
                        .bind(id)
                        .fetch_one(&pool)
                        .await?;
                latencies.push((at - created).as_seconds_f64() * 1000.0);
            }
            latencies.sort_by(f64::total_cmp);
            pool.close().await;
            let pick = |q: f64| {
                latencies
                    .get(
                        ((q * latencies.len() as f64) as usize)
                            .min(latencies.len().saturating_sub(1)),
                    )
                    .copied()
                    .unwrap_or(0.0)
            };
            Ok(Figures {
                jobs_per_second: f64::from(settings.jobs) / seconds,
                p50_ms: pick(0.5),
                p99_ms: pick(0.99),
            })
        },
    )
    .await
}

/// graphile-worker, through `tests/bench/graphile.mjs`.
pub async fn graphile(
    admin: &PgConnectOptions,
    settings: Settings,
    peers: &Path,
) -> anyhow::Result<Figures> {
    if !peers.join("node_modules/graphile-worker").is_dir() {
        anyhow::bail!(
            "graphile-worker is not installed: run `npm ci --prefix {}` (Node.js 18 or newer)",
            peers.display()
        );
    }
    let mut node = tokio::process::Command::new("node");
    node.arg(peers.join("graphile.mjs"));
    peer(admin, "graphile-worker", node, settings).await
}

/// River's benchmark program, built from `tests/bench/river` by the Go toolchain (modules
/// from the Go module proxy on the first build); removed when dropped.
pub struct RiverProgram(PathBuf);

impl RiverProgram {
    pub async fn build(peers: &Path) -> anyhow::Result<RiverProgram> {
        let program =
            std::env::temp_dir().join(format!("slipway-bench-river-{}", std::process::id()));
        let built = tokio::process::Command::new("go")
            .args(["build", "-o"])
            .arg(&program)
            .arg(".")
            .current_dir(peers.join("river"))
            .output()
            .await
            .context("running go to build River's benchmark (install Go 1.26 or newer)")?;
        if !built.status.success() {
            anyhow::bail!(
                "building River's benchmark failed: {}",
                String::from_utf8_lossy(&built.stderr)
            );
        }
        Ok(RiverProgram(program))
    }
}

impl Drop for RiverProgram {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// River, through its program. River fetches at most once per `FetchCooldown` (100 ms unless
/// `fetch_cooldown` says otherwise), which caps a drain near `concurrency` jobs per cooldown.
pub async fn river(
    admin: &PgConnectOptions,
    settings: Settings,
    program: &RiverProgram,
    fetch_cooldown: Option<Duration>,
) -> anyhow::Result<Figures> {
    let mut command = tokio::process::Command::new(&program.0);
    if let Some(cooldown) = fetch_cooldown {
        command.env("FETCH_COOLDOWN_MS", cooldown.as_millis().max(1).to_string());
    }
    peer(admin, "River", command, settings).await
}

/// Runs a peer's benchmark program on a scratch database of its own: the protocol's settings
/// go in as environment variables, its figures come back as the last line of its output.
async fn peer(
    admin: &PgConnectOptions,
    peer: &str,
    mut command: tokio::process::Command,
    settings: Settings,
) -> anyhow::Result<Figures> {
    let name = format!("slipway_bench_peer_{}", std::process::id());
    let options = scratch(admin, &name).await?;
    let url = match options.get_socket() {
        Some(dir) => format!(
            "postgres://{}@localhost/{name}?host={}",
            options.get_username(),
            dir.display()
        ),
        None => format!(
            "postgres://{}@{}:{}/{name}",
            options.get_username(),
            options.get_host(),
            options.get_port()
        ),
    };
    let output = command
        .env("DATABASE_URL", url)
        .env("JOBS", settings.jobs.to_string())
        .env("CONCURRENCY", settings.concurrency.to_string())
        .env("LATENCY_JOBS", settings.latency_jobs.to_string())
        .output()
        .await
        .with_context(|| format!("running {peer}'s benchmark"));
    drop_scratch(admin, &name).await;
    let output = output?;
    if !output.status.success() {
        anyhow::bail!(
            "{peer}'s run failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(text.trim().lines().last().unwrap_or_default())
        .with_context(|| format!("reading {peer}'s figures from {text:?}"))
}

/// One side-by-side comparison: Slipway, graphile-worker and River (with a 1 ms fetch cooldown,
/// its fastest setting, and up to [`RIVER_DEFAULTS_UP_TO`] jobs also with its defaults) on the
/// same backlog, one after another, `settings.runs` times.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub settings: Settings,
    pub slipway: Runs,
    pub graphile: Runs,
    pub river: Option<Runs>,
    pub river_fast: Runs,
}

/// River's defaults cap a drain near `concurrency` jobs per 100 ms (160 jobs/s with 16
/// workers): 500,000 jobs would take 52 minutes to show the same cap again.
pub const RIVER_DEFAULTS_UP_TO: u32 = 5_000;

pub async fn compare(
    admin: &PgConnectOptions,
    settings: Settings,
    peers: &Path,
) -> anyhow::Result<Comparison> {
    let river_program = RiverProgram::build(peers).await?;
    let mut comparison = Comparison {
        settings,
        slipway: Runs::default(),
        graphile: Runs::default(),
        river: (settings.jobs <= RIVER_DEFAULTS_UP_TO).then(Runs::default),
        river_fast: Runs::default(),
    };
    for _ in 0..settings.runs.max(1) {
        comparison.slipway.0.push(slipway(admin, settings).await?);
        comparison
            .graphile
            .0
            .push(graphile(admin, settings, peers).await?);
        if let Some(defaults) = &mut comparison.river {
            defaults
                .0
                .push(river(admin, settings, &river_program, None).await?);
        }
        let fast = Some(Duration::from_millis(1));
        comparison
            .river_fast
            .0
            .push(river(admin, settings, &river_program, fast).await?);
    }
    Ok(comparison)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(figures: &[(f64, f64, f64)]) -> Runs {
        Runs(
            figures
                .iter()
                .map(|&(jobs_per_second, p50_ms, p99_ms)| Figures {
                    jobs_per_second,
                    p50_ms,
                    p99_ms,
                })
                .collect(),
        )
    }

    #[test]
    fn repeated_runs_report_the_median_the_range_and_the_worst_p99() {
        let three = runs(&[(7000.0, 1.4, 2.0), (6000.0, 1.2, 4.8), (8000.0, 1.6, 2.5)]);
        assert_eq!(three.jobs_per_second(), 7000.0);
        assert_eq!(three.jobs_per_second_range(), (6000.0, 8000.0));
        assert_eq!(three.p50_ms(), 1.4);
        // A latency goal has to hold in every run, so the worst p99 is the one reported.
        assert_eq!(three.p99_ms(), 4.8);
        // Of an even count, the lower of the middle two: never flattering.
        let two = runs(&[(9000.0, 1.0, 1.0), (5000.0, 1.0, 1.0)]);
        assert_eq!(two.jobs_per_second(), 5000.0);
    }
}
