//! The provisioning plan: a pure function from the approved blueprint and a request to the
//! ordered list of steps, each with the API call or Kubernetes object it stands for. Names are
//! deterministic (platform + environment), which is what lets a re-run find what an earlier
//! attempt created instead of creating it twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cloud::{AccessEntry, CLUSTER_ADMIN_POLICY, Grant, Tags, describe_object};
use super::manifests::{self, GeneratedSecret, SecretCopy, TeamNamespace, WorkloadAccess};
use super::pool::PoolSpec;
use super::versions::{self, Install};
use crate::define::blueprint::{AccountTeardown, Blueprint, EnvironmentType, Lifecycle};

/// What a request asks for, already validated against its environment type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Parameters {
    pub instance_type: String,
    pub min_nodes: u32,
    pub max_nodes: u32,
    pub data_services: Vec<String>,
}

/// One action of the plan. `step` is the job step that performs it. In JSON and YAML it reads
/// `{step, resource, action: "eks:CreateCluster", details: {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    pub step: Step,
    pub resource: String,
    #[serde(flatten)]
    pub action: Action,
}

/// What a plan step does, named by the API call (or Kubernetes verb) it stands for, with the
/// values that call is made with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", content = "details")]
pub enum Action {
    #[serde(rename = "organizations:CreateAccount")]
    CreateAccount {
        email: String,
        parent: String,
        /// The organizational unit the account is placed in, outermost first
        /// (`[platform, long-lived]`), under Slipway's base unit or the root. Plans made before
        /// units existed have none and leave the account where it is.
        #[serde(default)]
        organizational_unit: Vec<String>,
        /// Attached to the platform's unit (the first of `organizational_unit`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        service_control_policies: Vec<String>,
        tags: Tags,
        on_teardown: AccountTeardown,
        adopt: String,
    },
    /// An account of the platform's pool, leased for the environment's life (an ephemeral
    /// environment's, instead of [`Action::CreateAccount`]).
    #[serde(rename = "slipway:LeasePooledAccount")]
    LeasePooledAccount(PoolSpec),
    #[serde(rename = "sts:AssumeRole")]
    AssumeRole { account: String },
    #[serde(rename = "iam:CreateRole")]
    CreateRoles {
        /// The trusted service, then the managed policies attached.
        cluster_role: Vec<String>,
        node_role: Vec<String>,
        adopt: String,
    },
    /// Plans made before Slipway built a VPC per environment (their network step builds one
    /// with the default range).
    #[serde(rename = "ec2:DescribeSubnets")]
    DescribeSubnets { subnets: String, region: String },
    #[serde(rename = "ec2:CreateVpc")]
    CreateVpc {
        /// The platform's range: the environment's VPC is its lowest /`prefix_length` that no
        /// live environment of the platform holds, chosen when the step runs.
        platform_cidr: ipnet::Ipv4Net,
        prefix_length: u8,
        zones: usize,
        region: String,
        existing: String,
    },
    #[serde(rename = "eks:CreateCluster")]
    CreateCluster {
        version: String,
        region: String,
        /// Who may reach the API endpoint besides the VPC (none: private only). `None` in plans
        /// made before endpoint access was planned: EKS's default, public to anyone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_public_cidrs: Option<Vec<ipnet::Ipv4Net>>,
        /// Authentication mode `API` (EKS access entries), Slipway admin as the creator. False
        /// in plans made before: EKS's default, the `aws-auth` ConfigMap.
        #[serde(default)]
        access_entries: bool,
        tags: Tags,
    },
    /// Who besides Slipway may use the cluster: the platform team (cluster admin) and each
    /// team (its Kubernetes group, bound in the team namespace).
    #[serde(rename = "eks:CreateAccessEntry")]
    CreateAccessEntry { cluster: String, entry: AccessEntry },
    #[serde(rename = "eks:CreateNodegroup")]
    CreateNodegroup {
        cluster: String,
        instance_type: String,
        min_size: u32,
        max_size: u32,
        tags: Tags,
    },
    /// An EKS add-on; `version: None` takes the one EKS recommends for the cluster's version.
    #[serde(rename = "eks:CreateAddon")]
    CreateAddon {
        cluster: String,
        version: Option<String>,
        configuration: Option<String>,
    },
    /// An IAM role with an inline policy of `grants`, given to one ServiceAccount through an
    /// EKS Pod Identity association (after the Pod Identity agent add-on).
    #[serde(rename = "eks:CreatePodIdentityAssociation")]
    CreatePodIdentityAssociation {
        cluster: String,
        namespace: String,
        service_account: String,
        role: String,
        grants: Vec<Grant>,
    },
    /// A Kubernetes object, server-side applied verbatim: free-form JSON by nature (the API
    /// server validates it against its schema).
    #[serde(rename = "kubernetes:apply")]
    Apply(Value),
    /// A Secret whose values are generated in the cluster at apply time and never stored here.
    #[serde(rename = "kubernetes:create-secret")]
    CreateSecret(GeneratedSecret),
    /// Keys of an operator's Secret copied into another namespace, once the platform is healthy.
    #[serde(rename = "kubernetes:copy-secret")]
    CopySecret(SecretCopy),
    /// The environment's configuration repository on the platform's Git host: made when
    /// missing, then its desired state committed (one commit per change, none for a repeat).
    #[serde(rename = "git:push")]
    PublishRepository {
        branch: String,
        /// What the repository holds, for the preview.
        contents: Vec<String>,
    },
    /// The cluster as a deployment target of the DevOps environment: an access entry for its
    /// delivery role in `group`, and the target's objects in the DevOps cluster (for the
    /// DevOps environment: every environment of the platform registered).
    #[serde(rename = "slipway:RegisterDeploymentTarget")]
    RegisterDeploymentTarget { group: String },
    #[serde(rename = "slipway:record-outputs")]
    RecordOutputs(PlannedOutputs),
}

