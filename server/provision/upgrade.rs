//! Upgrading an environment's cluster by one Kubernetes minor version, as EKS requires: the
//! control plane first (`UpdateClusterVersion`), then the EKS add-ons to their versions for
//! the new release, then the node group (`UpdateNodegroupVersion`), then the platform's
//! objects are waited for until healthy again. Pre-checks come first and stop the upgrade
//! before anything changes: EKS's upgrade insights where it offers them, and the deprecated
//! APIs clients asked the API server for that the new release removes.
//!
//! Every step reads the live state before it acts, so a step re-run after a crash (or
//! `kill -9`) finds its update done or under way and waits instead of asking again: one
//! version update per cluster and node group, whatever happens to the worker. The job reports
//! through [`UpgradeOwner`]; the upgrade's record and its approvals are Maintain's.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Cloud;
use super::cloud::{Addon, Cluster, ClusterApi, Nodegroup, Provider, Status};
use super::plan::Action;
use super::run::{self, Runner, Target};
use super::versions::minor_of;
use super::waits::{until_none_left, wait_for};
use crate::jobs::{ClaimedJob, Handler, StepContext, StepError, StepFuture};

/// The job kind upgrading an environment's cluster.
pub const UPGRADE_JOB: &str = "environment.upgrade";

/// What an upgrade job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradeJobPayload {
    pub environment_id: Uuid,
    pub upgrade_id: Uuid,
    pub from_version: String,
    pub to_version: String,
}

impl UpgradeJobPayload {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("the payload serialises")
    }
}

/// What the upgrade job needs from the module that keeps upgrades.
pub trait UpgradeOwner: Send + Sync + 'static {
    /// Checked before every step: the upgrade is running and its environment ready (a
    /// permanent error otherwise: a teardown never races an upgrade).
    fn running(&self, upgrade: Uuid) -> BoxFuture<'_, Result<(), StepError>>;
    /// The control plane runs `version` now: the environment's plan says so from here on (a
    /// re-provisioning, the drift check and the Maintain page read it there).
    fn control_plane_upgraded(
        &self,
        environment: Uuid,
        version: String,
    ) -> BoxFuture<'_, Result<(), StepError>>;
    /// Done: the cluster, its add-ons and nodes run the new version and the platform is healthy.
    fn succeeded(&self, upgrade: Uuid) -> BoxFuture<'_, Result<(), StepError>>;
    /// The job gave up (or was cancelled) with `error`; it can be retried.
    fn failed(&self, upgrade: Uuid, error: String) -> BoxFuture<'_, Result<(), StepError>>;
}

/// The steps of an upgrade, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeStep {
    PreChecks,
    ControlPlane,
    Addons,
    Nodegroup,
    Health,
}

