//! Drift: how an environment's live state differs from what its plan built, and bringing it
//! back. Two job kinds: `environment.drift` compares (the EKS node group's settings, and every
//! Kubernetes object the plan applies, through a server-side apply dry run) and reports what
//! differs; `environment.reconcile` sets the node group's sizes back, applies the plan's
//! objects again (forced, so Slipway's fields win over whoever changed them) and compares
//! once more. Neither changes the environment's state: both run only on a ready environment,
//! checked before every step, and report through [`DriftOwner`].

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::cloud::{ClusterApi, Provider, describe_object};
use super::plan::Action;
use super::run::{self, Runner, Target};
use super::{Cloud, EnvironmentJobPayload};
use crate::jobs::{Handler, StepContext, StepError, StepFuture};

/// The job kind comparing an environment with its plan.
pub const DRIFT_JOB: &str = "environment.drift";
/// The job kind bringing an environment back to its plan.
pub const RECONCILE_JOB: &str = "environment.reconcile";

/// What stands where a value is missing, and instead of a Secret's value.
pub const ABSENT: &str = "(absent)";
const HIDDEN: &str = "(hidden)";

/// A field whose live value differs from what the environment was built with. `path` names the
/// resource and the field: `ResourceQuota team-checkout/team-checkout-quota: spec.hard.pods`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Drift {
    pub path: String,
    pub expected: String,
    pub actual: String,
}

/// What the drift jobs need from the module that keeps drift: whether the environment may be
/// worked on, and where the findings go.
pub trait DriftOwner: Send + Sync + 'static {
    /// Checked before every step: the environment is ready (a permanent error otherwise, so a
    /// teardown or a retry never races a reconcile).
    fn maintainable(&self, id: Uuid) -> BoxFuture<'_, Result<(), StepError>>;
    /// What the comparison found (empty: nothing differs), by the job `job`.
    fn record_drift(
        &self,
        id: Uuid,
        job: i64,
        found: Vec<Drift>,
    ) -> BoxFuture<'_, Result<(), StepError>>;
}

/// How `actual` differs from `expected`, leaf by leaf, under `resource`. Lists are compared
/// item by item when their lengths agree, else as a whole; `hide` replaces values (Secrets).
pub fn differences(resource: &str, expected: &Value, actual: &Value, hide: bool) -> Vec<Drift> {
    let mut found = Vec::new();
    walk(resource, "", expected, actual, hide, &mut found);
    found
}

fn walk(
    resource: &str,
    at: &str,
    expected: &Value,
    actual: &Value,
    hide: bool,
    out: &mut Vec<Drift>,
) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = e.keys().chain(a.keys()).collect();
            for key in keys {
                let child = if key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    if at.is_empty() {
                        key.clone()
                    } else {
                        format!("{at}.{key}")
                    }
                } else {
                    format!("{at}[{}]", Value::String(key.clone()))
                };
                let missing = Value::Null;
                walk(
                    resource,
                    &child,
                    e.get(key).unwrap_or(&missing),
                    a.get(key).unwrap_or(&missing),
                    hide,
                    out,
                );
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                walk(resource, &format!("{at}[{i}]"), e, a, hide, out);
            }
        }
        (e, a) if e == a => {}
        (e, a) => out.push(Drift {
            path: format!("{resource}: {at}"),
            expected: shown(e, hide),
            actual: shown(a, hide),
        }),
    }
}

