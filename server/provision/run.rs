//! The provisioning and teardown jobs: the approved plan, executed step by step against a
//! [`Provider`]. Every step may run again after a crash at any instruction, so each one first
//! looks for what it would create (by deterministic name, then by Slipway's owner tag) and
//! adopts it; what it creates is recorded on the job step and the environment's outputs.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use super::cloud::{
    AccessEntry, AccountSpec, Addon, AddonSpec, Closure, CloudError, Cluster, ClusterApi,
    ClusterSpec, EndpointAccess, Network, Nodegroup, NodegroupSpec, OWNER_TAG, PolicyDocument,
    Provider, Status, Tags, WorkloadIdentitySpec,
};
use super::manifests::{GeneratedSecret, SecretCopy};
use super::plan::{Action, PlanStep, PlannedOutputs, Step};
use super::pool::{self, PoolSpec};
use super::vpc::VpcRequest;
use super::waits::{settled, until_active, until_none_left, wait_for};
use super::{
    Cloud, EnvironmentJobPayload, PROVISION_JOB, TEARDOWN_JOB, accounts, desired, kubernetes,
};
use crate::define::blueprint::AccountTeardown;
use crate::jobs::{ClaimedJob, Handler, StepContext, StepError, StepFuture};
use crate::repositories::{self, GitHost, RepositoryError};

/// The teardown job's steps: the plan in reverse, then the environment's last transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TeardownStep {
    Delivery,
    Kubernetes,
    Nodegroup,
    Cluster,
    Network,
    Account,
    Finish,
}

