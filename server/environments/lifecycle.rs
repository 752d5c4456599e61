//! Every change of an environment's state, as one transaction each: the guarded change, its
//! timeline entry, its audit event and its notifications commit together or not at all. Deciders
//! take the row lock (`FOR UPDATE`) first, so concurrent approvals are serialised and each sees
//! the outcome of the one before; the trigger of the migration refuses any transition DESIGN §3
//! does not list.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::notify::{self, Event, Target};
use super::pricing::Micros;
use super::request::CheckedRequest;
use super::{EnvState, EnvironmentError, EnvironmentId};
use crate::audit::{self, Actor};
use crate::auth::{Principal, Role, RoleSet};
use crate::define::blueprint::{Lifecycle, MAX_TTL_HOURS};
use crate::define::platforms::Platform;
use crate::jobs::queue::{self, JobState, NewJob};
use crate::provision::drift::RECONCILE_JOB;
use crate::provision::rollout::ROLLOUT_JOB;
use crate::provision::upgrade::UPGRADE_JOB;
use crate::provision::{EnvironmentJobPayload, PROVISION_JOB, TEARDOWN_JOB};
use crate::validation::FieldErrors;

/// The row as the deciders see it, locked.
#[derive(Debug, sqlx::FromRow)]
struct Locked {
    id: Uuid,
    platform_id: Uuid,
    platform_slug: String,
    name: String,
    environment_type: String,
    requested_by: Uuid,
    approver_roles: Vec<String>,
    state: EnvState,
    lifecycle: Lifecycle,
    ttl_hours: Option<i32>,
    max_ttl_hours: Option<i32>,
    approvals_required: i32,
    approval_count: i32,
    sla_hours: i32,
    round: i32,
    extension_hours: Option<i32>,
    job_id: Option<i64>,
}

impl Locked {
    fn state(&self) -> EnvState {
        self.state
    }

    fn target(&self) -> Target {
        Target {
            id: self.id,
            platform_id: self.platform_id,
            platform_slug: self.platform_slug.clone(),
            name: self.name.clone(),
            environment_type: self.environment_type.clone(),
            requested_by: self.requested_by,
            approver_roles: self.approver_roles.clone(),
        }
    }

    fn approver_roles(&self) -> RoleSet {
        RoleSet::from_strings(&self.approver_roles)
    }

    fn subject(&self) -> String {
        format!("environment:{}", self.id)
    }
}

async fn lock(tx: &mut PgConnection, id: EnvironmentId) -> Result<Locked, EnvironmentError> {
    sqlx::query_as(
        "SELECT e.id, e.platform_id, p.slug AS platform_slug, e.name, e.environment_type,
                e.requested_by, e.approver_roles, e.state, e.lifecycle, e.ttl_hours,
                e.max_ttl_hours, e.approvals_required, e.approval_count, e.sla_hours, e.round,
                e.extension_hours, e.job_id
         FROM environment e JOIN platform p ON p.id = e.platform_id
         WHERE e.id = $1 FOR UPDATE OF e",
    )
    .bind(id.0)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(EnvironmentError::NotFound)
}

