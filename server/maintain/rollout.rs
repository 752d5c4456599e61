//! Blueprint roll-outs: the platform's approved revision brought to its running environments,
//! wave by wave. A platform engineer sees, per environment, what the new revision would change
//! (`provision::rollout::replan`: what changes, restarts, is replaced) and starts a roll-out
//! with waves (a canary first, then `dev` and `test`, then `prod`).
//!
//! - A wave starts once it has the approvals its strictest environment's type requires, from
//!   holders of every one of its environments' approver roles, never from whoever started the
//!   roll-out (as for requests and upgrades).
//! - Starting an environment writes the new plan and revision onto it and queues its
//!   `environment.rollout` job in one transaction; the next wave waits until every
//!   environment of this one is healthy on the new plan (or skipped).
//! - A failure pauses the roll-out. Resume runs the failed environments again and goes on;
//!   skip leaves one environment on its revision (a failed one gets its previous plan back,
//!   and its next drift check shows what the failed attempt left changed); roll back puts
//!   every environment the roll-out reached back on its previous revision's plan, with the
//!   same job kind.
//!
//! One roll-out of a platform is open at a time. The database enforces both state machines
//! (`rollout`, `rollout_environment`), the wave approvals and the starter's exclusion.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::Principal;
use crate::define::platforms::Platform;
use crate::define::revisions;
use crate::environments::notify::Event;
use crate::environments::{EnvState, EnvironmentError, EnvironmentId, lifecycle, step_error};
use crate::jobs::StepError;
use crate::jobs::queue::{self, NewJob};
use crate::provision::plan::{self, DEVOPS_ENVIRONMENT, Parameters, PlanInput, PlanStep};
use crate::provision::rollout::{
    self as planning, PlanChange, ROLLOUT_JOB, RolloutJobPayload, RolloutOwner,
};
use crate::validation::FieldErrors;

/// The most waves a roll-out has.
pub const MAX_WAVES: usize = 10;

/// Where a roll-out stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Its current wave waits for approvals.
    AwaitingApproval,
    Running,
    /// A failure, or someone, paused it; resume goes on.
    Paused,
    Completed,
    RollingBack,
    RolledBack,
}

crate::text_column!(RolloutState, "roll-out state");

impl RolloutState {
    const ALL: [RolloutState; 6] = [
        RolloutState::AwaitingApproval,
        RolloutState::Running,
        RolloutState::Paused,
        RolloutState::Completed,
        RolloutState::RollingBack,
        RolloutState::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::AwaitingApproval => "awaiting_approval",
            RolloutState::Running => "running",
            RolloutState::Paused => "paused",
            RolloutState::Completed => "completed",
            RolloutState::RollingBack => "rolling_back",
            RolloutState::RolledBack => "rolled_back",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            RolloutState::AwaitingApproval => "awaiting approval",
            RolloutState::Running => "running",
            RolloutState::Paused => "paused",
            RolloutState::Completed => "completed",
            RolloutState::RollingBack => "rolling back",
            RolloutState::RolledBack => "rolled back",
        }
    }

    pub fn parse(text: &str) -> Option<RolloutState> {
        RolloutState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_open(self) -> bool {
        !matches!(self, RolloutState::Completed | RolloutState::RolledBack)
    }
}

impl std::fmt::Display for RolloutState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one environment of a roll-out stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// Left on its revision.
    Skipped,
    RollingBack,
    RolledBack,
}

crate::text_column!(TargetState, "roll-out environment state");

impl TargetState {
    const ALL: [TargetState; 7] = [
        TargetState::Pending,
        TargetState::Running,
        TargetState::Succeeded,
        TargetState::Failed,
        TargetState::Skipped,
        TargetState::RollingBack,
        TargetState::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Pending => "pending",
            TargetState::Running => "running",
            TargetState::Succeeded => "succeeded",
            TargetState::Failed => "failed",
            TargetState::Skipped => "skipped",
            TargetState::RollingBack => "rolling_back",
            TargetState::RolledBack => "rolled_back",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            TargetState::RollingBack => "rolling back",
            TargetState::RolledBack => "rolled back",
            other => other.as_str(),
        }
    }

    pub fn parse(text: &str) -> Option<TargetState> {
        TargetState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One environment of a roll-out (`waves[].environments[]`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Target {
    pub id: Uuid,
    pub name: String,
    pub environment_type: String,
    #[schema(value_type = String)]
    pub state: TargetState,
    /// The revision it ran when the roll-out started.
    pub from_revision: i32,
    /// The revision it runs now.
    pub revision: i32,
    /// What the new revision changes on it (as of when its wave started, before that as of
    /// the roll-out's start).
    #[sqlx(json)]
    pub plan: Vec<PlanChange>,
    /// Its last roll-out job (`GET /api/v1/jobs/{id}` has the steps and logs).
    pub job_id: Option<i64>,
    pub error: Option<String>,
    #[serde(skip)]
    pub wave: i32,
}

/// A wave of a roll-out.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Wave {
    pub approvals_required: i32,
    /// The e-mail addresses of who approved it.
    pub approved_by: Vec<String>,
    pub environments: Vec<Target>,
}

/// A roll-out (`GET /api/v1/platforms/{slug}/rollouts/{id}`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rollout {
    pub id: Uuid,
    pub revision: i32,
    #[schema(value_type = String)]
    pub state: RolloutState,
    /// The wave being approved or run (from 0).
    pub current_wave: i32,
    /// The e-mail address of who started it.
    pub started_by: String,
    #[serde(skip)]
    pub starter_id: Uuid,
    /// Why it paused, or what failed while rolling back.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub waves: Vec<Wave>,
}

impl Rollout {
    fn wave(&self) -> &Wave {
        &self.waves[self.current_wave as usize]
    }
}

