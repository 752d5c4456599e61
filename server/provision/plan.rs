//! The provisioning plan: a pure function from the approved blueprint and a request to the
//! ordered list of steps, each with the API call or Kubernetes object it stands for. Names are
//! deterministic (platform + environment), which is what lets a re-run find what an earlier
//! attempt created instead of creating it twice.

use serde::Serialize;
use serde_json::{Value, json};

use crate::define::blueprint::{Blueprint, EnvironmentType, Mtls};

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
    pub step: String,
    pub action: String,
    pub resource: String,
    pub details: Value,
}

/// Everything the plan is built from.
pub struct PlanInput<'a> {
    pub platform_slug: &'a str,
    pub blueprint: &'a Blueprint,
    pub environment_type: &'a EnvironmentType,
    pub name: &'a str,
    pub parameters: &'a Parameters,
    /// The domain of the root e-mail address of the new account.
    pub account_email_domain: &'a str,
}

/// The job steps, in order; every plan action belongs to one of them.
pub const STEPS: [&str; 6] = [
    "account",
    "access",
    "cluster",
    "nodegroup",
    "kubernetes",
    "outputs",
];

/// Builds the plan.
pub fn build(input: &PlanInput<'_>) -> Vec<PlanStep> {
    let bp = input.blueprint;
    let env = input.environment_type;
    let account = format!("{}-{}", bp.accounts.environment_prefix, input.name);
    let cluster = format!("{}-{}", input.platform_slug, input.name);
    let tags = json!({
        "slipway:platform": input.platform_slug,
        "slipway:environment": input.name,
        "slipway:environment-type": env.name,
        "cost-center": format!("{}/{}", input.platform_slug, input.name),
    });
    let mut plan = vec![
        PlanStep {
            step: "account".into(),
            action: "organizations:CreateAccount".into(),
            resource: account.clone(),
            details: json!({
                "email": format!("{account}@{}", input.account_email_domain),
                "parent": bp.accounts.parent,
                "tags": tags,
                "adopt": "an account with this name and tags is adopted, not created again",
            }),
        },
        PlanStep {
            step: "access".into(),
            action: "sts:AssumeRole".into(),
            resource: "OrganizationAccountAccessRole".into(),
            details: json!({ "account": account }),
        },
        PlanStep {
            step: "cluster".into(),
            action: "eks:CreateCluster".into(),
            resource: cluster.clone(),
            details: json!({
                "version": env.kubernetes_version,
                "region": bp.cloud.region,
                "tags": tags,
            }),
        },
        PlanStep {
            step: "nodegroup".into(),
            action: "eks:CreateNodegroup".into(),
            resource: format!("{cluster}-nodes"),
            details: json!({
                "instance_type": input.parameters.instance_type,
                "min_size": input.parameters.min_nodes,
                "max_size": input.parameters.max_nodes,
            }),
        },
    ];
    let apply = |kind: &str, namespace: Option<&str>, name: &str, details: Value| PlanStep {
        step: "kubernetes".into(),
        action: "kubernetes:apply".into(),
        resource: match namespace {
            Some(ns) => format!("{kind} {ns}/{name}"),
            None => format!("{kind} {name}"),
        },
        details,
    };
    let mut namespaces = vec!["apps"];
    if bp.logging.fluent_bit || bp.logging.opentelemetry {
        namespaces.push("observability");
    }
    if !input.parameters.data_services.is_empty() {
        namespaces.push("data");
    }
    for ns in &namespaces {
        let labels = if bp.service_mesh.istio {
            json!({ "istio-injection": "enabled" })
        } else {
            json!({})
        };
        plan.push(apply("Namespace", None, ns, json!({ "labels": labels })));
    }
    plan.push(apply(
        "Role",
        Some("apps"),
        "developers",
        json!({ "verbs": ["get", "list", "watch", "create", "update", "delete"] }),
    ));
    plan.push(apply(
        "RoleBinding",
        Some("apps"),
        "developers",
        json!({ "role": "developers" }),
    ));
    if bp.security.resource_quotas {
        plan.push(apply(
            "ResourceQuota",
            Some("apps"),
            "default",
            json!({ "cpu": input.parameters.max_nodes * 2, "memory": format!("{}Gi", input.parameters.max_nodes * 8) }),
        ));
        plan.push(apply("LimitRange", Some("apps"), "default", json!({})));
    }
    if bp.security.default_deny_network_policies {
        for ns in &namespaces {
            plan.push(apply(
                "NetworkPolicy",
                Some(ns),
                "default-deny",
                json!({ "policyTypes": ["Ingress", "Egress"] }),
            ));
            plan.push(apply(
                "NetworkPolicy",
                Some(ns),
                "allow-dns",
                json!({ "ports": [53] }),
            ));
        }
    }
    if bp.service_mesh.istio {
        plan.push(apply(
            "PeerAuthentication",
            Some("istio-system"),
            "default",
            json!({ "mtls": match bp.service_mesh.mtls { Mtls::Strict => "STRICT", Mtls::Permissive => "PERMISSIVE" } }),
        ));
    }
    if bp.logging.fluent_bit {
        plan.push(apply(
            "ConfigMap",
            Some("observability"),
            "fluent-bit",
            json!({ "output": bp.logging.central_store }),
        ));
        plan.push(apply(
            "DaemonSet",
            Some("observability"),
            "fluent-bit",
            json!({}),
        ));
    }
    if bp.logging.opentelemetry {
        plan.push(apply(
            "Deployment",
            Some("observability"),
            "otel-collector",
            json!({ "metrics": bp.logging.metrics }),
        ));
    }
    for service in &input.parameters.data_services {
        let size = bp.data_services.get(service).map(|s| s.size);
        let kind = match service.as_str() {
            "mongodb" => "MongoDBCommunity",
            "scylladb" => "ScyllaCluster",
            _ => "Kafka",
        };
        plan.push(apply(kind, Some("data"), service, json!({ "size": size })));
    }
    plan.push(PlanStep {
        step: "outputs".into(),
        action: "slipway:record-outputs".into(),
        resource: cluster,
        details: json!({ "outputs": ["account_id", "cluster_name", "cluster_endpoint", "namespaces", "data_service_endpoints"] }),
    });
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_for(env: &str, data_services: &[&str]) -> Vec<PlanStep> {
        let bp = Blueprint::from_template("shop", None);
        let ty = bp.environment_type(env).unwrap().clone();
        build(&PlanInput {
            platform_slug: "shop",
            blueprint: &bp,
            environment_type: &ty,
            name: "perf-1",
            parameters: &Parameters {
                instance_type: ty.node_group.instance_types[0].clone(),
                min_nodes: ty.node_group.min_size,
                max_nodes: ty.node_group.max_size,
                data_services: data_services.iter().map(|s| s.to_string()).collect(),
            },
            account_email_domain: "example.com",
        })
    }

    #[test]
    fn the_default_plan_runs_every_step_in_order_with_deterministic_names() {
        let plan = plan_for("perf", &["kafka"]);
        let mut steps: Vec<&str> = plan.iter().map(|p| p.step.as_str()).collect();
        steps.dedup();
        assert_eq!(steps, STEPS);
        assert_eq!(plan[0].resource, "shop-perf-1");
        assert_eq!(plan[0].details["email"], "shop-perf-1@example.com");
        assert_eq!(plan[2].resource, "shop-perf-1");
        assert!(plan.iter().any(|p| p.resource == "Kafka data/kafka"));
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
