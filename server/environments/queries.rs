//! Reading environments: the approvals dashboard's queues, the inventories ("my environments",
//! `GET /api/v1/environments`) and one environment with its approvals and timeline. Lists are
//! one query each (requester and platform joined, never fetched per row) with keyset paging on
//! an indexed order.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::pricing::{HOURS_PER_MONTH, Micros};
use super::{EnvState, EnvironmentId};
use crate::auth::UserId;
use crate::jobs::queue::JobView;
use crate::provision::plan::{Parameters, PlanStep};
use crate::provision::{EnvironmentJobPayload, PROVISION_JOB, TEARDOWN_JOB};

/// Which list: each has its own order, and its own index behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    /// Awaiting a decision (new requests and extensions), oldest first.
    Pending,
    /// Decided, most recent decision first.
    Decided,
    /// Approved and not yet settled: provisioning, failed, tearing down.
    InFlight,
    /// Everything, newest first.
    #[default]
    All,
}

impl View {
    pub fn parse(text: &str) -> Option<View> {
        Some(match text {
            "pending" => View::Pending,
            "decided" => View::Decided,
            "in_flight" => View::InFlight,
            "all" => View::All,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            View::Pending => "pending",
            View::Decided => "decided",
            View::InFlight => "in_flight",
            View::All => "all",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub view: View,
    /// Platform slug.
    pub platform: Option<String>,
    pub environment_type: Option<String>,
    /// The requester's e-mail address.
    pub requester: Option<String>,
    pub state: Option<EnvState>,
    /// Words in the name or purpose.
    pub search: Option<String>,
    /// Only the environments of this user ("my environments").
    pub requested_by: Option<Uuid>,
    /// Only those this user requested or one of their teams uses (what a developer sees).
    pub visible_to: Option<Uuid>,
}

/// One row of a list.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Summary {
    pub id: Uuid,
    pub platform_slug: String,
    pub platform_name: String,
    pub name: String,
    pub environment_type: String,
    pub state: EnvState,
    pub lifecycle: crate::define::blueprint::Lifecycle,
    pub requested_by: Uuid,
    pub requester_name: String,
    pub requester_email: String,
    pub approvals_required: i32,
    pub approval_count: i32,
    pub cost_hourly_micros: i64,
    pub cost_max_hourly_micros: i64,
    pub ttl_hours: Option<i32>,
    pub extension_hours: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub awaiting_since: Option<DateTime<Utc>>,
    pub sla_due_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub job_id: Option<i64>,
    pub job_state: Option<String>,
}

impl Summary {
    pub fn state(&self) -> EnvState {
        self.state
    }

    pub fn monthly(&self) -> Micros {
        Micros(self.cost_hourly_micros * HOURS_PER_MONTH)
    }

    pub fn max_monthly(&self) -> Micros {
        Micros(self.cost_max_hourly_micros * HOURS_PER_MONTH)
    }

    /// Whether it waits past the approval SLA.
    pub fn sla_breached(&self, now: DateTime<Utc>) -> bool {
        self.awaiting_since.is_some() && self.sla_due_at < now
    }

    /// The keyset cursor of this row in `view`.
    pub fn cursor(&self, view: View) -> String {
        let at = match view {
            View::Pending => self.awaiting_since.unwrap_or(self.created_at),
            View::Decided => self.decided_at.unwrap_or(self.created_at),
            View::InFlight | View::All => self.created_at,
        };
        format!("{}_{}", at.timestamp_micros(), self.id)
    }
}

const SUMMARY_COLUMNS: &str = "e.id, p.slug AS platform_slug, p.name AS platform_name, e.name,
    e.environment_type, e.state, e.lifecycle, e.requested_by, u.name AS requester_name,
    u.email AS requester_email, e.approvals_required, e.approval_count, e.cost_hourly_micros,
    e.cost_max_hourly_micros, e.ttl_hours, e.extension_hours, e.created_at, e.awaiting_since,
    e.sla_due_at, e.decided_at, e.expires_at, e.job_id, j.state AS job_state";

const FROM: &str = "FROM environment e JOIN platform p ON p.id = e.platform_id
    JOIN app_user u ON u.id = e.requested_by LEFT JOIN job j ON j.id = e.job_id";

/// One page of `filter`'s list after the keyset cursor `after` (`(at, id)` of the last row).
pub async fn list(
    db: &PgPool,
    filter: &Filter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Summary>, sqlx::Error> {
    // Only constant SQL is chosen here; every value is a bound parameter.
    let (view_condition, key, order, cmp) = match filter.view {
        View::Pending => (
            "e.awaiting_since IS NOT NULL",
            "e.awaiting_since",
            "e.awaiting_since, e.id",
            ">",
        ),
        View::Decided => (
            "e.decided_at IS NOT NULL",
            "e.decided_at",
            "e.decided_at DESC, e.id DESC",
            "<",
        ),
        View::InFlight => (
            "e.state IN ('approved', 'provisioning', 'failed', 'tearing_down')",
            "e.created_at",
            "e.created_at DESC, e.id DESC",
            "<",
        ),
        View::All => ("true", "e.created_at", "e.created_at DESC, e.id DESC", "<"),
    };
    // Only the filters given become SQL, so each combination gets a plan of its own (a generic
    // `$n IS NULL OR …` plan cannot use the right index); every value is a bound parameter.
    let mut query = sqlx::QueryBuilder::new(format!(
        "SELECT {SUMMARY_COLUMNS} {FROM} WHERE {view_condition}"
    ));
    if let Some((at, id)) = after {
        query.push(format!(" AND ({key}, e.id) {cmp} ("));
        query.push_bind(at).push(", ").push_bind(id).push(")");
    }
    if let Some(slug) = &filter.platform {
        query
            .push(" AND e.platform_id = (SELECT id FROM platform WHERE slug = ")
            .push_bind(slug)
            .push(")");
    }
    if let Some(ty) = &filter.environment_type {
        query.push(" AND e.environment_type = ").push_bind(ty);
    }
    if let Some(email) = &filter.requester {
        query
            .push(" AND e.requested_by = (SELECT id FROM app_user WHERE lower(email) = lower(")
            .push_bind(email)
            .push("))");
    }
    if let Some(state) = filter.state {
        query.push(" AND e.state = ").push_bind(state.as_str());
    }
    if let Some(search) = &filter.search {
        // Through the trigram index on name and purpose (the requester has a filter of its own).
        query
            .push(" AND (e.name || ' ' || e.purpose) ILIKE ")
            .push_bind(crate::db::contains_pattern(search));
    }
    if let Some(user) = filter.requested_by {
        query.push(" AND e.requested_by = ").push_bind(user);
    }
    if let Some(user) = filter.visible_to {
        // The teams' environments are read once (an InitPlan), so both sides use an index.
        query
            .push(" AND (e.requested_by = ")
            .push_bind(user)
            .push(" OR e.id = ANY(ARRAY(")
            .push(crate::teams::ENVIRONMENTS_OF_USER)
            .push_bind(user)
            .push(")))");
    }
    // The limit is a number of ours, written into the SQL: a plan that knows it stops after a
    // page of rows read in index order, where a generic plan for `LIMIT $n` may sort them all.
    query.push(format!(" ORDER BY {order} LIMIT {limit}"));
    query.build_query_as().fetch_all(db).await
}

/// One environment in full.
#[derive(Debug, Clone)]
pub struct Detail {
    pub summary: Summary,
    pub platform_id: Uuid,
    pub purpose: String,
    pub parameters: Parameters,
    pub outputs: serde_json::Value,
    pub blueprint_number: i32,
    pub approver_roles: Vec<String>,
    pub max_ttl_hours: Option<i32>,
    pub pending_until: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
    pub round: i32,
}

#[derive(sqlx::FromRow)]
struct DetailRow {
    #[sqlx(flatten)]
    summary: Summary,
    platform_id: Uuid,
    purpose: String,
    parameters: serde_json::Value,
    outputs: serde_json::Value,
    blueprint_number: i32,
    approver_roles: Vec<String>,
    max_ttl_hours: Option<i32>,
    pending_until: DateTime<Utc>,
    ready_at: Option<DateTime<Utc>>,
    round: i32,
}

/// The columns of a [`Detail`], after [`SUMMARY_COLUMNS`].
const DETAIL_COLUMNS: &str = "e.platform_id, e.purpose, e.parameters, e.outputs,
    e.blueprint_number, e.approver_roles, e.max_ttl_hours, e.pending_until, e.ready_at, e.round";

impl From<DetailRow> for Detail {
    fn from(r: DetailRow) -> Detail {
        Detail {
            summary: r.summary,
            platform_id: r.platform_id,
            purpose: r.purpose,
            // Written by Slipway from these very types; a row that does not read back is a bug.
            parameters: serde_json::from_value(r.parameters).unwrap_or(Parameters {
                instance_type: String::new(),
                min_nodes: 0,
                max_nodes: 0,
                data_services: vec![],
            }),
            outputs: r.outputs,
            blueprint_number: r.blueprint_number,
            approver_roles: r.approver_roles,
            max_ttl_hours: r.max_ttl_hours,
            pending_until: r.pending_until,
            ready_at: r.ready_at,
            round: r.round,
        }
    }
}

/// One environment without its plan: every route on an environment reads this to authorize,
/// and the plan (every AWS action and Kubernetes object, the bulk of the row) is read only by
/// the views that show it ([`plan`]).
pub async fn get(db: &PgPool, id: EnvironmentId) -> Result<Option<Detail>, sqlx::Error> {
    let sql = format!("SELECT {SUMMARY_COLUMNS}, {DETAIL_COLUMNS} {FROM} WHERE e.id = $1");
    let row: Option<DetailRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id.0)
        .fetch_optional(db)
        .await?;
    Ok(row.map(Detail::from))
}

/// An environment as one caller sees it: what the policy needs to know of them besides its
/// requester and their roles.
#[derive(Debug, Clone)]
pub struct Seen {
    pub detail: Detail,
    /// A member of the environment's platform.
    pub is_member: bool,
    /// In one of the teams the environment was built for.
    pub in_team: bool,
}

/// [`get`] with the caller's relation to it, in one round trip: every environment page and
/// action needs both before anything else.
pub async fn get_seen_by(
    db: &PgPool,
    id: EnvironmentId,
    user: UserId,
) -> Result<Option<Seen>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct SeenRow {
        #[sqlx(flatten)]
        detail: DetailRow,
        is_member: bool,
        in_team: bool,
    }
    // Who is in a team is the teams module's rule (by name, or through an OIDC group).
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, {DETAIL_COLUMNS},
             EXISTS (SELECT 1 FROM platform_member m
                     WHERE m.platform_id = e.platform_id AND m.user_id = $2) AS is_member,
             e.id IN ({teams} $2) AS in_team
         {FROM} WHERE e.id = $1",
        teams = crate::teams::ENVIRONMENTS_OF_USER
    );
    let row: Option<SeenRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id.0)
        .bind(user.0)
        .fetch_optional(db)
        .await?;
    Ok(row.map(|r| Seen {
        detail: r.detail.into(),
        is_member: r.is_member,
        in_team: r.in_team,
    }))
}

