//! What each environment really costs: the organization's bill read from AWS Cost Explorer
//! (each environment has its own account, so the bill breaks down by environment), beside the
//! estimate Slipway made when it was requested, and each environment's monthly budget (its
//! type's `budget_month_usd`) with warnings at 80 % and 100 %.
//!
//! The periodic `maintain.cost` job reads the last [`DAYS_READ`] days for every account at once
//! (one request, $0.01, however many environments) and keeps them in `account_cost`. A day of
//! a pooled account that two environments held is split between them
//! (`environment_daily_cost`). Cost Explorer's figures for the last day or two are estimates
//! that it revises; each read replaces them.

use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::clock::Clock;
use crate::environments::notify::Event;
use crate::environments::pricing::Micros;
use crate::environments::{EnvironmentError, EnvironmentId, lifecycle};
use crate::jobs::{Handler, NoPayload, StepContext, StepError, StepFuture};
use crate::provision::Cloud;

/// The periodic job reading the bill and warning of budgets.
pub const COST_JOB: &str = "maintain.cost";
/// How often it runs: Cost Explorer updates its figures a few times a day.
const EVERY: Duration = Duration::from_secs(12 * 3600);
/// How many days back each read covers: the month so far and the days before it, for the
/// estimate's error over time.
pub const DAYS_READ: i64 = 35;
/// The shares of a budget that warn, in percent.
const THRESHOLDS: [i32; 2] = [100, 80];

/// The first day of `day`'s month.
pub fn month_start(day: NaiveDate) -> NaiveDate {
    day.with_day(1).expect("every month has a first day")
}

/// One environment's spend this month against its estimate and budget; `null` figures are not
/// known (the bill has not been read, or the cloud has none).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CostSummary {
    pub month_to_date_usd: Option<f64>,
    /// At the minimum node count, for an average month.
    pub estimate_month_usd: f64,
    pub budget_month_usd: Option<f64>,
}

/// One day of an environment's spend beside what Slipway estimated for it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CostDay {
    pub day: NaiveDate,
    pub actual_usd: f64,
    /// The hourly estimate over 24 hours.
    pub estimate_usd: f64,
    /// How far off the estimate was: (actual − estimate) / estimate, in percent.
    pub error_percent: Option<f64>,
}

/// An environment's cost page and `GET /api/v1/environments/{id}/cost`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CostReport {
    #[serde(flatten)]
    pub summary: CostSummary,
    /// When the bill was last read; `null`: never (or the cloud has no bill).
    pub read_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The days read, newest first.
    pub days: Vec<CostDay>,
}

fn usd(micros: i64) -> f64 {
    Micros(micros).usd()
}

/// The summary from the figures a query reads: month-to-date spend (`None` when the bill was
/// never read), the hourly estimate and the budget.
pub fn summary(
    month_to_date_micros: Option<i64>,
    cost_hourly_micros: i64,
    budget_monthly_micros: Option<i64>,
) -> CostSummary {
    CostSummary {
        month_to_date_usd: month_to_date_micros.map(usd),
        estimate_month_usd: usd(cost_hourly_micros * crate::environments::pricing::HOURS_PER_MONTH),
        budget_month_usd: budget_monthly_micros.map(usd),
    }
}

/// Month-to-date spend of the environment `e`, as a SQL expression over `e` and the bill's
/// state `r` (`cost_read`), with `$month` the parameter holding the month's first day: `NULL`
/// until the bill has been read, 0 when read and nothing was spent. One row read: the
/// attribution is done once per read of the bill, not per page view.
macro_rules! month_to_date {
    ($month:literal) => {
        concat!(
            "COALESCE((SELECT m.usd_micros FROM environment_month_cost m
                       WHERE m.environment_id = e.id AND m.month = ",
            $month,
            "), CASE WHEN r.read_at IS NOT NULL THEN 0::bigint END)"
        )
    };
}
pub(crate) use month_to_date;

#[derive(sqlx::FromRow)]
struct ReportRow {
    month_to_date: Option<i64>,
    cost_hourly_micros: i64,
    budget_monthly_micros: Option<i64>,
    read_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The days read, newest first, beside each day's spend (`NULL` when there is none).
    days: Option<Vec<NaiveDate>>,
    day_micros: Option<Vec<i64>>,
}

