//! Bringing a running environment to another blueprint revision: what would change (the plan
//! preview of a roll-out, [`replan`]) and the `environment.rollout` job that carries it out.
//!
//! A roll-out changes what can change in place on a live environment: the node group's sizes,
//! EKS add-ons and Pod Identity associations the new revision adds, every Kubernetes object
//! (applied, forced, then waited for until healthy; objects the new plan no longer has are
//! deleted), the configuration repository and the recorded outputs. What cannot (the account,
//! the network, the cluster's region, endpoint or authentication, the node group's instance
//! type, changed add-ons, access entries, generated Secrets) is named in the preview as
//! `replace` or `manual`, and the roll-out does not start on that environment. The Kubernetes
//! version is not a roll-out's: the cluster keeps its own and the preview says to upgrade it.
//!
//! The job reads the plan from the environment (the roll-out writes the new one before it
//! queues the job, and the previous one back for a roll-back), so the same job kind runs both
//! ways. Every step is idempotent: a re-run after a crash applies the same objects again.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::Cloud;
use super::cloud::{ClusterApi, Provider, describe_object};
use super::drift::{self, differences};
use super::plan::{Action, PlanStep, Step};
use super::run::{self, Runner, Target};
use crate::jobs::{ClaimedJob, Handler, StepContext, StepError, StepFuture};

/// The job kind bringing an environment to the plan the roll-out gave it.
pub const ROLLOUT_JOB: &str = "environment.rollout";

/// What a roll-out job carries.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutJobPayload {
    pub environment_id: Uuid,
    pub rollout_id: Uuid,
}

impl RolloutJobPayload {
    pub fn to_json(self) -> Value {
        serde_json::to_value(self).expect("the payload serialises")
    }
}

/// What happens to one resource when the environment takes the new revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Made by the roll-out.
    Create,
    /// Changed in place, nothing restarts.
    Update,
    /// Changed in place; its pods are replaced one by one (a new pod template).
    Restart,
    /// Deleted by the roll-out (the new revision no longer has it).
    Delete,
    /// Only a new resource would have the new settings: the roll-out refuses the environment.
    Replace,
    /// A change a roll-out does not make: the roll-out refuses the environment.
    Manual,
    /// The cluster's Kubernetes version: kept, and upgraded on its own (one minor at a time).
    Upgrade,
}

impl Effect {
    /// Whether the roll-out can carry this change out.
    pub fn applies(self) -> bool {
        !matches!(self, Effect::Replace | Effect::Manual)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Create => "create",
            Effect::Update => "update",
            Effect::Restart => "restart",
            Effect::Delete => "delete",
            Effect::Replace => "replace",
            Effect::Manual => "manual",
            Effect::Upgrade => "upgrade",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Effect::Create => "created",
            Effect::Update => "changed in place",
            Effect::Restart => "restarts",
            Effect::Delete => "deleted",
            Effect::Replace => "needs replacing",
            Effect::Manual => "not done by a roll-out",
            Effect::Upgrade => "upgrade separately",
        }
    }
}

/// A field of a resource, as it is and as the new revision has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub path: String,
    pub from: String,
    pub to: String,
}

/// One resource that differs between the environment's plan and the new revision's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanChange {
    /// `Deployment istio-system/istiod`, or the plan action and its resource
    /// (`eks:CreateNodegroup shop-dev-nodes`).
    pub resource: String,
    #[schema(value_type = String)]
    pub effect: Effect,
    pub fields: Vec<FieldChange>,
    /// Why, for what the roll-out does not do itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The domain of the account's root e-mail address in `plan` (the environment's account is
/// made once; a new plan keeps its address).
pub fn account_email_domain(plan: &[PlanStep]) -> Option<&str> {
    plan.iter().find_map(|s| match &s.action {
        Action::CreateAccount { email, .. } => email.rsplit_once('@').map(|(_, d)| d),
        _ => None,
    })
}

