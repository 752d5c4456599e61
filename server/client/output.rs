//! Human output: aligned columns, and what the API returns read into the few fields shown.

use serde::Deserialize;
use uuid::Uuid;

/// Prints `rows` under `headers`, each column as wide as its widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", text.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `2026-12-02T20:15:32.123Z` as `2026-12-02 20:15 UTC`.
pub fn moment(at: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
        Err(_) => at.to_owned(),
    }
}

pub fn usd(amount: f64) -> String {
    format!("${amount:.2}")
}

#[derive(Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// Says how to get the next page, if there is one.
    pub fn hint_more(&self) {
        if let Some(next) = &self.next {
            eprintln!("(more: add --after {next})");
        }
    }
}

#[derive(Deserialize)]
pub struct Me {
    pub email: String,
    pub name: String,
    pub roles: Vec<String>,
}

#[derive(Deserialize)]
pub struct Platform {
    pub slug: String,
    pub name: String,
    pub owner_team: String,
    pub archived: bool,
}

#[derive(Deserialize)]
pub struct Person {
    pub name: String,
    pub email: String,
}

#[derive(Deserialize)]
pub struct Cost {
    pub monthly_usd: f64,
    pub max_monthly_usd: f64,
}

#[derive(Deserialize)]
pub struct ApprovalCount {
    pub have: i32,
    pub required: i32,
}

/// A row of `GET /environments`.
#[derive(Deserialize)]
pub struct Environment {
    pub id: Uuid,
    pub platform: String,
    pub environment_type: String,
    pub name: String,
    pub state: String,
    pub requested_by: Person,
    pub cost_estimate: Cost,
    pub approvals: ApprovalCount,
    pub expires_at: Option<String>,
}

#[derive(Deserialize)]
pub struct Approval {
    pub approver: String,
    pub verdict: String,
    pub comment: String,
}

#[derive(Deserialize)]
pub struct Step {
    pub name: String,
    pub state: String,
    pub error: Option<String>,
}

#[derive(Deserialize)]
pub struct EnvironmentJob {
    pub id: i64,
    pub state: String,
    pub kind: String,
    pub steps: Vec<Step>,
}

/// The hand-over facts the client shows; the API's `outputs` holds more.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Outputs {
    pub cloud: Option<String>,
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub cluster_name: Option<String>,
    pub cluster_endpoint: Option<String>,
    pub namespaces: Vec<String>,
}

/// `GET /environments/{id}`, and each event of its stream.
#[derive(Deserialize)]
pub struct EnvironmentDetail {
    pub id: Uuid,
    pub platform: String,
    pub environment_type: String,
    pub name: String,
    pub state: String,
    pub purpose: String,
    pub requested_by: Person,
    pub cost_estimate: Cost,
    pub ttl_hours: Option<i32>,
    pub expires_at: Option<String>,
    pub approvals: Vec<Approval>,
    #[serde(default)]
    pub outputs: Outputs,
    pub job: Option<EnvironmentJob>,
}

impl EnvironmentDetail {
    /// `3/7 steps done (cluster running)`.
    pub fn progress(&self) -> Option<String> {
        let job = self.job.as_ref()?;
        let done = job.steps.iter().filter(|s| s.state == "completed").count();
        let current = job
            .steps
            .iter()
            .find(|s| s.state != "completed" && s.state != "pending")
            .map(|s| format!(" ({} {})", s.name, s.state))
            .unwrap_or_default();
        Some(format!(
            "{done}/{} steps done{current}",
            job.steps.len().max(done)
        ))
    }

    pub fn print(&self) {
        println!("{} ({})", self.name, self.id);
        let mut facts = vec![
            ("State", self.state.clone()),
            ("Platform", self.platform.clone()),
            ("Type", self.environment_type.clone()),
            ("Purpose", self.purpose.clone()),
            (
                "Requested by",
                format!("{} <{}>", self.requested_by.name, self.requested_by.email),
            ),
            (
                "Estimate",
                format!(
                    "{} to {} per month",
                    usd(self.cost_estimate.monthly_usd),
                    usd(self.cost_estimate.max_monthly_usd)
                ),
            ),
        ];
        if let Some(ttl) = self.ttl_hours {
            facts.push(("Time to live", format!("{ttl} h")));
        }
        if let Some(at) = &self.expires_at {
            facts.push(("Expires", moment(at)));
        }
        for a in &self.approvals {
            let comment = if a.comment.is_empty() {
                String::new()
            } else {
                format!(": {}", a.comment)
            };
            facts.push((
                "Decision",
                format!("{} by {}{comment}", a.verdict, a.approver),
            ));
        }
        let o = &self.outputs;
        for (label, value) in [
            ("Cloud", &o.cloud),
            ("Account", &o.account_id),
            ("Region", &o.region),
            ("Cluster", &o.cluster_name),
            ("API endpoint", &o.cluster_endpoint),
        ] {
            if let Some(value) = value {
                facts.push((label, value.clone()));
            }
        }
        if !o.namespaces.is_empty() {
            facts.push(("Namespaces", o.namespaces.join(", ")));
        }
        if let Some(job) = &self.job {
            facts.push(("Job", format!("#{} {} ({})", job.id, job.kind, job.state)));
        }
        let width = facts.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        for (label, value) in facts {
            println!("  {label:<width$}  {value}");
        }
        if let Some(job) = &self.job {
            for step in &job.steps {
                let error = step
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                println!("    {:<22} {}{error}", step.name, step.state);
            }
        }
    }
}

#[derive(Deserialize)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub state: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub created_at: String,
    pub last_error: Option<String>,
}

#[derive(Deserialize)]
pub struct BacklogItem {
    pub key: Option<String>,
    pub title: String,
    pub phase: String,
    pub status: String,
    pub estimate_days: Option<f64>,
    pub assignee: Option<String>,
}
