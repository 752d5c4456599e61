//! Drift as the platform team sees it and acts on it. The comparison itself is provisioning's
//! (`provision::drift`: the jobs that read the live state); here are what they found, the
//! periodic sweep that starts them, and the three actions: check now, reconcile (a job that
//! brings the environment back to its plan) and accept (recorded, with a reason, for as long as
//! the live value stays the accepted one).
//!
//! Reconciling needs no new approval: it restores what the environment's approvers approved
//! (its plan), nothing else. Accepting changes nothing in the cloud. Both are the platform
//! team's (`Action::MaintainEnvironment`), audited and on the environment's timeline.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::auth::Principal;
use crate::environments::notify::Event;
use crate::environments::{EnvState, EnvironmentError, EnvironmentId, lifecycle, step_error};
use crate::jobs::queue::{self, JobState, NewJob};
use crate::jobs::{Handler, NoPayload, StepContext, StepError, StepFuture};
use crate::provision::EnvironmentJobPayload;
use crate::provision::drift::{DRIFT_JOB, Drift, DriftOwner, RECONCILE_JOB};
use crate::validation::{FieldErrors, TextKind, check_text};

/// The periodic job starting a drift check of every ready environment.
pub const SWEEP_JOB: &str = "maintain.drift";
/// The longest reason an acceptance keeps.
const MAX_REASON: usize = 500;

/// An environment's drift: what its last check found that nobody accepted, what was accepted,
/// and the last check and reconcile jobs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DriftReport {
    pub checked_at: Option<DateTime<Utc>>,
    /// The differences nobody accepted; `null` until a check has run (not checked is not
    /// "no drift").
    pub items: Option<Vec<Drift>>,
    pub accepted: Vec<Accepted>,
    pub check: Option<JobRun>,
    pub reconcile: Option<JobRun>,
}

/// A difference someone accepted, and why.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Accepted {
    pub path: String,
    pub expected: String,
    pub actual: String,
    pub reason: String,
    /// The e-mail address of who accepted it.
    pub accepted_by: String,
    pub accepted_at: DateTime<Utc>,
}

/// A drift job and where it stands.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobRun {
    pub id: i64,
    #[schema(value_type = String)]
    pub state: JobState,
    /// Its last error, while retrying or once it has given up.
    pub error: Option<String>,
}

impl JobRun {
    pub fn running(&self) -> bool {
        !self.state.is_finished()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    checked_at: Option<DateTime<Utc>>,
    items: Option<sqlx::types::Json<Vec<Drift>>>,
    check_job_id: Option<i64>,
    reconcile_job_id: Option<i64>,
}

/// The items of `environment_drift` nobody accepted, as one SQL expression over `d` (the drift
/// row) and `e` (the environment); `NULL` when not checked. Shared by the report and the
/// Maintain list.
macro_rules! unaccepted_items {
    () => {
        "(CASE WHEN d.items IS NOT NULL THEN
          (SELECT COALESCE(jsonb_agg(i ORDER BY n), '[]'::jsonb)
           FROM jsonb_array_elements(d.items) WITH ORDINALITY AS x (i, n)
           WHERE NOT EXISTS (SELECT 1 FROM drift_acceptance a
                             WHERE a.environment_id = d.environment_id
                               AND a.path = i->>'path' AND a.actual = i->>'actual')) END)"
    };
}
pub(crate) use unaccepted_items;