/// The environment's plan, as approved (empty for an unknown id).
pub async fn plan(db: &PgPool, id: EnvironmentId) -> Result<Vec<PlanStep>, sqlx::Error> {
    // As text, decoded once into the typed plan (not into a `Value` first: a plan is ~85 KB).
    let plan: Option<String> =
        sqlx::query_scalar("SELECT plan::text FROM environment WHERE id = $1")
            .bind(id.0)
            .fetch_optional(db)
            .await?;
    // Written by Slipway from these very types, as the rest of the row (see `get`).
    Ok(plan
        .and_then(|p| serde_json::from_str(&p).ok())
        .unwrap_or_default())
}

/// One line of the plan's outline, as the environment's page lists it: which step makes which
/// call on which resource, without the call's values. Decoded from the `[step, action,
/// resource]` arrays of the `plan_outline` column (serde reads a struct from an array in order).
#[derive(Debug, Clone, Deserialize)]
pub struct PlanLine {
    pub step: String,
    pub action: String,
    pub resource: String,
}

impl From<&PlanStep> for PlanLine {
    fn from(s: &PlanStep) -> Self {
        PlanLine {
            step: s.step.as_str().to_owned(),
            action: s.action.name().to_owned(),
            resource: s.resource.clone(),
        }
    }
}