impl TeardownStep {
    pub const ALL: [TeardownStep; 7] = [
        TeardownStep::Delivery,
        TeardownStep::Kubernetes,
        TeardownStep::Nodegroup,
        TeardownStep::Cluster,
        TeardownStep::Network,
        TeardownStep::Account,
        TeardownStep::Finish,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TeardownStep::Delivery => "delivery",
            TeardownStep::Kubernetes => "kubernetes",
            TeardownStep::Nodegroup => "nodegroup",
            TeardownStep::Cluster => "cluster",
            TeardownStep::Network => "network",
            TeardownStep::Account => "account",
            TeardownStep::Finish => "finish",
        }
    }

    pub fn parse(name: &str) -> Option<TeardownStep> {
        TeardownStep::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// What both jobs share.
pub struct Runner {
    pub cloud: Cloud,
    pub owner: Arc<dyn EnvironmentOwner>,
    /// Where environments' configuration repositories live.
    pub git: GitHost,
    /// The onboarded services, whose pipelines the DevOps environment registers.
    pub pipelines: Arc<dyn super::delivery::PipelineOwner>,
}

/// The environment as the steps see it.
pub struct Target {
    pub id: Uuid,
    pub environment_type: String,
    pub plan: Value,
    pub parameters: Value,
    pub outputs: Value,
    /// The requester's e-mail address and the approvers' (none when approved automatically):
    /// the repository's commits name them.
    pub requested_by: String,
    pub approved_by: Vec<String>,
}

/// What the provisioning and teardown jobs need from the module that owns environments (their
/// table, states and transitions): the narrow interface through which this leaf reads its
/// input and reports back. Errors are the job's: transient ones are retried.
pub trait EnvironmentOwner: Send + Sync + 'static {
    /// The environment `id`, or `None` when it no longer exists.
    fn target(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Target>, StepError>>;
    /// Merges `outputs` into the environment's outputs (ids recorded as they are learnt).
    fn record_outputs(&self, id: Uuid, outputs: Value) -> BoxFuture<'_, Result<(), StepError>>;
    /// Checked before every step: the environment's state lets this job (provisioning or
    /// teardown) work on it, moving it into the job's state on the first step.
    fn begin(&self, id: Uuid, teardown: bool) -> BoxFuture<'_, Result<(), StepError>>;
    /// Provisioned: the final outputs, and the backlog keys this environment delivers.
    fn ready(
        &self,
        id: Uuid,
        outputs: Value,
        delivers: Vec<String>,
    ) -> BoxFuture<'_, Result<(), StepError>>;
    /// Torn down: nothing of it is left.
    fn torn_down(&self, id: Uuid) -> BoxFuture<'_, Result<(), StepError>>;
    /// The platform's DevOps environment when it is ready, unless `id` is it.
    fn devops_of(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Target>, StepError>>;
    /// The platform's other environments whose clusters exist (provisioning past the cluster
    /// step, or ready), for the DevOps environment `id` to register.
    fn deployment_targets(&self, id: Uuid) -> BoxFuture<'_, Result<Vec<Target>, StepError>>;
    /// The environment's slot of its platform's network range (0 to `slots` − 1): the one it
    /// holds, else the lowest no live environment of the platform holds, now taken; `None`
    /// when all are taken.
    fn network_slot(&self, id: Uuid, slots: u32) -> BoxFuture<'_, Result<Option<u32>, StepError>>;
    /// The job gave up: the environment is failed, with the job's last error.
    fn failed(&self, id: Uuid, job: i64, error: String) -> BoxFuture<'_, Result<(), StepError>>;
}

impl Target {
    pub(super) fn plan(&self) -> Result<Vec<PlanStep>, StepError> {
        serde_json::from_value(self.plan.clone())
            .map_err(|e| StepError::Permanent(format!("the environment's plan is unreadable: {e}")))
    }

    /// What `pick` takes from the plan's step of the action `name`.
    pub(super) fn planned<T>(
        &self,
        name: &str,
        pick: impl Fn(PlanStep) -> Option<T>,
    ) -> Result<T, StepError> {
        self.plan()?
            .into_iter()
            .find_map(pick)
            .ok_or_else(|| StepError::Permanent(format!("the plan has no {name} action")))
    }

    /// The cluster's name, Kubernetes version, region and tags.
    pub(super) fn cluster(&self) -> Result<(String, String, String, Tags), StepError> {
        self.planned("eks:CreateCluster", |s| match s.action {
            Action::CreateCluster {
                version,
                region,
                tags,
                ..
            } => Some((s.resource, version, region, tags)),
            _ => None,
        })
    }

    /// Whether the plan has the cluster authenticate through access entries, and which.
    fn access_entries(&self) -> Result<(bool, Vec<AccessEntry>), StepError> {
        let api = self.planned("eks:CreateCluster", |s| match s.action {
            Action::CreateCluster { access_entries, .. } => Some(access_entries),
            _ => None,
        })?;
        let entries = self
            .plan()?
            .into_iter()
            .filter_map(|s| match s.action {
                Action::CreateAccessEntry { entry, .. } => Some(entry),
                _ => None,
            })
            .collect();
        Ok((api, entries))
    }

    /// Who the plan lets reach the cluster's API.
    fn endpoint(&self) -> Result<EndpointAccess, StepError> {
        self.planned("eks:CreateCluster", |s| match s.action {
            Action::CreateCluster {
                api_public_cidrs, ..
            } => Some(match api_public_cidrs {
                Some(cidrs) => EndpointAccess::Restricted {
                    public_cidrs: cidrs.iter().map(ToString::to_string).collect(),
                },
                None => EndpointAccess::Open,
            }),
            _ => None,
        })
    }

    /// The platform's network range and each environment's share of it; plans made before VPCs
    /// were planned get the blueprint's default.
    fn network_range(&self) -> crate::define::blueprint::Network {
        self.planned("ec2:CreateVpc", |s| match s.action {
            Action::CreateVpc {
                platform_cidr,
                prefix_length,
                ..
            } => Some(crate::define::blueprint::Network {
                cidr: platform_cidr,
                environment_prefix_length: prefix_length,
                api_public_cidrs: Vec::new(),
            }),
            _ => None,
        })
        .unwrap_or_default()
    }

    /// The pool the environment leases its account from, if its plan says so.
    fn pool(&self) -> Result<Option<PoolSpec>, StepError> {
        Ok(self.plan()?.into_iter().find_map(|s| match s.action {
            Action::LeasePooledAccount(pool) => Some(pool),
            _ => None,
        }))
    }

    /// What `pick` takes from every action of the plan, in plan order.
    pub(super) fn all<T>(&self, pick: impl Fn(Action) -> Option<T>) -> Result<Vec<T>, StepError> {
        Ok(self
            .plan()?
            .into_iter()
            .filter_map(|step| pick(step.action))
            .collect())
    }

    /// The Kubernetes objects, in apply order.
    pub(super) fn objects(&self) -> Result<Vec<Value>, StepError> {
        self.all(|action| match action {
            Action::Apply(object) => Some(object),
            _ => None,
        })
    }

    fn secrets(&self) -> Result<Vec<GeneratedSecret>, StepError> {
        self.all(|action| match action {
            Action::CreateSecret(secret) => Some(secret),
            _ => None,
        })
    }

    fn copies(&self) -> Result<Vec<SecretCopy>, StepError> {
        self.all(|action| match action {
            Action::CopySecret(copy) => Some(copy),
            _ => None,
        })
    }

    pub(super) fn output(&self, key: &str) -> Option<String> {
        self.outputs[key].as_str().map(str::to_owned)
    }

    fn owned(&self, tags: &Tags) -> bool {
        tags.get(OWNER_TAG).map(String::as_str) == Some(self.id.to_string().as_str())
    }

    /// The plan's tags plus the owner tag.
    fn owned_tags(&self, mut tags: Tags) -> Tags {
        tags.insert(OWNER_TAG.into(), self.id.to_string());
        tags
    }

    /// The platform's backlog items this environment delivers (DESIGN §2 keys).
    fn backlog_keys(&self) -> Vec<String> {
        let ty = &self.environment_type;
        if ty == "devops" {
            return vec![
                "account:devops".into(),
                "devops:spinnaker".into(),
                "devops:jenkins".into(),
            ];
        }
        let mut keys = vec![
            format!("account:{ty}"),
            format!("cluster:{ty}"),
            format!("logging:{ty}"),
            format!("mesh:{ty}"),
        ];
        if let Some(services) = self.parameters["data_services"].as_array() {
            keys.extend(
                services
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| format!("data:{s}:{ty}")),
            );
        }
        keys
    }
}

impl Runner {
    pub(super) async fn target(&self, environment: Uuid) -> Result<Target, StepError> {
        self.owner
            .target(environment)
            .await?
            .ok_or_else(|| StepError::Permanent("the environment no longer exists".into()))
    }

    async fn set_outputs(&self, id: Uuid, outputs: Value) -> Result<(), StepError> {
        self.owner.record_outputs(id, outputs).await
    }
}

/// The Kubernetes API of `t`'s cluster (which must exist).
pub(super) async fn cluster_api_of<P: Provider>(
    p: &P,
    ctx: &StepContext,
    t: &Target,
) -> Result<P::ClusterApi, StepError> {
    let region = region(t)?;
    let session = session(p, ctx, t).await?;
    let name = t.cluster()?.0;
    let cluster = our_cluster(p, &session, &region, t, &name)
        .await?
        .ok_or_else(|| StepError::Transient(format!("cluster {name} is not there")))?;
    Ok(p.cluster_api(&session, &region, &cluster).await?)
}

/// Access into the environment's account, retried while its access role is settling.
pub(super) async fn session<P: Provider>(
    p: &P,
    ctx: &StepContext,
    t: &Target,
) -> Result<P::Session, StepError> {
    let account = account_id(t)?;
    Ok(settled(ctx, || p.open_session(&account)).await?)
}

// ---- provisioning ----

/// The account of the environment: leased from the platform's pool (ephemeral environments),
/// else adopted if it exists with our owner tag, created otherwise.
async fn account<P: Provider>(
    p: &P,
    r: &Runner,
    ctx: &StepContext,
    t: &Target,
) -> Result<(), StepError> {
    // Before anything is created: Slipway must be the organization's management account.
    let organization = p.organization().await?;
    let earlier = t.output("account_id");
    if let Some(id) = &earlier {
        ctx.log(&format!("account {id} was obtained by an earlier attempt"))
            .await?;
    }
    let (account_id, unit, policies) = if let Some(pool) = t.pool()? {
        let id = match earlier {
            Some(id) => id,
            None => {
                let (id, name) = pool::lease(p, ctx, &organization, &pool, t.id).await?;
                r.set_outputs(
                    t.id,
                    json!({ "account_id": id, "account_name": name, "account_pool": pool.platform, "pooled_account": "leased" }),
                )
                .await?;
                id
            }
        };
        (id, pool.organizational_unit, pool.service_control_policies)
    } else {
        let (name, email, tags, unit, policies) =
            t.planned("organizations:CreateAccount", |s| match s.action {
                Action::CreateAccount {
                    email,
                    tags,
                    organizational_unit,
                    service_control_policies,
                    ..
                } => Some((
                    s.resource,
                    email,
                    tags,
                    organizational_unit,
                    service_control_policies,
                )),
                _ => None,
            })?;
        let id = match earlier {
            Some(id) => id,
            None => {
                let spec = AccountSpec {
                    name: name.clone(),
                    email,
                    tags: t.owned_tags(tags),
                };
                let id = accounts::obtain(p, ctx, &spec, "account_request", |tags| t.owned(tags))
                    .await?;
                ctx.record("account_id", &id).await?;
                r.set_outputs(t.id, json!({ "account_id": id, "account_name": name }))
                    .await?;
                id
            }
        };
        (id, unit, policies)
    };
    // On every path, the adopted and the earlier attempt's included: an account outside its
    // unit escapes the unit's service control policies.
    if let Some(path) =
        accounts::place(p, ctx, &organization, &account_id, &unit, &policies).await?
    {
        r.set_outputs(t.id, json!({ "organizational_unit": path }))
            .await?;
    }
    Ok(())
}

pub(super) fn account_id(t: &Target) -> Result<String, StepError> {
    t.output("account_id").ok_or_else(|| {
        StepError::Permanent("no account recorded: the account step has not run".into())
    })
}

async fn access<P: Provider>(p: &P, ctx: &StepContext, t: &Target) -> Result<(), StepError> {
    session(p, ctx, t).await?;
    ctx.log(&format!(
        "assumed the access role in account {}",
        account_id(t)?
    ))
    .await
}

/// The account's EKS roles and subnets, recorded for the cluster and node group steps.
async fn network<P: Provider>(
    p: &P,
    r: &Runner,
    ctx: &StepContext,
    t: &Target,
) -> Result<(), StepError> {
    let region = region(t)?;
    let session = session(p, ctx, t).await?;
    let (cluster, _, _, tags) = t.cluster()?;
    let range = t.network_range();
    let slots = range.environment_slots();
    let cidr = r
        .owner
        .network_slot(t.id, slots)
        .await?
        .and_then(|slot| range.environment_cidr(slot))
        .ok_or_else(|| {
            StepError::Permanent(format!(
                "the platform's network range {} has room for {slots} environments, and every one is taken: widen network.cidr in the blueprint, or tear an environment down",
                range.cidr
            ))
        })?;
    let request = VpcRequest {
        cidr,
        name: cluster,
        tags: t.owned_tags(tags),
        request_token: format!("slipway-job-{}-nat", ctx.job.id),
    };
    let network = p.prepare_network(&session, &region, &request).await?;
    ctx.log(&format!(
        "roles {} and {}; {}subnets {}",
        network.cluster_role_arn,
        network.node_role_arn,
        match (&network.vpc_id, &network.cidr) {
            (Some(vpc), Some(cidr)) => format!("VPC {vpc} ({cidr}), "),
            _ => "tagged ".to_owned(),
        },
        network.subnets.join(", ")
    ))
    .await?;
    r.set_outputs(t.id, json!({ "network": network })).await
}

fn recorded_network(t: &Target) -> Result<Network, StepError> {
    serde_json::from_value(t.outputs["network"].clone()).map_err(|_| {
        StepError::Permanent("no network recorded: the network step has not run".into())
    })
}

fn region(t: &Target) -> Result<String, StepError> {
    Ok(t.cluster()?.2)
}

/// The environment's cluster, refusing one that is not ours.
pub(super) async fn our_cluster<P: Provider>(
    p: &P,
    session: &P::Session,
    region: &str,
    t: &Target,
    name: &str,
) -> Result<Option<Cluster>, StepError> {
    match p.find_cluster(session, region, name).await? {
        Some(c) if !t.owned(&c.tags) => Err(StepError::Permanent(format!(
            "a cluster named {name} exists in the account and is not this environment's (no {OWNER_TAG} tag for it); Slipway does not touch it"
        ))),
        other => Ok(other),
    }
}

async fn cluster<P: Provider>(
    p: &P,
    r: &Runner,
    ctx: &StepContext,
    t: &Target,
) -> Result<(), StepError> {
    let (name, version, region, tags) = t.cluster()?;
    let (access_entries, entries) = t.access_entries()?;
    let session = session(p, ctx, t).await?;
    if our_cluster(p, &session, &region, t, &name).await?.is_none() {
        let spec = ClusterSpec {
            name: name.clone(),
            version,
            request_token: format!("slipway-job-{}-cluster", ctx.job.id),
            network: recorded_network(t)?,
            endpoint: t.endpoint()?,
            access_entries,
            tags: t.owned_tags(tags),
        };
        // A cluster role made by the network step moments ago may not be visible to EKS yet.
        match settled(ctx, || p.create_cluster(&session, &region, &spec)).await {
            Ok(()) => {
                ctx.log(&format!(
                    "CreateCluster {name} (Kubernetes {})",
                    spec.version
                ))
                .await?
            }
            // Created by an attempt that crashed before recording it: adopted below if ours.
            Err(CloudError::AlreadyExists(_)) => {
                ctx.log(&format!("cluster {name} already exists")).await?;
                our_cluster(p, &session, &region, t, &name).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let active = until_active(
        ctx,
        &format!("cluster {name}"),
        |c: &Cluster| c.status,
        || our_cluster(p, &session, &region, t, &name),
    )
    .await?;
    ctx.record("cluster_arn", &active.arn).await?;
    ctx.log(&format!("cluster {name} is ACTIVE")).await?;
    for entry in &entries {
        p.ensure_access_entry(&session, &region, &name, entry)
            .await?;
        ctx.log(&format!("access entry for {}", entry.principal_arn))
            .await?;
    }
    r.set_outputs(
        t.id,
        json!({
            "cluster_name": name,
            "cluster_arn": active.arn,
            "cluster_endpoint": active.endpoint,
            "cluster_ca": active.certificate_authority,
            "region": region,
        }),
    )
    .await
}

async fn nodegroup<P: Provider>(p: &P, ctx: &StepContext, t: &Target) -> Result<(), StepError> {
    let (name, cluster, instance_type, min_size, max_size, tags) =
        t.planned("eks:CreateNodegroup", |s| match s.action {
            Action::CreateNodegroup {
                cluster,
                instance_type,
                min_size,
                max_size,
                tags,
            } => Some((s.resource, cluster, instance_type, min_size, max_size, tags)),
            _ => None,
        })?;
    let region = region(t)?;
    let session = session(p, ctx, t).await?;
    let find = || async {
        match p.find_nodegroup(&session, &region, &cluster, &name).await? {
            Some(n) if !t.owned(&n.tags) => Err(StepError::Permanent(format!(
                "a node group named {name} exists and is not this environment's"
            ))),
            other => Ok(other),
        }
    };
    if find().await?.is_none() {
        let size = |n: u32| {
            i32::try_from(n).map_err(|_| {
                StepError::Permanent(format!("a node group of {n} nodes is beyond EKS's limits"))
            })
        };
        let spec = NodegroupSpec {
            cluster: cluster.clone(),
            name: name.clone(),
            instance_type,
            min_size: size(min_size)?,
            max_size: size(max_size)?,
            request_token: format!("slipway-job-{}-nodegroup", ctx.job.id),
            network: recorded_network(t)?,
            tags: t.owned_tags(tags),
        };
        match settled(ctx, || p.create_nodegroup(&session, &region, &spec)).await {
            Ok(()) => {
                ctx.log(&format!(
                    "CreateNodegroup {name}: {} × {}–{}",
                    spec.instance_type, spec.min_size, spec.max_size
                ))
                .await?
            }
            Err(CloudError::AlreadyExists(_)) => {
                find().await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    // The add-ons need only the cluster: asked for now, they start while the nodes do (the CNI
    // is then there when the first node joins), and the add-ons step mostly finds them ACTIVE.
    request_addons(p, &session, ctx, t).await?;
    until_active(
        ctx,
        &format!("node group {name}"),
        |n: &Nodegroup| n.status,
        find,
    )
    .await?;
    ctx.log(&format!("node group {name} is ACTIVE")).await
}

/// Asks for each add-on of the plan that does not exist yet; returns the plan's add-on names.
/// All are asked for before any is waited for: they do not depend on each other, so their
/// creations overlap.
async fn request_addons<P: Provider>(
    p: &P,
    session: &P::Session,
    ctx: &StepContext,
    t: &Target,
) -> Result<Vec<String>, StepError> {
    let (cluster, _, region, tags) = t.cluster()?;
    let planned: Vec<(String, Option<String>, Option<String>)> = t
        .plan()?
        .into_iter()
        .filter_map(|s| match s.action {
            Action::CreateAddon {
                version,
                configuration,
                ..
            } => Some((s.resource, version, configuration)),
            _ => None,
        })
        .collect();
    for (name, version, configuration) in &planned {
        if p.find_addon(session, &region, &cluster, name)
            .await?
            .is_none()
        {
            let spec = AddonSpec {
                cluster: cluster.clone(),
                name: name.clone(),
                version: version.clone(),
                configuration: configuration.clone(),
                tags: t.owned_tags(tags.clone()),
            };
            match p.create_addon(session, &region, &spec).await {
                Ok(()) => ctx.log(&format!("CreateAddon {name}")).await?,
                // A crashed attempt's create: it is there now, which is all this needs.
                Err(CloudError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(planned.into_iter().map(|(name, _, _)| name).collect())
}

/// The EKS add-ons of the plan: each found or created (the node group step has asked for them
/// already, unless it was done before this version), then waited for until ACTIVE.
pub(super) async fn addons<P: Provider>(
    p: &P,
    ctx: &StepContext,
    t: &Target,
) -> Result<(), StepError> {
    let (cluster, _, region, tags) = t.cluster()?;
    let session = session(p, ctx, t).await?;
    let planned = request_addons(p, &session, ctx, t).await?;
    for name in planned {
        let addon = until_active(
            ctx,
            &format!("add-on {name}"),
            |a: &Addon| a.status,
            || async { Ok(p.find_addon(&session, &region, &cluster, &name).await?) },
        )
        .await?;
        ctx.log(&format!("add-on {name} {} is ACTIVE", addon.version))
            .await?;
    }
    // After the add-ons: the Pod Identity agent hands these roles to the pods.
    let account = account_id(t)?;
    let identities = t.all(|action| match action {
        Action::CreatePodIdentityAssociation {
            namespace,
            service_account,
            role,
            grants,
            ..
        } => Some((namespace, service_account, role, grants)),
        _ => None,
    })?;
    for (namespace, service_account, role, grants) in identities {
        let spec = WorkloadIdentitySpec {
            cluster: cluster.clone(),
            policy: PolicyDocument::granting(&grants, &region, &account),
            request_token: format!("slipway-job-{}-{service_account}", ctx.job.id),
            namespace,
            service_account,
            role_name: role,
            tags: t.owned_tags(tags.clone()),
        };
        let identity = p.ensure_workload_identity(&session, &region, &spec).await?;
        ctx.log(&format!(
            "{} {}/{} as {}",
            if identity.created {
                "Pod Identity association created for"
            } else {
                "Pod Identity association kept for"
            },
            spec.namespace,
            spec.service_account,
            identity.role_arn
        ))
        .await?;
    }
    Ok(())
}

pub(super) async fn kubernetes<P: Provider>(
    p: &P,
    ctx: &StepContext,
    t: &Target,
) -> Result<(), StepError> {
    let region = region(t)?;
    let session = session(p, ctx, t).await?;
    let name = t.cluster()?.0;
    let cluster = our_cluster(p, &session, &region, t, &name)
        .await?
        .ok_or_else(|| StepError::Transient(format!("cluster {name} is not there")))?;
    let objects = t.objects()?;
    let api = p.cluster_api(&session, &region, &cluster).await?;
    let applied = api.apply(&objects).await?;
    let changed = applied.iter().filter(|a| a.changed).count();
    for a in &applied {
        ctx.log(&format!(
            "{} {}",
            if a.changed { "applied" } else { "unchanged" },
            a.resource
        ))
        .await?;
    }
    ctx.log(&format!(
        "{} objects applied, {changed} changed",
        applied.len()
    ))
    .await?;
    let secrets = t.secrets()?;
    let created = api.create_secrets(&secrets).await?;
    ctx.log(&format!(
        "{created} of {} generated Secrets created (the others were there already)",
        secrets.len()
    ))
    .await?;
    // `ready` means working: operators available and what they manage reconciled.
    until_none_left(ctx, "the platform to be healthy", || {
        api.unhealthy(&objects)
    })
    .await?;
    ctx.log("every operator and platform object is healthy")
        .await?;
    let copies = t.copies()?;
    if !copies.is_empty() {
        api.copy_secrets(&copies).await?;
        ctx.log(&format!(
            "{} operator Secrets copied for the team",
            copies.len()
        ))
        .await?;
    }
    Ok(())
}

/// The configuration repository: made on the Git host when missing, then the desired state
/// committed. A repeat (a lost answer, a crash mid-push) finds the same tree and commits nothing.
pub(super) async fn repository(r: &Runner, ctx: &StepContext, t: &Target) -> Result<(), StepError> {
    let planned = t.planned("git:push", |s| {
        matches!(s.action, Action::PublishRepository { .. }).then_some(s.resource)
    });
    let Ok(name) = planned else {
        return ctx
            .log("this environment's plan was made before configuration repositories: none")
            .await;
    };
    let failed = |e: RepositoryError| match e {
        RepositoryError::Transient(m) => StepError::Transient(m),
        RepositoryError::Permanent(m) => StepError::Permanent(m),
    };
    let description = format!("The desired state of the Slipway environment {name}");
    let repository = repositories::ensure(&r.git, &name, &description)
        .await
        .map_err(failed)?;
    let published = repositories::publish(
        &r.git,
        &repository,
        &desired::files(t)?,
        // Onboarded services' entries are written by onboarding, not by provisioning.
        repositories::git::Keep::Under(desired::SERVICES),
        &desired::message(t)?,
    )
    .await
    .map_err(failed)?;
    ctx.log(&if published.pushed {
        format!(
            "pushed {} to {} ({})",
            published.commit,
            repository.web_url,
            repositories::git::BRANCH
        )
    } else {
        format!(
            "{} already holds this desired state at {}: nothing to commit",
            repository.web_url, published.commit
        )
    })
    .await?;
    r.set_outputs(
        t.id,
        json!({ "repository": {
            "url": repository.web_url,
            "clone_url": repository.clone_url,
            "commit": published.commit,
        } }),
    )
    .await
}

async fn outputs<P: Provider>(p: &P, r: &Runner, t: &Target) -> Result<(), StepError> {
    r.owner
        .ready(t.id, final_outputs(p, t)?, t.backlog_keys())
        .await
}

/// What the environment hands over once its plan is carried out: the plan's outputs, with the
/// kubeconfig made from what the cloud reported.
pub(super) fn final_outputs<P: Provider>(p: &P, t: &Target) -> Result<Value, StepError> {
    let planned: PlannedOutputs = t.planned("slipway:record-outputs", |s| match s.action {
        Action::RecordOutputs(outputs) => Some(outputs),
        _ => None,
    })?;
    let cluster = t.output("cluster_name").unwrap_or_default();
    let (endpoint, ca, region) = (
        t.output("cluster_endpoint").unwrap_or_default(),
        t.output("cluster_ca").unwrap_or_default(),
        t.output("region").unwrap_or_default(),
    );
    let mut outputs = json!(planned);
    outputs["kubeconfig"] = json!(kubernetes::kubeconfig(
        &cluster,
        &endpoint,
        &ca,
        &region,
        planned.kubeconfig_role.as_deref()
    ));
    outputs["cloud"] = json!(p.label());
    Ok(outputs)
}

async fn provision_step<P: Provider>(
    p: &P,
    r: &Runner,
    step: Step,
    ctx: &StepContext,
    t: &Target,
) -> Result<(), StepError> {
    match step {
        Step::Account => account(p, r, ctx, t).await,
        Step::Access => access(p, ctx, t).await,
        Step::Network => network(p, r, ctx, t).await,
        Step::Cluster => cluster(p, r, ctx, t).await,
        Step::Nodegroup => nodegroup(p, ctx, t).await,
        Step::Addons => addons(p, ctx, t).await,
        Step::Kubernetes => kubernetes(p, ctx, t).await,
        Step::Repository => repository(r, ctx, t).await,
        Step::Delivery => super::delivery::register_step(p, r, ctx, t).await,
        Step::Outputs => outputs(p, r, t).await,
    }
}

// ---- teardown ----

/// The environment's account, if it has one (recorded, found by name and tag, or still being
/// created by a provisioning attempt that crashed).
async fn existing_account<P: Provider>(
    p: &P,
    ctx: &StepContext,
    t: &Target,
) -> Result<Option<String>, StepError> {
    if let Some(id) = t.output("account_id") {
        return Ok(Some(id));
    }
    if t.pool()?.is_some() {
        return pool::held(&ctx.db, t.id).await;
    }
    let name = t.planned("organizations:CreateAccount", |s| {
        matches!(s.action, Action::CreateAccount { .. }).then_some(s.resource)
    })?;
    if let Some(request) = p.pending_account_request(&name).await? {
        // A request that failed made no account.
        return Ok(accounts::account_request_outcome(p, ctx, &request)
            .await?
            .ok());
    }
    Ok(p.find_account(&name)
        .await?
        .filter(|a| t.owned(&a.tags))
        .map(|a| a.id))
}

async fn teardown_step<P: Provider>(
    p: &P,
    r: &Runner,
    step: TeardownStep,
    ctx: &StepContext,
    t: &Target,
) -> Result<(), StepError> {
    if step == TeardownStep::Finish {
        return r.owner.torn_down(t.id).await;
    }
    if step == TeardownStep::Delivery {
        return super::delivery::deregister_step(p, r, ctx, t).await;
    }
    let Some(account) = existing_account(p, ctx, t).await? else {
        return ctx.log("no account was created: nothing to remove").await;
    };
    if step == TeardownStep::Account {
        if t.pool()?.is_some() {
            let returned = pool::give_back(p, ctx, &account, &region(t)?, t.id).await?;
            return r
                .set_outputs(t.id, json!({ "pooled_account": returned.as_str() }))
                .await;
        }
        let on_teardown = t.planned("organizations:CreateAccount", |s| match s.action {
            Action::CreateAccount { on_teardown, .. } => Some(on_teardown),
            _ => None,
        })?;
        return match on_teardown {
            AccountTeardown::Close => match p.close_account(&account).await? {
                Closure::Closed => {
                    ctx.log(&format!(
                        "closed account {account} (AWS deletes it after 90 days)"
                    ))
                    .await
                }
                // The environment is gone all the same; the account closes when AWS lets it.
                Closure::Deferred(why) => {
                    super::closures::queue(ctx, &account, t.id, &why).await?;
                    r.set_outputs(t.id, json!({ "account_closure": "queued" }))
                        .await?;
                    ctx.log(&format!(
                        "AWS deferred closing account {account} ({why}); it is queued, and the accounts.close job asks again every hour"
                    ))
                    .await
                }
            },
            AccountTeardown::Retain => {
                ctx.log(&format!("account {account} is kept, as the blueprint says"))
                    .await
            }
        };
    }
    let region = region(t)?;
    let session = match p.open_session(&account).await {
        Ok(s) => s,
        // A closed account has nothing left to remove.
        Err(CloudError::Permanent(m)) if m.contains("no such account") => {
            return ctx.log("the account is gone: nothing to remove").await;
        }
        Err(e) => return Err(e.into()),
    };
    let (name, _, _, tags) = t.cluster()?;
    if step == TeardownStep::Network {
        // The cluster is gone by now; the VPC goes only once nothing of it uses the subnets.
        let tags = t.owned_tags(tags);
        until_none_left(ctx, "the VPC to be deleted", || {
            p.delete_network(&session, &region, &tags)
        })
        .await?;
        return ctx
            .log("the environment's VPC is deleted (or it used tagged subnets)")
            .await;
    }
    let Some(cluster) = our_cluster(p, &session, &region, t, &name).await? else {
        return ctx
            .log(&format!("cluster {name} does not exist: nothing to remove"))
            .await;
    };
    match step {
        TeardownStep::Kubernetes if cluster.status == Status::Active => {
            let objects = t.objects()?;
            let api = p.cluster_api(&session, &region, &cluster).await?;
            let deleted = api.delete(&objects).await?;
            ctx.log(&format!("deleted {deleted} Kubernetes objects"))
                .await?;
            // Load balancers and volumes go with their namespaces; the node groups and the
            // cluster must outlive them, or AWS keeps them (and bills them) after teardown.
            until_none_left(
                ctx,
                "the namespaces to terminate and the volumes to go",
                || api.remaining(&objects),
            )
            .await?;
            ctx.log("the namespaces and their volumes are gone").await
        }
        TeardownStep::Kubernetes => {
            ctx.log("the cluster is not ACTIVE: its objects go with it")
                .await
        }
        TeardownStep::Nodegroup => {
            let nodegroup = t.planned("eks:CreateNodegroup", |s| {
                matches!(s.action, Action::CreateNodegroup { .. }).then_some(s.resource)
            })?;
            wait_for(ctx, "the node group to be deleted", || async {
                match p
                    .find_nodegroup(&session, &region, &name, &nodegroup)
                    .await?
                {
                    None => Ok(Some(())),
                    Some(n) if n.status == Status::Deleting => Ok(None),
                    Some(_) => {
                        p.delete_nodegroup(&session, &region, &name, &nodegroup)
                            .await?;
                        Ok(None)
                    }
                }
            })
            .await?;
            ctx.log(&format!("node group {nodegroup} is deleted")).await
        }
        TeardownStep::Cluster => {
            wait_for(ctx, "the cluster to be deleted", || async {
                match our_cluster(p, &session, &region, t, &name).await? {
                    None => Ok(Some(())),
                    Some(c) if c.status == Status::Deleting => Ok(None),
                    Some(_) => {
                        p.delete_cluster(&session, &region, &name).await?;
                        Ok(None)
                    }
                }
            })
            .await?;
            ctx.log(&format!("cluster {name} is deleted")).await
        }
        // Both returned above, before the cluster was looked up.
        TeardownStep::Delivery
        | TeardownStep::Network
        | TeardownStep::Account
        | TeardownStep::Finish => Err(StepError::Permanent(format!(
            "the {} step reached the cluster steps",
            step.as_str()
        ))),
    }
}

// ---- the job kinds ----

/// The two job kinds of an environment: `environment.provision` runs the plan's steps,
/// `environment.teardown` the plan in reverse.
pub struct EnvironmentJob {
    runner: Arc<Runner>,
    teardown: bool,
}

impl EnvironmentJob {
    pub fn provision(runner: Arc<Runner>) -> Self {
        Self {
            runner,
            teardown: false,
        }
    }

    pub fn teardown(runner: Arc<Runner>) -> Self {
        Self {
            runner,
            teardown: true,
        }
    }
}

impl Handler for EnvironmentJob {
    type Payload = EnvironmentJobPayload;

    fn kind(&self) -> &'static str {
        if self.teardown {
            TEARDOWN_JOB
        } else {
            PROVISION_JOB
        }
    }

    fn steps(&self, _payload: &EnvironmentJobPayload) -> Vec<String> {
        if self.teardown {
            TeardownStep::ALL.map(|s| s.as_str().to_owned()).to_vec()
        } else {
            Step::ALL.map(|s| s.as_str().to_owned()).to_vec()
        }
    }

    fn run_step<'a>(
        &'a self,
        step: &'a str,
        payload: &'a EnvironmentJobPayload,
        ctx: &'a StepContext,
    ) -> StepFuture<'a> {
        let r = &self.runner;
        Box::pin(async move {
            let t = &r.target(payload.environment_id).await?;
            // Every step, not only the first: a resumed or retried job never works on an
            // environment whose state says another job owns it.
            r.owner.begin(t.id, self.teardown).await?;
            let unknown = || StepError::Permanent(format!("unknown step {step}"));
            if self.teardown {
                let step = TeardownStep::parse(step).ok_or_else(unknown)?;
                match &r.cloud {
                    Cloud::Aws(p) => teardown_step(p.as_ref(), r, step, ctx, t).await,
                    Cloud::Simulated(p) => teardown_step(p, r, step, ctx, t).await,
                }
            } else {
                let step = Step::parse(step).ok_or_else(unknown)?;
                match &r.cloud {
                    Cloud::Aws(p) => provision_step(p.as_ref(), r, step, ctx, t).await,
                    Cloud::Simulated(p) => provision_step(p, r, step, ctx, t).await,
                }
            }
        })
    }

    /// The environment becomes `failed`, with the choice to retry or clean up.
    fn abandoned<'a>(
        &'a self,
        _db: &'a PgPool,
        job: &'a ClaimedJob,
        payload: &'a EnvironmentJobPayload,
        error: &'a str,
    ) -> StepFuture<'a> {
        let r = &self.runner;
        Box::pin(async move {
            r.owner
                .failed(payload.environment_id, job.id, error.to_owned())
                .await
        })
    }
}
