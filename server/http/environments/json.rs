//! The typed request and response bodies of the environments API, shaped as API.md lays them
//! out. The provisioning types they carry (`Parameters`, `PlanStep`) have no schema of their
//! own and are documented as objects.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::define::blueprint::Lifecycle;
use crate::environments::EnvState;
use crate::environments::lifecycle::{Decided, Extended};
use crate::environments::pricing::{CostLine, Estimate, Micros};
use crate::environments::queries::{ApprovalView, Detail, Summary, TimelineEntry};
use crate::environments::request::{CheckedRequest, RawRequest};
use crate::jobs::queue::{JobState, JobView, StepView};
use crate::provision::plan::{Parameters, PlanStep};

/// Text or a number, kept as the text the checks read: `"ttl_hours": 24` and `"24"` are the same
/// request, and a form and a JSON body get the same messages.
pub struct TextOrNumber(String);

impl<'de> Deserialize<'de> for TextOrNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Scalar;

        impl Visitor<'_> for Scalar {
            type Value = TextOrNumber;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a number")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TextOrNumber, E> {
                Ok(TextOrNumber(v.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TextOrNumber, E> {
                Ok(TextOrNumber(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TextOrNumber, E> {
                Ok(TextOrNumber(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TextOrNumber, E> {
                // As JSON writes it (`24.0`), so a fraction is refused by the checks.
                Ok(TextOrNumber(
                    serde_json::Number::from_f64(v)
                        .map_or_else(|| v.to_string(), |n| n.to_string()),
                ))
            }
        }

        deserializer.deserialize_any(Scalar)
    }
}

impl utoipa::PartialSchema for TextOrNumber {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::String))
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .description(Some("Text or a number"))
            .into()
    }
}

impl utoipa::ToSchema for TextOrNumber {}

fn text(value: Option<TextOrNumber>) -> Option<String> {
    value.map(|v| v.0)
}

/// The body of `POST /api/v1/platforms/{slug}/environments`. What is left out takes the
/// environment type's default; what is given is checked against the type.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequestBody {
    environment_type: Option<String>,
    name: Option<String>,
    purpose: Option<String>,
    ttl_hours: Option<TextOrNumber>,
    parameters: Option<RequestParameters>,
}

/// The cluster a request asks for.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestParameters {
    instance_type: Option<TextOrNumber>,
    min_nodes: Option<TextOrNumber>,
    max_nodes: Option<TextOrNumber>,
    /// Names of the type's data services.
    data_services: Option<Vec<String>>,
}

impl From<NewRequestBody> for RawRequest {
    fn from(body: NewRequestBody) -> Self {
        let (instance_type, min_nodes, max_nodes, data_services) = match body.parameters {
            Some(p) => (
                text(p.instance_type),
                text(p.min_nodes),
                text(p.max_nodes),
                p.data_services,
            ),
            None => (None, None, None, None),
        };
        RawRequest {
            environment_type: body.environment_type.unwrap_or_default(),
            name: body.name.unwrap_or_default(),
            purpose: body.purpose.unwrap_or_default(),
            ttl_hours: text(body.ttl_hours),
            instance_type,
            min_nodes,
            max_nodes,
            data_services,
        }
    }
}

/// The body of `POST …/approve`, which may also be empty.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    pub comment: Option<String>,
}

/// The body of `POST …/reject`; the reason is required.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    pub reason: Option<String>,
}

/// The body of `POST …/extend`: the new TTL, counted from when the environment became ready.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    ttl_hours: Option<TextOrNumber>,
}

impl ExtendBody {
    pub fn ttl_hours(self) -> String {
        text(self.ttl_hours).unwrap_or_default()
    }
}

/// Who asked for an environment.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Requester {
    pub id: Uuid,
    pub name: String,
    pub email: String,
}

/// An environment's estimate as its list row shows it, in US dollars.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CostSummary {
    pub hourly_usd: f64,
    pub monthly_usd: f64,
    pub max_hourly_usd: f64,
    pub max_monthly_usd: f64,
}