/// Appends to the request's timeline.
async fn timeline(
    tx: &mut PgConnection,
    id: Uuid,
    actor: &Actor,
    kind: &str,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO environment_event (environment_id, actor_id, actor_label, kind, message)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(actor.id.map(|a| a.0))
    .bind(&actor.label)
    .bind(kind)
    .bind(message)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The timeline entry, the audit event and the notification of one change. `details` are the
/// audit event's, free-form by contract (see `audit::record`).
async fn record(
    tx: &mut PgConnection,
    env: &Locked,
    actor: &Actor,
    event: Event,
    message: &str,
    details: serde_json::Value,
    base_url: &str,
) -> Result<(), sqlx::Error> {
    timeline(tx, env.id, actor, event.as_str(), message).await?;
    audit::record(
        &mut *tx,
        actor,
        &format!("environment.{}", event.as_str()),
        &env.subject(),
        details,
    )
    .await?;
    let by = actor.id.map(|id| id.0);
    notify::notify(tx, &env.target(), event, by, message, base_url).await
}

/// Records what a job reported (Slipway acted, no person) and commits it with the change.
async fn commit_reported(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    env: &Locked,
    event: Event,
    message: &str,
    details: serde_json::Value,
    base_url: &str,
) -> Result<(), EnvironmentError> {
    record(
        &mut tx,
        env,
        &Actor::system(),
        event,
        message,
        details,
        base_url,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// One active job of each kind per environment. Provisioning and teardown have their own keys:
/// the environment's state (checked by every step) keeps them apart, so a teardown can start
/// the moment the environment is ready, while its provisioning job is still completing.
pub fn job_key(id: Uuid, kind: &str) -> String {
    format!("environment:{id}:{kind}")
}

/// Approval enqueues the provisioning job, in the same transaction.
async fn approve_now(
    tx: &mut PgConnection,
    env: &Locked,
    approvals: i32,
    now: DateTime<Utc>,
) -> Result<(), EnvironmentError> {
    let mut job = NewJob::new(
        PROVISION_JOB,
        EnvironmentJobPayload {
            environment_id: env.id,
        }
        .to_json(),
    );
    job.unique_key = Some(job_key(env.id, PROVISION_JOB));
    let job_id = queue::enqueue(&mut *tx, &job).await?;
    sqlx::query(
        "UPDATE environment SET state = 'approved', approval_count = $2, awaiting_since = NULL,
             decided_at = $3, job_id = $4
         WHERE id = $1 AND state = 'submitted'",
    )
    .bind(env.id)
    .bind(approvals)
    .bind(now)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

fn hours(h: i32) -> Duration {
    Duration::hours(i64::from(h))
}

/// Submits a checked request. It is approved at once when the type's policy allows it without
/// a person; otherwise it waits for the type's approvers. Returns its id and state.
pub async fn submit(
    db: &PgPool,
    platform: &Platform,
    by: &Principal,
    request: &CheckedRequest,
    now: DateTime<Utc>,
    base_url: &str,
) -> Result<(EnvironmentId, EnvState), EnvironmentError> {
    if platform.archived_at.is_some() {
        return Err(EnvironmentError::Conflict(
            "The platform is archived: it takes no new environments.".into(),
        ));
    }
    let ty = &request.environment_type;
    let policy = &ty.approval;
    let id = Uuid::new_v4();
    let approver_roles: Vec<String> = policy
        .approvers
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    let mut tx = db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO environment (id, platform_id, environment_type, name, purpose, parameters,
             lifecycle, ttl_hours, max_ttl_hours, requested_by, blueprint_number,
             approvals_required, approver_roles, sla_hours, cost_hourly_micros,
             cost_max_hourly_micros, plan, awaiting_since, sla_due_at, pending_until, created_at,
             budget_monthly_micros)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $18 + $19, $18 + $20, $18, $21)",
    )
    .bind(id)
    .bind(platform.id)
    .bind(&ty.name)
    .bind(&request.name)
    .bind(&request.purpose)
    .bind(serde_json::to_value(&request.parameters).expect("parameters serialise"))
    .bind(ty.lifecycle)
    .bind(request.ttl_hours.map(|h| h as i32))
    .bind(ty.ttl.as_ref().map(|t| t.max_hours as i32))
    .bind(by.user.id.0)
    .bind(request.blueprint_number)
    .bind(policy.approvals_required as i32)
    .bind(&approver_roles)
    .bind(policy.sla_hours as i32)
    .bind(request.estimate.hourly.0)
    .bind(request.estimate.max_hourly.0)
    .bind(serde_json::to_value(&request.plan).expect("plans serialise"))
    .bind(now)
    .bind(hours(policy.sla_hours as i32))
    .bind(hours(policy.expire_after_hours as i32))
    .bind(ty.budget_month_usd.map(|usd| i64::from(usd) * 1_000_000))
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("environment_live_name") => {
            let mut errors = FieldErrors::default();
            errors.add(
                "name",
                format!(
                    "`{}` was just taken by another live environment of {}; choose another name.",
                    request.name, platform.name
                ),
            );
            return Err(errors.into());
        }
        Err(e) => return Err(e.into()),
    }
    crate::teams::record_for_environment(&mut *tx, id, &request.teams).await?;
    let env = lock(&mut tx, EnvironmentId(id)).await?;
    let actor = Actor::from(by);
    let cost = format!(
        "{} to {} per month",
        request.estimate.monthly().display(),
        request.estimate.max_monthly().display()
    );
    record(
        &mut tx,
        &env,
        &actor,
        Event::Submitted,
        &format!(
            "{} requested `{}` ({}) on {}: {}; estimated {cost}.",
            by.user.name, request.name, ty.name, platform.name, request.purpose
        ),
        json!({ "name": request.name, "type": ty.name, "platform": platform.slug }),
        base_url,
    )
    .await?;
    let state = if request.auto_approved() {
        approve_now(&mut tx, &env, 0, now).await?;
        let limit = policy.auto_approve_below_monthly_usd.unwrap_or(0);
        record(
            &mut tx,
            &env,
            &Actor::system(),
            Event::Approved,
            &format!(
                "`{}` was approved automatically: an ephemeral environment estimated at most {} per month, under the policy's limit of {}.",
                request.name,
                request.estimate.max_monthly().display(),
                Micros(i64::from(limit) * 1_000_000).display()
            ),
            json!({ "automatic": true }),
            base_url,
        )
        .await?;
        EnvState::Approved
    } else {
        EnvState::Submitted
    };
    tx.commit().await?;
    Ok((EnvironmentId(id), state))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// The request (or extension) is approved.
    Approved,
    /// Recorded; the policy needs more approvals (`have` of `need`).
    Counted {
        have: i32,
        need: i32,
    },
    Rejected,
}

/// An approver's decision on a request, or on an extension beyond the type's maximum TTL.
/// The words of a decision, checked: a rejection needs a reason (the field `reason`), and
/// either stays under 2,000 characters (an approval's field is `comment`).
pub fn checked_comment(decision: Decision, comment: &str) -> Result<&str, FieldErrors> {
    let comment = comment.trim();
    let mut errors = FieldErrors::default();
    let field = if decision == Decision::Reject {
        "reason"
    } else {
        "comment"
    };
    if decision == Decision::Reject && comment.is_empty() {
        errors.add(
            "reason",
            "Say why it is rejected, so the requester can act on it.",
        );
    }
    if comment.chars().count() > 2000 {
        errors.add(field, "Keep it under 2,000 characters.");
    }
    errors.into_result().map(|()| comment)
}

pub async fn decide(
    db: &PgPool,
    id: EnvironmentId,
    by: &Principal,
    decision: Decision,
    comment: &str,
    now: DateTime<Utc>,
    base_url: &str,
) -> Result<Decided, EnvironmentError> {
    let comment = checked_comment(decision, comment)?;
    let mut tx = db.begin().await?;
    let env = lock(&mut tx, id).await?;
    if env.requested_by == by.user.id.0 {
        return Err(EnvironmentError::NotAllowed(
            "You requested this environment: someone else must decide it.".into(),
        ));
    }
    let roles = env.approver_roles();
    if !roles.iter().any(|r| by.has(r)) {
        return Err(EnvironmentError::NotAllowed(format!(
            "Only these roles decide `{}` requests: {}.",
            env.environment_type,
            roles.labels()
        )));
    }
    let extension = env.state() != EnvState::Submitted;
    if extension && env.extension_hours.is_none() {
        return Err(EnvironmentError::Conflict(format!(
            "The request is already {}: nothing awaits a decision.",
            env.state().label().to_lowercase()
        )));
    }
    let inserted = sqlx::query(
        "INSERT INTO environment_approval (id, environment_id, requester_id, approver_id, round, verdict, comment)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (environment_id, round, approver_id) DO NOTHING",
    )
    .bind(Uuid::new_v4())
    .bind(env.id)
    .bind(env.requested_by)
    .bind(by.user.id.0)
    .bind(env.round)
    .bind(match decision {
        Decision::Approve => "approve",
        Decision::Reject => "reject",
    })
    .bind(comment)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(EnvironmentError::Conflict(format!(
            "You have already decided this; it needs {} approvals from different people.",
            env.approvals_required
        )));
    }
    let actor = Actor::from(by);
    let said = if comment.is_empty() {
        String::new()
    } else {
        format!(": {comment}")
    };
    let outcome = match (decision, extension) {
        (Decision::Reject, false) => {
            close_request(&mut tx, &env, "rejected", now).await?;
            record(
                &mut tx,
                &env,
                &actor,
                Event::Rejected,
                &format!("{} rejected `{}`{said}", by.user.name, env.name),
                json!({ "reason": comment }),
                base_url,
            )
            .await?;
            Decided::Rejected
        }
        (Decision::Reject, true) => {
            sqlx::query(
                "UPDATE environment SET extension_hours = NULL, awaiting_since = NULL, decided_at = $2
                 WHERE id = $1",
            )
            .bind(env.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            record(
                &mut tx,
                &env,
                &actor,
                Event::Rejected,
                &format!(
                    "{} rejected extending `{}` to {} hours{said}",
                    by.user.name,
                    env.name,
                    env.extension_hours.unwrap_or_default()
                ),
                json!({ "reason": comment, "extension_hours": env.extension_hours }),
                base_url,
            )
            .await?;
            Decided::Rejected
        }
        (Decision::Approve, _) if env.approval_count + 1 < env.approvals_required => {
            let have = env.approval_count + 1;
            sqlx::query("UPDATE environment SET approval_count = $2 WHERE id = $1")
                .bind(env.id)
                .bind(have)
                .execute(&mut *tx)
                .await?;
            let message = format!(
                "{} approved `{}` ({have} of {} approvals){said}",
                by.user.name, env.name, env.approvals_required
            );
            timeline(&mut tx, env.id, &actor, "approval", &message).await?;
            audit::record(
                &mut *tx,
                &actor,
                "environment.approval_counted",
                &env.subject(),
                json!({ "have": have, "need": env.approvals_required }),
            )
            .await?;
            Decided::Counted {
                have,
                need: env.approvals_required,
            }
        }
        (Decision::Approve, false) => {
            approve_now(&mut tx, &env, env.approval_count + 1, now).await?;
            record(
                &mut tx,
                &env,
                &actor,
                Event::Approved,
                &format!("{} approved `{}`{said}", by.user.name, env.name),
                json!({ "approvals": env.approval_count + 1 }),
                base_url,
            )
            .await?;
            Decided::Approved
        }
        (Decision::Approve, true) => {
            // The page reads "n of m approvals" for the round in force: this one is counted too.
            sqlx::query("UPDATE environment SET approval_count = approval_count + 1 WHERE id = $1")
                .bind(env.id)
                .execute(&mut *tx)
                .await?;
            let ttl = env.extension_hours.unwrap_or_default();
            let message = format!(
                "{} approved extending `{}` to {ttl} hours{said}",
                by.user.name, env.name
            );
            set_ttl(&mut tx, &env, ttl, &actor, &message, now, base_url).await?;
            Decided::Approved
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Sets the TTL (and, once ready, the teardown time), closing any pending extension, and
/// records it.
async fn set_ttl(
    tx: &mut PgConnection,
    env: &Locked,
    ttl: i32,
    actor: &Actor,
    message: &str,
    now: DateTime<Utc>,
    base_url: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE environment SET ttl_hours = $2, extension_hours = NULL, awaiting_since = NULL,
             expires_at = ready_at + make_interval(hours => $2), expiry_warned_at = NULL,
             decided_at = CASE WHEN round > 0 THEN $3 ELSE decided_at END
         WHERE id = $1",
    )
    .bind(env.id)
    .bind(ttl)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    record(
        tx,
        env,
        actor,
        Event::Extended,
        message,
        json!({ "ttl_hours": ttl }),
        base_url,
    )
    .await
}

/// Ends a request that awaited its decision: `rejected`, `cancelled` or `expired`.
async fn close_request(
    tx: &mut PgConnection,
    env: &Locked,
    state: &'static str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE environment SET state = $2, awaiting_since = NULL, decided_at = $3
         WHERE id = $1 AND state = 'submitted'",
    )
    .bind(env.id)
    .bind(state)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The requester withdraws a request that is still awaiting a decision.
pub async fn cancel(
    db: &PgPool,
    id: EnvironmentId,
    by: &Principal,
    now: DateTime<Utc>,
    base_url: &str,
) -> Result<(), EnvironmentError> {
    let mut tx = db.begin().await?;
    let env = lock(&mut tx, id).await?;
    if env.requested_by != by.user.id.0 {
        return Err(EnvironmentError::NotAllowed(
            "Only the requester can cancel a request.".into(),
        ));
    }
    if env.state() != EnvState::Submitted {
        return Err(EnvironmentError::Conflict(format!(
            "The request is {}: only a request awaiting approval can be cancelled.",
            env.state().label().to_lowercase()
        )));
    }
    close_request(&mut tx, &env, "cancelled", now).await?;
    record(
        &mut tx,
        &env,
        &Actor::from(by),
        Event::Cancelled,
        &format!("{} cancelled the request for `{}`.", by.user.name, env.name),
        json!({}),
        base_url,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extended {
    /// Within the type's maximum: done.
    Done,
    /// Beyond it: an approver must agree first.
    AwaitingApproval,
}

/// Extends an ephemeral environment's TTL to `ttl_hours` in total (counted from when it became
/// ready). Within the type's maximum it is done at once; beyond it (up to Slipway's absolute
/// maximum) it becomes an extension request for the type's approvers.
pub async fn extend(
    db: &PgPool,
    id: EnvironmentId,
    by: &Principal,
    ttl_hours: &str,
    now: DateTime<Utc>,
    base_url: &str,
) -> Result<Extended, EnvironmentError> {
    let mut tx = db.begin().await?;
    let env = lock(&mut tx, id).await?;
    if env.lifecycle != Lifecycle::Ephemeral {
        return Err(EnvironmentError::Conflict(
            "Long-lived environments have no TTL to extend.".into(),
        ));
    }
    if !matches!(
        env.state(),
        EnvState::Submitted | EnvState::Approved | EnvState::Provisioning | EnvState::Ready
    ) {
        return Err(EnvironmentError::Conflict(format!(
            "The environment is {}: there is nothing to extend.",
            env.state().label().to_lowercase()
        )));
    }
    if let Some(pending) = env.extension_hours {
        return Err(EnvironmentError::Conflict(format!(
            "An extension to {pending} hours awaits approval already; wait for that decision."
        )));
    }
    let current = env.ttl_hours.unwrap_or_default();
    let max = env.max_ttl_hours.unwrap_or(current);
    let mut errors = FieldErrors::default();
    let ttl = match ttl_hours.trim().parse::<i32>() {
        Ok(h) if h <= current => {
            errors.add(
                "ttl_hours",
                format!("Use more than the current {current} hours."),
            );
            0
        }
        Ok(h) if h > MAX_TTL_HOURS as i32 => {
            errors.add(
                "ttl_hours",
                format!("No environment lives longer than {MAX_TTL_HOURS} hours."),
            );
            0
        }
        Ok(h) if h > max && env.state() == EnvState::Submitted => {
            errors.add(
                "ttl_hours",
                format!("Use at most {max} hours while the request awaits approval."),
            );
            0
        }
        Ok(h) => h,
        Err(_) => {
            errors.add(
                "ttl_hours",
                "Enter the new total TTL in whole hours, e.g. 24.",
            );
            0
        }
    };
    errors.into_result()?;
    let actor = Actor::from(by);
    let outcome = if ttl <= max {
        let message = format!(
            "{} extended `{}` to {ttl} hours in total.",
            by.user.name, env.name
        );
        set_ttl(&mut tx, &env, ttl, &actor, &message, now, base_url).await?;
        Extended::Done
    } else {
        sqlx::query(
            "UPDATE environment SET extension_hours = $2, round = round + 1, approval_count = 0,
                 awaiting_since = $3, sla_due_at = $3 + make_interval(hours => $4)
             WHERE id = $1",
        )
        .bind(env.id)
        .bind(ttl)
        .bind(now)
        .bind(env.sla_hours)
        .execute(&mut *tx)
        .await?;
        record(
            &mut tx,
            &env,
            &actor,
            Event::ExtensionRequested,
            &format!(
                "{} asks to extend `{}` to {ttl} hours, beyond the type's maximum of {max}.",
                by.user.name, env.name
            ),
            json!({ "ttl_hours": ttl }),
            base_url,
        )
        .await?;
        Extended::AwaitingApproval
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Starts tearing down a ready (or failed) environment: its job runs the plan in reverse.
pub async fn teardown(
    db: &PgPool,
    id: EnvironmentId,
    by: &Actor,
    reason: &str,
    base_url: &str,
) -> Result<(), EnvironmentError> {
    let mut tx = db.begin().await?;
    let env = lock(&mut tx, id).await?;
    start_teardown(&mut tx, &env, by, reason, base_url).await?;
    tx.commit().await?;
    Ok(())
}

async fn start_teardown(
    tx: &mut PgConnection,
    env: &Locked,
    by: &Actor,
    reason: &str,
    base_url: &str,
) -> Result<(), EnvironmentError> {
    if !matches!(env.state(), EnvState::Ready | EnvState::Failed) {
        return Err(EnvironmentError::Conflict(format!(
            "The environment is {}: only a ready or failed environment can be torn down.",
            env.state().label().to_lowercase()
        )));
    }
    // A reconcile, an upgrade or a roll-out running under a teardown would fight it over the
    // cluster.
    if let Some(doing) = maintenance_running(tx, EnvironmentId(env.id), &[]).await? {
        return Err(EnvironmentError::Conflict(format!(
            "The environment is being {doing}: tear it down once that job has ended (or \
             cancel it on the Jobs page)."
        )));
    }
    let mut job = NewJob::new(
        TEARDOWN_JOB,
        EnvironmentJobPayload {
            environment_id: env.id,
        }
        .to_json(),
    );
    job.unique_key = Some(job_key(env.id, TEARDOWN_JOB));
    let job_id = match queue::enqueue(&mut *tx, &job).await {
        Ok(id) => id,
        Err(queue::EnqueueError::Duplicate(_)) => {
            return Err(EnvironmentError::Conflict(
                "The environment is already being torn down.".into(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    sqlx::query(
        "UPDATE environment SET state = 'tearing_down', job_id = $2, extension_hours = NULL,
             awaiting_since = NULL
         WHERE id = $1",
    )
    .bind(env.id)
    .bind(job_id)
    .execute(&mut *tx)
    .await?;
    record(
        tx,
        env,
        by,
        Event::TearingDown,
        &format!("Tearing down `{}`: {reason}", env.name),
        json!({ "reason": reason }),
        base_url,
    )
    .await?;
    Ok(())
}

/// Locks a ready environment for a maintenance action (`what`: "drift is reconciled") in
/// `tx`; any other state is a conflict saying so.
/// What a maintenance job queued or running on environment `id` is doing to it ("upgraded",
/// "rolled out", "reconciled"), other than the kinds in `besides`; none when none is.
pub async fn maintenance_running(
    tx: &mut PgConnection,
    id: EnvironmentId,
    besides: &[&str],
) -> Result<Option<&'static str>, sqlx::Error> {
    let kinds: Vec<String> = [RECONCILE_JOB, UPGRADE_JOB, ROLLOUT_JOB]
        .into_iter()
        .filter(|k| !besides.contains(k))
        .map(|k| job_key(id.0, k))
        .collect();
    let busy: Option<String> = sqlx::query_scalar(
        "SELECT kind FROM job WHERE unique_key = ANY($1)
                AND state IN ('available', 'running', 'retryable') LIMIT 1",
    )
    .bind(kinds)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(busy.map(|kind| match kind.as_str() {
        UPGRADE_JOB => "upgraded",
        ROLLOUT_JOB => "rolled out",
        _ => "reconciled",
    }))
}

pub async fn lock_ready(
    tx: &mut PgConnection,
    id: EnvironmentId,
    what: &str,
) -> Result<(), EnvironmentError> {
    let env = lock(tx, id).await?;
    if env.state() != EnvState::Ready {
        return Err(EnvironmentError::Conflict(format!(
            "The environment is {}: {what} only on a ready environment.",
            env.state().label().to_lowercase()
        )));
    }
    Ok(())
}

/// Records a maintenance `event` on the environment, in `tx`: its timeline, the audit log and
/// the notifications (and webhook) the event goes to. `by` is `None` for Slipway itself.
pub async fn record_maintenance(
    tx: &mut PgConnection,
    id: EnvironmentId,
    by: Option<&Principal>,
    event: Event,
    message: &str,
    details: serde_json::Value,
    base_url: &str,
) -> Result<(), EnvironmentError> {
    let env = lock(tx, id).await?;
    let actor = by.map_or_else(Actor::system, Actor::from);
    let message = format!("`{}`: {message}", env.name);
    record(tx, &env, &actor, event, &message, details, base_url).await?;
    Ok(())
}

/// Expires requests still pending past their deadline; returns how many.
pub async fn expire_stale(
    db: &PgPool,
    now: DateTime<Utc>,
    base_url: &str,
) -> Result<usize, EnvironmentError> {
    let mut tx = db.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM environment WHERE state = 'submitted' AND pending_until <= $1
         ORDER BY pending_until LIMIT 500 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for id in &ids {
        let env = lock(&mut tx, EnvironmentId(*id)).await?;
        close_request(&mut tx, &env, "expired", now).await?;
        record(
            &mut tx,
            &env,
            &Actor::system(),
            Event::Expired,
            &format!(
                "The request for `{}` expired: nobody decided it in time. Request it again if it is still needed.",
                env.name
            ),
            json!({}),
            base_url,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(ids.len())
}

/// How long before the end of its TTL an environment's requester is warned.
pub const EXPIRY_WARNING: Duration = Duration::hours(1);

/// Warns the requesters of ephemeral environments whose TTL ends within [`EXPIRY_WARNING`], and
/// starts the teardown of those whose TTL has ended. Returns (warned, torn down).
pub async fn reap_expired(
    db: &PgPool,
    now: DateTime<Utc>,
    base_url: &str,
) -> Result<(usize, usize), EnvironmentError> {
    let mut tx = db.begin().await?;
    let warn: Vec<(Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT id, expires_at FROM environment
         WHERE state = 'ready' AND expires_at <= $1 AND expires_at > $2 AND expiry_warned_at IS NULL
         LIMIT 500 FOR UPDATE SKIP LOCKED",
    )
    .bind(now + EXPIRY_WARNING)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for (id, expires_at) in &warn {
        let env = lock(&mut tx, EnvironmentId(*id)).await?;
        sqlx::query("UPDATE environment SET expiry_warned_at = $2 WHERE id = $1")
            .bind(env.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let minutes = (*expires_at - now).num_minutes().max(1);
        record(
            &mut tx,
            &env,
            &Actor::system(),
            Event::ExpiringSoon,
            &format!(
                "`{}` reaches the end of its TTL in {minutes} minutes and will then be torn down; extend it to keep it.",
                env.name
            ),
            json!({ "expires_at": expires_at }),
            base_url,
        )
        .await?;
    }
    let due: Vec<Uuid> = sqlx::query_scalar(
        // One being reconciled, upgraded or rolled out waits for that job to end (the next sweep takes it).
        "SELECT e.id FROM environment e WHERE e.state = 'ready' AND e.expires_at <= $1
           AND NOT EXISTS (SELECT 1 FROM job j
                           WHERE j.unique_key IN ('environment:' || e.id || ':' || $2,
                                                  'environment:' || e.id || ':' || $3,
                                                  'environment:' || e.id || ':' || $4)
                             AND j.state IN ('available', 'running', 'retryable'))
         LIMIT 100 FOR UPDATE OF e SKIP LOCKED",
    )
    .bind(now)
    .bind(RECONCILE_JOB)
    .bind(UPGRADE_JOB)
    .bind(ROLLOUT_JOB)
    .fetch_all(&mut *tx)
    .await?;
    for id in &due {
        let env = lock(&mut tx, EnvironmentId(*id)).await?;
        start_teardown(
            &mut tx,
            &env,
            &Actor::system(),
            "its TTL has ended",
            base_url,
        )
        .await?;
    }
    tx.commit().await?;
    Ok((warn.len(), due.len()))
}

/// Whether `principal` holds one of `roles`: for showing approve buttons.
pub fn holds_any(principal: &Principal, roles: &[String]) -> bool {
    RoleSet::from_strings(roles)
        .iter()
        .any(|r: Role| principal.has(r))
}

/// A provisioning or teardown job has started (or been retried, also through the jobs API):
/// `approved | failed → provisioning`, or `failed → tearing_down`. A no-op on a re-run.
pub async fn begin_job(
    db: &PgPool,
    id: EnvironmentId,
    teardown: bool,
) -> Result<(), EnvironmentError> {
    let mut tx = db.begin().await?;
    let env = lock(&mut tx, id).await?;
    let (to, message) = match (env.state(), teardown) {
        (EnvState::Approved | EnvState::Failed, false) => {
            (EnvState::Provisioning, "Provisioning started.")
        }
        (EnvState::Failed, true) => (EnvState::TearingDown, "Teardown started again."),
        // Already under way, or (a re-run of the last step) already done.
        (EnvState::Provisioning | EnvState::Ready, false)
        | (EnvState::TearingDown | EnvState::TornDown, true) => return Ok(()),
        (state, _) => {
            return Err(EnvironmentError::Conflict(format!(
                "the environment is {}; its job has nothing to do",
                state.label().to_lowercase()
            )));
        }
    };
    sqlx::query("UPDATE environment SET state = $2 WHERE id = $1")
        .bind(env.id)
        .bind(to.as_str())
        .execute(&mut *tx)
        .await?;
    let actor = Actor::system();
    timeline(&mut tx, env.id, &actor, to.as_str(), message).await?;
    audit::record(
        &mut *tx,
        &actor,
        &format!("environment.{}", to.as_str()),
        &env.subject(),
        json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Provisioning succeeded: `provisioning → ready`, with the outputs; the TTL starts now. When
/// it is one of the platform's own (requested by a member), the backlog items it delivers move
/// to `done`.
pub async fn mark_ready(
    db: &PgPool,
    id: EnvironmentId,
    outputs: &serde_json::Value,
    backlog_keys: &[String],
    now: DateTime<Utc>,
    base_url: &str,
) -> Result<(), EnvironmentError> {
    let mut tx = db.begin().await?;
    let env = lock(&mut tx, id).await?;
    if env.state() != EnvState::Provisioning {
        // A re-run after the change committed.
        return Ok(());
    }
    sqlx::query(
        "UPDATE environment SET state = 'ready', ready_at = $2, outputs = outputs || $3,
             expires_at = $2 + make_interval(hours => ttl_hours), expiry_warned_at = NULL
         WHERE id = $1",
    )
    .bind(env.id)
    .bind(now)
    .bind(outputs)
    .execute(&mut *tx)
    .await?;
    // The platform's own environments deliver its backlog, not a developer's scratch run: those
    // requested by the platform's members (or an admin).
    let platforms_own: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM platform_member WHERE platform_id = $1 AND user_id = $2)
             OR EXISTS (SELECT 1 FROM app_user WHERE id = $2 AND 'admin' = ANY(roles))",
    )
    .bind(env.platform_id)
    .bind(env.requested_by)
    .fetch_one(&mut *tx)
    .await?;
    let done = if platforms_own {
        crate::define::backlog::mark_delivered(&mut tx, env.platform_id, backlog_keys).await?
    } else {
        0
    };
    let ttl = match env.ttl_hours {
        Some(h) => format!(" It is torn down after {h} hours unless extended."),
        None => String::new(),
    };
    let message = format!("`{}` is ready.{ttl}", env.name);
    let details = json!({ "backlog_items_done": done });
    commit_reported(tx, &env, Event::Ready, &message, details, base_url).await
}

/// Teardown finished: `tearing_down → torn_down`.
pub async fn mark_torn_down(
    db: &PgPool,
    id: EnvironmentId,
    base_url: &str,
) -> Result<(), EnvironmentError> {
    let mut tx = db.begin().await?;
    let env = lock(&mut tx, id).await?;
    if env.state() != EnvState::TearingDown {
        return Ok(());
    }
    sqlx::query("UPDATE environment SET state = 'torn_down', expires_at = NULL WHERE id = $1")
        .bind(env.id)
        .execute(&mut *tx)
        .await?;
    let message = format!(
        "`{}` is torn down: nothing of it is left in the cloud.",
        env.name
    );
    commit_reported(tx, &env, Event::TornDown, &message, json!({}), base_url).await
}

/// The environment's job ended without finishing (out of attempts, a permanent error, or
/// cancelled): the environment is `failed`, with the choice to retry or clean up. A no-op when
/// its current job is another one (a retry already started).
pub async fn mark_failed(
    db: &PgPool,
    id: EnvironmentId,
    job_id: i64,
    error: &str,
    base_url: &str,
) -> Result<(), EnvironmentError> {
    let mut tx = db.begin().await?;
    let env = lock(&mut tx, id).await?;
    let during = match env.state() {
        EnvState::Approved | EnvState::Provisioning => "Provisioning",
        EnvState::TearingDown => "Teardown",
        _ => return Ok(()),
    };
    if env.job_id != Some(job_id) {
        return Ok(());
    }
    sqlx::query("UPDATE environment SET state = 'failed' WHERE id = $1")
        .bind(env.id)
        .execute(&mut *tx)
        .await?;
    let message = format!(
        "{during} of `{}` failed: {error}. Retry from the failed step, or clean up what was created.",
        env.name
    );
    let details = json!({ "job_id": job_id, "error": error });
    commit_reported(tx, &env, Event::Failed, &message, details, base_url).await
}

/// Environments whose job ended without finishing but which still say otherwise (the worker
/// died between the two writes): marks them failed. Returns how many.
pub async fn reconcile_abandoned(db: &PgPool, base_url: &str) -> Result<usize, EnvironmentError> {
    let stuck: Vec<(Uuid, i64, Option<String>)> = sqlx::query_as(
        "SELECT e.id, j.id, j.last_error FROM environment e JOIN job j ON j.id = e.job_id
         WHERE e.state IN ('approved', 'provisioning', 'tearing_down')
           AND j.state IN ('discarded', 'cancelled')
         LIMIT 100",
    )
    .fetch_all(db)
    .await?;
    for (id, job, error) in &stuck {
        let error = error.as_deref().unwrap_or("the job was cancelled");
        mark_failed(db, EnvironmentId(*id), *job, error, base_url).await?;
    }
    Ok(stuck.len())
}

/// Retries a failed environment's job from its failed step: provisioning again
/// (`failed → provisioning`) or teardown again (`failed → tearing_down`).
pub async fn retry(
    db: &PgPool,
    id: EnvironmentId,
    by: &Actor,
) -> Result<EnvState, EnvironmentError> {
    let mut tx = db.begin().await?;
    let env = lock(&mut tx, id).await?;
    if env.state() != EnvState::Failed {
        return Err(EnvironmentError::Conflict(format!(
            "The environment is {}: only a failed environment can be retried.",
            env.state().label().to_lowercase()
        )));
    }
    let job = match env.job_id {
        Some(job_id) => queue::kind_and_state(&mut tx, job_id)
            .await?
            .map(|(kind, state)| (job_id, kind, state)),
        None => None,
    };
    let teardown = job
        .as_ref()
        .is_some_and(|(_, kind, _)| kind == TEARDOWN_JOB);
    let job_id = match job {
        // The same job again: its completed steps are skipped.
        Some((job_id, _, JobState::Discarded | JobState::Cancelled)) => {
            queue::requeue(&mut tx, job_id).await?;
            job_id
        }
        Some((_, _, state)) if state != JobState::Completed => {
            return Err(EnvironmentError::Conflict(
                "The environment's job is still running; wait for it to finish.".into(),
            ));
        }
        // The job is gone (deleted after the retention period): a new one, which finds what
        // the earlier one created.
        _ => {
            let kind = if teardown {
                TEARDOWN_JOB
            } else {
                PROVISION_JOB
            };
            let mut job = NewJob::new(
                kind,
                EnvironmentJobPayload {
                    environment_id: env.id,
                }
                .to_json(),
            );
            job.unique_key = Some(job_key(env.id, kind));
            queue::enqueue(&mut tx, &job).await?
        }
    };
    let (state, what) = if teardown {
        (EnvState::TearingDown, "teardown")
    } else {
        (EnvState::Provisioning, "provisioning")
    };
    sqlx::query("UPDATE environment SET state = $2, job_id = $3 WHERE id = $1")
        .bind(env.id)
        .bind(state.as_str())
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
    timeline(
        &mut tx,
        env.id,
        by,
        "retried",
        &format!("{} retried the {what} from the failed step.", by.label),
    )
    .await?;
    audit::record(
        &mut *tx,
        by,
        "environment.retry",
        &env.subject(),
        json!({ "job_id": job_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(state)
}

/// What the DevOps environment is made from: the approved blueprint's revision, its DevOps
/// node group and the plan built from them.
pub struct DevopsRequest {
    pub blueprint_number: i32,
    pub parameters: crate::provision::plan::Parameters,
    pub plan: Vec<crate::provision::plan::PlanStep>,
}

/// Creates the platform's DevOps environment (the manual trigger; one per platform, kept):
/// approved at once, since the platform engineer who triggers it is the decision.
pub async fn create_devops(
    db: &PgPool,
    platform: &Platform,
    by: &Principal,
    devops: &DevopsRequest,
    now: DateTime<Utc>,
    base_url: &str,
) -> Result<EnvironmentId, EnvironmentError> {
    let DevopsRequest {
        blueprint_number,
        parameters,
        plan,
    } = devops;
    if platform.archived_at.is_some() {
        return Err(EnvironmentError::Conflict(
            "The platform is archived: it takes no new environments.".into(),
        ));
    }
    let estimate = super::pricing::estimate(
        &parameters.instance_type,
        parameters.min_nodes,
        parameters.max_nodes,
        &[],
    );
    let id = Uuid::new_v4();
    let mut tx = db.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO environment (id, platform_id, environment_type, name, purpose, parameters,
             lifecycle, requested_by, blueprint_number, approvals_required, approver_roles,
             sla_hours, cost_hourly_micros, cost_max_hourly_micros, plan, sla_due_at,
             pending_until, created_at)
         VALUES ($1, $2, 'devops', $3, $4, $5, 'long_lived', $6, $7, 1, $8, 1, $9, $10, $11,
                 $12, $12, $12)",
    )
    .bind(id)
    .bind(platform.id)
    .bind(crate::provision::plan::DEVOPS_ENVIRONMENT)
    .bind("The platform's DevOps environment: delivery tooling on its own cluster, kept.")
    .bind(serde_json::to_value(parameters).expect("parameters serialise"))
    .bind(by.user.id.0)
    .bind(blueprint_number)
    .bind(vec![Role::PlatformEngineer.as_str().to_owned()])
    .bind(estimate.hourly.0)
    .bind(estimate.max_hourly.0)
    .bind(serde_json::to_value(plan).expect("plans serialise"))
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("environment_live_name") => {
            return Err(EnvironmentError::Conflict(format!(
                "{} already has a DevOps environment; it is created once and kept.",
                platform.name
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let env = lock(&mut tx, EnvironmentId(id)).await?;
    approve_now(&mut tx, &env, 0, now).await?;
    let actor = Actor::from(by);
    record(
        &mut tx,
        &env,
        &actor,
        Event::Approved,
        &format!(
            "{} started the DevOps environment of {}.",
            by.user.name, platform.name
        ),
        json!({ "devops": true }),
        base_url,
    )
    .await?;
    tx.commit().await?;
    Ok(EnvironmentId(id))
}
