//! Counters of this process's workers, for Prometheus (`GET /metrics`). Queue depth comes from
//! the database at scrape time; the rest is counted here as it happens.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static CLAIMED: AtomicU64 = AtomicU64::new(0);
static COMPLETED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static RESCUED: AtomicU64 = AtomicU64::new(0);
static CLAIM_LATENCY_MICROS: AtomicU64 = AtomicU64::new(0);
static RUN_MICROS: AtomicU64 = AtomicU64::new(0);
static RUNS: AtomicU64 = AtomicU64::new(0);

/// A job was claimed `latency` after it became due.
pub fn claimed(latency: Duration) {
    CLAIMED.fetch_add(1, Ordering::Relaxed);
    CLAIM_LATENCY_MICROS.fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
}

/// An attempt ended after `took`; `ok` when the job completed.
pub fn finished(took: Duration, ok: bool) {
    RUNS.fetch_add(1, Ordering::Relaxed);
    RUN_MICROS.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    if ok {
        COMPLETED.fetch_add(1, Ordering::Relaxed);
    } else {
        FAILED.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn rescued(count: usize) {
    RESCUED.fetch_add(count as u64, Ordering::Relaxed);
}

/// The Prometheus text exposition: queue depth per state plus this process's counters.
pub fn render(depth: &[(String, i64)]) -> String {
    let secs = |micros: &AtomicU64| micros.load(Ordering::Relaxed) as f64 / 1e6;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP slipway_jobs Jobs in the queue by state.\n# TYPE slipway_jobs gauge"
    );
    for state in [
        "available",
        "running",
        "retryable",
        "completed",
        "cancelled",
        "discarded",
    ] {
        let n = depth
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "slipway_jobs{{state=\"{state}\"}} {n}");
    }
    for (name, help, value) in [
        (
            "slipway_jobs_claimed_total",
            "Jobs claimed by this process.",
            &CLAIMED,
        ),
        (
            "slipway_jobs_completed_total",
            "Job attempts that completed in this process.",
            &COMPLETED,
        ),
        (
            "slipway_jobs_failed_total",
            "Job attempts that failed in this process.",
            &FAILED,
        ),
        (
            "slipway_jobs_rescued_total",
            "Jobs of dead workers rescued by this process.",
            &RESCUED,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
            value.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP slipway_job_claim_latency_seconds Time from due to claimed.\n# TYPE slipway_job_claim_latency_seconds summary\nslipway_job_claim_latency_seconds_sum {}\nslipway_job_claim_latency_seconds_count {}",
        secs(&CLAIM_LATENCY_MICROS),
        CLAIMED.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP slipway_job_run_seconds Time an attempt ran.\n# TYPE slipway_job_run_seconds summary\nslipway_job_run_seconds_sum {}\nslipway_job_run_seconds_count {}",
        secs(&RUN_MICROS),
        RUNS.load(Ordering::Relaxed)
    );
    out
}