/// What a list row and the full environment share.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnvironmentFields {
    pub id: Uuid,
    /// The platform's slug.
    pub platform: String,
    pub environment_type: String,
    pub name: String,
    pub state: EnvState,
    pub lifecycle: Lifecycle,
    pub requested_by: Requester,
    pub cost_estimate: CostSummary,
    pub ttl_hours: Option<i32>,
    /// The TTL an extension awaiting approval asks for.
    pub extension_requested_hours: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub awaiting_since: Option<DateTime<Utc>>,
    pub sla_due_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<&Summary> for EnvironmentFields {
    fn from(s: &Summary) -> Self {
        EnvironmentFields {
            id: s.id,
            platform: s.platform_slug.clone(),
            environment_type: s.environment_type.clone(),
            name: s.name.clone(),
            state: s.state,
            lifecycle: s.lifecycle,
            requested_by: Requester {
                id: s.requested_by,
                name: s.requester_name.clone(),
                email: s.requester_email.clone(),
            },
            cost_estimate: CostSummary {
                hourly_usd: Micros(s.cost_hourly_micros).usd(),
                monthly_usd: s.monthly().usd(),
                max_hourly_usd: Micros(s.cost_max_hourly_micros).usd(),
                max_monthly_usd: s.max_monthly().usd(),
            },
            ttl_hours: s.ttl_hours,
            extension_requested_hours: s.extension_hours,
            created_at: s.created_at,
            awaiting_since: s.awaiting_since,
            sla_due_at: s.sla_due_at,
            decided_at: s.decided_at,
            expires_at: s.expires_at,
        }
    }
}

/// Approvals given of those the policy requires, this round.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ApprovalCount {
    pub have: i32,
    pub required: i32,
}

/// The environment's current job, as a list row names it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobRef {
    pub id: i64,
    pub state: Option<String>,
}

/// One environment of a list (`GET /api/v1/environments`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnvironmentSummary {
    #[serde(flatten)]
    pub fields: EnvironmentFields,
    pub approvals: ApprovalCount,
    pub job: Option<JobRef>,
}

impl From<&Summary> for EnvironmentSummary {
    fn from(s: &Summary) -> Self {
        EnvironmentSummary {
            fields: EnvironmentFields::from(s),
            approvals: ApprovalCount {
                have: s.approval_count,
                required: s.approvals_required,
            },
            job: s.job_id.map(|id| JobRef {
                id,
                state: s.job_state.clone(),
            }),
        }
    }
}

/// The environment's current job with its steps.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnvironmentJob {
    pub id: i64,
    pub state: JobState,
    pub kind: String,
    pub steps: Vec<StepView>,
}

impl EnvironmentJob {
    pub fn new(job: JobView, steps: Vec<StepView>) -> Self {
        EnvironmentJob {
            id: job.id,
            state: job.state,
            kind: job.kind,
            steps,
        }
    }
}

/// One environment in full (`GET /api/v1/environments/{id}`).
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnvironmentDetail {
    #[serde(flatten)]
    pub fields: EnvironmentFields,
    pub purpose: String,
    /// `{instance_type, min_nodes, max_nodes, data_services}`.
    #[schema(value_type = Object)]
    pub parameters: Parameters,
    /// The dry-run plan: `[{step, action, resource, details}]`.
    #[schema(value_type = Vec<Object>)]
    pub plan: Vec<PlanStep>,
    /// What provisioning made: `{account_id, cluster_name, cluster_endpoint, namespaces, …}`;
    /// open by contract (each step adds its own), so it stays a JSON object.
    #[schema(value_type = Object)]
    pub outputs: serde_json::Value,
    pub blueprint_revision: i32,
    pub approver_roles: Vec<String>,
    pub max_ttl_hours: Option<i32>,
    pub pending_until: DateTime<Utc>,
    pub ready_at: Option<DateTime<Utc>>,
    pub approvals: Vec<ApprovalView>,
    pub timeline: Vec<TimelineEntry>,
    pub job: Option<EnvironmentJob>,
}

