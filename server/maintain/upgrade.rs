//! Kubernetes upgrades as the platform team asks for them and decides them. An upgrade moves
//! a ready environment's cluster one minor version up (EKS allows no more), under the
//! environment's approval policy: the approvals its type required when it was requested,
//! from holders of its approver roles, never the upgrade's requester. The last approval (or
//! the request itself, when the type needs none) queues the `environment.upgrade` job
//! (`provision::upgrade`), whose steps are previewed here before anyone asks.
//!
//! One upgrade of an environment is open at a time (awaiting a decision or running); the
//! database refuses a second, and its trigger allows only `awaiting_approval → running |
//! rejected | cancelled` (withdrawn by whoever asked), `running → succeeded | failed` and `failed → running` (a retry).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::currency::{Calendar, Support};
use crate::auth::Principal;
use crate::environments::lifecycle::{self, Decision};
use crate::environments::notify::Event;
use crate::environments::{EnvState, EnvironmentError, EnvironmentId, step_error};
use crate::jobs::StepError;
use crate::jobs::queue::{self, NewJob};
use crate::provision::upgrade::{UPGRADE_JOB, UpgradeJobPayload, UpgradeOwner, UpgradeStep};
use crate::provision::versions::minor_of;
use crate::validation::FieldErrors;

/// Where an upgrade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeState {
    AwaitingApproval,
    Running,
    Succeeded,
    Failed,
    Rejected,
    /// Withdrawn by whoever asked for it before a decision.
    Cancelled,
}

crate::text_column!(UpgradeState, "upgrade state");

impl UpgradeState {
    const ALL: [UpgradeState; 6] = [
        UpgradeState::AwaitingApproval,
        UpgradeState::Running,
        UpgradeState::Succeeded,
        UpgradeState::Failed,
        UpgradeState::Rejected,
        UpgradeState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeState::AwaitingApproval => "awaiting_approval",
            UpgradeState::Running => "running",
            UpgradeState::Succeeded => "succeeded",
            UpgradeState::Failed => "failed",
            UpgradeState::Rejected => "rejected",
            UpgradeState::Cancelled => "cancelled",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            UpgradeState::AwaitingApproval => "awaiting approval",
            UpgradeState::Running => "running",
            UpgradeState::Succeeded => "succeeded",
            UpgradeState::Failed => "failed",
            UpgradeState::Rejected => "rejected",
            UpgradeState::Cancelled => "withdrawn",
        }
    }

    pub fn parse(text: &str) -> Option<UpgradeState> {
        UpgradeState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for UpgradeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One upgrade of an environment's cluster.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Upgrade {
    pub id: Uuid,
    pub environment_id: Uuid,
    pub from_version: String,
    pub to_version: String,
    #[schema(value_type = String)]
    pub state: UpgradeState,
    /// The e-mail address of who asked for it.
    pub requested_by: String,
    #[serde(skip)]
    pub requester_id: Uuid,
    pub approvals_required: i32,
    pub approval_count: i32,
    /// Its job, once approved (`GET /api/v1/jobs/{id}` has its steps and logs).
    pub job_id: Option<i64>,
    /// Why it failed, or why it was rejected.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A step of the upgrade job, as the preview shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlannedStep {
    pub step: String,
    pub description: String,
}

/// What upgrading the environment would do (`GET /api/v1/environments/{id}/upgrade`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Preview {
    pub environment_id: Uuid,
    pub current_version: String,
    #[schema(value_type = String)]
    pub current_support: Support,
    /// The one version EKS upgrades it to; none past the newest the calendar knows.
    pub next_version: Option<String>,
    #[schema(value_type = Option<String>)]
    pub next_support: Option<Support>,
    pub next_standard_support_ends: Option<NaiveDate>,
    /// The upgrade job's steps, in order.
    pub steps: Vec<PlannedStep>,
    /// The environment's approval policy, which upgrades follow.
    pub approvals_required: i32,
    pub approver_roles: Vec<String>,
    /// The upgrade awaiting a decision or running, if any.
    pub open: Option<Upgrade>,
    /// The last upgrades, newest first.
    pub history: Vec<Upgrade>,
}