#[derive(sqlx::FromRow)]
struct Head {
    id: Uuid,
    revision: i32,
    state: RolloutState,
    current_wave: i32,
    started_by: String,
    starter_id: Uuid,
    error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

const SELECT_HEAD: &str = "SELECT r.id, r.revision, r.state, r.current_wave, u.email AS started_by,
        r.started_by AS starter_id, r.error, r.created_at, r.finished_at
     FROM rollout r JOIN app_user u ON u.id = r.started_by";

async fn assemble(db: &mut PgConnection, head: Head) -> Result<Rollout, sqlx::Error> {
    let waves: Vec<(i32, Vec<String>)> = sqlx::query_as(
        "SELECT w.approvals_required,
                COALESCE(array_agg(u.email ORDER BY a.created_at) FILTER (WHERE u.email IS NOT NULL), '{}')
         FROM rollout_wave w
         LEFT JOIN rollout_approval a ON a.rollout_id = w.rollout_id AND a.wave = w.wave
         LEFT JOIN app_user u ON u.id = a.approver_id
         WHERE w.rollout_id = $1 GROUP BY w.wave, w.approvals_required ORDER BY w.wave",
    )
    .bind(head.id)
    .fetch_all(&mut *db)
    .await?;
    let targets: Vec<Target> = sqlx::query_as(
        "SELECT e.id, e.name, e.environment_type, t.state, t.from_revision,
                e.blueprint_number AS revision, t.changes AS plan, t.job_id, t.error, t.wave
         FROM rollout_environment t JOIN environment e ON e.id = t.environment_id
         WHERE t.rollout_id = $1 ORDER BY t.wave, t.position",
    )
    .bind(head.id)
    .fetch_all(&mut *db)
    .await?;
    let mut waves: Vec<Wave> = waves
        .into_iter()
        .map(|(approvals_required, approved_by)| Wave {
            approvals_required,
            approved_by,
            environments: Vec::new(),
        })
        .collect();
    for target in targets {
        if let Some(wave) = waves.get_mut(target.wave as usize) {
            wave.environments.push(target);
        }
    }
    Ok(Rollout {
        id: head.id,
        revision: head.revision,
        state: head.state,
        current_wave: head.current_wave,
        started_by: head.started_by,
        starter_id: head.starter_id,
        error: head.error,
        created_at: head.created_at,
        finished_at: head.finished_at,
        waves,
    })
}

/// The roll-out `id` of `platform`.
pub async fn get(db: &PgPool, platform: Uuid, id: Uuid) -> Result<Rollout, EnvironmentError> {
    let mut conn = db.acquire().await?;
    let head: Head = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_HEAD} WHERE r.platform_id = $1 AND r.id = $2"
    )))
    .bind(platform)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(EnvironmentError::NotFound)?;
    Ok(assemble(&mut conn, head).await?)
}

/// Locks the roll-out `id` of `platform` in `tx` and reads it.
async fn lock(
    tx: &mut PgConnection,
    platform: Uuid,
    id: Uuid,
) -> Result<Rollout, EnvironmentError> {
    let head: Head = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_HEAD} WHERE r.platform_id = $1 AND r.id = $2 FOR UPDATE OF r"
    )))
    .bind(platform)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(EnvironmentError::NotFound)?;
    Ok(assemble(tx, head).await?)
}

/// A roll-out as the list shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Summary {
    pub id: Uuid,
    pub revision: i32,
    #[schema(value_type = String)]
    pub state: RolloutState,
    pub started_by: String,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The platform's last roll-outs, newest first.
pub async fn list(db: &PgPool, platform: Uuid) -> Result<Vec<Summary>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, r.revision, r.state, u.email AS started_by, r.created_at, r.finished_at
         FROM rollout r JOIN app_user u ON u.id = r.started_by
         WHERE r.platform_id = $1 ORDER BY r.created_at DESC, r.id LIMIT 20",
    )
    .bind(platform)
    .fetch_all(db)
    .await
}

/// A running environment and what the approved revision would change on it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Candidate {
    pub id: Uuid,
    pub name: String,
    pub environment_type: String,
    pub revision: i32,
    pub plan: Vec<PlanChange>,
    /// Why a roll-out cannot bring it to the revision; none when it can.
    pub blocked: Option<String>,
}

/// What starting a roll-out shows: the approved revision and each running environment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// The approved revision, which a roll-out brings; none before one is approved.
    pub revision: Option<i32>,
    pub environments: Vec<Candidate>,
    pub open: Option<Summary>,
    pub history: Vec<Summary>,
}

/// The fields of an environment a new plan is built from.
#[derive(sqlx::FromRow)]
struct Planned {
    id: Uuid,
    name: String,
    environment_type: String,
    state: EnvState,
    blueprint_number: i32,
    approvals_required: i32,
    parameters: sqlx::types::Json<Parameters>,
    plan: sqlx::types::Json<Vec<PlanStep>>,
}

const SELECT_PLANNED: &str = "SELECT e.id, e.name, e.environment_type, e.state::text AS state,
        e.blueprint_number, e.approvals_required, e.parameters, e.plan
     FROM environment e";

/// The plan `env` would run on `revision`, and what differs; `Err` says why it cannot.
async fn replan(
    db: &mut PgConnection,
    platform: &Platform,
    revision: &revisions::Revision,
    env: &Planned,
) -> Result<(Vec<PlanStep>, Vec<PlanChange>), String> {
    let bp = &revision.document;
    let Some(ty) = bp
        .environment_types
        .iter()
        .find(|t| t.name == env.environment_type)
    else {
        return Err(format!(
            "Revision {} has no environment type `{}`: a roll-out does not change an environment's type.",
            revision.number, env.environment_type
        ));
    };
    let teams = crate::teams::of_environment(&mut *db, env.id)
        .await
        .map_err(|e| format!("its teams could not be read: {e}"))?;
    let teams: Vec<_> = teams.iter().map(|t| t.plan_team()).collect();
    let current = &env.plan.0;
    let built = plan::build(
        &PlanInput {
            platform_slug: &platform.slug,
            blueprint: bp,
            name: &env.name,
            parameters: &env.parameters.0,
            teams: &teams,
            account_email_domain: planning::account_email_domain(current).unwrap_or("example.com"),
        },
        ty,
    );
    Ok(planning::replan(current, built))
}