impl Action {
    /// The name the plan shows (`eks:CreateCluster`).
    pub fn name(&self) -> &'static str {
        match self {
            Action::CreateAccount { .. } => "organizations:CreateAccount",
            Action::LeasePooledAccount(_) => "slipway:LeasePooledAccount",
            Action::AssumeRole { .. } => "sts:AssumeRole",
            Action::CreateRoles { .. } => "iam:CreateRole",
            Action::DescribeSubnets { .. } => "ec2:DescribeSubnets",
            Action::CreateVpc { .. } => "ec2:CreateVpc",
            Action::CreateCluster { .. } => "eks:CreateCluster",
            Action::CreateNodegroup { .. } => "eks:CreateNodegroup",
            Action::CreateAddon { .. } => "eks:CreateAddon",
            Action::CreatePodIdentityAssociation { .. } => "eks:CreatePodIdentityAssociation",
            Action::Apply(_) => "kubernetes:apply",
            Action::CreateSecret(_) => "kubernetes:create-secret",
            Action::CopySecret(_) => "kubernetes:copy-secret",
            Action::PublishRepository { .. } => "git:push",
            Action::RegisterDeploymentTarget { .. } => "slipway:RegisterDeploymentTarget",
            Action::RecordOutputs(_) => "slipway:record-outputs",
            Action::CreateAccessEntry { .. } => "eks:CreateAccessEntry",
        }
    }
}

/// What the outputs step records beside what the cloud reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedOutputs {
    pub namespaces: Vec<String>,
    /// Data service → its in-cluster address.
    pub data_service_endpoints: BTreeMap<String, String>,
    /// The role the handed-out kubeconfig assumes (`aws eks get-token --role-arn`): the
    /// platform team's. None: the caller's own credentials, which only an access entry admits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_role: Option<String>,
    /// The app teams the environment was built for: their roles and namespaces (the hand-over).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub teams: BTreeMap<String, PlannedTeam>,
}

/// An app team in an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedTeam {
    /// The role its kubeconfig assumes, admitted by its access entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    pub namespaces: Vec<String>,
}