async fn job_run(db: &PgPool, id: Option<i64>) -> Result<Option<JobRun>, sqlx::Error> {
    let Some(id) = id else { return Ok(None) };
    sqlx::query_as("SELECT id, state, last_error AS error FROM job WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await
}

/// The drift of environment `id`.
pub async fn report(db: &PgPool, id: EnvironmentId) -> Result<DriftReport, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(concat!(
        "SELECT d.checked_at, ",
        unaccepted_items!(),
        " AS items, d.check_job_id, d.reconcile_job_id
         FROM environment_drift d WHERE d.environment_id = $1"
    ))
    .bind(id.0)
    .fetch_optional(db)
    .await?;
    let accepted = sqlx::query_as(
        "SELECT a.path, a.expected, a.actual, a.reason, u.email AS accepted_by, a.accepted_at
         FROM drift_acceptance a JOIN app_user u ON u.id = a.accepted_by
         WHERE a.environment_id = $1 ORDER BY a.accepted_at, a.id",
    )
    .bind(id.0)
    .fetch_all(db)
    .await?;
    let Some(row) = row else {
        return Ok(DriftReport {
            checked_at: None,
            items: None,
            accepted,
            check: None,
            reconcile: None,
        });
    };
    Ok(DriftReport {
        checked_at: row.checked_at,
        items: row.checked_at.and(row.items.map(|i| i.0)),
        accepted,
        check: job_run(db, row.check_job_id).await?,
        reconcile: job_run(db, row.reconcile_job_id).await?,
    })
}

/// The two drift jobs people start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    Check,
    Reconcile,
}

impl Requested {
    fn kind(self) -> &'static str {
        match self {
            Requested::Check => DRIFT_JOB,
            Requested::Reconcile => RECONCILE_JOB,
        }
    }
}

/// Locks the ready environment `id` in `tx`, queues the job and remembers it as the
/// environment's last of its kind; one running already is a conflict. Returns its id.
async fn start(
    tx: &mut PgConnection,
    id: EnvironmentId,
    requested: Requested,
) -> Result<i64, EnvironmentError> {
    let (what, running, remember) = match requested {
        Requested::Check => (
            "drift is checked",
            "A drift check of this environment is running already.",
            "INSERT INTO environment_drift (environment_id, check_job_id) VALUES ($1, $2)
             ON CONFLICT (environment_id) DO UPDATE SET check_job_id = EXCLUDED.check_job_id",
        ),
        Requested::Reconcile => (
            "drift is reconciled",
            "This environment is being reconciled already.",
            "INSERT INTO environment_drift (environment_id, reconcile_job_id) VALUES ($1, $2)
             ON CONFLICT (environment_id)
             DO UPDATE SET reconcile_job_id = EXCLUDED.reconcile_job_id",
        ),
    };
    lifecycle::lock_ready(tx, id, what).await?;
    let kind = requested.kind();
    let mut job = NewJob::new(
        kind,
        EnvironmentJobPayload {
            environment_id: id.0,
        }
        .to_json(),
    );
    job.unique_key = Some(lifecycle::job_key(id.0, kind));
    let job = match queue::enqueue(&mut *tx, &job).await {
        Ok(job) => job,
        Err(queue::EnqueueError::Duplicate(_)) => {
            return Err(EnvironmentError::Conflict(running.into()));
        }
        Err(e) => return Err(e.into()),
    };
    sqlx::query(remember)
        .bind(id.0)
        .bind(job)
        .execute(&mut *tx)
        .await?;
    Ok(job)
}

/// "Check now": a drift job for the ready environment `id`; its id.
pub async fn check_now(db: &PgPool, id: EnvironmentId) -> Result<i64, EnvironmentError> {
    let mut tx = db.begin().await?;
    let job = start(&mut tx, id, Requested::Check).await?;
    tx.commit().await?;
    Ok(job)
}

/// Starts bringing the ready environment `id` back to its plan: node group sizes and every
/// Kubernetes object, then a new check. Accepted differences are reverted too, so their
/// acceptances end. Returns the job's id.
pub async fn reconcile(
    db: &PgPool,
    id: EnvironmentId,
    by: &Principal,
    base_url: &str,
) -> Result<i64, EnvironmentError> {
    let mut tx = db.begin().await?;
    let job = start(&mut tx, id, Requested::Reconcile).await?;
    let ended = sqlx::query("DELETE FROM drift_acceptance WHERE environment_id = $1")
        .bind(id.0)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    lifecycle::record_maintenance(
        &mut tx,
        id,
        Some(by),
        Event::Reconciling,
        "reconciling: the node group and every Kubernetes object are set back to the plan",
        json!({ "job_id": job, "acceptances_ended": ended }),
        base_url,
    )
    .await?;
    tx.commit().await?;
    Ok(job)
}