/// Why a roll-out cannot bring these changes, if it cannot.
fn blocking(changes: &[PlanChange]) -> Option<String> {
    let refused: Vec<String> = changes
        .iter()
        .filter(|c| !c.effect.applies())
        .map(|c| format!("{} ({})", c.resource, c.effect.label()))
        .collect();
    (!refused.is_empty()).then(|| {
        format!(
            "The revision changes what a roll-out does not: {}.",
            refused.join(", ")
        )
    })
}

async fn candidate(
    db: &mut PgConnection,
    platform: &Platform,
    revision: &revisions::Revision,
    env: &Planned,
) -> Candidate {
    let (plan, blocked) = match replan(db, platform, revision, env).await {
        Ok((_, changes)) => {
            let blocked = blocking(&changes);
            (changes, blocked)
        }
        Err(why) => (Vec::new(), Some(why)),
    };
    Candidate {
        id: env.id,
        name: env.name.clone(),
        environment_type: env.environment_type.clone(),
        revision: env.blueprint_number,
        plan,
        blocked,
    }
}

/// The platform's running environments (not the DevOps environment, which is started by
/// hand and kept) and what the approved revision would change on each; the open roll-out
/// and the last ones.
pub async fn overview(db: &PgPool, platform: &Platform) -> Result<Overview, EnvironmentError> {
    let history = list(db, platform.id).await?;
    let open = history.iter().find(|r| r.state.is_open()).cloned();
    let Some(revision) = revisions::approved(db, platform.id).await? else {
        return Ok(Overview {
            revision: None,
            environments: Vec::new(),
            open,
            history,
        });
    };
    let mut conn = db.acquire().await?;
    let envs: Vec<Planned> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT_PLANNED} WHERE e.platform_id = $1 AND e.state = 'ready' AND e.name <> $2
         ORDER BY e.created_at, e.id LIMIT 200"
    )))
    .bind(platform.id)
    .bind(DEVOPS_ENVIRONMENT)
    .fetch_all(&mut *conn)
    .await?;
    let mut environments = Vec::with_capacity(envs.len());
    for env in &envs {
        environments.push(candidate(&mut conn, platform, &revision, env).await);
    }
    Ok(Overview {
        revision: Some(revision.number),
        environments,
        open,
        history,
    })
}

/// Records `action` on the roll-out `id` by `by` in the audit log.
async fn audit(
    tx: &mut PgConnection,
    by: &Principal,
    action: &str,
    platform: &Platform,
    id: Uuid,
    details: Value,
) -> Result<(), sqlx::Error> {
    let subject = format!("platform:{}/rollout:{id}", platform.slug);
    audit::record(&mut *tx, &Actor::from(by), action, &subject, details).await
}