fn shown(value: &Value, hide: bool) -> String {
    match value {
        Value::Null => ABSENT.to_owned(),
        _ if hide => HIDDEN.to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A live object (or a dry-run result) without what changes on every write or is not the
/// object's configuration: its status, resource version, generation and field managers.
pub fn configuration(mut object: Value) -> Value {
    if let Some(o) = object.as_object_mut() {
        o.remove("status");
    }
    if let Some(m) = object["metadata"].as_object_mut() {
        for noise in ["managedFields", "resourceVersion", "generation"] {
            m.remove(noise);
        }
    }
    object
}

/// Whether `object`'s values must never be shown (Secrets).
pub fn hides_values(object: &Value) -> bool {
    object["kind"] == "Secret"
}

/// The environment's node group as planned.
struct PlannedNodegroup {
    name: String,
    cluster: String,
    instance_type: String,
    min_size: u32,
    max_size: u32,
}

fn planned_nodegroup(t: &Target) -> Result<Option<PlannedNodegroup>, StepError> {
    Ok(t.plan()?.into_iter().find_map(|s| match s.action {
        Action::CreateNodegroup {
            cluster,
            instance_type,
            min_size,
            max_size,
            ..
        } => Some(PlannedNodegroup {
            name: s.resource,
            cluster,
            instance_type,
            min_size,
            max_size,
        }),
        _ => None,
    }))
}

/// Everything that differs from the plan: the cluster (missing), its node group's sizes and
/// instance type, and the Kubernetes objects.
pub(super) async fn compare<P: Provider>(
    p: &P,
    ctx: &StepContext,
    t: &Target,
) -> Result<Vec<Drift>, StepError> {
    let (name, version, region, _) = t.cluster()?;
    let session = run::session(p, ctx, t).await?;
    let Some(cluster) = run::our_cluster(p, &session, &region, t, &name).await? else {
        return Ok(vec![Drift {
            path: format!("EKS cluster {name}"),
            expected: "present".into(),
            actual: ABSENT.into(),
        }]);
    };
    let mut found = Vec::new();
    // Upgraded outside Slipway (or by AWS at the end of extended support): reconcile cannot
    // downgrade a control plane, so this one is accepted or followed by an upgrade.
    if let Some(live) = cluster.version.as_ref().filter(|live| **live != version) {
        found.push(Drift {
            path: format!("EKS cluster {name}: version"),
            expected: version,
            actual: live.clone(),
        });
    }
    if let Some(PlannedNodegroup {
        name: group,
        cluster: cluster_name,
        instance_type,
        min_size: min,
        max_size: max,
    }) = planned_nodegroup(t)?
    {
        let resource = format!("EKS node group {group}");
        match p
            .find_nodegroup(&session, &region, &cluster_name, &group)
            .await?
        {
            None => found.push(Drift {
                path: resource,
                expected: "present".into(),
                actual: ABSENT.into(),
            }),
            Some(live) => {
                if let Some(s) = live.scaling {
                    let mut size = |field: &str, planned: u32, live: i32| {
                        if i64::from(planned) != i64::from(live) {
                            found.push(Drift {
                                path: format!("{resource}: scalingConfig.{field}"),
                                expected: planned.to_string(),
                                actual: live.to_string(),
                            });
                        }
                    };
                    size("minSize", min, s.min_size);
                    size("maxSize", max, s.max_size);
                }
                if !live.instance_types.is_empty() && live.instance_types != [instance_type.clone()]
                {
                    found.push(Drift {
                        path: format!("{resource}: instanceTypes"),
                        expected: instance_type,
                        actual: live.instance_types.join(", "),
                    });
                }
            }
        }
    }
    let api = p.cluster_api(&session, &region, &cluster).await?;
    found.extend(api.drift(&t.objects()?).await?);
    Ok(found)
}

/// Sets the node group's sizes back to the plan's.
pub(super) async fn scale_back<P: Provider>(
    p: &P,
    ctx: &StepContext,
    t: &Target,
) -> Result<(), StepError> {
    let Some(PlannedNodegroup {
        name: group,
        cluster,
        min_size: min,
        max_size: max,
        ..
    }) = planned_nodegroup(t)?
    else {
        return ctx.log("the plan has no node group").await;
    };
    let size = |n: u32| {
        i32::try_from(n)
            .map_err(|_| StepError::Permanent(format!("{n} nodes is beyond EKS's limits")))
    };
    let (_, _, region, _) = t.cluster()?;
    let session = run::session(p, ctx, t).await?;
    p.update_nodegroup_scaling(&session, &region, &cluster, &group, size(min)?, size(max)?)
        .await?;
    ctx.log(&format!("node group {group}: sizes {min}–{max} as planned"))
        .await
}

/// The steps of the two job kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MaintainStep {
    Nodegroup,
    Kubernetes,
    Compare,
}

impl MaintainStep {
    fn as_str(self) -> &'static str {
        match self {
            MaintainStep::Nodegroup => "nodegroup",
            MaintainStep::Kubernetes => "kubernetes",
            MaintainStep::Compare => "compare",
        }
    }

    fn parse(name: &str) -> Option<MaintainStep> {
        [
            MaintainStep::Nodegroup,
            MaintainStep::Kubernetes,
            MaintainStep::Compare,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

async fn maintain_step<P: Provider>(
    p: &P,
    owner: &dyn DriftOwner,
    step: MaintainStep,
    ctx: &StepContext,
    t: &Target,
) -> Result<(), StepError> {
    match step {
        MaintainStep::Nodegroup => scale_back(p, ctx, t).await,
        MaintainStep::Kubernetes => run::kubernetes(p, ctx, t).await,
        MaintainStep::Compare => {
            let found = compare(p, ctx, t).await?;
            ctx.log(&match found.len() {
                0 => "no drift: the environment is as its plan built it".to_owned(),
                n => format!("{n} fields differ from the plan"),
            })
            .await?;
            owner.record_drift(t.id, ctx.job.id, found).await
        }
    }
}

/// `environment.drift` (compare only) or `environment.reconcile` (bring back, then compare).
pub struct DriftJob {
    runner: Arc<Runner>,
    owner: Arc<dyn DriftOwner>,
    reconcile: bool,
}

impl DriftJob {
    pub fn check(runner: Arc<Runner>, owner: Arc<dyn DriftOwner>) -> Self {
        Self {
            runner,
            owner,
            reconcile: false,
        }
    }

    pub fn reconcile(runner: Arc<Runner>, owner: Arc<dyn DriftOwner>) -> Self {
        Self {
            runner,
            owner,
            reconcile: true,
        }
    }
}

impl Handler for DriftJob {
    type Payload = EnvironmentJobPayload;

    fn kind(&self) -> &'static str {
        if self.reconcile {
            RECONCILE_JOB
        } else {
            DRIFT_JOB
        }
    }

    fn steps(&self, _: &EnvironmentJobPayload) -> Vec<String> {
        let steps: &[MaintainStep] = if self.reconcile {
            &[
                MaintainStep::Nodegroup,
                MaintainStep::Kubernetes,
                MaintainStep::Compare,
            ]
        } else {
            &[MaintainStep::Compare]
        };
        steps.iter().map(|s| s.as_str().to_owned()).collect()
    }

    fn run_step<'a>(
        &'a self,
        step: &'a str,
        payload: &'a EnvironmentJobPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let step = MaintainStep::parse(step)
                .ok_or_else(|| StepError::Permanent(format!("unknown step {step}")))?;
            self.owner.maintainable(payload.environment_id).await?;
            let t = &self.runner.target(payload.environment_id).await?;
            let owner = self.owner.as_ref();
            match &self.runner.cloud {
                Cloud::Aws(p) => maintain_step(p.as_ref(), owner, step, ctx, t).await,
                Cloud::Simulated(p) => maintain_step(p, owner, step, ctx, t).await,
            }
        })
    }
}

