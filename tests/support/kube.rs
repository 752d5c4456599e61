//! A real Kubernetes control plane per test: `tests/kube/up` (etcd, kube-apiserver with RBAC and
//! the EKS token webhook checking tokens against this test's moto, kube-controller-manager) in a
//! temporary directory, stopped with SIGTERM when dropped.
//!
//! Nodes do not run, so nothing makes a Deployment available or an operator report on its
//! custom resources. [`Kube::play_nodes`] is the named stand-in for them: it writes the status
//! a healthy kubelet and operator would, Jobs included (the deployment, replica-set,
//! stateful-set and job controllers are off, so no controller overwrites it), and the cluster
//! CA Secret Strimzi makes for a Kafka. What it cannot check: that the images start, that the
//! operators accept the custom resources, that a Job's script works, that NetworkPolicies are
//! enforced.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::discovery::{Discovery, verbs};
use serde_json::{Value, json};

use super::moto::Moto;

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by=slipway";

pub struct Kube {
    pub url: String,
    dir: tempfile::TempDir,
    child: Child,
    admin: kube::Client,
    stand_in: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Kube {
    fn drop(&mut self) {
        if let Some(task) = self.stand_in.take() {
            task.abort();
        }
        // SIGTERM: the script stops etcd, the API server and the controller manager with it.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

impl Kube {
    /// Starts the control plane with EKS tokens checked against `moto`'s STS.
    pub async fn start(moto: &Moto) -> Kube {
        slipway::init_tls();
        super::require_program("openssl", "apt-get install openssl");
        let dir = super::data_dir();
        let log = std::fs::File::create(dir.path().join("up.log")).unwrap();
        let child = Command::new(repository().join("tests/kube/up"))
            .arg(dir.path())
            .env("AWS_ENDPOINT_URL", &moto.url)
            // Nodes are played by `play_nodes`; these controllers would undo what it writes.
            .env(
                "KUBE_UP_CONTROLLERS",
                "*,-deployment-controller,-replicaset-controller,-statefulset-controller,-job-controller",
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting tests/kube/up");
        let ready = dir.path().join("ready");
        let started = Instant::now();
        // The first run builds the control plane (tests/run does that before the tests).
        while !ready.exists() {
            let log = std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default();
            assert!(
                started.elapsed() < Duration::from_secs(900) && !log.contains("error:"),
                "tests/kube/up did not start the control plane:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let url = std::fs::read_to_string(dir.path().join("url"))
            .unwrap()
            .trim()
            .to_owned();
        let kubeconfig =
            kube::config::Kubeconfig::read_from(dir.path().join("admin.kubeconfig")).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let admin = kube::Client::try_from(config).unwrap();
        Kube {
            url,
            dir,
            child,
            admin,
            stand_in: None,
        }
    }

    /// The CA bundle the API server's certificate is signed by.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.ca_path()).unwrap()
    }

    /// A kubeconfig with the cluster admin's client certificate.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.kubeconfig")
    }

    /// A client authenticated as the cluster admin (a client certificate, not an EKS token).
    pub fn admin(&self) -> kube::Client {
        self.admin.clone()
    }

    /// Every object Slipway made (labelled as managed by it and written by its field manager),
    /// of every listable kind the API server serves, as JSON.
    pub async fn objects(&self) -> Vec<Value> {
        // The same race in discovery itself: a group listed a moment before its versions are.
        // Asked again after a short pause, for at most about five seconds: back to back, twenty
        // tries could all fall inside the same moment.
        let mut tries = 0;
        let discovery = loop {
            match Discovery::new(self.admin.clone()).run().await {
                Ok(discovery) => break discovery,
                Err(kube::Error::Api(status)) if status.code == 404 && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(error) => panic!("discovering the API server's kinds: {error}"),
            }
        };
        let mut out = Vec::new();
        for group in discovery.groups() {
            for (resource, capabilities) in group.recommended_resources() {
                if !capabilities.supports_operation(verbs::LIST) {
                    continue;
                }
                let api: Api<DynamicObject> = Api::all_with(self.admin.clone(), &resource);
                let listed = match api.list(&ListParams::default().labels(MANAGED_BY)).await {
                    Ok(listed) => listed,
                    // A custom resource definition applied a moment ago can be in discovery
                    // before the API server serves its objects (a bare "404 page not found"):
                    // while the bootstrap installs one, none of its objects exist yet.
                    Err(kube::Error::Api(status)) if status.code == 404 => continue,
                    Err(error) => panic!("listing {}: {error}", resource.plural),
                };
                // Labels are copied to what controllers derive (a Service's Endpoints): only
                // what Slipway's field manager wrote counts.
                let written_by_slipway = |o: &DynamicObject| {
                    o.metadata.managed_fields.iter().flatten().any(|f| {
                        f.manager.as_deref() == Some(slipway::provision::kubernetes::FIELD_MANAGER)
                    })
                };
                for mut object in listed.into_iter().filter(written_by_slipway) {
                    object.types = Some(kube::api::TypeMeta {
                        api_version: resource.api_version.clone(),
                        kind: resource.kind.clone(),
                    });
                    out.push(serde_json::to_value(object).unwrap());
                }
            }
        }
        out
    }

    /// One object, or `None`.
    pub async fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, _) = kube::discovery::pinned_kind(&self.admin, &gvk).await.ok()?;
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.admin.clone(), ns, &resource),
            None => Api::all_with(self.admin.clone(), &resource),
        };
        api.get_opt(name)
            .await
            .unwrap()
            .map(|o| serde_json::to_value(o).unwrap())
    }

