//! Counters of this process's workers, for Prometheus (`GET /metrics`). Queue depth comes from
//! the database at scrape time; the rest is counted here as it happens.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::queue;

static CLAIMED: AtomicU64 = AtomicU64::new(0);
static COMPLETED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static RESCUED: AtomicU64 = AtomicU64::new(0);

/// Bucket bounds in seconds, from a millisecond (claims) to ten minutes (provisioning steps).
const BOUNDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0,
];

/// A Prometheus histogram with fixed buckets, lock-free: one counter per bucket (not
/// cumulative; summed when rendered), the count and the sum in microseconds.
struct Histogram {
    buckets: [AtomicU64; BOUNDS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BOUNDS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, value: Duration) {
        let secs = value.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|bound| secs <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(value.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BOUNDS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}\n{name}_count {count}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
    }
}

static CLAIM_LATENCY: Histogram = Histogram::new();
static RUN_TIME: Histogram = Histogram::new();

/// A job was claimed `latency` after it became due.
pub fn claimed(latency: Duration) {
    CLAIMED.fetch_add(1, Ordering::Relaxed);
    CLAIM_LATENCY.observe(latency);
}

/// How many jobs this process's workers have completed so far.
pub fn completed() -> u64 {
    COMPLETED.load(Ordering::Relaxed)
}

/// An attempt ended after `took`; `ok` when the job completed.
pub fn finished(took: Duration, ok: bool) {
    RUN_TIME.observe(took);
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
/// Completed jobs have no gauge (see [`queue::Depth`]); `slipway_jobs_completed_total` counts
/// them as they finish.
pub fn render(depth: &queue::Depth) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP slipway_jobs Jobs waiting, running or failed, by state.\n# TYPE slipway_jobs gauge"
    );
    for (state, n) in depth.by_state() {
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
    CLAIM_LATENCY.render(
        &mut out,
        "slipway_job_claim_latency_seconds",
        "Time from due to claimed.",
    );
    RUN_TIME.render(&mut out, "slipway_job_run_seconds", "Time an attempt ran.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_the_count() {
        let h = Histogram::new();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(40));
        h.observe(Duration::from_secs(3600));
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "x");
        assert!(out.contains("x_seconds_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.05\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"600\"} 2\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_count 3"), "{out}");
    }
}