/// The cost of environment `id` on `today`: this month, and each day read. One query: it is
/// part of every view of the environment's page.
pub async fn report(
    db: &PgPool,
    id: EnvironmentId,
    today: NaiveDate,
) -> Result<CostReport, sqlx::Error> {
    let row: ReportRow = sqlx::query_as(concat!(
        "SELECT ",
        month_to_date!("$2"),
        " AS month_to_date, e.cost_hourly_micros, e.budget_monthly_micros, r.read_at,
           d.days, d.day_micros
         FROM environment e LEFT JOIN cost_read r ON true
         LEFT JOIN LATERAL (
             SELECT array_agg(day ORDER BY day DESC) AS days,
                    array_agg(spent ORDER BY day DESC) AS day_micros
             FROM (SELECT day, sum(usd_micros)::bigint AS spent FROM environment_daily_cost
                   WHERE environment_id = e.id GROUP BY day ORDER BY day DESC LIMIT $3) n
         ) d ON true
         WHERE e.id = $1"
    ))
    .bind(id.0)
    .bind(month_start(today))
    .bind(DAYS_READ)
    .fetch_one(db)
    .await?;
    let days = row
        .days
        .unwrap_or_default()
        .into_iter()
        .zip(row.day_micros.unwrap_or_default());
    let estimate = row.cost_hourly_micros * 24;
    Ok(CostReport {
        summary: summary(
            row.month_to_date,
            row.cost_hourly_micros,
            row.budget_monthly_micros,
        ),
        read_at: row.read_at,
        days: days
            .map(|(day, actual)| CostDay {
                day,
                actual_usd: usd(actual),
                estimate_usd: usd(estimate),
                error_percent: (estimate > 0).then(|| {
                    ((actual - estimate) as f64 / estimate as f64 * 1000.0).round() / 10.0
                }),
            })
            .collect(),
    })
}

/// A platform's month so far: its environments' spend beside their estimates (of those that
/// spent anything).
#[derive(Debug, Clone, Serialize)]
pub struct PlatformCost {
    pub month_to_date_usd: Option<f64>,
    pub estimate_month_usd: f64,
}

/// The month so far of platform `platform`: what its environments with spend this month spent,
/// beside what Slipway estimated for those environments.
pub async fn platform(
    db: &PgPool,
    platform: Uuid,
    today: NaiveDate,
) -> Result<PlatformCost, sqlx::Error> {
    let (read, spent, hourly): (bool, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM cost_read), sum(m.usd_micros)::bigint,
                sum(e.cost_hourly_micros)::bigint
         FROM environment_month_cost m JOIN environment e ON e.id = m.environment_id
         WHERE e.platform_id = $1 AND m.month = $2",
    )
    .bind(platform)
    .bind(month_start(today))
    .fetch_one(db)
    .await?;
    Ok(PlatformCost {
        month_to_date_usd: read.then(|| usd(spent.unwrap_or(0))),
        estimate_month_usd: usd(hourly.unwrap_or(0) * crate::environments::pricing::HOURS_PER_MONTH),
    })
}

/// Keeps a read of the bill: each account's days, replacing what an earlier read said of them,
/// and each environment's spend this month attributed from them.
async fn keep(
    db: &PgPool,
    days: &[crate::provision::billing::AccountDay],
    through: NaiveDate,
) -> Result<(), sqlx::Error> {
    let month = month_start(through);
    let mut tx = db.begin().await?;
    let accounts: Vec<&str> = days.iter().map(|d| d.account_id.as_str()).collect();
    let dates: Vec<NaiveDate> = days.iter().map(|d| d.day).collect();
    let amounts: Vec<i64> = days.iter().map(|d| d.usd_micros).collect();
    sqlx::query(
        "INSERT INTO account_cost (account_id, day, usd_micros)
         SELECT * FROM unnest($1::text[], $2::date[], $3::bigint[])
         ON CONFLICT (account_id, day) DO UPDATE SET usd_micros = EXCLUDED.usd_micros",
    )
    .bind(&accounts)
    .bind(&dates)
    .bind(&amounts)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM environment_month_cost WHERE month = $1")
        .bind(month)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO environment_month_cost (environment_id, month, usd_micros)
         SELECT environment_id, $1, sum(usd_micros) FROM environment_daily_cost
         WHERE day >= $1 GROUP BY environment_id",
    )
    .bind(month)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO cost_read (singleton, read_at, through) VALUES (true, now(), $1)
         ON CONFLICT (singleton) DO UPDATE SET read_at = now(), through = EXCLUDED.through",
    )
    .bind(through)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Warns of every environment past 80 % or 100 % of its monthly budget this month, once per