/// The plan's outline, in plan order (empty for an unknown id). Read from the column the
/// database derives from the plan (`plan_outline`, a few KB), so that a page view neither reads
/// nor parses the plan's values (a full plan is about 85 KB).
pub async fn plan_outline(db: &PgPool, id: EnvironmentId) -> Result<Vec<PlanLine>, sqlx::Error> {
    let outline: Option<sqlx::types::Json<Vec<PlanLine>>> =
        sqlx::query_scalar("SELECT plan_outline FROM environment WHERE id = $1")
            .bind(id.0)
            .fetch_optional(db)
            .await?;
    Ok(outline.map(|o| o.0).unwrap_or_default())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ApprovalView {
    pub approver: String,
    #[serde(skip)]
    pub approver_id: Uuid,
    pub round: i32,
    pub verdict: String,
    pub comment: String,
    pub created_at: DateTime<Utc>,
}

pub async fn approvals(db: &PgPool, id: EnvironmentId) -> Result<Vec<ApprovalView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT u.name AS approver, a.approver_id, a.round, a.verdict, a.comment, a.created_at
         FROM environment_approval a JOIN app_user u ON u.id = a.approver_id
         WHERE a.environment_id = $1 ORDER BY a.created_at, a.id",
    )
    .bind(id.0)
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub kind: String,
    pub actor: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

