//! `slipway bench approvals`: the approvals dashboard under concurrent load, over real HTTP
//! against the real app, with a small and a large table of requests measured side by side in
//! one run (the ratio shows whether latency grows with the table; it should not).
//!
//! Protocol: seed `small` requests (10% pending, the rest decided, spread over 90 days, 20
//! requesters, 3 platforms), load the dashboard's pages with `concurrency` clients for
//! `requests` requests as a platform engineer; grow the table to `rows`, load again.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

use crate::app::config::Config;
use crate::auth::{Role, RoleSet, UserId};
use crate::bench::jobs::on_scratch;

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The size of the small table, measured first.
    pub small: u32,
    /// The size of the large table, measured second.
    pub rows: u32,
    pub concurrency: usize,
    pub requests: u32,
}

/// The dashboard pages loaded, each a kind of its own in the report.
pub const PAGES: [(&str, &str); 8] = [
    ("pending", "/approvals"),
    ("pending by platform", "/approvals?platform=bench-2"),
    ("pending by type", "/approvals?type=prod"),
    (
        "pending by requester",
        "/approvals?requester=user-7@bench.test",
    ),
    ("pending search", "/approvals?q=request+12"),
    ("pending page 2", ""),
    ("decided", "/approvals?tab=decided"),
    ("in flight", "/approvals?tab=in_flight"),
];

/// Latencies of one kind of page, in milliseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    pub kind: &'static str,
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// One measurement: the table size, per-page latencies, the whole and the throughput.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub rows: u32,
    pub pages: Vec<Latencies>,
    pub overall: Latencies,
    pub requests_per_second: f64,
}

fn latencies(kind: &'static str, mut ms: Vec<f64>) -> Latencies {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        ms.get(((ms.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Latencies {
        kind,
        count: ms.len(),
        p50: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
        max: ms.last().copied().unwrap_or(0.0),
    }
}

/// Seeds requests `from..=to` (numbers name them, so seeding can continue where it stopped).
async fn seed(
    pool: &PgPool,
    from: u32,
    to: u32,
    platforms: &[Uuid],
    users: &[Uuid],
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO environment (id, platform_id, environment_type, name, purpose, parameters,
             lifecycle, ttl_hours, max_ttl_hours, state, requested_by, blueprint_number,
             approvals_required, approver_roles, approval_count, sla_hours, cost_hourly_micros,
             cost_max_hourly_micros, plan, awaiting_since, sla_due_at, pending_until, decided_at,
             created_at)
         SELECT gen_random_uuid(), $3[1 + n % 3], (ARRAY['dev', 'test', 'perf', 'prod'])[1 + n % 4],
             'env-' || n, 'Seeded request ' || n,
             '{\"instance_type\": \"m6i.large\", \"min_nodes\": 2, \"max_nodes\": 4, \"data_services\": []}',
             CASE WHEN n % 4 = 2 THEN 'ephemeral' ELSE 'long_lived' END,
             CASE WHEN n % 4 = 2 THEN 8 END, CASE WHEN n % 4 = 2 THEN 72 END,
             CASE WHEN n % 10 = 0 THEN 'submitted'
                  ELSE (ARRAY['approved', 'rejected', 'expired', 'ready', 'torn_down', 'cancelled',
                              'failed', 'provisioning', 'tearing_down'])[1 + n % 9] END,
             $4[1 + n % array_length($4, 1)], 1, CASE WHEN n % 4 = 3 THEN 2 ELSE 1 END,
             '{platform_engineer}', 0, 24, 1000000, 2000000, '[]',
             CASE WHEN n % 10 = 0 THEN created END, created + interval '24 hours',
             created + interval '168 hours',
             CASE WHEN n % 10 <> 0 THEN created + interval '1 hour' END, created
         FROM (SELECT n, now() - n * interval '77 seconds' AS created
               FROM generate_series($1::int, $2::int) n) s",
    )
    .bind(from as i32)
    .bind(to as i32)
    .bind(platforms)
    .bind(users)
    .execute(pool)
    .await
    .context("seeding requests")?;
    sqlx::query("ANALYZE environment").execute(pool).await?;
    Ok(())
}

/// GETs pages as the signed-in platform engineer; anything but 2xx fails the benchmark.
#[derive(Clone)]
struct Fetcher {
    client: reqwest::Client,
    base: std::sync::Arc<str>,
    cookie: std::sync::Arc<str>,
}