/// The resource and the live object's configuration beside the dry run's, for
/// [`ClusterApi::drift`] implementations: what differs.
pub fn object_drift(planned: &Value, dry_run: Value, live: Value) -> Vec<Drift> {
    differences(
        &describe_object(planned),
        &configuration(dry_run),
        &configuration(live),
        hides_values(planned),
    )
}

/// A planned object the cluster does not have.
pub fn missing_object(planned: &Value) -> Drift {
    Drift {
        path: describe_object(planned),
        expected: "present".into(),
        actual: ABSENT.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn differences_name_each_changed_leaf_with_both_values() {
        let expected = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [
            {"name": "app", "image": "app:1"}]}}},
            "metadata": {"labels": {"app.kubernetes.io/name": "app"}}});
        let actual = json!({"spec": {"replicas": 5, "template": {"spec": {"containers": [
            {"name": "app", "image": "app:2"}]}}},
            "metadata": {"labels": {}}});
        let found = differences("Deployment shop/app", &expected, &actual, false);
        let paths: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|d| (d.path.as_str(), d.expected.as_str(), d.actual.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                (
                    "Deployment shop/app: metadata.labels[\"app.kubernetes.io/name\"]",
                    "app",
                    ABSENT
                ),
                ("Deployment shop/app: spec.replicas", "2", "5"),
                (
                    "Deployment shop/app: spec.template.spec.containers[0].image",
                    "app:1",
                    "app:2"
                ),
            ]
        );
        assert!(differences("x", &expected, &expected, false).is_empty());
    }

    #[test]
    fn lists_of_another_length_differ_as_a_whole_and_secret_values_are_never_shown() {
        let found = differences("x", &json!({"a": [1, 2]}), &json!({"a": [1]}), false);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].expected.as_str(), found[0].actual.as_str()),
            ("[1,2]", "[1]")
        );
        let found = differences(
            "Secret a/b",
            &json!({"data": {"password": "c2VjcmV0"}}),
            &json!({"data": {"password": "b3RoZXI="}}),
            true,
        );
        assert_eq!(
            (found[0].expected.as_str(), found[0].actual.as_str()),
            (HIDDEN, HIDDEN)
        );
    }

    #[test]
    fn status_and_write_counters_are_not_configuration() {
        let live = json!({"metadata": {"name": "a", "resourceVersion": "7", "generation": 3,
            "managedFields": []}, "spec": {"x": 1}, "status": {"ready": true}});
        assert_eq!(
            configuration(live),
            json!({"metadata": {"name": "a"}, "spec": {"x": 1}})
        );
    }
}