/// `built` (the plan of the new revision for this environment) as the environment would run
/// it, and what differs from `current`: the cluster keeps its Kubernetes version.
pub fn replan(current: &[PlanStep], mut built: Vec<PlanStep>) -> (Vec<PlanStep>, Vec<PlanChange>) {
    let running = current.iter().find_map(|s| match &s.action {
        Action::CreateCluster { version, .. } => Some(version.clone()),
        _ => None,
    });
    let mut pinned = None;
    for step in &mut built {
        if let (Action::CreateCluster { version, .. }, Some(running)) = (&mut step.action, &running)
            && version != running
        {
            pinned = Some((
                step.resource.clone(),
                std::mem::replace(version, running.clone()),
            ));
        }
    }
    let mut found = changes(current, &built);
    if let (Some((cluster, pinned)), Some(running)) = (pinned, running) {
        found.insert(
            0,
            PlanChange {
                resource: format!("eks:CreateCluster {cluster}"),
                effect: Effect::Upgrade,
                fields: vec![FieldChange {
                    path: "version".into(),
                    from: running.clone(),
                    to: pinned.clone(),
                }],
                note: Some(format!(
                    "The revision pins Kubernetes {pinned}; the cluster stays on {running} until it is upgraded from its upgrade page, one minor version at a time."
                )),
            },
        );
    }
    (built, found)
}

/// How a plan step is matched across revisions and named in the preview.
fn key(step: &PlanStep) -> String {
    match &step.action {
        Action::Apply(object) => describe_object(object),
        other => format!("{} {}", other.name(), step.resource),
    }
}

fn details(step: &PlanStep) -> Value {
    let mut json = serde_json::to_value(&step.action).unwrap_or(Value::Null);
    json["details"].take()
}

/// What differs between `from` and `to`, resource by resource, in `from`'s order (then what
/// only `to` has).
pub fn changes(from: &[PlanStep], to: &[PlanStep]) -> Vec<PlanChange> {
    let by_key: std::collections::HashMap<String, &PlanStep> =
        to.iter().map(|s| (key(s), s)).collect();
    let mut found = Vec::new();
    for old in from {
        let name = key(old);
        match by_key.get(&name).copied() {
            None => found.push(removed(old, name)),
            Some(new) => {
                let (a, b) = (details(old), details(new));
                if a == b {
                    continue;
                }
                let hide = matches!(&new.action, Action::Apply(o) if drift::hides_values(o));
                let prefix = format!("{name}: ");
                let fields: Vec<FieldChange> = differences(&name, &a, &b, hide)
                    .into_iter()
                    .map(|d| FieldChange {
                        path: d.path.strip_prefix(&prefix).unwrap_or(&d.path).to_owned(),
                        from: d.expected,
                        to: d.actual,
                    })
                    .collect();
                let (effect, note) = changed(new, &fields);
                found.push(PlanChange {
                    resource: name,
                    effect,
                    fields,
                    note,
                });
            }
        }
    }
    let from_keys: BTreeSet<String> = from.iter().map(key).collect();
    for new in to {
        let name = key(new);
        if !from_keys.contains(&name) {
            found.push(added(new, name));
        }
    }
    found
}

fn manual(resource: String, effect: Effect, note: &str) -> PlanChange {
    PlanChange {
        resource,
        effect,
        fields: Vec::new(),
        note: Some(note.to_owned()),
    }
}

fn removed(old: &PlanStep, resource: String) -> PlanChange {
    match &old.action {
        Action::Apply(_) => PlanChange {
            resource,
            effect: Effect::Delete,
            fields: Vec::new(),
            note: None,
        },
        _ => manual(
            resource,
            Effect::Manual,
            "A roll-out does not remove what the plan made outside Kubernetes objects; remove it by hand, or request a new environment.",
        ),
    }
}