impl UpgradeStep {
    pub const ALL: [UpgradeStep; 5] = [
        UpgradeStep::PreChecks,
        UpgradeStep::ControlPlane,
        UpgradeStep::Addons,
        UpgradeStep::Nodegroup,
        UpgradeStep::Health,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeStep::PreChecks => "pre-checks",
            UpgradeStep::ControlPlane => "control-plane",
            UpgradeStep::Addons => "addons",
            UpgradeStep::Nodegroup => "nodegroup",
            UpgradeStep::Health => "health",
        }
    }

    /// What the step does, for the preview.
    pub fn describe(self, from: &str, to: &str) -> String {
        match self {
            UpgradeStep::PreChecks => format!(
                "Check EKS's upgrade insights for {to} and the deprecated APIs clients use that {to} removes; stop before any change if one is in the way"
            ),
            UpgradeStep::ControlPlane => {
                format!(
                    "UpdateClusterVersion {from} → {to}: the control plane, no downtime of the API"
                )
            }
            UpgradeStep::Addons => format!(
                "UpdateAddon: each EKS add-on to its pinned version, else EKS's default for {to}"
            ),
            UpgradeStep::Nodegroup => format!(
                "UpdateNodegroupVersion → {to}: new nodes, old ones drained within their pods' disruption budgets"
            ),
            UpgradeStep::Health => {
                "Wait until every object Slipway applied is healthy again".to_owned()
            }
        }
    }

    fn parse(name: &str) -> Option<UpgradeStep> {
        UpgradeStep::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// What stands in the way of the upgrade, checked before anything changes.
async fn pre_checks<P: Provider>(
    p: &P,
    ctx: &StepContext,
    t: &Target,
    job: &UpgradeJobPayload,
) -> Result<(), StepError> {
    let (name, _, region, _) = t.cluster()?;
    let (from, to) = (&job.from_version, &job.to_version);
    if minor_of(to) != minor_of(from).map(|m| m + 1) {
        return Err(StepError::Permanent(format!(
            "EKS upgrades one minor version at a time: {from} → {to} is not one"
        )));
    }
    let session = run::session(p, ctx, t).await?;
    let cluster = run::our_cluster(p, &session, &region, t, &name)
        .await?
        .ok_or_else(|| StepError::Permanent(format!("cluster {name} is not there")))?;
    let live = cluster.version.clone().unwrap_or_else(|| from.clone());
    if live != *from && live != *to {
        return Err(StepError::Permanent(format!(
            "cluster {name} runs Kubernetes {live}, not {from}: it was changed outside Slipway; check its drift"
        )));
    }
    let mut blocking = Vec::new();
    // EKS refuses a control plane more than its skew ahead of the nodes; a node group left
    // behind by an earlier upgrade goes first.
    if let Some((group, cluster_name)) = planned_nodegroup(t)? {
        let behind = p
            .find_nodegroup(&session, &region, &cluster_name, &group)
            .await?
            .and_then(|n| n.version)
            .filter(|v| minor_of(v) < minor_of(from));
        if let Some(version) = behind {
            blocking.push(format!(
                "node group {group} still runs Kubernetes {version}: retry the upgrade that left it behind first"
            ));
        }
    }
    match p.upgrade_insights(&session, &region, &name, to).await? {
        None => {
            ctx.log("EKS upgrade insights are not offered here: that check is skipped")
                .await?
        }
        Some(insights) => {
            for i in &insights {
                match i.status.as_str() {
                    "ERROR" => blocking.push(format!("EKS insight {}: {}", i.name, i.reason)),
                    "PASSING" => {}
                    _ => {
                        ctx.log(&format!(
                            "EKS insight {} is {}: {}",
                            i.name, i.status, i.reason
                        ))
                        .await?
                    }
                }
            }
            ctx.log(&format!(
                "{} EKS upgrade insights read for {to}",
                insights.len()
            ))
            .await?;
        }
    }
    let api = p.cluster_api(&session, &region, &cluster).await?;
    let deprecated = api.deprecated_apis().await?;
    for d in &deprecated {
        match d.removed_release.as_deref().and_then(minor_of) {
            Some(removed) if minor_of(to).is_some_and(|to| removed <= to) => blocking.push(
                format!(
                    "{} is still requested and Kubernetes 1.{removed} removes it: move its clients to the API that replaces it",
                    d.api
                ),
            ),
            _ => ctx.log(&format!("deprecated API in use: {}", d.api)).await?,
        }
    }
    for (addon, pinned) in planned_addons(t)? {
        let offered = p.addon_versions(&session, &region, &addon, to).await?;
        let fits = match &pinned {
            Some(pin) => offered.compatible.contains(pin),
            None => offered.default.is_some(),
        };
        if !fits {
            blocking.push(match pinned {
                Some(pin) => format!(
                    "add-on {addon} is pinned to {pin}, which EKS does not offer for Kubernetes {to}: change the blueprint's pin first"
                ),
                None => format!("EKS offers no version of add-on {addon} for Kubernetes {to}"),
            });
        }
    }
    if !blocking.is_empty() {
        return Err(StepError::Permanent(format!(
            "the upgrade to {to} is blocked, nothing was changed: {}",
            blocking.join("; ")
        )));
    }
    ctx.log(&format!(
        "nothing stands in the way of {to} ({} deprecated APIs in use)",
        deprecated.len()
    ))
    .await
}

/// The plan's EKS add-ons with their pinned versions (none: EKS's default).
fn planned_addons(t: &Target) -> Result<Vec<(String, Option<String>)>, StepError> {
    Ok(t.plan()?
        .into_iter()
        .filter_map(|s| match s.action {
            Action::CreateAddon { version, .. } => Some((s.resource, version)),
            _ => None,
        })
        .collect())
}

/// The plan's node group and its cluster's name.
fn planned_nodegroup(t: &Target) -> Result<Option<(String, String)>, StepError> {
    Ok(t.plan()?.into_iter().find_map(|s| match s.action {
        Action::CreateNodegroup { cluster, .. } => Some((s.resource, cluster)),
        _ => None,
    }))
}

async fn control_plane<P: Provider>(
    p: &P,
    owner: &dyn UpgradeOwner,
    ctx: &StepContext,
    t: &Target,
    job: &UpgradeJobPayload,
) -> Result<(), StepError> {
    let (name, _, region, _) = t.cluster()?;
    let to = &job.to_version;
    let session = run::session(p, ctx, t).await?;
    let find = || async {
        run::our_cluster(p, &session, &region, t, &name)
            .await?
            .ok_or_else(|| StepError::Permanent(format!("cluster {name} is not there")))
    };
    let live = find().await?;
    if live.version.as_deref() == Some(to) {
        ctx.log(&format!("the control plane runs {to} already"))
            .await?;
    } else if live.status != Status::Active {
        // An update asked for by an attempt that did not live to see it through.
        ctx.log(&format!("cluster {name} is being updated already"))
            .await?;
    } else {
        p.update_cluster_version(&session, &region, &name, to)
            .await?;
        ctx.log(&format!("UpdateClusterVersion {name} → {to}"))
            .await?;
    }
    wait_for(ctx, &format!("cluster {name} to run {to}"), || async {
        let c: Cluster = find().await?;
        Ok((c.status == Status::Active && c.version.as_deref() == Some(to)).then_some(()))
    })
    .await?;
    owner.control_plane_upgraded(t.id, to.clone()).await?;
    ctx.log(&format!("the control plane runs {to}")).await
}

async fn addons<P: Provider>(
    p: &P,
    ctx: &StepContext,
    t: &Target,
    job: &UpgradeJobPayload,
) -> Result<(), StepError> {
    let (cluster, _, region, _) = t.cluster()?;
    let to = &job.to_version;
    let session = run::session(p, ctx, t).await?;
    for (name, pinned) in planned_addons(t)? {
        let target = match pinned {
            Some(pin) => pin,
            None => p
                .addon_versions(&session, &region, &name, to)
                .await?
                .default
                .ok_or_else(|| {
                    StepError::Permanent(format!(
                        "EKS offers no version of add-on {name} for Kubernetes {to}"
                    ))
                })?,
        };
        let find = || async {
            p.find_addon(&session, &region, &cluster, &name)
                .await?
                .ok_or_else(|| StepError::Transient(format!("add-on {name} is not there")))
        };
        let live = find().await?;
        if live.version == target {
            ctx.log(&format!("add-on {name} is at {target} already"))
                .await?;
        } else if live.status == Status::Active {
            p.update_addon(&session, &region, &cluster, &name, &target)
                .await?;
            ctx.log(&format!("UpdateAddon {name} {} → {target}", live.version))
                .await?;
        }
        wait_for(ctx, &format!("add-on {name} {target}"), || async {
            let a: Addon = find().await?;
            if a.status == Status::Failed {
                return Err(StepError::Permanent(format!(
                    "add-on {name} failed to update to {target}; see it in the EKS console, then retry"
                )));
            }
            Ok((a.status == Status::Active && a.version == target).then_some(()))
        })
        .await?;
    }
    Ok(())
}

async fn nodegroup<P: Provider>(
    p: &P,
    ctx: &StepContext,
    t: &Target,
    job: &UpgradeJobPayload,
) -> Result<(), StepError> {
    let Some((name, cluster)) = planned_nodegroup(t)? else {
        return ctx.log("the plan has no node group").await;
    };
    let (_, _, region, _) = t.cluster()?;
    let to = &job.to_version;
    let session = run::session(p, ctx, t).await?;
    let find = || async {
        p.find_nodegroup(&session, &region, &cluster, &name)
            .await?
            .ok_or_else(|| StepError::Permanent(format!("node group {name} is not there")))
    };
    let live = find().await?;
    if live.version.as_deref() == Some(to) {
        ctx.log(&format!("node group {name} runs {to} already"))
            .await?;
    } else if live.status != Status::Active {
        ctx.log(&format!("node group {name} is being updated already"))
            .await?;
    } else {
        p.update_nodegroup_version(&session, &region, &cluster, &name, to)
            .await?;
        ctx.log(&format!("UpdateNodegroupVersion {name} → {to}"))
            .await?;
    }
    wait_for(ctx, &format!("node group {name} to run {to}"), || async {
        let n: Nodegroup = find().await?;
        if n.status == Status::Failed {
            return Err(StepError::Permanent(format!(
                "node group {name} failed to update; see its health issues in the EKS console, then retry"
            )));
        }
        Ok((n.status == Status::Active && n.version.as_deref() == Some(to)).then_some(()))
    })
    .await
}

async fn health<P: Provider>(p: &P, ctx: &StepContext, t: &Target) -> Result<(), StepError> {
    let api = run::cluster_api_of(p, ctx, t).await?;
    let objects = t.objects()?;
    until_none_left(ctx, "the platform to be healthy on the new version", || {
        api.unhealthy(&objects)
    })
    .await?;
    ctx.log("every object Slipway applied is healthy").await
}

async fn upgrade_step<P: Provider>(
    p: &P,
    owner: &dyn UpgradeOwner,
    step: UpgradeStep,
    ctx: &StepContext,
    t: &Target,
    job: &UpgradeJobPayload,
) -> Result<(), StepError> {
    match step {
        UpgradeStep::PreChecks => pre_checks(p, ctx, t, job).await,
        UpgradeStep::ControlPlane => control_plane(p, owner, ctx, t, job).await,
        UpgradeStep::Addons => addons(p, ctx, t, job).await,
        UpgradeStep::Nodegroup => nodegroup(p, ctx, t, job).await,
        UpgradeStep::Health => {
            health(p, ctx, t).await?;
            owner.succeeded(job.upgrade_id).await
        }
    }
}

/// `environment.upgrade`.
pub struct UpgradeJob {
    pub runner: Arc<Runner>,
    pub owner: Arc<dyn UpgradeOwner>,
}

impl Handler for UpgradeJob {
    type Payload = UpgradeJobPayload;

    fn kind(&self) -> &'static str {
        UPGRADE_JOB
    }

    fn steps(&self, _: &UpgradeJobPayload) -> Vec<String> {
        UpgradeStep::ALL
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect()
    }

    fn run_step<'a>(
        &'a self,
        step: &'a str,
        payload: &'a UpgradeJobPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            let step = UpgradeStep::parse(step)
                .ok_or_else(|| StepError::Permanent(format!("unknown step {step}")))?;
            self.owner.running(payload.upgrade_id).await?;
            let t = &self.runner.target(payload.environment_id).await?;
            let owner = self.owner.as_ref();
            match &self.runner.cloud {
                Cloud::Aws(p) => upgrade_step(p.as_ref(), owner, step, ctx, t, payload).await,
                Cloud::Simulated(p) => upgrade_step(p, owner, step, ctx, t, payload).await,
            }
        })
    }

    fn abandoned<'a>(
        &'a self,
        _db: &'a sqlx::PgPool,
        _job: &'a ClaimedJob,
        payload: &'a UpgradeJobPayload,
        error: &'a str,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            self.owner
                .failed(payload.upgrade_id, error.to_owned())
                .await
        })
    }
}