/// Starts rolling the approved revision `revision` out to the environments of `waves`, in
/// that order; the first wave then waits for its approvals.
pub async fn start(
    db: &PgPool,
    platform: &Platform,
    by: &Principal,
    revision: Option<i32>,
    waves: &[Vec<Uuid>],
    base_url: &str,
) -> Result<Rollout, EnvironmentError> {
    let approved = revisions::approved(db, platform.id).await?;
    let mut errors = FieldErrors::default();
    match (&approved, revision) {
        (None, _) => errors.add(
            "revision",
            "The platform has no approved blueprint revision to roll out.",
        ),
        (_, None) => errors.add("revision", "Give the revision to roll out."),
        (Some(a), Some(n)) if a.number != n => errors.add(
            "revision",
            format!(
                "Roll out the approved revision, {}: revision {n} is not the one approved now.",
                a.number
            ),
        ),
        _ => {}
    }
    if waves.is_empty() {
        errors.add(
            "waves",
            "Give at least one wave, each a list of environment ids.",
        );
    } else if waves.len() > MAX_WAVES {
        errors.add(
            "waves",
            format!("Use at most {MAX_WAVES} waves; put more environments in each."),
        );
    }
    let mut tx = db.begin().await?;
    crate::define::platforms::lock(&mut tx, platform.id).await?;
    let mut seen = std::collections::HashSet::new();
    let mut planned: Vec<(usize, usize, Planned, Vec<PlanChange>)> = Vec::new();
    for (w, wave) in waves.iter().enumerate() {
        if wave.is_empty() {
            errors.add(
                &format!("waves[{w}]"),
                "A wave needs at least one environment.",
            );
        }
        for (i, id) in wave.iter().enumerate() {
            let field = format!("waves[{w}][{i}]");
            if !seen.insert(*id) {
                errors.add(&field, "This environment is in an earlier place already.");
                continue;
            }
            let env: Option<Planned> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{SELECT_PLANNED} WHERE e.platform_id = $1 AND e.id = $2 FOR UPDATE OF e"
            )))
            .bind(platform.id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(env) = env else {
                errors.add(&field, format!("No environment {id} on {}.", platform.name));
                continue;
            };
            let Some(approved) = &approved else { continue };
            if env.name == DEVOPS_ENVIRONMENT {
                errors.add(
                    &field,
                    "The DevOps environment is started by hand and kept; it is not rolled out in waves.",
                );
            } else if env.state != EnvState::Ready {
                errors.add(
                    &field,
                    format!(
                        "`{}` is {}: roll-outs reach ready environments only.",
                        env.name,
                        env.state.label().to_lowercase()
                    ),
                );
            } else if env.blueprint_number == approved.number {
                errors.add(
                    &field,
                    format!("`{}` runs revision {} already.", env.name, approved.number),
                );
            } else {
                match replan(&mut tx, platform, approved, &env).await {
                    Err(why) => errors.add(&field, format!("`{}`: {why}", env.name)),
                    Ok((_, changes)) => match blocking(&changes) {
                        Some(why) => errors.add(&field, format!("`{}`: {why}", env.name)),
                        None => planned.push((w, i, env, changes)),
                    },
                }
            }
        }
    }
    errors.into_result()?;
    let Some(approved) = approved else {
        unreachable!("no approved revision is a field error")
    };
    let id = Uuid::new_v4();
    let inserted = sqlx::query(
        "INSERT INTO rollout (id, platform_id, revision, started_by, state, wave_count)
         VALUES ($1, $2, $3, $4, 'awaiting_approval', $5)
         ON CONFLICT (platform_id) WHERE state NOT IN ('completed', 'rolled_back') DO NOTHING",
    )
    .bind(id)
    .bind(platform.id)
    .bind(approved.number)
    .bind(by.user.id.0)
    .bind(waves.len() as i32)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(EnvironmentError::Conflict(
            "A roll-out of this platform is open already: finish, roll back or complete it first."
                .into(),
        ));
    }
    for w in 0..waves.len() {
        let required = planned
            .iter()
            .filter(|(pw, ..)| *pw == w)
            .map(|(_, _, env, _)| env.approvals_required)
            .max()
            .unwrap_or(0);
        sqlx::query(
            "INSERT INTO rollout_wave (rollout_id, wave, approvals_required) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(w as i32)
        .bind(required)
        .execute(&mut *tx)
        .await?;
    }
    for (w, i, env, changes) in &planned {
        sqlx::query(
            "INSERT INTO rollout_environment
                 (rollout_id, wave, position, environment_id, state, from_revision, changes)
             VALUES ($1, $2, $3, $4, 'pending', $5, $6)",
        )
        .bind(id)
        .bind(*w as i32)
        .bind(*i as i32)
        .bind(env.id)
        .bind(env.blueprint_number)
        .bind(sqlx::types::Json(changes))
        .execute(&mut *tx)
        .await?;
    }
    audit(
        &mut tx,
        by,
        "rollout.started",
        platform,
        id,
        json!({ "revision": approved.number, "waves": waves }),
    )
    .await?;
    let mut rollout = lock(&mut tx, platform.id, id).await?;
    announce_wave(&mut tx, &rollout, Some(by), base_url).await?;
    if rollout.wave().approvals_required == 0 {
        start_wave(&mut tx, platform, &mut rollout, base_url).await?;
    }
    tx.commit().await?;
    get(db, platform.id, id).await
}

/// Tells each environment of the current wave (its approvers) that the wave awaits them.
async fn announce_wave(
    tx: &mut PgConnection,
    rollout: &Rollout,
    by: Option<&Principal>,
    base_url: &str,
) -> Result<(), EnvironmentError> {
    let wave = rollout.wave();
    for env in &wave.environments {
        lifecycle::record_maintenance(
            tx,
            EnvironmentId(env.id),
            by,
            Event::RolloutAwaitingApproval,
            &format!(
                "revision {} is to be rolled out here (wave {} of {}); the wave needs {} approvals",
                rollout.revision,
                rollout.current_wave + 1,
                rollout.waves.len(),
                wave.approvals_required
            ),
            json!({ "rollout_id": rollout.id, "wave": rollout.current_wave }),
            base_url,
        )
        .await?;
    }
    Ok(())
}