    /// Starts the stand-in for nodes and operators (see the module's comment).
    pub fn play_nodes(&mut self) {
        let admin = self.admin.clone();
        // Kubelets and operators act independently, and so do the two halves of the stand-in:
        // a slow list of custom resources must not hold back a Deployment's status (it did, by
        // seconds, and showed up in the critical-path drill as the bootstrap's time).
        self.stand_in = Some(tokio::spawn(async move {
            let every = Duration::from_millis(200);
            // The API server may be going away at the end of a test: errors are ignored.
            let workloads = async {
                loop {
                    let _ = mark_workloads_healthy(&admin).await;
                    tokio::time::sleep(every).await;
                }
            };
            let custom_resources = async {
                loop {
                    let _ = mark_custom_resources_ready(&admin).await;
                    tokio::time::sleep(every).await;
                }
            };
            tokio::join!(workloads, custom_resources);
        }));
    }

    /// From now on the API server's admission refuses creating or updating objects of
    /// `resource` in `group` (a ValidatingAdmissionPolicy), as a cluster policy would.
    pub async fn refuse_writes_of(&self, group: &str, resource: &str) {
        let policy = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": { "name": "slipway-test-refuse" },
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": { "resourceRules": [{
                    "apiGroups": [group], "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"], "resources": [resource],
                }] },
                "validations": [{ "expression": "false", "message": format!("{resource} are not allowed on this cluster") }],
            },
        });
        let binding = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": { "name": "slipway-test-refuse" },
            "spec": { "policyName": "slipway-test-refuse", "validationActions": ["Deny"] },
        });
        for object in [&policy, &binding] {
            let api = self.admission_api(object["kind"].as_str().unwrap());
            api.patch(
                "slipway-test-refuse",
                &PatchParams::apply("slipway-test"),
                &Patch::Apply(object),
            )
            .await
            .unwrap();
        }
        // The policy takes effect once the API server has compiled it.
        self.until_probe(group, resource, false).await;
    }

    /// Lifts [`Kube::refuse_writes_of`].
    pub async fn allow_writes_of(&self, group: &str, resource: &str) {
        self.admission_api("ValidatingAdmissionPolicyBinding")
            .delete("slipway-test-refuse", &DeleteParams::default())
            .await
            .unwrap();
        self.until_probe(group, resource, true).await;
    }

    fn admission_api(&self, kind: &str) -> Api<DynamicObject> {
        let plural = if kind == "ValidatingAdmissionPolicy" {
            "validatingadmissionpolicies"
        } else {
            "validatingadmissionpolicybindings"
        };
        let gvk = GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", kind);
        Api::all_with(
            self.admin.clone(),
            &ApiResource::from_gvk_with_plural(&gvk, plural),
        )
    }

    /// Dry-runs a write of an object of `resource` (the kinds the tests refuse) until it is
    /// `allowed` or not.
    async fn until_probe(&self, group: &str, resource: &str, allowed: bool) {
        let (version, kind, spec) = match (group, resource) {
            ("networking.k8s.io", "networkpolicies") => {
                ("v1", "NetworkPolicy", json!({ "podSelector": {} }))
            }
            ("security.istio.io", "peerauthentications") => ("v1", "PeerAuthentication", json!({})),
            other => panic!("no probe for {other:?}"),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.admin.clone(),
            "default",
            &ApiResource::from_gvk_with_plural(&gvk, resource),
        );
        let probe: DynamicObject = serde_json::from_value(json!({
            "apiVersion": format!("{group}/{version}"),
            "kind": kind,
            "metadata": { "name": "slipway-test-probe" },
            "spec": spec,
        }))
        .unwrap();
        let params = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let started = Instant::now();
        while api.create(&params, &probe).await.is_ok() != allowed {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the admission policy did not take effect"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What a kubelet and the operators would report for Slipway's objects once they run.
/// The cluster CA Secret Strimzi makes for a Kafka cluster (a stand-in certificate).
async fn strimzi_cluster_ca(
    admin: &kube::Client,
    kafka: &DynamicObject,
) -> Result<(), kube::Error> {
    let namespace = kafka.metadata.namespace.as_deref().unwrap_or("default");
    let name = format!(
        "{}-cluster-ca-cert",
        kafka.metadata.name.as_deref().unwrap_or_default()
    );
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": namespace },
        "stringData": { "ca.crt": STRIMZI_STAND_IN_CA, "ca.password": "not-for-apps" },
    }))
    .unwrap();
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(admin.clone(), namespace);
    match api.create(&PostParams::default(), &secret).await {
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        other => other.map(|_| ()),
    }
}

