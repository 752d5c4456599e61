//! `slipway bench approvals`: the approvals dashboard under concurrent load, over real HTTP
//! against the real app, with a small and a large table of requests measured side by side in
//! one run (the ratio shows whether latency grows with the table; it should not).
//!
//! Protocol: seed `small` requests (10% pending, the rest decided, spread over 90 days, 20
//! requesters, 3 platforms), load the dashboard's pages with `concurrency` clients for
//! `requests` requests as a platform engineer; grow the table to `rows`, load again.

use std::time::Instant;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;

use crate::bench::jobs::on_scratch;
use crate::bench::site::Site;

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
    on_scratch(
        admin,
        &name,
        settings.concurrency as u32 + 4,
        async |pool| {
            let site = Site::start(&pool).await?;
            let small = settings.small.min(settings.rows);
            // Stop the server whatever happened, then report.
            let measured = async {
                site.seed(1, small).await?;
                let before = load(&site.base, &site.cookie, settings, small).await?;
                site.seed(small + 1, settings.rows).await?;
                let after = load(&site.base, &site.cookie, settings, settings.rows).await?;
                Ok::<_, anyhow::Error>((before, after))
            }
            .await;
            site.stop().await;
            pool.close().await;
            measured
        },
    )
    .await
}
