//! Environments as deployment targets of the platform's DevOps environment: each cluster admits
//! the delivery tool's role (an EKS access entry of the DevOps account's `slipway-delivery`
//! role, mapped to the platform's delivery group, which every team namespace binds), and the
//! DevOps cluster holds its kubeconfig Secret and a `SpinnakerAccount` (Spinnaker) or a folder
//! (Jenkins). An environment registers itself when the DevOps environment is ready; the DevOps
//! environment, once built, registers every environment whose cluster exists. Teardown removes
//! the registration.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use uuid::Uuid;

use super::cloud::{AccessEntry, ClusterApi, Provider, partition};
use super::manifests::{self, DELIVERY_ROLE};
use super::plan::{Action, DEVOPS_ENVIRONMENT};
use super::run::{Runner, Target};
use super::waits::until_none_left;
use super::{Cloud, kubernetes, run};
use crate::define::blueprint::DevopsTool;
use crate::jobs::{StepContext, StepError};

/// An onboarded service's pipeline, as the DevOps environment gets it.
pub struct ServicePipeline {
    pub service: Uuid,
    /// Its objects for the DevOps environment's tool ([`manifests::service_pipeline`]).
    pub objects: Vec<Value>,
    /// What people call it: `Jenkins job shop-service-payments`.
    pub label: String,
}

/// What the DevOps environment needs from the module that keeps services: their pipelines, to
/// register those onboarded before it was ready.
pub trait PipelineOwner: Send + Sync + 'static {
    /// The pipelines of the onboarded services of the DevOps environment `devops`'s platform,
    /// made for `tool`.
    fn pipelines(
        &self,
        devops: Uuid,
        tool: DevopsTool,
    ) -> BoxFuture<'_, Result<Vec<ServicePipeline>, StepError>>;
    /// `service`'s pipeline is in the DevOps tool, called `label`.
    fn registered(&self, service: Uuid, label: String) -> BoxFuture<'_, Result<(), StepError>>;
}

/// A platform's ready DevOps environment, built with deployment targets.
pub struct DevopsEnvironment {
    target: Target,
    pub tool: DevopsTool,
}

/// The ready DevOps environment of `environment`'s platform; None when there is none yet (or
/// it was built before deployment targets).
pub async fn devops_environment(
    r: &Runner,
    environment: Uuid,
) -> Result<Option<DevopsEnvironment>, StepError> {
    let Some(target) = r.owner.devops_of(environment).await? else {
        return Ok(None);
    };
    Ok(tool_of(&target)?.map(|tool| DevopsEnvironment { target, tool }))
}

/// Puts a service's pipeline objects into the DevOps cluster and waits until the tool has it
/// (Spinnaker: the Job that saves it through Gate completed). A repeat applies the same
/// objects and finds the Job done.
pub async fn register_pipeline(
    r: &Runner,
    ctx: &StepContext,
    devops: &DevopsEnvironment,
    objects: &[Value],
) -> Result<(), StepError> {
    match &r.cloud {
        Cloud::Aws(p) => apply_pipeline(p.as_ref(), ctx, &devops.target, objects).await,
        Cloud::Simulated(p) => apply_pipeline(p, ctx, &devops.target, objects).await,
    }
}

async fn apply_pipeline<P: Provider>(
    p: &P,
    ctx: &StepContext,
    devops: &Target,
    objects: &[Value],
) -> Result<(), StepError> {
    let api = run::cluster_api_of(p, ctx, devops).await?;
    api.apply(objects).await?;
    until_none_left(ctx, "the DevOps tool to take the pipeline", || {
        api.unhealthy(objects)
    })
    .await
}

/// The delivery tool a DevOps environment runs, read from its plan; None for a plan made before
/// deployment targets (it has no delivery role to admit).
fn tool_of(devops: &Target) -> Result<Option<DevopsTool>, StepError> {
    let has_role = devops
        .all(|action| match action {
            Action::CreatePodIdentityAssociation { role, .. } => Some(role),
            _ => None,
        })?
        .iter()
        .any(|role| role == DELIVERY_ROLE);
    if !has_role {
        return Ok(None);
    }
    let spinnaker = devops
        .objects()?
        .iter()
        .any(|o| o["kind"] == "SpinnakerService");
    Ok(Some(if spinnaker {
        DevopsTool::Spinnaker
    } else {
        DevopsTool::Jenkins
    }))
}

fn is_devops(t: &Target) -> bool {
    t.environment_type == DEVOPS_ENVIRONMENT
}