fn added(new: &PlanStep, resource: String) -> PlanChange {
    match &new.action {
        Action::Apply(_)
        | Action::CreateSecret(_)
        | Action::CopySecret(_)
        | Action::CreateAddon { .. }
        | Action::CreatePodIdentityAssociation { .. } => PlanChange {
            resource,
            effect: Effect::Create,
            fields: Vec::new(),
            note: None,
        },
        _ => manual(
            resource,
            if matches!(new.step, Step::Account | Step::Access | Step::Network) {
                Effect::Replace
            } else {
                Effect::Manual
            },
            "A running environment does not take this new resource from a roll-out; request a new environment of the revision.",
        ),
    }
}

const TEMPLATED: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

fn changed(new: &PlanStep, fields: &[FieldChange]) -> (Effect, Option<String>) {
    let only = |names: &[&str]| fields.iter().all(|f| names.contains(&f.path.as_str()));
    match &new.action {
        Action::Apply(object) => {
            let kind = object["kind"].as_str().unwrap_or_default();
            if TEMPLATED.contains(&kind) && fields.iter().any(|f| f.path.starts_with("spec.template"))
            {
                (Effect::Restart, None)
            } else {
                (Effect::Update, None)
            }
        }
        Action::CopySecret(_) | Action::PublishRepository { .. } | Action::RecordOutputs(_) => {
            (Effect::Update, None)
        }
        Action::CreateNodegroup { .. } if only(&["min_size", "max_size"]) => (Effect::Update, None),
        Action::CreateNodegroup { .. } => (
            Effect::Replace,
            Some("EKS does not change a managed node group's instance type in place: it takes a new node group.".into()),
        ),
        Action::CreateCluster { .. } if fields.iter().any(|f| f.path == "region") => (
            Effect::Replace,
            Some("A cluster does not move to another region: request a new environment.".into()),
        ),
        Action::CreateCluster { .. } => (
            Effect::Manual,
            Some("The cluster's endpoint access, authentication mode and tags are not changed by a roll-out.".into()),
        ),
        _ if matches!(new.step, Step::Account | Step::Access | Step::Network) => (
            Effect::Replace,
            Some("The account and the network are made once, when the environment is created.".into()),
        ),
        _ => (
            Effect::Manual,
            Some("A roll-out creates what the revision adds here but does not change what exists: change it by hand, then accept the drift.".into()),
        ),
    }
}

/// What the roll-out job needs from the module that keeps roll-outs.
pub trait RolloutOwner: Send + Sync + 'static {
    /// Checked before every step: this environment of the roll-out is being rolled out (or
    /// back) and is ready (a permanent error otherwise).
    fn running(&self, rollout: Uuid, environment: Uuid) -> BoxFuture<'_, Result<(), StepError>>;
    /// The plan the environment is moving away from (what the prune step deletes the objects
    /// of that the plan it moves to lacks).
    fn left_plan(
        &self,
        rollout: Uuid,
        environment: Uuid,
    ) -> BoxFuture<'_, Result<Value, StepError>>;
    /// Done and healthy, with the outputs of its plan; the roll-out moves on.
    fn succeeded(
        &self,
        rollout: Uuid,
        environment: Uuid,
        outputs: Value,
    ) -> BoxFuture<'_, Result<(), StepError>>;
    /// The job gave up (or was cancelled) with `error`: the roll-out pauses.
    fn failed(
        &self,
        rollout: Uuid,
        environment: Uuid,
        error: String,
    ) -> BoxFuture<'_, Result<(), StepError>>;
}

/// The steps of a roll-out job, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutStep {
    Nodegroup,
    Addons,
    Kubernetes,
    Prune,
    Repository,
    Health,
}