/// An app team as a plan needs it (the platform's teams, read before planning).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanTeam {
    pub name: String,
    pub role_arn: Option<String>,
    /// Its own namespaces, used when the blueprint gives teams their own.
    pub namespaces: Vec<String>,
}

/// Everything the plan is built from.
pub struct PlanInput<'a> {
    pub platform_slug: &'a str,
    pub blueprint: &'a Blueprint,
    pub name: &'a str,
    pub parameters: &'a Parameters,
    /// The app teams the environment is for.
    pub teams: &'a [PlanTeam],
    /// The domain of the root e-mail address of the new account.
    pub account_email_domain: &'a str,
}

/// The provisioning job's steps; every plan action belongs to one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Account,
    Access,
    Network,
    Cluster,
    Nodegroup,
    Addons,
    Kubernetes,
    Repository,
    Delivery,
    Outputs,
}

impl Step {
    /// In the order they run.
    pub const ALL: [Step; 10] = [
        Step::Account,
        Step::Access,
        Step::Network,
        Step::Cluster,
        Step::Nodegroup,
        Step::Addons,
        Step::Kubernetes,
        Step::Repository,
        Step::Delivery,
        Step::Outputs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Account => "account",
            Step::Access => "access",
            Step::Network => "network",
            Step::Cluster => "cluster",
            Step::Nodegroup => "nodegroup",
            Step::Addons => "addons",
            Step::Kubernetes => "kubernetes",
            Step::Repository => "repository",
            Step::Delivery => "delivery",
            Step::Outputs => "outputs",
        }
    }

    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The team namespaces of an environment for `teams`: each team's own when the blueprint says
/// so (`security.namespaces_per_team`), each bound to that team's group only; otherwise the one
/// shared namespace, bound to the platform's developers group and every team's.
fn team_namespaces(platform_slug: &str, bp: &Blueprint, teams: &[PlanTeam]) -> Vec<TeamNamespace> {
    if bp.security.namespaces_per_team && !teams.is_empty() {
        return teams
            .iter()
            .flat_map(|team| {
                team.namespaces.iter().map(|ns| TeamNamespace {
                    name: ns.clone(),
                    groups: vec![manifests::team_group(platform_slug, &team.name)],
                })
            })
            .collect();
    }
    let groups = std::iter::once(format!("{platform_slug}:developers"))
        .chain(
            teams
                .iter()
                .map(|t| manifests::team_group(platform_slug, &t.name)),
        )
        .collect();
    vec![TeamNamespace {
        name: manifests::SHARED_TEAM_NAMESPACE.to_owned(),
        groups,
    }]
}

/// Which of the platform's organizational units an account goes in: the landing-zone split of
/// shared tooling, long-lived workloads and short-lived ones, so each can carry its own SCPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountUnit {
    Devops,
    LongLived,
    Ephemeral,
}

impl AccountUnit {
    pub fn name(self) -> &'static str {
        match self {
            AccountUnit::Devops => "devops",
            AccountUnit::LongLived => "long-lived",
            AccountUnit::Ephemeral => "ephemeral",
        }
    }
}

impl From<Lifecycle> for AccountUnit {
    fn from(lifecycle: Lifecycle) -> Self {
        match lifecycle {
            Lifecycle::LongLived => AccountUnit::LongLived,
            Lifecycle::Ephemeral => AccountUnit::Ephemeral,
        }
    }
}

/// The name of the DevOps environment (one per platform).
pub const DEVOPS_ENVIRONMENT: &str = "devops";