/// `SELECT … FROM` an upgrade `u` with its requester, then the rest of the query.
macro_rules! select_upgrades {
    ($rest:literal) => {
        concat!(
            "SELECT u.id, u.environment_id, u.from_version, u.to_version, u.state,
                    r.email AS requested_by, u.requested_by AS requester_id,
                    u.approvals_required, u.approval_count, u.job_id, u.error, u.created_at,
                    u.finished_at
             FROM environment_upgrade u JOIN app_user r ON r.id = u.requested_by ",
            $rest
        )
    };
}

async fn upgrades(db: &PgPool, id: EnvironmentId) -> Result<Vec<Upgrade>, sqlx::Error> {
    sqlx::query_as(select_upgrades!(
        "WHERE u.environment_id = $1 ORDER BY u.created_at DESC, u.id LIMIT 20"
    ))
    .bind(id.0)
    .fetch_all(db)
    .await
}

/// The open upgrade of `id`, locked in `tx`.
async fn lock_open(tx: &mut PgConnection, id: EnvironmentId) -> Result<Upgrade, EnvironmentError> {
    sqlx::query_as(select_upgrades!(
        "WHERE u.environment_id = $1 AND u.state IN ('awaiting_approval', 'running', 'failed')
         ORDER BY u.created_at DESC LIMIT 1 FOR UPDATE OF u"
    ))
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| EnvironmentError::Conflict("No upgrade of this environment is open.".into()))
}

#[derive(sqlx::FromRow)]
struct Policy {
    kubernetes_version: Option<String>,
    approvals_required: i32,
    approver_roles: Vec<String>,
}

async fn policy(
    db: impl sqlx::PgExecutor<'_>,
    id: EnvironmentId,
) -> Result<Policy, EnvironmentError> {
    sqlx::query_as(concat!(
        "SELECT ",
        super::planned_kubernetes_version!(),
        " AS kubernetes_version, e.approvals_required, e.approver_roles
         FROM environment e WHERE e.id = $1"
    ))
    .bind(id.0)
    .fetch_optional(db)
    .await?
    .ok_or(EnvironmentError::NotFound)
}

fn next_minor(version: &str) -> Option<String> {
    minor_of(version).map(|m| format!("1.{}", m + 1))
}

/// What upgrading environment `id` would do on `today`.
pub async fn preview(
    db: &PgPool,
    calendar: &Calendar,
    id: EnvironmentId,
    today: NaiveDate,
) -> Result<Preview, EnvironmentError> {
    let policy = policy(db, id).await?;
    let current = policy.kubernetes_version.unwrap_or_default();
    let next = next_minor(&current).filter(|v| calendar.support_ends(v).is_some());
    let next_status = next.as_deref().map(|v| calendar.status(v, today));
    let history = upgrades(db, id).await?;
    let open = history
        .iter()
        .find(|u| {
            matches!(
                u.state,
                UpgradeState::AwaitingApproval | UpgradeState::Running
            )
        })
        .cloned();
    Ok(Preview {
        environment_id: id.0,
        current_support: calendar.status(&current, today).support,
        steps: next.as_deref().map_or_else(Vec::new, |to| {
            UpgradeStep::ALL
                .iter()
                .map(|s| PlannedStep {
                    step: s.as_str().to_owned(),
                    description: s.describe(&current, to),
                })
                .collect()
        }),
        current_version: current,
        next_support: next_status.as_ref().map(|s| s.support),
        next_standard_support_ends: next_status.and_then(|s| s.standard_ends),
        next_version: next,
        approvals_required: policy.approvals_required,
        approver_roles: policy.approver_roles,
        open,
        history,
    })
}