/// What [`strimzi_cluster_ca`] puts in `ca.crt`.
pub const STRIMZI_STAND_IN_CA: &str =
    "-----BEGIN CERTIFICATE-----\nstand-in for the Strimzi cluster CA\n-----END CERTIFICATE-----\n";

async fn mark_workloads_healthy(admin: &kube::Client) -> Result<(), kube::Error> {
    let params = PatchParams::default();
    for (group, version, kind, plural) in [
        ("apps", "v1", "Deployment", "deployments"),
        ("apps", "v1", "StatefulSet", "statefulsets"),
    ] {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let api: Api<DynamicObject> = Api::all_with(
            admin.clone(),
            &ApiResource::from_gvk_with_plural(&gvk, plural),
        );
        for object in api.list(&ListParams::default().labels(MANAGED_BY)).await? {
            let value = serde_json::to_value(&object).unwrap_or_default();
            let replicas = value["spec"]["replicas"].as_i64().unwrap_or(1);
            let generation = object.metadata.generation.unwrap_or(0);
            if value["status"]["observedGeneration"].as_i64() == Some(generation) {
                continue;
            }
            let status = json!({ "status": {
                "observedGeneration": generation,
                "replicas": replicas, "readyReplicas": replicas,
                "availableReplicas": replicas, "updatedReplicas": replicas,
                "conditions": [{ "type": "Available", "status": "True", "reason": "StandIn" }],
            } });
            let namespaced = Api::<DynamicObject>::namespaced_with(
                admin.clone(),
                object.metadata.namespace.as_deref().unwrap_or("default"),
                &ApiResource::from_gvk_with_plural(&gvk, plural),
            );
            namespaced
                .patch_status(
                    object.metadata.name.as_deref().unwrap_or_default(),
                    &params,
                    &Patch::Merge(status),
                )
                .await?;
        }
    }
    // Jobs run to completion, as their pods would.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::all(admin.clone());
    for job in jobs.list(&ListParams::default().labels(MANAGED_BY)).await? {
        let done = job
            .status
            .as_ref()
            .and_then(|s| s.completion_time.as_ref())
            .is_some();
        if done {
            continue;
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let condition = |kind: &str| json!({ "type": kind, "status": "True", "reason": "StandIn", "lastTransitionTime": now });
        let status = json!({ "status": {
            "startTime": now, "completionTime": now, "succeeded": 1, "active": 0,
            "conditions": [condition("SuccessCriteriaMet"), condition("Complete")],
        } });
        Api::<k8s_openapi::api::batch::v1::Job>::namespaced(
            admin.clone(),
            job.metadata.namespace.as_deref().unwrap_or("default"),
        )
        .patch_status(
            job.metadata.name.as_deref().unwrap_or_default(),
            &params,
            &Patch::Merge(status),
        )
        .await?;
    }
    Ok(())
}

/// Custom resources of the CRDs Slipway installed reported ready, as their operators would.
/// Kinds are listed at once, not one after another: the API server's first list of a new kind
/// waits about a second (its watch cache starting), and in turn that added up to the seconds
/// the bootstrap seemed to take in the critical-path drill.
async fn mark_custom_resources_ready(admin: &kube::Client) -> Result<(), kube::Error> {
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(admin.clone());
    let established = crds
        .list(&ListParams::default().labels(MANAGED_BY))
        .await?
        .into_iter()
        .filter(|crd| {
            crd.status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
    let marked =
        futures_util::future::join_all(established.map(|crd| mark_kind_ready(admin, crd.spec)))
            .await;
    marked.into_iter().collect()
}

async fn mark_kind_ready(
    admin: &kube::Client,
    spec: k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionSpec,
) -> Result<(), kube::Error> {
    let Some(version) = spec.versions.iter().find(|v| v.storage) else {
        return Ok(());
    };
    let gvk = GroupVersionKind::gvk(&spec.group, &version.name, &spec.names.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &spec.names.plural);
    let api: Api<DynamicObject> = Api::all_with(admin.clone(), &resource);
    for object in api.list(&ListParams::default()).await? {
        let value = serde_json::to_value(&object).unwrap_or_default();
        if value["status"]["phase"] == "Running" {
            continue;
        }
        if spec.names.kind == "Kafka" {
            strimzi_cluster_ca(admin, &object).await?;
        }
        let status = json!({ "status": {
            "phase": "Running",
            "conditions": [{ "type": "Ready", "status": "True", "reason": "StandIn" }],
        } });
        let scoped = match object.metadata.namespace.as_deref() {
            Some(ns) => Api::<DynamicObject>::namespaced_with(admin.clone(), ns, &resource),
            None => Api::all_with(admin.clone(), &resource),
        };
        scoped
            .patch_status(
                object.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(status),
            )
            .await?;
    }
    Ok(())
}