impl EnvironmentDetail {
    pub fn new(
        d: &Detail,
        plan: Vec<PlanStep>,
        approvals: Vec<ApprovalView>,
        timeline: Vec<TimelineEntry>,
        job: Option<EnvironmentJob>,
    ) -> Self {
        EnvironmentDetail {
            fields: EnvironmentFields::from(&d.summary),
            purpose: d.purpose.clone(),
            parameters: d.parameters.clone(),
            plan,
            outputs: d.outputs.clone(),
            blueprint_revision: d.blueprint_number,
            approver_roles: d.approver_roles.clone(),
            max_ttl_hours: d.max_ttl_hours,
            pending_until: d.pending_until,
            ready_at: d.ready_at,
            approvals,
            timeline,
            job,
        }
    }
}

/// What an action on an environment did.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Outcome {
    Decision(DecisionOutcome),
    Extension { extension: ExtensionOutcome },
    Teardown { teardown: Started },
    Retry { retry: Started },
}

/// The outcome of approving, rejecting or cancelling.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum DecisionOutcome {
    Approved,
    Rejected,
    /// Recorded; the policy needs more approvals.
    Counted {
        approvals: i32,
        required: i32,
    },
    Cancelled,
}

impl From<Decided> for DecisionOutcome {
    fn from(d: Decided) -> Self {
        match d {
            Decided::Approved => DecisionOutcome::Approved,
            Decided::Rejected => DecisionOutcome::Rejected,
            Decided::Counted { have, need } => DecisionOutcome::Counted {
                approvals: have,
                required: need,
            },
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExtensionOutcome {
    Done,
    AwaitingApproval,
}

impl From<Extended> for ExtensionOutcome {
    fn from(e: Extended) -> Self {
        match e {
            Extended::Done => ExtensionOutcome::Done,
            Extended::AwaitingApproval => ExtensionOutcome::AwaitingApproval,
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Started {
    Started,
}

/// The environment after an action, and what the action did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EnvironmentOutcome {
    #[serde(flatten)]
    pub environment: EnvironmentDetail,
    pub outcome: Outcome,
}

/// A cost estimate in US dollars, with its lines and what it is based on.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EstimateView {
    pub hourly_usd: f64,
    pub monthly_usd: f64,
    pub max_hourly_usd: f64,
    pub max_monthly_usd: f64,
    /// At the maximum node count over the whole TTL (ephemeral types).
    pub ttl_total_usd: Option<f64>,
    pub lines: Vec<CostLine>,
    /// Always true: an estimate, not a bill.
    pub estimate: bool,
    pub basis: &'static str,
}

impl EstimateView {
    pub fn new(e: &Estimate, ttl_hours: Option<u32>) -> Self {
        EstimateView {
            hourly_usd: e.hourly.usd(),
            monthly_usd: e.monthly().usd(),
            max_hourly_usd: e.max_hourly.usd(),
            max_monthly_usd: e.max_monthly().usd(),
            ttl_total_usd: ttl_hours.map(|h| e.over_hours(h).usd()),
            lines: e.lines.clone(),
            estimate: true,
            basis: "AWS on-demand list prices (eu-west-1), EKS control plane and data-service sizes from Slipway's price table; no discounts, storage growth or data transfer",
        }
    }
}

/// A checked request that was not stored (`?dry_run=true`): its estimate and plan.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DryRunView {
    pub environment_type: String,
    pub name: String,
    pub ttl_hours: Option<u32>,
    /// `{instance_type, min_nodes, max_nodes, data_services}`, defaults filled in.
    #[schema(value_type = Object)]
    pub parameters: Parameters,
    pub cost_estimate: EstimateView,
    /// `[{step, action, resource, details}]`.
    #[schema(value_type = Vec<Object>)]
    pub plan: Vec<PlanStep>,
    pub auto_approved: bool,
}

impl From<&CheckedRequest> for DryRunView {
    fn from(c: &CheckedRequest) -> Self {
        DryRunView {
            environment_type: c.environment_type.name.clone(),
            name: c.name.clone(),
            ttl_hours: c.ttl_hours,
            parameters: c.parameters.clone(),
            cost_estimate: EstimateView::new(&c.estimate, c.ttl_hours),
            plan: c.plan.clone(),
            auto_approved: c.auto_approved(),
        }
    }
}