/// Queues the upgrade job of `upgrade` in `tx`; its id.
async fn enqueue(tx: &mut PgConnection, upgrade: &Upgrade) -> Result<i64, EnvironmentError> {
    let mut job = NewJob::new(
        UPGRADE_JOB,
        UpgradeJobPayload {
            environment_id: upgrade.environment_id,
            upgrade_id: upgrade.id,
            from_version: upgrade.from_version.clone(),
            to_version: upgrade.to_version.clone(),
        }
        .to_json(),
    );
    job.unique_key = Some(lifecycle::job_key(upgrade.environment_id, UPGRADE_JOB));
    match queue::enqueue(&mut *tx, &job).await {
        Ok(id) => Ok(id),
        Err(queue::EnqueueError::Duplicate(_)) => Err(EnvironmentError::Conflict(
            "An upgrade job of this environment is running already.".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Starts `upgrade` (approved, or retried): its job queued and the upgrade running.
async fn start(tx: &mut PgConnection, upgrade: &Upgrade) -> Result<i64, EnvironmentError> {
    let job = enqueue(tx, upgrade).await?;
    sqlx::query(
        "UPDATE environment_upgrade SET state = 'running', job_id = $2, error = NULL,
             finished_at = NULL
         WHERE id = $1",
    )
    .bind(upgrade.id)
    .bind(job)
    .execute(&mut *tx)
    .await?;
    Ok(job)
}

async fn load(tx: &mut PgConnection, upgrade: Uuid) -> Result<Upgrade, EnvironmentError> {
    Ok(sqlx::query_as(select_upgrades!("WHERE u.id = $1"))
        .bind(upgrade)
        .fetch_one(&mut *tx)
        .await?)
}

/// Asks for upgrading the ready environment `id` to `to_version`, the minor after its
/// current one. Started at once when the environment's type needs no approval.
pub async fn request(
    db: &PgPool,
    calendar: &Calendar,
    id: EnvironmentId,
    by: &Principal,
    to_version: &str,
    base_url: &str,
) -> Result<Upgrade, EnvironmentError> {
    let to = to_version.trim();
    let mut tx = db.begin().await?;
    lifecycle::lock_ready(&mut tx, id, "an upgrade is asked for").await?;
    // A roll-out's job writes the plan the upgrade records its version in.
    if let Some(doing) = lifecycle::maintenance_running(&mut tx, id, &[UPGRADE_JOB]).await? {
        return Err(EnvironmentError::Conflict(format!(
            "The environment is being {doing}: ask for the upgrade once that job has ended."
        )));
    }
    let policy = policy(&mut *tx, id).await?;
    let current = policy.kubernetes_version.unwrap_or_default();
    let mut errors = FieldErrors::default();
    let next = next_minor(&current);
    if minor_of(to).is_none() || to.len() > 6 {
        errors.add(
            "kubernetes_version",
            "Give a Kubernetes minor version such as 1.35.",
        );
    } else if next.as_deref() != Some(to) {
        errors.add(
            "kubernetes_version",
            match &next {
                Some(next) => format!(
                    "EKS upgrades one minor version at a time: this cluster runs {current}, so the next is {next}."
                ),
                None => format!("The cluster's version {current:?} is unreadable."),
            },
        );
    } else if calendar.support_ends(to).is_none() {
        errors.add(
            "kubernetes_version",
            format!(
                "Kubernetes {to} is not in the version calendar: EKS does not offer it yet, or the calendar needs an update (Admin → Kubernetes versions)."
            ),
        );
    }
    errors.into_result()?;
    let upgrade_id = Uuid::new_v4();
    let inserted = sqlx::query(
        "INSERT INTO environment_upgrade
             (id, environment_id, from_version, to_version, requested_by, approvals_required, state)
         VALUES ($1, $2, $3, $4, $5, $6, 'awaiting_approval')
         ON CONFLICT (environment_id) WHERE state IN ('awaiting_approval', 'running') DO NOTHING",
    )
    .bind(upgrade_id)
    .bind(id.0)
    .bind(&current)
    .bind(to)
    .bind(by.user.id.0)
    .bind(policy.approvals_required)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(EnvironmentError::Conflict(
            "An upgrade of this environment is awaiting a decision or running already.".into(),
        ));
    }
    let mut upgrade = load(&mut tx, upgrade_id).await?;
    let (event, message) = if policy.approvals_required == 0 {
        let job = start(&mut tx, &upgrade).await?;
        upgrade.job_id = Some(job);
        upgrade.state = UpgradeState::Running;
        (
            Event::Upgrading,
            format!("upgrading Kubernetes {current} → {to} (the type needs no approval)"),
        )
    } else {
        (
            Event::UpgradeRequested,
            format!(
                "upgrade of Kubernetes {current} → {to} asked for; it needs {} approvals",
                policy.approvals_required
            ),
        )
    };
    lifecycle::record_maintenance(
        &mut tx,
        id,
        Some(by),
        event,
        &message,
        json!({ "upgrade_id": upgrade.id, "from": current, "to": to, "job_id": upgrade.job_id }),
        base_url,
    )
    .await?;
    tx.commit().await?;
    Ok(upgrade)
}

/// `by` approves or rejects the upgrade of `id` awaiting a decision; `comment` is required to
/// reject (the field `reason`). The approval reaching the policy's count starts it.
pub async fn decide(
    db: &PgPool,
    id: EnvironmentId,
    by: &Principal,
    decision: Decision,
    comment: &str,
    base_url: &str,
) -> Result<Upgrade, EnvironmentError> {
    let comment = lifecycle::checked_comment(decision, comment)?;
    let mut tx = db.begin().await?;
    let policy = policy(&mut *tx, id).await?;
    let mut upgrade = lock_open(&mut tx, id).await?;
    if upgrade.state != UpgradeState::AwaitingApproval {
        return Err(EnvironmentError::Conflict(format!(
            "The upgrade is {}: nothing awaits a decision.",
            upgrade.state.label()
        )));
    }
    if upgrade.requester_id == by.user.id.0 {
        return Err(EnvironmentError::NotAllowed(
            "You asked for this upgrade: someone else must decide it.".into(),
        ));
    }
    if !lifecycle::holds_any(by, &policy.approver_roles) {
        return Err(EnvironmentError::NotAllowed(format!(
            "Only these roles decide this environment's upgrades: {}.",
            policy.approver_roles.join(", ")
        )));
    }
    let inserted = sqlx::query(
        "INSERT INTO environment_upgrade_approval (upgrade_id, requester_id, approver_id, verdict, comment)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (upgrade_id, approver_id) DO NOTHING",
    )
    .bind(upgrade.id)
    .bind(upgrade.requester_id)
    .bind(by.user.id.0)
    .bind(match decision {
        Decision::Approve => "approve",
        Decision::Reject => "reject",
    })
    .bind(comment)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(EnvironmentError::Conflict(format!(
            "You have decided this upgrade already; it needs {} approvals from different people.",
            upgrade.approvals_required
        )));
    }
    let versions = format!("{} → {}", upgrade.from_version, upgrade.to_version);
    let (event, message) = match decision {
        Decision::Reject => {
            sqlx::query(
                "UPDATE environment_upgrade SET state = 'rejected', error = $2, finished_at = now()
                 WHERE id = $1",
            )
            .bind(upgrade.id)
            .bind(comment)
            .execute(&mut *tx)
            .await?;
            upgrade.state = UpgradeState::Rejected;
            upgrade.error = Some(comment.to_owned());
            (
                Event::UpgradeRejected,
                format!("upgrade of Kubernetes {versions} rejected: {comment}"),
            )
        }
        Decision::Approve => {
            upgrade.approval_count += 1;
            sqlx::query("UPDATE environment_upgrade SET approval_count = $2 WHERE id = $1")
                .bind(upgrade.id)
                .bind(upgrade.approval_count)
                .execute(&mut *tx)
                .await?;
            if upgrade.approval_count < upgrade.approvals_required {
                (
                    Event::UpgradeApprovalCounted,
                    format!(
                        "upgrade of Kubernetes {versions}: {} of {} approvals",
                        upgrade.approval_count, upgrade.approvals_required
                    ),
                )
            } else {
                upgrade.job_id = Some(start(&mut tx, &upgrade).await?);
                upgrade.state = UpgradeState::Running;
                (
                    Event::Upgrading,
                    format!("upgrading Kubernetes {versions}, approved"),
                )
            }
        }
    };
    lifecycle::record_maintenance(
        &mut tx,
        id,
        Some(by),
        event,
        &message,
        json!({ "upgrade_id": upgrade.id, "comment": comment, "job_id": upgrade.job_id }),
        base_url,
    )
    .await?;
    tx.commit().await?;
    Ok(upgrade)
}

/// Withdraws the upgrade of `id` awaiting a decision: only whoever asked for it (the approvers
/// reject instead).
pub async fn withdraw(
    db: &PgPool,
    id: EnvironmentId,
    by: &Principal,
    base_url: &str,
) -> Result<Upgrade, EnvironmentError> {
    let mut tx = db.begin().await?;
    let mut upgrade = lock_open(&mut tx, id).await?;
    if upgrade.state != UpgradeState::AwaitingApproval {
        return Err(EnvironmentError::Conflict(format!(
            "The upgrade is {}: only one awaiting a decision is withdrawn.",
            upgrade.state.label()
        )));
    }
    if upgrade.requester_id != by.user.id.0 {
        return Err(EnvironmentError::NotAllowed(
            "Only whoever asked for an upgrade withdraws it; reject it instead, with a reason."
                .into(),
        ));
    }
    sqlx::query(
        "UPDATE environment_upgrade SET state = 'cancelled', finished_at = now() WHERE id = $1",
    )
    .bind(upgrade.id)
    .execute(&mut *tx)
    .await?;
    upgrade.state = UpgradeState::Cancelled;
    lifecycle::record_maintenance(
        &mut tx,
        id,
        Some(by),
        Event::UpgradeWithdrawn,
        &format!(
            "upgrade of Kubernetes {} → {} withdrawn",
            upgrade.from_version, upgrade.to_version
        ),
        json!({ "upgrade_id": upgrade.id }),
        base_url,
    )
    .await?;
    tx.commit().await?;
    Ok(upgrade)
}

/// Runs the failed upgrade of `id` again: its job resumes where it stopped, each step finding
/// what was done already.
pub async fn retry(
    db: &PgPool,
    id: EnvironmentId,
    by: &Principal,
    base_url: &str,
) -> Result<Upgrade, EnvironmentError> {
    let mut tx = db.begin().await?;
    lifecycle::lock_ready(&mut tx, id, "an upgrade is retried").await?;
    let mut upgrade = lock_open(&mut tx, id).await?;
    if upgrade.state != UpgradeState::Failed {
        return Err(EnvironmentError::Conflict(format!(
            "The upgrade is {}: only a failed upgrade is retried.",
            upgrade.state.label()
        )));
    }
    upgrade.job_id = Some(start(&mut tx, &upgrade).await?);
    upgrade.state = UpgradeState::Running;
    upgrade.error = None;
    lifecycle::record_maintenance(
        &mut tx,
        id,
        Some(by),
        Event::Upgrading,
        &format!(
            "upgrade of Kubernetes {} → {} retried",
            upgrade.from_version, upgrade.to_version
        ),
        json!({ "upgrade_id": upgrade.id, "job_id": upgrade.job_id }),
        base_url,
    )
    .await?;
    tx.commit().await?;
    Ok(upgrade)
}

/// The upgrade job's way back: [`UpgradeOwner`] over the database.
pub struct Recorder {
    pub db: PgPool,
    pub base_url: String,
}

impl Recorder {
    /// Ends the running upgrade `upgrade` as `state` (with `error`), on the environment's
    /// timeline; a no-op when it has ended already (a re-run of the last step).
    async fn finish(
        &self,
        upgrade: Uuid,
        state: UpgradeState,
        error: Option<String>,
    ) -> Result<(), EnvironmentError> {
        let mut tx = self.db.begin().await?;
        let ended: Option<(Uuid, String, String)> = sqlx::query_as(
            "UPDATE environment_upgrade SET state = $2, error = $3, finished_at = now()
             WHERE id = $1 AND state = 'running'
             RETURNING environment_id, from_version, to_version",
        )
        .bind(upgrade)
        .bind(state)
        .bind(&error)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((environment, from, to)) = ended else {
            return Ok(());
        };
        let (event, message) = match &error {
            None => (Event::Upgraded, format!("Kubernetes {from} → {to} done")),
            Some(e) => (
                Event::UpgradeFailed,
                format!("upgrade of Kubernetes {from} → {to} failed: {e}"),
            ),
        };
        lifecycle::record_maintenance(
            &mut tx,
            EnvironmentId(environment),
            None,
            event,
            &message,
            json!({ "upgrade_id": upgrade, "error": error }),
            &self.base_url,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl UpgradeOwner for Recorder {
    fn running(&self, upgrade: Uuid) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            let found: Option<(UpgradeState, EnvState)> = sqlx::query_as(
                "SELECT u.state, e.state::text FROM environment_upgrade u
                 JOIN environment e ON e.id = u.environment_id WHERE u.id = $1",
            )
            .bind(upgrade)
            .fetch_optional(&self.db)
            .await
            .map_err(step_error)?;
            match found {
                Some((UpgradeState::Running, EnvState::Ready)) => Ok(()),
                Some((UpgradeState::Running, env)) => Err(StepError::Permanent(format!(
                    "the environment is {}: clusters are upgraded on ready environments only",
                    env.label().to_lowercase()
                ))),
                Some((state, _)) => Err(StepError::Permanent(format!(
                    "the upgrade is {}, not running: a failed upgrade is retried from its \
                     upgrade page (or POST /api/v1/environments/{{id}}/upgrade/retry), which \
                     records it",
                    state.label()
                ))),
                None => Err(StepError::Permanent("the upgrade no longer exists".into())),
            }
        })
    }

    fn control_plane_upgraded(
        &self,
        environment: Uuid,
        version: String,
    ) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE environment SET plan = (
                     SELECT jsonb_agg(CASE WHEN s->>'action' = 'eks:CreateCluster'
                                           THEN jsonb_set(s, '{details,version}', to_jsonb($2::text))
                                           ELSE s END ORDER BY n)
                     FROM jsonb_array_elements(plan) WITH ORDINALITY AS x (s, n))
                 WHERE id = $1",
            )
            .bind(environment)
            .bind(&version)
            .execute(&self.db)
            .await
            .map_err(step_error)?;
            Ok(())
        })
    }

    fn succeeded(&self, upgrade: Uuid) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            self.finish(upgrade, UpgradeState::Succeeded, None)
                .await
                .map_err(step_error)
        })
    }

    fn failed(&self, upgrade: Uuid, error: String) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            self.finish(upgrade, UpgradeState::Failed, Some(error))
                .await
                .map_err(step_error)
        })
    }
}

/// The owner the provisioning module's upgrade jobs report to.
pub fn owner(db: &PgPool, base_url: &str) -> Arc<dyn UpgradeOwner> {
    Arc::new(Recorder {
        db: db.clone(),
        base_url: base_url.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_version_is_one_minor_up() {
        assert_eq!(next_minor("1.34").as_deref(), Some("1.35"));
        assert_eq!(next_minor("1.9").as_deref(), Some("1.10"));
        assert_eq!(next_minor("2.0"), None);
        assert_eq!(next_minor(""), None);
    }
}