/// The provisioning step: this environment registered in the DevOps environment, or (for the
/// DevOps environment) every environment of the platform whose cluster exists.
pub async fn register_step<P: Provider>(
    p: &P,
    r: &Runner,
    ctx: &StepContext,
    t: &Target,
) -> Result<(), StepError> {
    let planned =
        t.all(|action| matches!(action, Action::RegisterDeploymentTarget { .. }).then_some(()))?;
    if planned.is_empty() {
        return ctx
            .log("this environment's plan was made before deployment targets: none")
            .await;
    }
    if is_devops(t) {
        let Some(tool) = tool_of(t)? else {
            return ctx
                .log("this DevOps environment's plan predates deployment targets")
                .await;
        };
        let targets = r.owner.deployment_targets(t.id).await?;
        for env in &targets {
            register(p, r, ctx, env, t, tool).await?;
        }
        ctx.log(&format!(
            "{} environments registered as deployment targets",
            targets.len()
        ))
        .await?;
        // Services onboarded while there was no DevOps environment get their pipelines now.
        let pipelines = r.pipelines.pipelines(t.id, tool).await?;
        for pipeline in &pipelines {
            apply_pipeline(p, ctx, t, &pipeline.objects).await?;
            ctx.log(&format!("{} registered", pipeline.label)).await?;
            r.pipelines
                .registered(pipeline.service, pipeline.label.clone())
                .await?;
        }
        return ctx
            .log(&format!("{} service pipelines registered", pipelines.len()))
            .await;
    }
    let Some(devops) = r.owner.devops_of(t.id).await? else {
        return ctx
            .log("the platform's DevOps environment is not ready: it registers this environment once it is")
            .await;
    };
    let Some(tool) = tool_of(&devops)? else {
        return ctx
            .log("the DevOps environment was built before deployment targets: provision it again to register environments")
            .await;
    };
    register(p, r, ctx, t, &devops, tool).await
}

/// `env` as a deployment target of `devops`.
async fn register<P: Provider>(
    p: &P,
    r: &Runner,
    ctx: &StepContext,
    env: &Target,
    devops: &Target,
    tool: DevopsTool,
) -> Result<(), StepError> {
    let (cluster, _, region, tags) = env.cluster()?;
    let platform = tags.get("slipway:platform").cloned().unwrap_or_default();
    let devops_account = run::account_id(devops)?;
    let entry = AccessEntry {
        principal_arn: format!(
            "arn:{}:iam::{devops_account}:role/{DELIVERY_ROLE}",
            partition(&region)
        ),
        kubernetes_groups: vec![manifests::delivery_group(&platform)],
        username: Some("delivery:{{SessionName}}".into()),
        cluster_policy: None,
    };
    let session = run::session(p, ctx, env).await?;
    p.ensure_access_entry(&session, &region, &cluster, &entry)
        .await?;
    let endpoint = env.output("cluster_endpoint").unwrap_or_default();
    let ca = env.output("cluster_ca").unwrap_or_default();
    // No role to assume: the tool's own Pod Identity credentials are the delivery role.
    let kubeconfig = kubernetes::kubeconfig(&cluster, &endpoint, &ca, &region, None);
    let objects = manifests::deployment_target(tool, &cluster, &kubeconfig, &team_namespaces(env)?);
    let api = run::cluster_api_of(p, ctx, devops).await?;
    api.apply(&objects).await?;
    let name = manifests::deployment_target_name(&cluster);
    ctx.log(&format!(
        "{cluster} is the deployment target {name} of the DevOps environment ({})",
        tool_label(tool)
    ))
    .await?;
    r.owner
        .record_outputs(
            env.id,
            json!({ "deployment_target": { "name": name, "tool": tool, "devops_environment_id": devops.id } }),
        )
        .await
}

fn tool_label(tool: DevopsTool) -> &'static str {
    match tool {
        DevopsTool::Spinnaker => "a SpinnakerAccount and its kubeconfig Secret",
        DevopsTool::Jenkins => "a kubeconfig credential and a folder",
    }
}

/// The namespaces the delivery tool deploys to: the teams'.
fn team_namespaces(env: &Target) -> Result<Vec<String>, StepError> {
    let outputs = env.planned("slipway:record-outputs", |s| match s.action {
        Action::RecordOutputs(outputs) => Some(outputs),
        _ => None,
    })?;
    let mut namespaces: Vec<String> = outputs
        .teams
        .values()
        .flat_map(|t| t.namespaces.iter().cloned())
        .collect();
    if namespaces.is_empty() {
        namespaces.push(manifests::SHARED_TEAM_NAMESPACE.to_owned());
    }
    namespaces.sort();
    namespaces.dedup();
    Ok(namespaces)
}

/// The teardown step: the environment's registration removed from the DevOps cluster (its
/// access entry goes with its cluster). A DevOps environment torn down takes the registrations
/// with it.
pub async fn deregister_step<P: Provider>(
    p: &P,
    r: &Runner,
    ctx: &StepContext,
    t: &Target,
) -> Result<(), StepError> {
    if is_devops(t) || t.outputs["deployment_target"].is_null() {
        return ctx.log("not a deployment target: nothing to remove").await;
    }
    let Some(devops) = r.owner.devops_of(t.id).await? else {
        return ctx
            .log("the DevOps environment is gone or not ready: nothing to remove there")
            .await;
    };
    let Some(tool) = tool_of(&devops)? else {
        return ctx.log("nothing registered").await;
    };
    let cluster = t.cluster()?.0;
    // What was applied, rebuilt from the same inputs (names are deterministic).
    let objects = manifests::deployment_target(tool, &cluster, "", &[]);
    let api = run::cluster_api_of(p, ctx, &devops).await?;
    let deleted = api.delete(&objects).await?;
    ctx.log(&format!(
        "{deleted} objects of the deployment target {cluster} removed from the DevOps cluster"
    ))
    .await
}