/// The reason of an acceptance, checked: one to 500 characters, no control characters but
/// line breaks.
fn checked_reason(reason: &str) -> Result<&str, FieldErrors> {
    let reason = reason.trim();
    let mut errors = FieldErrors::default();
    if reason.is_empty() {
        errors.add(
            "reason",
            "Say why this drift is accepted, so whoever reads it later knows.",
        );
    } else if reason.chars().count() > MAX_REASON {
        errors.add("reason", "Keep it under 500 characters.");
    } else if let Err(message) = check_text(reason, TextKind::MultiLine) {
        errors.add("reason", message);
    }
    errors.into_result().map(|()| reason)
}

/// Accepts every difference the last check found that nobody accepted yet, with `reason`;
/// returns how many.
pub async fn accept(
    db: &PgPool,
    id: EnvironmentId,
    by: &Principal,
    reason: &str,
    base_url: &str,
) -> Result<u64, EnvironmentError> {
    let reason = checked_reason(reason)?;
    let mut tx = db.begin().await?;
    lifecycle::lock_ready(&mut tx, id, "drift is accepted").await?;
    let accepted = sqlx::query(concat!(
        "INSERT INTO drift_acceptance (environment_id, path, expected, actual, reason, accepted_by)
         SELECT d.environment_id, i->>'path', i->>'expected', i->>'actual', $2, $3
         FROM environment_drift d, jsonb_array_elements(",
        unaccepted_items!(),
        ") AS i WHERE d.environment_id = $1
         ON CONFLICT (environment_id, path, actual) DO NOTHING"
    ))
    .bind(id.0)
    .bind(reason)
    .bind(by.user.id.0)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if accepted == 0 {
        return Err(EnvironmentError::Conflict(
            "There is no drift to accept: the last check found none that is not accepted \
             already."
                .into(),
        ));
    }
    lifecycle::record_maintenance(
        &mut tx,
        id,
        Some(by),
        Event::DriftAccepted,
        &format!("{accepted} differences from the plan accepted: {reason}"),
        json!({ "accepted": accepted, "reason": reason }),
        base_url,
    )
    .await?;
    tx.commit().await?;
    Ok(accepted)
}

/// Keeps what a drift job found. New differences nobody accepted (not the same as the last
/// check's) are told to the platform team and the webhook; the same drift again is not
/// repeated every hour.
async fn record(
    db: &PgPool,
    id: EnvironmentId,
    job: i64,
    found: Vec<Drift>,
    base_url: &str,
) -> Result<(), EnvironmentError> {
    let mut tx = db.begin().await?;
    let before: Option<sqlx::types::Json<Vec<Drift>>> = sqlx::query_scalar(concat!(
        "SELECT ",
        unaccepted_items!(),
        " FROM environment_drift d WHERE d.environment_id = $1 FOR UPDATE"
    ))
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?
    .flatten();
    sqlx::query(
        "INSERT INTO environment_drift (environment_id, checked_at, items, check_job_id)
         VALUES ($1, now(), $2, $3)
         ON CONFLICT (environment_id) DO UPDATE
         SET checked_at = now(), items = EXCLUDED.items, check_job_id = EXCLUDED.check_job_id",
    )
    .bind(id.0)
    .bind(sqlx::types::Json(&found))
    .bind(job)
    .execute(&mut *tx)
    .await?;
    let after: Vec<Drift> = sqlx::query_scalar::<_, sqlx::types::Json<Vec<Drift>>>(concat!(
        "SELECT ",
        unaccepted_items!(),
        " FROM environment_drift d WHERE d.environment_id = $1"
    ))
    .bind(id.0)
    .fetch_one(&mut *tx)
    .await?
    .0;
    if !after.is_empty() && before.map(|b| b.0) != Some(after.clone()) {
        let fields: Vec<&str> = after.iter().take(3).map(|d| d.path.as_str()).collect();
        let more = after.len().saturating_sub(fields.len());
        let message = format!(
            "{} differences from the plan: {}{}",
            after.len(),
            fields.join("; "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
        lifecycle::record_maintenance(
            &mut tx,
            id,
            None,
            Event::Drifted,
            &message,
            json!({ "job_id": job, "differences": after.len() }),
            base_url,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The drift jobs' way back: [`DriftOwner`] over the database.
pub struct Recorder {
    pub db: PgPool,
    /// Where people open Slipway (links in notifications).
    pub base_url: String,
}

impl DriftOwner for Recorder {
    fn maintainable(&self, id: Uuid) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            let state: Option<EnvState> =
                sqlx::query_scalar("SELECT state::text FROM environment WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.db)
                    .await
                    .map_err(step_error)?;
            match state {
                Some(EnvState::Ready) => Ok(()),
                Some(other) => Err(StepError::Permanent(format!(
                    "the environment is {}: drift is checked and reconciled on ready \
                     environments only",
                    other.label().to_lowercase()
                ))),
                None => Err(StepError::Permanent(
                    "the environment no longer exists".into(),
                )),
            }
        })
    }

    fn record_drift(
        &self,
        id: Uuid,
        job: i64,
        found: Vec<Drift>,
    ) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            record(&self.db, EnvironmentId(id), job, found, &self.base_url)
                .await
                .map_err(step_error)
        })
    }
}

/// The periodic sweep: a drift job for every ready environment without one running.
pub struct Sweep {
    pub every: Duration,
}

impl Handler for Sweep {
    type Payload = NoPayload;

    fn kind(&self) -> &'static str {
        SWEEP_JOB
    }

    fn steps(&self, _: &NoPayload) -> Vec<String> {
        vec!["enqueue-checks".into()]
    }

    fn every(&self) -> Option<Duration> {
        Some(self.every)
    }

    fn run_step<'a>(
        &'a self,
        _: &'a str,
        _: &'a NoPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let ready: Vec<Uuid> =
                sqlx::query_scalar("SELECT id FROM environment WHERE state = 'ready' ORDER BY id")
                    .fetch_all(&ctx.db)
                    .await
                    .map_err(step_error)?;
            let mut started = 0;
            for id in &ready {
                match check_now(&ctx.db, EnvironmentId(*id)).await {
                    Ok(_) => started += 1,
                    // One running already, or no longer ready: nothing to start.
                    Err(EnvironmentError::Conflict(_)) => {}
                    Err(e) => return Err(step_error(e)),
                }
            }
            ctx.log(&format!(
                "{started} drift checks started ({} ready environments)",
                ready.len()
            ))
            .await
        })
    }
}

/// The Maintain module's job kinds and the drift jobs' owner.
pub fn job_kinds(registry: crate::jobs::Registry, every: Duration) -> crate::jobs::Registry {
    registry.with(Sweep { every })
}

/// The owner the provisioning module's drift jobs report to.
pub fn owner(db: &PgPool, base_url: &str) -> Arc<dyn DriftOwner> {
    Arc::new(Recorder {
        db: db.clone(),
        base_url: base_url.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_required_short_and_free_of_control_characters() {
        assert_eq!(
            checked_reason("  HPA scales it  ").unwrap(),
            "HPA scales it"
        );
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(501)] {
            let errors = checked_reason(bad).unwrap_err();
            assert!(errors.get("reason").is_some(), "{bad:?}");
        }
        assert!(checked_reason("line one\nline two").is_ok());
    }
}