/// Builds the plan of an environment.
pub fn build(input: &PlanInput<'_>, env: &EnvironmentType) -> Vec<PlanStep> {
    let bp = input.blueprint;
    let account = format!("{}-{}", bp.accounts.environment_prefix, input.name);
    let team_namespaces = team_namespaces(input.platform_slug, bp, input.teams);
    let bootstrap = manifests::Bootstrap {
        blueprint: bp,
        platform_slug: input.platform_slug,
        environment: input.name,
        team_namespaces: &team_namespaces,
        max_nodes: input.parameters.max_nodes,
        data_services: &input.parameters.data_services,
    };
    let mut namespaces = manifests::namespaces(&bootstrap);
    if bp.service_mesh.istio {
        namespaces.push("istio-system".into());
    }
    let mut objects = manifests::operators(&bootstrap);
    objects.extend(manifests::environment(&bootstrap));
    steps(
        input,
        &account,
        env.lifecycle.into(),
        &env.name,
        &env.kubernetes_version,
        Bootstrapped {
            objects,
            workload_access: manifests::workload_access(&bootstrap),
            secrets: manifests::generated_secrets(&bootstrap),
            copies: manifests::copied_secrets(&bootstrap),
            access: access_entries(input.platform_slug, bp, input.teams),
            outputs: PlannedOutputs {
                namespaces,
                data_service_endpoints: manifests::data_service_endpoints(
                    &input.parameters.data_services,
                ),
                kubeconfig_role: bp.access.platform_team_role_arn.clone(),
                teams: input
                    .teams
                    .iter()
                    .map(|t| {
                        let namespaces = team_namespaces
                            .iter()
                            .filter(|ns| {
                                ns.groups
                                    .contains(&manifests::team_group(input.platform_slug, &t.name))
                            })
                            .map(|ns| ns.name.clone())
                            .collect();
                        let planned = PlannedTeam {
                            role_arn: t.role_arn.clone(),
                            namespaces,
                        };
                        (t.name.clone(), planned)
                    })
                    .collect(),
            },
        },
    )
}

/// The parameters and the plan of the platform's DevOps environment: its own account (the
/// blueprint's DevOps account) and a dedicated cluster for the delivery tool.
pub fn build_devops(
    platform_slug: &str,
    blueprint: &Blueprint,
    account_email_domain: &str,
) -> (Parameters, Vec<PlanStep>) {
    let node_group = &blueprint.devops.node_group;
    let parameters = Parameters {
        instance_type: node_group
            .instance_types
            .first()
            .cloned()
            .unwrap_or_default(),
        min_nodes: node_group.min_size,
        max_nodes: node_group.max_size,
        data_services: Vec::new(),
    };
    let objects = manifests::devops(blueprint, DEVOPS_ENVIRONMENT);
    let namespaces = objects
        .iter()
        .filter(|o| o["kind"] == "Namespace")
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let input = PlanInput {
        platform_slug,
        blueprint,
        name: DEVOPS_ENVIRONMENT,
        parameters: &parameters,
        teams: &[],
        account_email_domain,
    };
    let plan = steps(
        &input,
        &blueprint.accounts.devops,
        AccountUnit::Devops,
        DEVOPS_ENVIRONMENT,
        &blueprint.devops.kubernetes_version,
        Bootstrapped {
            objects,
            workload_access: vec![delivery_access(platform_slug, blueprint)],
            secrets: Vec::new(),
            copies: Vec::new(),
            access: access_entries(platform_slug, blueprint, &[]),
            outputs: PlannedOutputs {
                namespaces,
                data_service_endpoints: BTreeMap::new(),
                kubeconfig_role: blueprint.access.platform_team_role_arn.clone(),
                teams: BTreeMap::new(),
            },
        },
    );
    (parameters, plan)
}

/// The delivery tool's AWS identity: the role each environment's cluster admits as a
/// deployment target (`manifests::DELIVERY_ROLE`), given to the tool's ServiceAccount.
fn delivery_access(platform_slug: &str, blueprint: &Blueprint) -> WorkloadAccess {
    let (namespace, service_account) = manifests::delivery_identity(blueprint.devops.tool);
    WorkloadAccess {
        namespace,
        service_account,
        role: manifests::DELIVERY_ROLE,
        grants: vec![Grant::DescribeClusters {
            prefix: platform_slug.to_owned(),
        }],
    }
}

/// What the Kubernetes and outputs steps do.
struct Bootstrapped {
    /// In apply order.
    objects: Vec<Value>,
    workload_access: Vec<WorkloadAccess>,
    secrets: Vec<GeneratedSecret>,
    /// After the platform is healthy.
    copies: Vec<SecretCopy>,
    /// Resource name → access entry.
    access: Vec<(String, AccessEntry)>,
    outputs: PlannedOutputs,
}