/// threshold and month (the highest it has passed). Returns how many warnings it sent.
async fn warn_of_budgets(
    db: &PgPool,
    today: NaiveDate,
    base_url: &str,
) -> Result<usize, EnvironmentError> {
    let month = month_start(today);
    let over: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT e.id, m.usd_micros, e.budget_monthly_micros
         FROM environment_month_cost m JOIN environment e ON e.id = m.environment_id
         WHERE m.month = $1 AND e.budget_monthly_micros IS NOT NULL
           AND m.usd_micros * 100 >= e.budget_monthly_micros * 80
           AND e.state IN ('provisioning', 'ready', 'failed', 'tearing_down')",
    )
    .bind(month)
    .fetch_all(db)
    .await?;
    let mut sent = 0;
    for (id, spent, budget) in over {
        let Some(threshold) = THRESHOLDS
            .into_iter()
            .find(|t| budget > 0 && spent * 100 >= budget * i64::from(*t))
        else {
            continue;
        };
        let mut tx = db.begin().await?;
        // The lower threshold is recorded with the higher one, so it is never sent after it.
        let new = sqlx::query(
            "INSERT INTO budget_warning (environment_id, month, threshold)
             SELECT $1, $2, t FROM unnest($3::int[]) AS t WHERE t <= $4
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(month)
        .bind(THRESHOLDS.to_vec())
        .bind(threshold)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if new == 0 {
            continue;
        }
        lifecycle::record_maintenance(
            &mut tx,
            EnvironmentId(id),
            None,
            Event::BudgetWarning,
            &format!(
                "{} spent this month: {}% of its monthly budget of {}",
                Micros(spent).display(),
                spent * 100 / budget,
                Micros(budget).display()
            ),
            json!({ "threshold": threshold, "spent_usd": usd(spent), "budget_usd": usd(budget) }),
            base_url,
        )
        .await?;
        tx.commit().await?;
        sent += 1;
    }
    Ok(sent)
}

/// The periodic job: reads the bill, then warns of budgets.
pub struct CostRead {
    pub cloud: Cloud,
    pub clock: Clock,
    /// Where people open Slipway (links in notifications).
    pub base_url: String,
}

impl Handler for CostRead {
    type Payload = NoPayload;

    fn kind(&self) -> &'static str {
        COST_JOB
    }

    fn steps(&self, _: &NoPayload) -> Vec<String> {
        vec!["read-bill".into(), "budgets".into()]
    }

    fn every(&self) -> Option<Duration> {
        Some(EVERY)
    }

    fn run_step<'a>(
        &'a self,
        step: &'a str,
        _: &'a NoPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let db_error = |e: sqlx::Error| StepError::Transient(format!("database: {e}"));
            let today = self.clock.today();
            if step == "read-bill" {
                let from = today - chrono::Duration::days(DAYS_READ - 1);
                let to = today + chrono::Duration::days(1);
                let Some(days) = self.cloud.daily_costs(from, to).await? else {
                    return ctx
                        .log("the simulated cloud has no bill: nothing to read")
                        .await;
                };
                keep(&ctx.db, &days, today).await.map_err(db_error)?;
                ctx.log(&format!(
                    "read {} account-days from Cost Explorer ({from} to {today})",
                    days.len()
                ))
                .await
            } else {
                let sent = warn_of_budgets(&ctx.db, today, &self.base_url)
                    .await
                    .map_err(|e| match e {
                        EnvironmentError::Db(e) => db_error(e),
                        other => StepError::Permanent(other.to_string()),
                    })?;
                ctx.log(&format!("{sent} budget warnings sent")).await
            }
        })
    }
}