impl RolloutStep {
    pub const ALL: [RolloutStep; 6] = [
        RolloutStep::Nodegroup,
        RolloutStep::Addons,
        RolloutStep::Kubernetes,
        RolloutStep::Prune,
        RolloutStep::Repository,
        RolloutStep::Health,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RolloutStep::Nodegroup => "nodegroup",
            RolloutStep::Addons => "addons",
            RolloutStep::Kubernetes => "kubernetes",
            RolloutStep::Prune => "prune",
            RolloutStep::Repository => "repository",
            RolloutStep::Health => "health",
        }
    }

    fn parse(name: &str) -> Option<RolloutStep> {
        RolloutStep::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// The objects of `left` (a plan, as stored) that `t`'s plan no longer has.
fn dropped_objects(left: &Value, t: &Target) -> Result<Vec<Value>, StepError> {
    let left: Vec<PlanStep> = serde_json::from_value(left.clone())
        .map_err(|e| StepError::Permanent(format!("the previous plan is unreadable: {e}")))?;
    let kept: BTreeSet<String> = t.objects()?.iter().map(describe_object).collect();
    Ok(left
        .into_iter()
        .filter_map(|s| match s.action {
            Action::Apply(object) if !kept.contains(&describe_object(&object)) => Some(object),
            _ => None,
        })
        .collect())
}

async fn rollout_step<P: Provider>(
    p: &P,
    r: &Runner,
    owner: &dyn RolloutOwner,
    step: RolloutStep,
    ctx: &StepContext,
    t: &Target,
    job: &RolloutJobPayload,
) -> Result<(), StepError> {
    match step {
        RolloutStep::Nodegroup => drift::scale_back(p, ctx, t).await,
        RolloutStep::Addons => run::addons(p, ctx, t).await,
        RolloutStep::Kubernetes => run::kubernetes(p, ctx, t).await,
        RolloutStep::Prune => {
            let left = owner.left_plan(job.rollout_id, t.id).await?;
            let dropped = dropped_objects(&left, t)?;
            if dropped.is_empty() {
                return ctx
                    .log("no object to delete: the plan keeps them all")
                    .await;
            }
            let api = run::cluster_api_of(p, ctx, t).await?;
            let deleted = api.delete(&dropped).await?;
            for object in &dropped {
                ctx.log(&format!("deleted {}", describe_object(object)))
                    .await?;
            }
            ctx.log(&format!("{deleted} objects the plan no longer has deleted"))
                .await
        }
        RolloutStep::Repository => run::repository(r, ctx, t).await,
        RolloutStep::Health => {
            let found = drift::compare(p, ctx, t).await?;
            if !found.is_empty() {
                let fields: Vec<&str> = found.iter().take(5).map(|d| d.path.as_str()).collect();
                return Err(StepError::Permanent(format!(
                    "{} fields differ from the plan after the roll-out: {}",
                    found.len(),
                    fields.join("; ")
                )));
            }
            ctx.log("the environment is as its new plan says, and healthy")
                .await?;
            owner
                .succeeded(job.rollout_id, t.id, run::final_outputs(p, t)?)
                .await
        }
    }
}

/// `environment.rollout`.
pub struct RolloutJob {
    pub runner: Arc<Runner>,
    pub owner: Arc<dyn RolloutOwner>,
}

impl Handler for RolloutJob {
    type Payload = RolloutJobPayload;

    fn kind(&self) -> &'static str {
        ROLLOUT_JOB
    }

    fn steps(&self, _: &RolloutJobPayload) -> Vec<String> {
        RolloutStep::ALL.map(|s| s.as_str().to_owned()).to_vec()
    }

    fn run_step<'a>(
        &'a self,
        step: &'a str,
        payload: &'a RolloutJobPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let step = RolloutStep::parse(step)
                .ok_or_else(|| StepError::Permanent(format!("unknown step {step}")))?;
            self.owner
                .running(payload.rollout_id, payload.environment_id)
                .await?;
            let r = self.runner.as_ref();
            let t = &r.target(payload.environment_id).await?;
            let owner = self.owner.as_ref();
            match &r.cloud {
                Cloud::Aws(p) => rollout_step(p.as_ref(), r, owner, step, ctx, t, payload).await,
                Cloud::Simulated(p) => rollout_step(p, r, owner, step, ctx, t, payload).await,
            }
        })
    }

    fn abandoned<'a>(
        &'a self,
        _db: &'a sqlx::PgPool,
        _job: &'a ClaimedJob,
        payload: &'a RolloutJobPayload,
        error: &'a str,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            self.owner
                .failed(payload.rollout_id, payload.environment_id, error.to_owned())
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(object: Value) -> PlanStep {
        PlanStep {
            step: Step::Kubernetes,
            resource: describe_object(&object),
            action: Action::Apply(object),
        }
    }

    fn deployment(image: &str, replicas: u32) -> PlanStep {
        apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "istiod", "namespace": "istio-system"},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "discovery", "image": image}]}}}}))
    }

    fn nodegroup(instance_type: &str, max: u32) -> PlanStep {
        PlanStep {
            step: Step::Nodegroup,
            resource: "shop-dev-nodes".into(),
            action: Action::CreateNodegroup {
                cluster: "shop-dev".into(),
                instance_type: instance_type.into(),
                min_size: 1,
                max_size: max,
                tags: Default::default(),
            },
        }
    }

    fn effects(found: &[PlanChange]) -> Vec<(&str, Effect)> {
        found
            .iter()
            .map(|c| (c.resource.as_str(), c.effect))
            .collect()
    }

    #[test]
    fn a_new_pod_template_restarts_a_replica_count_changes_in_place() {
        let found = changes(
            &[deployment("istiod:1.27", 1)],
            &[deployment("istiod:1.28", 1)],
        );
        assert_eq!(
            effects(&found),
            [("Deployment istio-system/istiod", Effect::Restart)]
        );
        assert_eq!(
            found[0].fields,
            [FieldChange {
                path: "spec.template.spec.containers[0].image".into(),
                from: "istiod:1.27".into(),
                to: "istiod:1.28".into(),
            }]
        );
        let found = changes(
            &[deployment("istiod:1.27", 1)],
            &[deployment("istiod:1.27", 2)],
        );
        assert_eq!(
            effects(&found),
            [("Deployment istio-system/istiod", Effect::Update)]
        );
        assert!(changes(&[deployment("a", 1)], &[deployment("a", 1)]).is_empty());
    }

    #[test]
    fn objects_come_and_go_and_what_cannot_change_in_place_is_named() {
        let quota = apply(json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "q", "namespace": "apps"}, "spec": {"hard": {"pods": "10"}}}));
        let found = changes(
            &[deployment("a", 1), nodegroup("m6i.large", 3)],
            &[nodegroup("m6i.xlarge", 5), quota],
        );
        assert_eq!(
            effects(&found),
            [
                ("Deployment istio-system/istiod", Effect::Delete),
                ("eks:CreateNodegroup shop-dev-nodes", Effect::Replace),
                ("ResourceQuota apps/q", Effect::Create),
            ]
        );
        assert!(!found[1].effect.applies());
        let sizes = changes(&[nodegroup("m6i.large", 3)], &[nodegroup("m6i.large", 5)]);
        assert_eq!(sizes[0].effect, Effect::Update);
    }

    #[test]
    fn the_cluster_keeps_its_kubernetes_version_and_the_preview_says_to_upgrade() {
        let cluster = |version: &str| PlanStep {
            step: Step::Cluster,
            resource: "shop-dev".into(),
            action: Action::CreateCluster {
                version: version.into(),
                region: "eu-west-1".into(),
                api_public_cidrs: None,
                access_entries: true,
                tags: Default::default(),
            },
        };
        let (plan, found) = replan(&[cluster("1.34")], vec![cluster("1.35")]);
        assert_eq!(plan, [cluster("1.34")]);
        assert_eq!(
            effects(&found),
            [("eks:CreateCluster shop-dev", Effect::Upgrade)]
        );
        assert!(found[0].effect.applies());
    }
}
