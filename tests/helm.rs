//! The Helm chart (`deploy/helm/slipway`): `helm lint` and `helm template` with Helm itself
//! (built from its Go module by `tests/helm/build`), and the rendered objects sent to a real
//! kube-apiserver as a server-side dry run, which validates them as an install would.

mod support;

use std::path::Path;
use std::process::Command;

use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use serde_json::Value;
use support::kube::Kube;
use support::moto::Moto;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Helm's path, built once (tests/run builds it before the suite).
fn helm() -> String {
    let out = Command::new(repository().join("tests/helm/build"))
        .output()
        .expect("running tests/helm/build");
    assert!(
        out.status.success(),
        "tests/helm/build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `helm args… deploy/helm/slipway --set sets…`: the exit status's success, stdout and stderr.
fn run_helm(args: &[&str], sets: &[&str]) -> (bool, String, String) {
    let mut cmd = Command::new(helm());
    cmd.args(args)
        .arg(repository().join("deploy/helm/slipway"))
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("slipway-helm-cache"),
        )
        .env(
            "HELM_CONFIG_HOME",
            std::env::temp_dir().join("slipway-helm-config"),
        )
        .env(
            "HELM_DATA_HOME",
            std::env::temp_dir().join("slipway-helm-data"),
        );
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The rendered chart's objects.
fn render(sets: &[&str]) -> Vec<Value> {
    let (ok, out, err) = run_helm(&["template", "portal", "--namespace", "slipway"], sets);
    assert!(ok, "helm template failed: {err}");
    yaml_serde::Deserializer::from_str(&out)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The value of environment variable `name` of the deployment's first container.
fn env<'a>(deployment: &'a Value, name: &str) -> Option<&'a Value> {
    deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
}

const PRODUCTION: &[&str] = &[
    "database.existingSecret=slipway-db",
    "settings.public_url=https://slipway.example.com",
    "settings.trusted_proxies=10.0.0.0/8",
    "ingress.enabled=true",
    "ingress.tlsSecret=slipway-tls",
    "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111122223333:role/slipway",
];

#[test]
fn the_chart_lints_and_renders_serve_and_worker_replicas_with_probes_and_budgets() {
    let (ok, out, err) = run_helm(&["lint", "--strict"], PRODUCTION);
    assert!(ok, "helm lint: {out}{err}");

    // Without a database it refuses, naming the value to set.
    let (ok, out, err) = run_helm(&["template", "portal"], &[]);
    assert!(!ok);
    assert!(
        format!("{out}{err}").contains("database.existingSecret"),
        "{err}"
    );
    // Settings the chart sets itself are refused rather than silently duplicated.
    let (ok, _, err) = run_helm(
        &["template", "portal"],
        &["database.existingSecret=db", "settings.workers=3"],
    );
    assert!(
        !ok && err.contains("settings.workers is set by the chart"),
        "{err}"
    );

    let objects = render(PRODUCTION);
    let mut kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "Deployment",
            "Deployment",
            "Ingress",
            "PodDisruptionBudget",
            "PodDisruptionBudget",
            "Service",
            "ServiceAccount"
        ]
    );
    let serve = find(&objects, "Deployment", "portal-slipway-serve");
    let worker = find(&objects, "Deployment", "portal-slipway-worker");
    assert_eq!(serve["spec"]["replicas"], 2);
    assert_eq!(worker["spec"]["replicas"], 2);
    let container = &serve["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        serve["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
        true
    );
    assert_eq!(env(serve, "SLIPWAY_WORKERS").unwrap()["value"], "0");
    assert_eq!(env(worker, "SLIPWAY_WORKERS").unwrap()["value"], "8");
    assert_eq!(
        env(worker, "SLIPWAY_PUBLIC_URL").unwrap()["value"],
        "https://slipway.example.com"
    );
    assert_eq!(
        env(serve, "DATABASE_URL").unwrap()["valueFrom"]["secretKeyRef"]["name"],
        "slipway-db"
    );
    assert!(env(serve, "SLIPWAY_CLOUD").is_some());
    let account = find(&objects, "ServiceAccount", "portal-slipway");
    assert_eq!(
        account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::111122223333:role/slipway"
    );
    assert_eq!(
        find(&objects, "PodDisruptionBudget", "portal-slipway-worker")["spec"]["minAvailable"],
        1
    );
    let ingress = find(&objects, "Ingress", "portal-slipway");
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "slipway-tls");

    // The ServiceMonitor when asked for (its CRD is the Prometheus Operator's).
    let mut with_monitor = PRODUCTION.to_vec();
    with_monitor.push("serviceMonitor.enabled=true");
    let objects = render(&with_monitor);
    let monitor = find(&objects, "ServiceMonitor", "portal-slipway");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
}

#[tokio::test]
async fn the_rendered_chart_is_accepted_by_a_real_api_server() {
    let moto = Moto::start().await;
    let kube = Kube::start(&moto).await;
    let client = kube.admin();
    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "Namespace")),
    );
    let namespace: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "slipway"}
    }))
    .unwrap();
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    for object in render(PRODUCTION) {
        let api_version = object["apiVersion"].as_str().unwrap();
        let kind = object["kind"].as_str().unwrap();
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "slipway", &resource);
        let params = PatchParams::apply("slipway-chart-test").dry_run();
        let accepted = api.patch(&name, &params, &Patch::Apply(&object)).await;
        assert!(accepted.is_ok(), "{kind} {name}: {accepted:?}");
    }
}
