//! The provisioning plan: a pure function from the approved blueprint and a request to the
//! ordered list of steps, each with the API call or Kubernetes object it stands for. Names are
//! deterministic (platform + environment), which is what lets a re-run find what an earlier
//! attempt created instead of creating it twice.

use serde::Serialize;
use serde_json::{Value, json};

use super::cloud::describe_object;
use super::manifests;
use crate::define::blueprint::{Blueprint, EnvironmentType};

/// What a request asks for, already validated against its environment type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Parameters {
    pub instance_type: String,
    pub min_nodes: u32,
    pub max_nodes: u32,
    pub data_services: Vec<String>,
}

/// One action of the plan. `step` is the job step that performs it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PlanStep {
    pub step: Step,
    pub action: String,
    pub resource: String,
    pub details: Value,
}

/// Everything the plan is built from.
pub struct PlanInput<'a> {
    pub platform_slug: &'a str,
    pub blueprint: &'a Blueprint,
    pub name: &'a str,
    pub parameters: &'a Parameters,
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
    Kubernetes,
    Outputs,
}

impl Step {
    /// In the order they run.
    pub const ALL: [Step; 7] = [
        Step::Account,
        Step::Access,
        Step::Network,
        Step::Cluster,
        Step::Nodegroup,
        Step::Kubernetes,
        Step::Outputs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Account => "account",
            Step::Access => "access",
            Step::Network => "network",
            Step::Cluster => "cluster",
            Step::Nodegroup => "nodegroup",
            Step::Kubernetes => "kubernetes",
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

/// The namespace the requesting team works in. Slipway has no notion of teams yet, so every
/// environment has one team namespace, bound to the platform's developers group.
pub const TEAM_NAMESPACE: &str = "apps";

/// The name of the DevOps environment (one per platform).
pub const DEVOPS_ENVIRONMENT: &str = "devops";

/// Builds the plan of an environment.
pub fn build(input: &PlanInput<'_>, env: &EnvironmentType) -> Vec<PlanStep> {
    let bp = input.blueprint;
    let account = format!("{}-{}", bp.accounts.environment_prefix, input.name);
    let bootstrap = manifests::Bootstrap {
        blueprint: bp,
        platform_slug: input.platform_slug,
        environment: input.name,
        team_namespace: TEAM_NAMESPACE,
        max_nodes: input.parameters.max_nodes,
        data_services: &input.parameters.data_services,
    };
    let mut namespaces = manifests::namespaces(&bootstrap);
    if bp.service_mesh.istio {
        namespaces.push("istio-system".into());
    }
    steps(
        input,
        &account,
        &env.name,
        &env.kubernetes_version,
        manifests::environment(&bootstrap),
        json!({
            "namespaces": namespaces,
            "data_service_endpoints": manifests::data_service_endpoints(&input.parameters.data_services),
        }),
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
    let namespaces: Vec<&str> = objects
        .iter()
        .filter(|o| o["kind"] == "Namespace")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    let outputs = json!({ "namespaces": namespaces, "data_service_endpoints": {} });
    let input = PlanInput {
        platform_slug,
        blueprint,
        name: DEVOPS_ENVIRONMENT,
        parameters: &parameters,
        account_email_domain,
    };
    let plan = steps(
        &input,
        &blueprint.accounts.devops,
        DEVOPS_ENVIRONMENT,
        &blueprint.devops.kubernetes_version,
        objects.clone(),
        outputs,
    );
    (parameters, plan)
}

fn steps(
    input: &PlanInput<'_>,
    account: &str,
    environment_type: &str,
    kubernetes_version: &str,
    objects: Vec<Value>,
    outputs: Value,
) -> Vec<PlanStep> {
    let bp = input.blueprint;
    let cluster = format!("{}-{}", input.platform_slug, input.name);
    let tags = json!({
        "slipway:platform": input.platform_slug,
        "slipway:environment": input.name,
        "slipway:environment-type": environment_type,
        "cost-center": format!("{}/{}", input.platform_slug, input.name),
    });
    let mut plan = vec![
        PlanStep {
            step: Step::Account,
            action: "organizations:CreateAccount".into(),
            resource: account.to_owned(),
            details: json!({
                "email": format!("{account}@{}", input.account_email_domain),
                "parent": bp.accounts.parent,
                "tags": tags,
                "on_teardown": bp.accounts.on_teardown,
                "adopt": "an account with this name and Slipway's tags is adopted, not created again",
            }),
        },
        PlanStep {
            step: Step::Access,
            action: "sts:AssumeRole".into(),
            resource: "OrganizationAccountAccessRole".into(),
            details: json!({ "account": account }),
        },
        PlanStep {
            step: Step::Network,
            action: "iam:CreateRole".into(),
            resource: "the EKS cluster and node roles".into(),
            details: json!({
                "cluster_role": ["eks.amazonaws.com", "AmazonEKSClusterPolicy"],
                "node_role": ["ec2.amazonaws.com", "AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"],
                "adopt": "roles of these names are adopted",
            }),
        },
        PlanStep {
            step: Step::Network,
            action: "ec2:DescribeSubnets".into(),
            resource: "the subnets for EKS".into(),
            details: json!({
                "subnets": "tagged slipway:eks=true, else the default VPC's",
                "region": bp.cloud.region,
            }),
        },
        PlanStep {
            step: Step::Cluster,
            action: "eks:CreateCluster".into(),
            resource: cluster.clone(),
            details: json!({
                "version": kubernetes_version,
                "region": bp.cloud.region,
                "tags": tags,
            }),
        },
        PlanStep {
            step: Step::Nodegroup,
            action: "eks:CreateNodegroup".into(),
            resource: format!("{cluster}-nodes"),
            details: json!({
                "cluster": cluster,
                "instance_type": input.parameters.instance_type,
                "min_size": input.parameters.min_nodes,
                "max_size": input.parameters.max_nodes,
                "tags": tags,
            }),
        },
    ];
    plan.extend(objects.into_iter().map(|object| PlanStep {
        step: Step::Kubernetes,
        action: "kubernetes:apply".into(),
        resource: describe_object(&object),
        details: object,
    }));
    plan.push(PlanStep {
        step: Step::Outputs,
        action: "slipway:record-outputs".into(),
        resource: cluster,
        details: outputs,
    });
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
        let bp = Blueprint::from_template("shop", None);
        let ty = bp.environment_type(env).unwrap().clone();
        build(
            &PlanInput {
                platform_slug: "shop",
                blueprint: &bp,
                name: "perf-1",
                parameters: &Parameters {
                    instance_type: ty.node_group.instance_types[0].clone(),
                    min_nodes: ty.node_group.min_size,
                    max_nodes: ty.node_group.max_size,
                    data_services: data_services.iter().map(|s| s.to_string()).collect(),
                },
                account_email_domain: "example.com",
            },
            &ty,
        )
    }

    #[test]
    fn the_default_plan_runs_every_step_in_order_with_deterministic_names() {
        let plan = plan_for("perf", &["kafka"]);
        let mut steps: Vec<Step> = plan.iter().map(|p| p.step).collect();
        steps.dedup();
        assert_eq!(steps, Step::ALL);
        assert_eq!(plan[0].resource, "shop-perf-1");
        assert_eq!(plan[0].details["email"], "shop-perf-1@example.com");
        assert_eq!(plan[4].resource, "shop-perf-1");
        assert!(plan.iter().any(|p| p.resource == "Kafka data/kafka"));
        let quota = plan
            .iter()
            .find(|p| p.resource == "ResourceQuota apps/default")
            .expect("a quota for the team namespace");
        assert_eq!(quota.details["spec"]["hard"]["requests.cpu"], "40");
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
    fn without_data_services_there_is_no_data_namespace() {
        let plan = plan_for("dev", &[]);
        assert!(!plan.iter().any(|p| p.resource.contains("data")));
    }
}
