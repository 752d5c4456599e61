//! An environment's desired state as the files of its configuration repository: what it was
//! asked for and built from, each team's folder, the component versions and every Kubernetes
//! object Slipway applies. Pure: the same plan gives the same files, which is what lets a
//! repeated push find nothing to commit.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::plan::{Action, PlannedTeam};
use super::run::Target;
use super::versions;
use crate::jobs::StepError;
use crate::repositories::Files;

/// The folder of onboarded services' entries (`services/<name>.yaml`), written by onboarding
/// and kept by provisioning's commits.
pub const SERVICES: &str = "services/";

/// What the repository holds (the plan preview lists it).
pub const CONTENTS: [&str; 5] = [
    "README.md",
    "environment.yaml: the request, the cluster and the component versions",
    "teams/<team>/team.yaml: each team's namespaces and role",
    "platform/: every Kubernetes object Slipway applies (no Secret values)",
    "services/<service>.yaml: each service onboarded onto the environment",
];

#[derive(Serialize)]
struct Environment<'a> {
    cluster: &'a str,
    environment_type: &'a str,
    kubernetes_version: &'a str,
    region: &'a str,
    parameters: &'a Value,
    components: BTreeMap<&'static str, &'static str>,
    request: Request<'a>,
}

#[derive(Serialize)]
struct Request<'a> {
    id: String,
    requested_by: &'a str,
    approved_by: &'a [String],
}

fn yaml<T: Serialize>(value: &T) -> Result<String, StepError> {
    yaml_serde::to_string(value)
        .map_err(|e| StepError::Permanent(format!("writing the repository's YAML: {e}")))
}

/// The repository's files for the environment `t`, built by `cluster`'s plan.
pub fn files(t: &Target) -> Result<Files, StepError> {
    let (cluster, version, region, _) = t.cluster()?;
    let mut files = Files::new();
    files.insert(
        "README.md".into(),
        format!(
            "# {cluster}\n\nThe desired state of the environment `{cluster}`, written by \
             Slipway: one commit per change, naming the request and who approved it. Slipway \
             overwrites what is edited here by hand; change the request or the blueprint \
             instead.\n\n- `environment.yaml`: the request, the cluster and the versions of \
             its components\n- `teams/`: each team's namespaces and the role it reaches them \
             with\n- `platform/`: every Kubernetes object Slipway applies, in apply order \
             (Secrets are made in the cluster and never written here)\n"
        ),
    );
    let environment = Environment {
        cluster: &cluster,
        environment_type: &t.environment_type,
        kubernetes_version: &version,
        region: &region,
        parameters: &t.parameters,
        components: versions::COMPONENTS
            .iter()
            .map(|c| (c.name, c.version))
            .collect(),
        request: Request {
            id: t.id.to_string(),
            requested_by: &t.requested_by,
            approved_by: &t.approved_by,
        },
    };
    files.insert("environment.yaml".into(), yaml(&environment)?);
    let teams: BTreeMap<String, PlannedTeam> =
        t.planned("slipway:record-outputs", |s| match s.action {
            Action::RecordOutputs(outputs) => Some(outputs.teams),
            _ => None,
        })?;
    for (team, planned) in &teams {
        files.insert(format!("teams/{team}/team.yaml"), yaml(planned)?);
    }
    let objects = t.objects()?;
    for (i, object) in objects.iter().enumerate() {
        let kind = object["kind"].as_str().unwrap_or("Object");
        if kind == "Secret" {
            continue;
        }
        let name = object["metadata"]["name"].as_str().unwrap_or("unnamed");
        let file = match object["metadata"]["namespace"].as_str() {
            Some(ns) => format!("platform/{i:03}-{}-{ns}-{name}.yaml", kind.to_lowercase()),
            None => format!("platform/{i:03}-{}-{name}.yaml", kind.to_lowercase()),
        };
        files.insert(file, yaml(object)?);
    }
    Ok(files)
}

/// The commit message: the change, the request and who approved it.
pub fn message(t: &Target) -> Result<String, StepError> {
    let (cluster, ..) = t.cluster()?;
    let approved = if t.approved_by.is_empty() {
        "approved automatically (its environment type needs no approval)".to_owned()
    } else {
        format!("approved by {}", t.approved_by.join(", "))
    };
    Ok(format!(
        "Provision {cluster}\n\nRequest {} by {}, {approved}.\n",
        t.id, t.requested_by
    ))
}