impl Fetcher {
    async fn get(&self, path: &str) -> anyhow::Result<String> {
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .get(&url)
            .header("cookie", &*self.cookie)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET {url} answered {}",
            response.status()
        );
        Ok(response.text().await?)
    }
}

/// Loads the dashboard pages through `base` with the session `cookie`.
async fn load(
    base: &str,
    cookie: &str,
    settings: Settings,
    rows: u32,
) -> anyhow::Result<Measurement> {
    crate::init_tls();
    let fetcher = Fetcher {
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        base: base.into(),
        cookie: cookie.into(),
    };
    // The second page's address comes from the first page's "Next page" link.
    let first = fetcher.get("/approvals").await?;
    let next = first
        .split("&amp;after=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("the pending list has no second page; seed more rows")?;
    let second = format!("/approvals?tab=pending&after={next}");
    let paths: Vec<(&'static str, String)> = PAGES
        .iter()
        .map(|(kind, path)| {
            let path = if path.is_empty() {
                second.clone()
            } else {
                (*path).to_owned()
            };
            (*kind, path)
        })
        .collect();

    let started = Instant::now();
    let clients = settings.concurrency.max(1);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let paths = paths.clone();
        let fetcher = fetcher.clone();
        let share = (settings.requests as usize + clients - 1 - c) / clients;
        tasks.spawn(async move {
            let mut seen = Vec::with_capacity(share);
            for i in 0..share {
                let (kind, path) = &paths[(c + i * clients) % paths.len()];
                let at = Instant::now();
                fetcher.get(path).await?;
                seen.push((*kind, at.elapsed().as_secs_f64() * 1000.0));
            }
            Ok::<_, anyhow::Error>(seen)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let pages = PAGES
        .iter()
        .map(|(kind, _)| {
            latencies(
                kind,
                all.iter()
                    .filter(|(k, _)| k == kind)
                    .map(|(_, ms)| *ms)
                    .collect(),
            )
        })
        .collect();
    Ok(Measurement {
        rows,
        pages,
        overall: latencies("all pages", all.iter().map(|(_, ms)| *ms).collect()),
        requests_per_second: all.len() as f64 / seconds,
    })
}

/// Runs the benchmark on a scratch database of the server of `admin`; returns the small and
/// the large measurement.
pub async fn run(
    admin: &PgConnectOptions,
    settings: Settings,
) -> anyhow::Result<(Measurement, Measurement)> {
    let name = format!("slipway_bench_approvals_{}", std::process::id());
    on_scratch(admin, &name, settings.concurrency as u32 + 4, async |pool| {
        let engineer = RoleSet::from_iter([Role::PlatformEngineer]);
        let developer = RoleSet::from_iter([Role::Developer]);
        let reviewer =
            crate::auth::users::create_local(&pool, "pe@bench.test", "Reviewer", &engineer, None)
                .await?;
        let mut users = Vec::new();
        for i in 0..20 {
            let email = format!("user-{i}@bench.test");
            let name = format!("Developer {i}");
            users.push(
                crate::auth::users::create_local(&pool, &email, &name, &developer, None)
                    .await?
                    .0,
            );
        }
        let mut platforms = Vec::new();
        for i in 1..=3 {
            let id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO platform (id, slug, name, owner_team, created_by) VALUES ($1, $2, $3, 'Platform', $4)",
            )
            .bind(id)
            .bind(format!("bench-{i}"))
            .bind(format!("Bench platform {i}"))
            .bind(reviewer.0)
            .execute(&pool)
            .await?;
            platforms.push(id);
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = crate::app::AppState::new(pool.clone(), Config::default(), false, &base).await?;
        let cookie = format!(
            "{}={}",
            state.cookies.session_name(),
            crate::auth::session::start(&pool, UserId(reviewer.0), state.session_lifetimes(), None, None, None)
                .await?
        );
        let progress = state.progress.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::app::server::serve(
            listener,
            crate::app::router::router(state),
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
        ));

        let small = settings.small.min(settings.rows);
        seed(&pool, 1, small, &platforms, &users).await?;
        // Stop the server whatever happened, then report.
        let measured = async {
            let before = load(&base, &cookie, settings, small).await?;
            seed(&pool, small + 1, settings.rows, &platforms, &users).await?;
            let after = load(&base, &cookie, settings, settings.rows).await?;
            Ok::<_, anyhow::Error>((before, after))
        }
        .await;
        let _ = stop.send(());
        let _ = server.await;
        progress.stop();
        pool.close().await;
        measured
    })
    .await
}