/// Queues the roll-out job of `environment` in `tx`; its id.
async fn enqueue(
    tx: &mut PgConnection,
    rollout: Uuid,
    environment: Uuid,
) -> Result<i64, EnvironmentError> {
    let mut job = NewJob::new(
        ROLLOUT_JOB,
        RolloutJobPayload {
            environment_id: environment,
            rollout_id: rollout,
        }
        .to_json(),
    );
    job.unique_key = Some(lifecycle::job_key(environment, ROLLOUT_JOB));
    match queue::enqueue(&mut *tx, &job).await {
        Ok(id) => Ok(id),
        Err(queue::EnqueueError::Duplicate(_)) => Err(EnvironmentError::Conflict(
            "A roll-out job of this environment is running already.".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

async fn set_state(
    tx: &mut PgConnection,
    rollout: &mut Rollout,
    state: RolloutState,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE rollout SET state = $2, error = $3, current_wave = $4,
             finished_at = CASE WHEN $2 IN ('completed', 'rolled_back') THEN now() END
         WHERE id = $1",
    )
    .bind(rollout.id)
    .bind(state)
    .bind(error)
    .bind(rollout.current_wave)
    .execute(&mut *tx)
    .await?;
    rollout.state = state;
    rollout.error = error.map(str::to_owned);
    Ok(())
}

/// Runs the current wave: each pending environment gets the new plan and its job, each
/// failed one its job again. An environment that cannot start pauses the roll-out.
async fn start_wave(
    tx: &mut PgConnection,
    platform: &Platform,
    rollout: &mut Rollout,
    base_url: &str,
) -> Result<(), EnvironmentError> {
    set_state(tx, rollout, RolloutState::Running, None).await?;
    let revision = revisions::get(&mut *tx, platform.id, rollout.revision)
        .await?
        .ok_or_else(|| EnvironmentError::Conflict("The revision no longer exists.".into()))?;
    let wave = rollout.wave().environments.clone();
    for target in wave {
        match target.state {
            TargetState::Pending => {
                let env: Planned = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{SELECT_PLANNED} WHERE e.id = $1 FOR UPDATE OF e"
                )))
                .bind(target.id)
                .fetch_one(&mut *tx)
                .await?;
                let busy = lifecycle::maintenance_running(tx, EnvironmentId(env.id), &[]).await?;
                let replanned = if env.state != EnvState::Ready {
                    Err(format!(
                        "it is {}: roll-outs reach ready environments only; skip it",
                        env.state.label().to_lowercase()
                    ))
                } else if let Some(doing) = busy {
                    Err(format!(
                        "it is being {doing}; resume the roll-out once that job has ended"
                    ))
                } else {
                    replan(tx, platform, &revision, &env)
                        .await
                        .and_then(|(plan, changes)| match blocking(&changes) {
                            Some(why) => Err(why),
                            None => Ok((plan, changes)),
                        })
                };
                let (plan, changes) = match replanned {
                    Ok(replanned) => replanned,
                    Err(why) => {
                        let error = format!("`{}` cannot start: {why}", env.name);
                        sqlx::query(
                            "UPDATE rollout_environment SET error = $3
                             WHERE rollout_id = $1 AND environment_id = $2",
                        )
                        .bind(rollout.id)
                        .bind(env.id)
                        .bind(&error)
                        .execute(&mut *tx)
                        .await?;
                        set_state(tx, rollout, RolloutState::Paused, Some(&error)).await?;
                        continue;
                    }
                };
                let job = enqueue(tx, rollout.id, env.id).await?;
                sqlx::query(
                    "UPDATE environment SET plan = $2, blueprint_number = $3 WHERE id = $1",
                )
                .bind(env.id)
                .bind(sqlx::types::Json(&plan))
                .bind(rollout.revision)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE rollout_environment SET state = 'running', previous_plan = $3,
                         changes = $4, job_id = $5, error = NULL
                     WHERE rollout_id = $1 AND environment_id = $2",
                )
                .bind(rollout.id)
                .bind(env.id)
                .bind(sqlx::types::Json(&env.plan.0))
                .bind(sqlx::types::Json(&changes))
                .bind(job)
                .execute(&mut *tx)
                .await?;
                lifecycle::record_maintenance(
                    tx,
                    EnvironmentId(env.id),
                    None,
                    Event::RollingOut,
                    &format!(
                        "rolling revision {} out ({} changes)",
                        rollout.revision,
                        changes.len()
                    ),
                    json!({ "rollout_id": rollout.id, "job_id": job, "from_revision": env.blueprint_number }),
                    base_url,
                )
                .await?;
            }
            TargetState::Failed => rerun(tx, rollout, &target, TargetState::Running).await?,
            _ => {}
        }
    }
    Ok(())
}

/// Runs the failed `target`'s job again, as `state` (running forward or rolling back).
async fn rerun(
    tx: &mut PgConnection,
    rollout: &Rollout,
    target: &Target,
    state: TargetState,
) -> Result<(), EnvironmentError> {
    let job = enqueue(tx, rollout.id, target.id).await?;
    sqlx::query(
        "UPDATE rollout_environment SET state = $3, job_id = $4, error = NULL
         WHERE rollout_id = $1 AND environment_id = $2",
    )
    .bind(rollout.id)
    .bind(target.id)
    .bind(state)
    .bind(job)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Moves a running roll-out on once its current wave is done (as the table says now, after
/// the caller's changes): the next wave awaits its approvals, or the roll-out is complete; a
/// roll-back ends once every environment is back.
async fn advance(
    tx: &mut PgConnection,
    platform: &Platform,
    rollout: &mut Rollout,
    base_url: &str,
) -> Result<(), EnvironmentError> {
    match rollout.state {
        // Awaiting approval too: its environments may all have been skipped.
        RolloutState::Running | RolloutState::AwaitingApproval => {
            let done: bool = sqlx::query_scalar(
                "SELECT NOT EXISTS (SELECT 1 FROM rollout_environment
                                    WHERE rollout_id = $1 AND wave = $2
                                      AND state NOT IN ('succeeded', 'skipped'))",
            )
            .bind(rollout.id)
            .bind(rollout.current_wave)
            .fetch_one(&mut *tx)
            .await?;
            if !done {
                return Ok(());
            }
            if (rollout.current_wave as usize) + 1 < rollout.waves.len() {
                rollout.current_wave += 1;
                set_state(tx, rollout, RolloutState::AwaitingApproval, None).await?;
                announce_wave(tx, rollout, None, base_url).await?;
                if rollout.wave().approvals_required == 0 {
                    start_wave(tx, platform, rollout, base_url).await?;
                }
            } else {
                set_state(tx, rollout, RolloutState::Completed, None).await?;
            }
        }
        RolloutState::RollingBack => {
            let back: bool = sqlx::query_scalar(
                "SELECT NOT EXISTS (SELECT 1 FROM rollout_environment
                                    WHERE rollout_id = $1 AND state IN ('rolling_back', 'failed'))",
            )
            .bind(rollout.id)
            .fetch_one(&mut *tx)
            .await?;
            if back {
                set_state(tx, rollout, RolloutState::RolledBack, None).await?;
            }
        }
        _ => {}
    }
    Ok(())
}

async fn platform_of(tx: &mut PgConnection, rollout: Uuid) -> Result<Platform, sqlx::Error> {
    sqlx::query_as(
        "SELECT p.id, p.slug, p.name, p.description, p.owner_team, p.created_at, p.archived_at
         FROM platform p JOIN rollout r ON r.platform_id = p.id WHERE r.id = $1",
    )
    .bind(rollout)
    .fetch_one(&mut *tx)
    .await
}