/// The access entries of a cluster: the platform team's role as cluster admin, and each team's
/// role mapped to its group (the DevOps cluster has no teams).
fn access_entries(
    platform_slug: &str,
    bp: &Blueprint,
    teams: &[PlanTeam],
) -> Vec<(String, AccessEntry)> {
    let mut entries: Vec<(String, AccessEntry)> = bp
        .access
        .platform_team_role_arn
        .iter()
        .map(|arn| {
            (
                "the platform team".to_owned(),
                AccessEntry {
                    principal_arn: arn.clone(),
                    kubernetes_groups: Vec::new(),
                    username: None,
                    cluster_policy: Some(CLUSTER_ADMIN_POLICY.to_owned()),
                },
            )
        })
        .collect();
    entries.extend(teams.iter().filter_map(|team| {
        let role = team.role_arn.clone()?;
        Some((
            format!("team {}", team.name),
            AccessEntry {
                principal_arn: role,
                kubernetes_groups: vec![manifests::team_group(platform_slug, &team.name)],
                username: Some(format!("team:{}:{{{{SessionName}}}}", team.name)),
                cluster_policy: None,
            },
        ))
    }));
    entries
}

fn steps(
    input: &PlanInput<'_>,
    account: &str,
    unit: AccountUnit,
    environment_type: &str,
    kubernetes_version: &str,
    bootstrap: Bootstrapped,
) -> Vec<PlanStep> {
    let bp = input.blueprint;
    let cluster = format!("{}-{}", input.platform_slug, input.name);
    let tags: Tags = [
        ("slipway:platform", input.platform_slug.to_owned()),
        ("slipway:environment", input.name.to_owned()),
        ("slipway:environment-type", environment_type.to_owned()),
        (
            "cost-center",
            format!("{}/{}", input.platform_slug, input.name),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let step = |step, resource: &str, action| PlanStep {
        step,
        resource: resource.to_owned(),
        action,
    };
    let organizational_unit = vec![input.platform_slug.to_owned(), unit.name().to_owned()];
    let pooled = unit == AccountUnit::Ephemeral && bp.accounts.ephemeral_pool_size > 0;
    let (account_step, account) = if pooled {
        let pool = PoolSpec {
            platform: input.platform_slug.to_owned(),
            size: bp.accounts.ephemeral_pool_size,
            account_prefix: format!("{}-pool", bp.accounts.environment_prefix),
            email_domain: input.account_email_domain.to_owned(),
            region: bp.cloud.region.clone(),
            organizational_unit,
            service_control_policies: bp.accounts.service_control_policies.clone(),
            tags: [("slipway:platform", input.platform_slug)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        let name = format!("{}-<n>", pool.account_prefix);
        (
            step(Step::Account, &name, Action::LeasePooledAccount(pool)),
            "the leased account".to_owned(),
        )
    } else {
        let action = Action::CreateAccount {
            email: format!("{account}@{}", input.account_email_domain),
            parent: bp.accounts.parent.clone(),
            organizational_unit,
            service_control_policies: bp.accounts.service_control_policies.clone(),
            tags: tags.clone(),
            on_teardown: bp.accounts.on_teardown,
            adopt: "an account with this name and Slipway's tags is adopted, not created again"
                .into(),
        };
        (step(Step::Account, account, action), account.to_owned())
    };
    let mut plan = vec![
        account_step,
        step(
            Step::Access,
            "OrganizationAccountAccessRole",
            Action::AssumeRole { account },
        ),
        step(
            Step::Network,
            "the EKS cluster and node roles",
            Action::CreateRoles {
                cluster_role: ["eks.amazonaws.com", "AmazonEKSClusterPolicy"]
                    .map(String::from)
                    .to_vec(),
                node_role: [
                    "ec2.amazonaws.com",
                    "AmazonEKSWorkerNodePolicy",
                    "AmazonEKS_CNI_Policy",
                    "AmazonEC2ContainerRegistryReadOnly",
                ]
                .map(String::from)
                .to_vec(),
                adopt: "roles of these names are adopted".into(),
            },
        ),
        step(
            Step::Network,
            &format!("{cluster}-vpc"),
            Action::CreateVpc {
                platform_cidr: bp.network.cidr,
                prefix_length: bp.network.environment_prefix_length,
                zones: super::vpc::ZONES,
                region: bp.cloud.region.clone(),
                existing: "subnets tagged slipway:eks=true in the account are used instead".into(),
            },
        ),
        step(
            Step::Cluster,
            &cluster,
            Action::CreateCluster {
                version: kubernetes_version.to_owned(),
                region: bp.cloud.region.clone(),
                api_public_cidrs: Some(bp.network.api_public_cidrs.clone()),
                access_entries: true,
                tags: tags.clone(),
            },
        ),
        step(
            Step::Nodegroup,
            &format!("{cluster}-nodes"),
            Action::CreateNodegroup {
                cluster: cluster.clone(),
                instance_type: input.parameters.instance_type.clone(),
                min_size: input.parameters.min_nodes,
                max_size: input.parameters.max_nodes,
                tags,
            },
        ),
    ];
    // After the cluster it needs, before the node group (the plan reads in step order).
    let nodegroup = plan.len() - 1;
    plan.splice(
        nodegroup..nodegroup,
        bootstrap.access.into_iter().map(|(resource, entry)| {
            step(
                Step::Cluster,
                &resource,
                Action::CreateAccessEntry {
                    cluster: cluster.clone(),
                    entry,
                },
            )
        }),
    );
    plan.extend(versions::COMPONENTS.iter().filter_map(|c| match c.install {
        Install::EksAddon { configuration } => Some(step(
            Step::Addons,
            c.name,
            Action::CreateAddon {
                cluster: cluster.clone(),
                version: None,
                configuration: configuration.map(str::to_owned),
            },
        )),
        _ => None,
    }));
    plan.extend(bootstrap.workload_access.into_iter().map(|access| {
        step(
            Step::Addons,
            &format!("{}/{}", access.namespace, access.service_account),
            Action::CreatePodIdentityAssociation {
                cluster: cluster.clone(),
                namespace: access.namespace.to_owned(),
                service_account: access.service_account.to_owned(),
                role: access.role.to_owned(),
                grants: access.grants,
            },
        )
    }));
    plan.extend(bootstrap.objects.into_iter().map(|object| {
        step(
            Step::Kubernetes,
            &describe_object(&object),
            Action::Apply(object),
        )
    }));
    plan.extend(bootstrap.secrets.into_iter().map(|secret| {
        step(
            Step::Kubernetes,
            &format!("Secret {}/{}", secret.namespace, secret.name),
            Action::CreateSecret(secret),
        )
    }));
    plan.extend(bootstrap.copies.into_iter().map(|copy| {
        step(
            Step::Kubernetes,
            &format!("Secret {}/{}", copy.to_namespace, copy.to_name),
            Action::CopySecret(copy),
        )
    }));
    plan.push(step(
        Step::Repository,
        &cluster,
        Action::PublishRepository {
            branch: crate::repositories::git::BRANCH.to_owned(),
            contents: super::desired::CONTENTS.map(str::to_owned).to_vec(),
        },
    ));
    plan.push(step(
        Step::Delivery,
        &format!("{}-delivery role", input.platform_slug),
        Action::RegisterDeploymentTarget {
            group: manifests::delivery_group(input.platform_slug),
        },
    ));
    plan.push(step(
        Step::Outputs,
        &cluster,
        Action::RecordOutputs(bootstrap.outputs),
    ));
    plan
}

/// The plan as YAML (the preview's "as YAML" view and `GET …/plan?format=yaml`).
pub fn to_yaml(plan: &[PlanStep]) -> String {
    yaml_serde::to_string(plan).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_for(env: &str, data_services: &[&str]) -> Vec<PlanStep> {
        plan_with_teams(
            env,
            data_services,
            &Blueprint::from_template("shop", None),
            &[],
        )
    }

    fn plan_with_teams(
        env: &str,
        data_services: &[&str],
        bp: &Blueprint,
        teams: &[PlanTeam],
    ) -> Vec<PlanStep> {
        let ty = bp.environment_type(env).unwrap().clone();
        build(
            &PlanInput {
                platform_slug: "shop",
                blueprint: bp,
                name: "perf-1",
                parameters: &Parameters {
                    instance_type: ty.node_group.instance_types[0].clone(),
                    min_nodes: ty.node_group.min_size,
                    max_nodes: ty.node_group.max_size,
                    data_services: data_services.iter().map(|s| s.to_string()).collect(),
                },
                teams,
                account_email_domain: "example.com",
            },
            &ty,
        )
    }

    fn team(name: &str, role: Option<&str>, namespaces: &[&str]) -> PlanTeam {
        PlanTeam {
            name: name.into(),
            role_arn: role.map(str::to_owned),
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        }
    }

    /// The objects the plan applies in `namespace`, as `Kind/name`.
    fn applied_in(plan: &[PlanStep], namespace: &str) -> Vec<String> {
        plan.iter()
            .filter_map(|p| match &p.action {
                Action::Apply(o) if o["metadata"]["namespace"] == namespace => Some(format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or_default(),
                    o["metadata"]["name"].as_str().unwrap_or_default()
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn each_team_gets_its_own_namespaces_bound_to_its_group_alone_with_an_access_entry() {
        let bp = Blueprint::from_template("shop", None);
        assert!(bp.security.namespaces_per_team);
        let teams = [
            team(
                "checkout",
                Some("arn:aws:iam::111122223333:role/checkout"),
                &["checkout", "checkout-batch"],
            ),
            team("search", None, &["search"]),
        ];
        let plan = plan_with_teams("dev", &["kafka"], &bp, &teams);
        for ns in ["checkout", "checkout-batch", "search"] {
            let objects = applied_in(&plan, ns);
            for expected in [
                "Role/developers",
                "RoleBinding/developers",
                "ResourceQuota/default",
                "LimitRange/default",
                "NetworkPolicy/default-deny",
            ] {
                assert!(
                    objects.contains(&expected.to_owned()),
                    "{ns} lacks {expected}: {objects:?}"
                );
            }
            let binding = plan
                .iter()
                .find_map(|p| match &p.action {
                    Action::Apply(o)
                        if o["kind"] == "RoleBinding" && o["metadata"]["namespace"] == ns =>
                    {
                        Some(o)
                    }
                    _ => None,
                })
                .unwrap();
            let owner = if ns == "search" { "search" } else { "checkout" };
            assert_eq!(
                binding["subjects"],
                serde_json::json!([
                    { "kind": "Group", "name": format!("shop:team:{owner}"), "apiGroup": "rbac.authorization.k8s.io" },
                    // The DevOps environment's delivery tool deploys the team's services.
                    { "kind": "Group", "name": "shop:delivery", "apiGroup": "rbac.authorization.k8s.io" }
                ]),
                "the owning team and the delivery tool, no other team"
            );
            assert!(
                plan.iter()
                    .any(|p| matches!(&p.action, Action::CopySecret(c) if c.to_namespace == ns)),
                "{ns} gets Kafka's CA"
            );
        }
        assert!(
            applied_in(&plan, "apps").is_empty(),
            "no shared namespace when teams have their own"
        );
        let entries: Vec<&AccessEntry> = plan
            .iter()
            .filter_map(|p| match &p.action {
                Action::CreateAccessEntry { entry, .. } => Some(entry),
                _ => None,
            })
            .collect();
        assert_eq!(
            entries.len(),
            1,
            "only a team with a role gets an entry: {entries:?}"
        );
        assert_eq!(entries[0].kubernetes_groups, ["shop:team:checkout"]);
        let Some(Action::RecordOutputs(outputs)) = plan.last().map(|p| &p.action) else {
            panic!("the plan ends with its outputs")
        };
        assert_eq!(
            outputs.teams["checkout"].namespaces,
            ["checkout", "checkout-batch"]
        );
        assert_eq!(outputs.teams["search"].role_arn, None);

        // Without namespaces per team, every team shares `apps` beside the developers group.
        let mut shared = bp.clone();
        shared.security.namespaces_per_team = false;
        let plan = plan_with_teams("dev", &[], &shared, &teams);
        let binding = plan
            .iter()
            .find_map(|p| match &p.action {
                Action::Apply(o)
                    if o["kind"] == "RoleBinding" && o["metadata"]["namespace"] == "apps" =>
                {
                    Some(o)
                }
                _ => None,
            })
            .unwrap();
        let groups: Vec<&str> = binding["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        assert_eq!(
            groups,
            [
                "shop:developers",
                "shop:team:checkout",
                "shop:team:search",
                "shop:delivery"
            ]
        );
        assert!(applied_in(&plan, "checkout").is_empty());
    }

    #[test]
    fn the_default_plan_runs_every_step_in_order_with_deterministic_names() {
        let plan = plan_for("perf", &["kafka"]);
        let mut steps: Vec<Step> = plan.iter().map(|p| p.step).collect();
        steps.dedup();
        assert_eq!(steps, Step::ALL);
        assert_eq!(plan[0].resource, "shop-pool-<n>");
        assert!(
            matches!(&plan[0].action, Action::LeasePooledAccount(pool) if pool.size == 3 && pool.email_domain == "example.com")
        );
        assert!(
            matches!(&plan_for("dev", &[])[0].action, Action::CreateAccount { email, .. } if email == "shop-perf-1@example.com")
        );
        assert_eq!(plan[4].resource, "shop-perf-1");
        assert!(plan.iter().any(|p| p.resource == "Kafka data/kafka"));
        let quota = plan
            .iter()
            .find(|p| p.resource == "ResourceQuota apps/default")
            .expect("a quota for the team namespace");
        let Action::Apply(quota) = &quota.action else {
            panic!("a quota is applied: {quota:?}")
        };
        assert_eq!(quota["spec"]["hard"]["requests.cpu"], "40");
        assert!(
            plan.iter()
                .any(|p| p.resource == "PeerAuthentication istio-system/default")
        );
        assert_eq!(
            plan,
            plan_for("perf", &["kafka"]),
            "the same input, the same plan"
        );
    }

    #[test]
    fn each_account_goes_in_its_platforms_unit_for_its_kind_under_the_blueprints_policies() {
        let unit_of = |plan: &[PlanStep]| match &plan[0].action {
            Action::CreateAccount {
                organizational_unit,
                service_control_policies,
                ..
            }
            | Action::LeasePooledAccount(PoolSpec {
                organizational_unit,
                service_control_policies,
                ..
            }) => (
                organizational_unit.clone(),
                service_control_policies.clone(),
            ),
            other => panic!("the plan starts with the account: {other:?}"),
        };
        let none: Vec<String> = vec![];
        assert_eq!(
            unit_of(&plan_for("perf", &[])),
            (
                vec!["shop".to_owned(), "ephemeral".to_owned()],
                none.clone()
            )
        );
        assert_eq!(
            unit_of(&plan_for("dev", &[])),
            (vec!["shop".to_owned(), "long-lived".to_owned()], none)
        );
        let mut bp = Blueprint::from_template("shop", None);
        bp.accounts.service_control_policies = vec!["deny-leaving-organization".into()];
        let (_, devops) = build_devops("shop", &bp, "example.com");
        assert_eq!(
            unit_of(&devops),
            (
                vec!["shop".to_owned(), "devops".to_owned()],
                vec!["deny-leaving-organization".to_owned()]
            )
        );
    }

    #[test]
    fn without_data_services_there_is_no_data_namespace() {
        let plan = plan_for("dev", &[]);
        assert!(!plan.iter().any(|p| p.resource.contains("data")));
    }
}