pub async fn timeline(db: &PgPool, id: EnvironmentId) -> Result<Vec<TimelineEntry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, actor_label AS actor, message, created_at FROM environment_event
         WHERE environment_id = $1 ORDER BY id",
    )
    .bind(id.0)
    .fetch_all(db)
    .await
}

/// The platform's live DevOps environment (id and state), if it has one.
pub async fn devops(db: &PgPool, platform: Uuid) -> Result<Option<(Uuid, EnvState)>, sqlx::Error> {
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "SELECT id, state FROM environment
         WHERE platform_id = $1 AND name = $2
           AND state NOT IN ('rejected', 'cancelled', 'expired', 'torn_down')",
    )
    .bind(platform)
    .bind(crate::provision::plan::DEVOPS_ENVIRONMENT)
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|(id, state)| EnvState::parse(&state).map(|s| (id, s))))
}

/// The environment a job works on, for the jobs pages.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobEnvironment {
    pub id: Uuid,
    pub name: String,
    pub platform_name: String,
}

/// `jobs`, each with the environment it provisions or tears down (none for other kinds): one
/// query for the whole page, by the ids in the environment jobs' payloads.
pub async fn with_environments(
    db: &PgPool,
    jobs: Vec<JobView>,
) -> Result<Vec<(JobView, Option<JobEnvironment>)>, sqlx::Error> {
    let ids: Vec<Option<Uuid>> = jobs.iter().map(environment_of).collect();
    let wanted: Vec<Uuid> = ids.iter().flatten().copied().collect();
    let found: Vec<JobEnvironment> = if wanted.is_empty() {
        vec![]
    } else {
        sqlx::query_as(
            "SELECT e.id, e.name, p.name AS platform_name
             FROM environment e JOIN platform p ON p.id = e.platform_id WHERE e.id = ANY($1)",
        )
        .bind(&wanted)
        .fetch_all(db)
        .await?
    };
    let by_id: HashMap<Uuid, JobEnvironment> = found.into_iter().map(|e| (e.id, e)).collect();
    Ok(jobs
        .into_iter()
        .zip(ids)
        .map(|(job, id)| (job, id.and_then(|id| by_id.get(&id).cloned())))
        .collect())
}

fn environment_of(job: &JobView) -> Option<Uuid> {
    if job.kind != PROVISION_JOB && job.kind != TEARDOWN_JOB {
        return None;
    }
    EnvironmentJobPayload::deserialize(&job.payload)
        .ok()
        .map(|p| p.environment_id)
}