/// `by` approves the current wave of the roll-out awaiting approval; the approval reaching
/// the wave's count starts it.
pub async fn approve(
    db: &PgPool,
    platform: &Platform,
    id: Uuid,
    by: &Principal,
    comment: &str,
    base_url: &str,
) -> Result<Rollout, EnvironmentError> {
    let comment = lifecycle::checked_comment(lifecycle::Decision::Approve, comment)?;
    let mut tx = db.begin().await?;
    let mut rollout = lock(&mut tx, platform.id, id).await?;
    if rollout.state != RolloutState::AwaitingApproval {
        return Err(EnvironmentError::Conflict(format!(
            "The roll-out is {}: no wave awaits approval.",
            rollout.state.label()
        )));
    }
    if rollout.starter_id == by.user.id.0 {
        return Err(EnvironmentError::NotAllowed(
            "You started this roll-out: someone else approves its waves.".into(),
        ));
    }
    let roles: Vec<Vec<String>> = sqlx::query_scalar(
        "SELECT e.approver_roles FROM rollout_environment t
         JOIN environment e ON e.id = t.environment_id
         WHERE t.rollout_id = $1 AND t.wave = $2",
    )
    .bind(id)
    .bind(rollout.current_wave)
    .fetch_all(&mut *tx)
    .await?;
    if let Some(missing) = roles.iter().find(|r| !lifecycle::holds_any(by, r)) {
        return Err(EnvironmentError::NotAllowed(format!(
            "This wave reaches an environment only these roles approve: {}.",
            missing.join(", ")
        )));
    }
    let inserted = sqlx::query(
        "INSERT INTO rollout_approval (rollout_id, wave, starter_id, approver_id, comment)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(rollout.current_wave)
    .bind(rollout.starter_id)
    .bind(by.user.id.0)
    .bind(comment)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(EnvironmentError::Conflict(format!(
            "You have approved this wave already; it needs {} approvals from different people.",
            rollout.wave().approvals_required
        )));
    }
    audit(
        &mut tx,
        by,
        "rollout.wave_approved",
        platform,
        id,
        json!({ "wave": rollout.current_wave, "comment": comment }),
    )
    .await?;
    let approvals = rollout.wave().approved_by.len() + 1;
    if approvals >= rollout.wave().approvals_required as usize {
        start_wave(&mut tx, platform, &mut rollout, base_url).await?;
        advance(&mut tx, platform, &mut rollout, base_url).await?;
    }
    tx.commit().await?;
    get(db, platform.id, id).await
}

/// Pauses the roll-out: no new wave or environment starts; the jobs running finish.
pub async fn pause(
    db: &PgPool,
    platform: &Platform,
    id: Uuid,
    by: &Principal,
) -> Result<Rollout, EnvironmentError> {
    let mut tx = db.begin().await?;
    let mut rollout = lock(&mut tx, platform.id, id).await?;
    if !matches!(
        rollout.state,
        RolloutState::AwaitingApproval | RolloutState::Running
    ) {
        return Err(EnvironmentError::Conflict(format!(
            "The roll-out is {}: only one awaiting approval or running is paused.",
            rollout.state.label()
        )));
    }
    let why = format!("paused by {}", by.user.email);
    set_state(&mut tx, &mut rollout, RolloutState::Paused, Some(&why)).await?;
    audit(&mut tx, by, "rollout.paused", platform, id, json!({})).await?;
    tx.commit().await?;
    get(db, platform.id, id).await
}

/// Goes on with a paused roll-out (its failed environments run again), or retries what
/// failed while rolling back.
pub async fn resume(
    db: &PgPool,
    platform: &Platform,
    id: Uuid,
    by: &Principal,
    base_url: &str,
) -> Result<Rollout, EnvironmentError> {
    let mut tx = db.begin().await?;
    let mut rollout = lock(&mut tx, platform.id, id).await?;
    match rollout.state {
        RolloutState::Paused => {
            let wave = rollout.wave();
            if wave.approved_by.len() < wave.approvals_required as usize {
                set_state(&mut tx, &mut rollout, RolloutState::AwaitingApproval, None).await?;
            } else {
                start_wave(&mut tx, platform, &mut rollout, base_url).await?;
                advance(&mut tx, platform, &mut rollout, base_url).await?;
            }
        }
        RolloutState::RollingBack => {
            let failed: Vec<Target> = rollout
                .waves
                .iter()
                .flat_map(|w| &w.environments)
                .filter(|t| t.state == TargetState::Failed)
                .cloned()
                .collect();
            if failed.is_empty() {
                return Err(EnvironmentError::Conflict(
                    "The roll-back is running: nothing failed to retry.".into(),
                ));
            }
            for target in &failed {
                rerun(&mut tx, &rollout, target, TargetState::RollingBack).await?;
            }
            set_state(&mut tx, &mut rollout, RolloutState::RollingBack, None).await?;
        }
        other => {
            return Err(EnvironmentError::Conflict(format!(
                "The roll-out is {}: only a paused one is resumed.",
                other.label()
            )));
        }
    }
    audit(&mut tx, by, "rollout.resumed", platform, id, json!({})).await?;
    tx.commit().await?;
    get(db, platform.id, id).await
}

/// Puts `env`'s previous plan and revision back (a skip of a failed environment, or a
/// roll-back).
async fn restore(tx: &mut PgConnection, rollout: Uuid, env: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE environment e SET plan = t.previous_plan, blueprint_number = t.from_revision
         FROM rollout_environment t
         WHERE t.rollout_id = $1 AND t.environment_id = $2 AND e.id = t.environment_id
           AND t.previous_plan IS NOT NULL",
    )
    .bind(rollout)
    .bind(env)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Leaves `environment` out of the roll-out: a pending one stays as it is, a failed one gets
