//! The benchmarks' figures as Markdown: what each `slipway bench …` prints, and the one report
//! `slipway bench all` writes, headed by the machine, the versions and the date it ran on.

use std::fmt::Write as _;
use std::path::Path;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::approvals::{Latencies, Measurement};
use super::jobs::{Comparison, Runs};
use super::pages;

/// What the figures were measured on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub date: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub versions: Vec<(&'static str, String)>,
}

/// Reads this machine's processor, memory and the versions of everything measured.
pub async fn machine(admin: &PgConnectOptions, peers: &Path) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map(|(_, name)| name.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let memory_kib: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let postgres = match PgConnection::connect_with(admin).await {
        Ok(mut conn) => sqlx::query_scalar::<_, String>("SHOW server_version")
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| e.to_string()),
        Err(e) => e.to_string(),
    };
    let graphile = std::fs::read_to_string(peers.join("node_modules/graphile-worker/package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|package| package["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "not installed".to_owned());
    let river = std::fs::read_to_string(peers.join("river/go.mod"))
        .ok()
        .and_then(|module| {
            module.lines().find_map(|line| {
                let rest = line.trim().strip_prefix("github.com/riverqueue/river ")?;
                Some(rest.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".to_owned());
    Machine {
        date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        cpu,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib: memory_kib / 1024.0 / 1024.0,
        versions: vec![
            ("Slipway", env!("CARGO_PKG_VERSION").to_owned()),
            ("PostgreSQL", postgres),
            ("graphile-worker", graphile),
            ("River", river),
            ("Node.js", first_line("node", &["--version"]).await),
            ("Go", first_line("go", &["version"]).await),
            ("wrk", first_line("wrk", &["--version"]).await),
        ],
    }
}

/// The first line a tool prints about its version (wrk prints it and exits non-zero).
async fn first_line(program: &str, args: &[&str]) -> String {
    match tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
    {
        Ok(output) => {
            let text = [output.stdout, output.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned()
        }
        Err(_) => "not installed".to_owned(),
    }
}

pub fn machine_section(machine: &Machine) -> String {
    let mut out = format!(
        "Measured {} on {} ({} cores, {:.0} GiB); everything measured shares those cores.\n\n",
        machine.date, machine.cpu, machine.cores, machine.memory_gib
    );
    for (name, version) in &machine.versions {
        let _ = writeln!(out, "- {name}: {version}");
    }
    out
}

/// Throughput and enqueue → start latency per backlog, Slipway beside each peer.
pub fn jobs(runs: &[Comparison]) -> String {
    let Some(first) = runs.first() else {
        return String::new();
    };
    let runs_line = match first.settings.runs {
        0 | 1 => String::new(),
        n => format!(
            " Each engine ran {n} times per backlog, interleaved: throughput is the median, the \
             lowest and highest in brackets; p50 is the median and p99 the highest of the runs."
        ),
    };
    let mut out = format!(
        "{} workers each; latency over {} jobs enqueued one at a time to idle workers.{runs_line}\n\n\
         | backlog | Slipway jobs/s | graphile-worker jobs/s | River jobs/s (defaults) | River jobs/s (FetchCooldown 1 ms) | Slipway ÷ graphile-worker | Slipway ÷ River (1 ms) |\n\
         |---|---|---|---|---|---|---|\n",
        first.settings.concurrency, first.settings.latency_jobs
    );
    for run in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2}× | {:.2}× |",
            thousands(run.settings.jobs),
            throughput(&run.slipway),
            throughput(&run.graphile),
            run.river.as_ref().map_or("not run¹".to_owned(), throughput),
            throughput(&run.river_fast),
            run.slipway.jobs_per_second() / run.graphile.jobs_per_second(),
            run.slipway.jobs_per_second() / run.river_fast.jobs_per_second(),
        );
    }
    out.push_str(
        "\n| backlog | Slipway p50 / p99 start | graphile-worker | River (defaults) | River (FetchCooldown 1 ms) |\n|---|---|---|---|---|\n",
    );
    let latency = |r: &Runs| format!("{:.1} / {:.1} ms", r.p50_ms(), r.p99_ms());
    for run in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            thousands(run.settings.jobs),
            latency(&run.slipway),
            latency(&run.graphile),
            run.river.as_ref().map_or("not run¹".to_owned(), latency),
            latency(&run.river_fast),
        );
    }
    if runs.iter().any(|run| run.river.is_none()) {
        let _ = writeln!(
            out,
            "\n¹ River's defaults (a 100 ms fetch cooldown) cap a drain near {} jobs/s with {} workers; \
             they are measured up to {} jobs only.",
            first.settings.concurrency * 10,
            first.settings.concurrency,
            thousands(super::jobs::RIVER_DEFAULTS_UP_TO)
        );
    }
    if let (Some(small), Some(large)) = (runs.first(), runs.last())
        && runs.len() > 1
    {
        let _ = writeln!(
            out,
            "\nSlipway at {} jobs: {:.0}% of its throughput at {}.",
            thousands(large.settings.jobs),
            100.0 * large.slipway.jobs_per_second() / small.slipway.jobs_per_second(),
            thousands(small.settings.jobs)
        );
    }
    out
}

/// A median throughput, with the range when there was more than one run.
fn throughput(runs: &Runs) -> String {
    let (low, high) = runs.jobs_per_second_range();
    match runs.count() {
        0 | 1 => format!("{:.0}", runs.jobs_per_second()),
        _ => format!("{:.0} ({low:.0}–{high:.0})", runs.jobs_per_second()),
    }
}

/// The approvals dashboard's latencies per page, small table beside large.
pub fn approvals(small: &Measurement, large: &Measurement, clients: usize) -> String {
    let mut out = format!(
        "{clients} concurrent clients.\n\n| page | {} rows p50 / p95 / p99 | {} rows p50 / p95 / p99 |\n|---|---|---|\n",
        thousands(small.rows),
        thousands(large.rows)
    );
    let cell = |l: &Latencies| format!("{:.1} / {:.1} / {:.1} ms", l.p50, l.p95, l.p99);
    for (a, b) in small.pages.iter().zip(&large.pages) {
        let _ = writeln!(out, "| {} | {} | {} |", a.kind, cell(a), cell(b));
    }
    let _ = writeln!(
        out,
        "| all pages | {} ({:.0} pages/s) | {} ({:.0} pages/s) |\n\nLarge ÷ small p50: {:.2}×.",
        cell(&small.overall),
        small.requests_per_second,
        cell(&large.overall),
        large.requests_per_second,
        large.overall.p50 / small.overall.p50.max(f64::EPSILON)
    );
    out
}

/// Pages and the API under wrk, beside the floor, with the server's memory.
pub fn pages(report: &pages::Report, settings: &pages::Settings) -> String {
    let mut out = format!(
        "{} environments; wrk with {} connections for {} s per address. The environment \
         whose page is measured carries a real plan ({} actions, {} KB as JSON: the built-in \
         blueprint's `dev` type with every data service it offers); the other seeded environments' plans \
         are empty, and no other measured address reads a plan.\n\n\
         | address | requests/s | p50 | p99 | errors |\n|---|---|---|---|---|\n",
        thousands(report.rows),
        settings.connections,
        settings.duration.as_secs(),
        report.plan_actions,
        report.plan_bytes / 1000
    );
    for page in &report.pages {
        let _ = writeln!(
            out,
            "| {} (`{}`) | {:.0} | {:.1} ms | {:.1} ms | {} |",
            page.name, page.path, page.requests_per_second, page.p50_ms, page.p99_ms, page.errors
        );
    }
    if let [floor, dashboard, ..] = report.pages.as_slice() {
        let _ = writeln!(
            out,
            "\nDashboard p50 ÷ floor p50: {:.1}×.",
            dashboard.p50_ms / floor.p50_ms.max(f64::EPSILON)
        );
    }
    let _ = writeln!(
        out,
        "Server resident memory: {:.0} MB idle, at most {:.0} MB under the load.",
        report.rss_idle_mb, report.rss_peak_mb
    );
    out
}

/// 500000 → "500,000".
fn thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_are_grouped() {
        assert_eq!(super::thousands(500_000), "500,000");
        assert_eq!(super::thousands(5_000), "5,000");
        assert_eq!(super::thousands(600), "600");
    }
}