/// its previous plan and revision back.
pub async fn skip(
    db: &PgPool,
    platform: &Platform,
    id: Uuid,
    environment: Option<Uuid>,
    by: &Principal,
    base_url: &str,
) -> Result<Rollout, EnvironmentError> {
    let mut tx = db.begin().await?;
    let mut rollout = lock(&mut tx, platform.id, id).await?;
    let Some(environment) = environment else {
        let mut errors = FieldErrors::default();
        errors.add("environment_id", "Name the environment to skip.");
        return Err(errors.into());
    };
    if !matches!(
        rollout.state,
        RolloutState::AwaitingApproval | RolloutState::Running | RolloutState::Paused
    ) {
        return Err(EnvironmentError::Conflict(format!(
            "The roll-out is {}: nothing is left to skip.",
            rollout.state.label()
        )));
    }
    let Some(target) = rollout
        .waves
        .iter()
        .flat_map(|w| &w.environments)
        .find(|t| t.id == environment)
        .cloned()
    else {
        let mut errors = FieldErrors::default();
        errors.add("environment_id", "This environment is not in the roll-out.");
        return Err(errors.into());
    };
    if !matches!(target.state, TargetState::Pending | TargetState::Failed) {
        return Err(EnvironmentError::Conflict(format!(
            "`{}` is {} in this roll-out: only a pending or failed environment is skipped.",
            target.name,
            target.state.label()
        )));
    }
    if target.state == TargetState::Failed {
        restore(&mut tx, id, environment).await?;
    }
    sqlx::query(
        "UPDATE rollout_environment SET state = 'skipped'
         WHERE rollout_id = $1 AND environment_id = $2",
    )
    .bind(id)
    .bind(environment)
    .execute(&mut *tx)
    .await?;
    lifecycle::record_maintenance(
        &mut tx,
        EnvironmentId(environment),
        Some(by),
        Event::RolloutSkipped,
        &format!(
            "left out of the roll-out of revision {}; it runs revision {}",
            rollout.revision, target.from_revision
        ),
        json!({ "rollout_id": id }),
        base_url,
    )
    .await?;
    audit(
        &mut tx,
        by,
        "rollout.skipped",
        platform,
        id,
        json!({ "environment_id": environment }),
    )
    .await?;
    advance(&mut tx, platform, &mut rollout, base_url).await?;
    tx.commit().await?;
    get(db, platform.id, id).await
}

/// Puts every environment the roll-out reached back on its previous revision's plan (each
/// with a roll-out job), leaving the others as they are.
pub async fn roll_back(
    db: &PgPool,
    platform: &Platform,
    id: Uuid,
    by: &Principal,
    base_url: &str,
) -> Result<Rollout, EnvironmentError> {
    let mut tx = db.begin().await?;
    // As a start does: a completed roll-out rolling back opens again.
    crate::define::platforms::lock(&mut tx, platform.id).await?;
    let mut rollout = lock(&mut tx, platform.id, id).await?;
    if !matches!(
        rollout.state,
        RolloutState::AwaitingApproval
            | RolloutState::Running
            | RolloutState::Paused
            | RolloutState::Completed
    ) {
        return Err(EnvironmentError::Conflict(format!(
            "The roll-out is {}: there is nothing to roll back.",
            rollout.state.label()
        )));
    }
    let later: Option<i32> = sqlx::query_scalar(
        "SELECT revision FROM rollout WHERE platform_id = $1 AND id <> $2 AND created_at > $3
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(platform.id)
    .bind(id)
    .bind(rollout.created_at)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(later) = later {
        return Err(EnvironmentError::Conflict(format!(
            "A later roll-out (revision {later}) came after this one: roll that one back instead."
        )));
    }
    let targets: Vec<Target> = rollout
        .waves
        .iter()
        .flat_map(|w| w.environments.clone())
        .collect();
    if let Some(busy) = targets.iter().find(|t| t.state == TargetState::Running) {
        return Err(EnvironmentError::Conflict(format!(
            "`{}` is being rolled out right now: pause the roll-out, wait for its job to end, then roll back.",
            busy.name
        )));
    }
    set_state(&mut tx, &mut rollout, RolloutState::RollingBack, None).await?;
    for target in &targets {
        match target.state {
            TargetState::Pending => {
                sqlx::query(
                    "UPDATE rollout_environment SET state = 'skipped'
                     WHERE rollout_id = $1 AND environment_id = $2",
                )
                .bind(id)
                .bind(target.id)
                .execute(&mut *tx)
                .await?;
            }
            TargetState::Succeeded | TargetState::Failed => {
                lifecycle::lock_ready(&mut tx, EnvironmentId(target.id), "a roll-back runs")
                    .await?;
                sqlx::query(
                    "UPDATE rollout_environment t SET rollout_plan = e.plan
                     FROM environment e
                     WHERE t.rollout_id = $1 AND t.environment_id = $2 AND e.id = t.environment_id",
                )
                .bind(id)
                .bind(target.id)
                .execute(&mut *tx)
                .await?;
                restore(&mut tx, id, target.id).await?;
                rerun(&mut tx, &rollout, target, TargetState::RollingBack).await?;
                lifecycle::record_maintenance(
                    &mut tx,
                    EnvironmentId(target.id),
                    Some(by),
                    Event::RollingOut,
                    &format!("rolling back to revision {}'s plan", target.from_revision),
                    json!({ "rollout_id": id }),
                    base_url,
                )
                .await?;
            }
            _ => {}
        }
    }
    audit(&mut tx, by, "rollout.rolling_back", platform, id, json!({})).await?;
    advance(&mut tx, platform, &mut rollout, base_url).await?;
    tx.commit().await?;
    get(db, platform.id, id).await
}

/// The roll-out job's way back: [`RolloutOwner`] over the database.
pub struct Recorder {
    pub db: PgPool,
    pub base_url: String,
}

impl Recorder {
    /// Ends the job of `environment` in `rollout`: done (with its outputs) or failed (`error`).
    /// A no-op when it has ended already (a re-run of the last step).
    async fn finish(
        &self,
        rollout: Uuid,
        environment: Uuid,
        outcome: Result<Value, String>,
    ) -> Result<(), EnvironmentError> {
        let mut tx = self.db.begin().await?;
        let platform = platform_of(&mut tx, rollout).await?;
        let mut locked = lock(&mut tx, platform.id, rollout).await?;
        let Some(target) = locked
            .waves
            .iter()
            .flat_map(|w| &w.environments)
            .find(|t| t.id == environment)
            .cloned()
        else {
            return Ok(());
        };
        let back = target.state == TargetState::RollingBack;
        if !matches!(
            target.state,
            TargetState::Running | TargetState::RollingBack
        ) {
            return Ok(());
        }
        let (state, event, message) = match &outcome {
            Ok(_) if back => (
                TargetState::RolledBack,
                Event::RolledOut,
                format!("back on revision {}", target.from_revision),
            ),
            Ok(_) => (
                TargetState::Succeeded,
                Event::RolledOut,
                format!("runs revision {} now, healthy", locked.revision),
            ),
            Err(e) => (
                TargetState::Failed,
                Event::RolloutFailed,
                format!(
                    "{} revision {} failed: {e}",
                    if back {
                        "rolling back from"
                    } else {
                        "rolling out"
                    },
                    locked.revision
                ),
            ),
        };
        sqlx::query(
            "UPDATE rollout_environment SET state = $3, error = $4
             WHERE rollout_id = $1 AND environment_id = $2",
        )
        .bind(rollout)
        .bind(environment)
        .bind(state)
        .bind(outcome.as_ref().err())
        .execute(&mut *tx)
        .await?;
        if let Ok(outputs) = &outcome {
            sqlx::query("UPDATE environment SET outputs = outputs || $2 WHERE id = $1")
                .bind(environment)
                .bind(outputs)
                .execute(&mut *tx)
                .await?;
        }
        lifecycle::record_maintenance(
            &mut tx,
            EnvironmentId(environment),
            None,
            event,
            &message,
            json!({ "rollout_id": rollout, "error": outcome.as_ref().err() }),
            &self.base_url,
        )
        .await?;
        match (&outcome, locked.state) {
            (Err(e), RolloutState::Running | RolloutState::AwaitingApproval) => {
                let why = format!("`{}` failed: {e}", target.name);
                set_state(&mut tx, &mut locked, RolloutState::Paused, Some(&why)).await?;
            }
            (Err(e), RolloutState::RollingBack) => {
                let why = format!("rolling `{}` back failed: {e}", target.name);
                set_state(&mut tx, &mut locked, RolloutState::RollingBack, Some(&why)).await?;
            }
            _ => advance(&mut tx, &platform, &mut locked, &self.base_url).await?,
        }
        tx.commit().await?;
        Ok(())
    }
}

impl RolloutOwner for Recorder {
    fn running(&self, rollout: Uuid, environment: Uuid) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            let found: Option<(TargetState, EnvState)> = sqlx::query_as(
                "SELECT t.state, e.state::text FROM rollout_environment t
                 JOIN environment e ON e.id = t.environment_id
                 WHERE t.rollout_id = $1 AND t.environment_id = $2",
            )
            .bind(rollout)
            .bind(environment)
            .fetch_optional(&self.db)
            .await
            .map_err(step_error)?;
            match found {
                Some((TargetState::Running | TargetState::RollingBack, EnvState::Ready)) => Ok(()),
                Some((TargetState::Running | TargetState::RollingBack, env)) => {
                    Err(StepError::Permanent(format!(
                        "the environment is {}: roll-outs reach ready environments only",
                        env.label().to_lowercase()
                    )))
                }
                Some((state, _)) => Err(StepError::Permanent(format!(
                    "the environment is {} in this roll-out, not running: resume the roll-out \
                     from its page (or POST …/rollouts/{{id}}/resume), which records it",
                    state.label()
                ))),
                None => Err(StepError::Permanent("the roll-out no longer exists".into())),
            }
        })
    }

    fn left_plan(
        &self,
        rollout: Uuid,
        environment: Uuid,
    ) -> BoxFuture<'_, Result<Value, StepError>> {
        Box::pin(async move {
            let plan: Option<Value> = sqlx::query_scalar(
                "SELECT CASE WHEN t.state = 'rolling_back' THEN t.rollout_plan
                             ELSE t.previous_plan END
                 FROM rollout_environment t WHERE t.rollout_id = $1 AND t.environment_id = $2",
            )
            .bind(rollout)
            .bind(environment)
            .fetch_optional(&self.db)
            .await
            .map_err(step_error)?
            .flatten();
            Ok(plan.unwrap_or_else(|| json!([])))
        })
    }

    fn succeeded(
        &self,
        rollout: Uuid,
        environment: Uuid,
        outputs: Value,
    ) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            self.finish(rollout, environment, Ok(outputs))
                .await
                .map_err(step_error)
        })
    }

    fn failed(
        &self,
        rollout: Uuid,
        environment: Uuid,
        error: String,
    ) -> BoxFuture<'_, Result<(), StepError>> {
        Box::pin(async move {
            self.finish(rollout, environment, Err(error))
                .await
                .map_err(step_error)
        })
    }
}

/// The owner the provisioning module's roll-out jobs report to.
pub fn owner(db: &PgPool, base_url: &str) -> Arc<dyn RolloutOwner> {
    Arc::new(Recorder {
        db: db.clone(),
        base_url: base_url.to_owned(),
    })
}
