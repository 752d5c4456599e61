//! The Kubernetes API of a new cluster, through the `kube` client: server-side apply with the
//! field manager `slipway` (re-applying the same object changes nothing), deletes in reverse
//! order ("already gone" is success). EKS authenticates a bearer token made from a presigned
//! STS GetCallerIdentity URL; the cluster's CA comes from DescribeCluster.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};
use tracing::Instrument;

use aws_credential_types::Credentials;
use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::cloud::{Applied, CloudError, Cluster, DeprecatedApi, describe_object};
use super::drift::{Drift, missing_object, object_drift};
use super::manifests::{GeneratedSecret, SecretCopy};

pub const FIELD_MANAGER: &str = "slipway";
const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// Where and how to reach a cluster's API.
#[derive(Debug, Clone)]
pub struct ClusterEndpoint {
    pub url: String,
    /// The CA bundle (PEM) to trust; `None` for plain HTTP.
    pub ca_pem: Option<Vec<u8>>,
    pub cluster_name: String,
    pub region: String,
}

/// Where Slipway reaches every cluster instead of its own endpoint (SLIPWAY_KUBE_ENDPOINT_OVERRIDE
/// and SLIPWAY_KUBE_ENDPOINT_CA): tests, emulators, tunnels.
#[derive(Debug, Clone, Copy)]
pub struct EndpointOverride<'a> {
    pub url: &'a str,
    /// The CA the override's certificate is checked against; `None` keeps the cluster's own.
    pub ca_pem: Option<&'a [u8]>,
}

/// The endpoint of `cluster`, or the override instead.
pub fn endpoint(
    cluster: &Cluster,
    region: &str,
    endpoint_override: Option<EndpointOverride<'_>>,
) -> Result<ClusterEndpoint, CloudError> {
    let url = match endpoint_override {
        Some(o) => o.url.to_owned(),
        None => cluster.endpoint.clone().ok_or_else(|| {
            CloudError::Transient(format!("cluster {} has no API endpoint yet", cluster.name))
        })?,
    };
    let ca_pem = match (
        endpoint_override.and_then(|o| o.ca_pem),
        &cluster.certificate_authority,
    ) {
        _ if !url.starts_with("https://") => None,
        (Some(pem), _) => Some(pem.to_vec()),
        (None, Some(data)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| {
                    CloudError::Permanent(format!("the cluster's CA is not base64: {e}"))
                })?,
        ),
        (None, None) => None,
    };
    Ok(ClusterEndpoint {
        url,
        ca_pem,
        cluster_name: cluster.name.clone(),
        region: region.to_owned(),
    })
}

/// The EKS bearer token: `k8s-aws-v1.` + base64url(presigned STS GetCallerIdentity URL carrying
/// the signed header `x-k8s-aws-id: <cluster>`), valid for a minute.
pub fn eks_token(
    cluster_name: &str,
    region: &str,
    credentials: &Credentials,
    now: SystemTime,
) -> Result<String, CloudError> {
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    let failed = |e: &dyn std::fmt::Display| {
        CloudError::Permanent(format!("signing the EKS token failed: {e}"))
    };
    let host = format!("sts.{region}.amazonaws.com");
    let url = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(60));
    let identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| failed(&e))?
        .into();
    let headers = [("host", host.as_str()), ("x-k8s-aws-id", cluster_name)];
    let signable = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
        .map_err(|e| failed(&e))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| failed(&e))?
        .into_parts();
    let mut request = http::Request::builder()
        .method("GET")
        .uri(&url)
        .body(())
        .map_err(|e| failed(&e))?;
    instructions.apply_to_request_http1x(&mut request);
    let presigned = request.uri().to_string();
    Ok(format!(
        "k8s-aws-v1.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(presigned)
    ))
}

/// DER certificates of a PEM bundle.
fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, CloudError> {
    let text = String::from_utf8_lossy(pem);
    let mut certs = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match line {
            "-----BEGIN CERTIFICATE-----" => current = Some(String::new()),
            "-----END CERTIFICATE-----" => {
                let body = current.take().unwrap_or_default();
                certs.push(
                    base64::engine::general_purpose::STANDARD
                        .decode(body)
                        .map_err(|e| {
                            CloudError::Permanent(format!("the cluster's CA is not PEM: {e}"))
                        })?,
                );
            }
            _ => {
                if let Some(body) = current.as_mut() {
                    body.push_str(line);
                }
            }
        }
    }
    Ok(certs)
}

/// A client for the cluster, authenticated as the member account's assumed role.
pub fn client(
    endpoint: &ClusterEndpoint,
    credentials: &Credentials,
) -> Result<kube::Client, CloudError> {
    let url = endpoint.url.parse().map_err(|e| {
        CloudError::Permanent(format!(
            "the cluster endpoint {} is not a URL: {e}",
            endpoint.url
        ))
    })?;
    let mut config = kube::Config::new(url);
    if let Some(pem) = &endpoint.ca_pem {
        config.root_cert = Some(pem_certificates(pem)?);
    }
    config.read_timeout = Some(Duration::from_secs(30));
    // A token is accepted for 15 minutes after it was signed, and a bootstrap waits longer than
    // that on operators and health: each request carries a token signed for it (a few
    // microseconds of HMAC), so a client never goes stale.
    let (cluster_name, region, credentials) = (
        endpoint.cluster_name.clone(),
        endpoint.region.clone(),
        credentials.clone(),
    );
    let bearer = move || -> Result<http::HeaderValue, CloudError> {
        let token = eks_token(&cluster_name, &region, &credentials, SystemTime::now())?;
        http::HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|e| CloudError::Permanent(format!("the EKS token is not a header: {e}")))
    };
    bearer()?; // Signing fails on bad input, never later: find out now.
    let sign_each_request =
        tower::util::MapRequestLayer::new(move |mut request: http::Request<kube::client::Body>| {
            if let Ok(mut value) = bearer() {
                value.set_sensitive(true);
                request
                    .headers_mut()
                    .insert(http::header::AUTHORIZATION, value);
            }
            request
        });
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| CloudError::Permanent(format!("cannot build a Kubernetes client: {e}")))?;
    Ok(builder.with_layer(&sign_each_request).build())
}

/// A client for `cluster` from a kubeconfig file (clusters reached through a bastion, a VPN or
/// another identity): its context named like the cluster. Without one the kubeconfig is refused:
/// falling back to the current context could bootstrap or tear down the wrong cluster.
pub async fn client_from_kubeconfig(
    path: &std::path::Path,
    cluster: &str,
) -> Result<kube::Client, CloudError> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|e| {
        CloudError::Permanent(format!(
            "cannot read the kubeconfig {}: {e}",
            path.display()
        ))
    })?;
    if !kubeconfig.contexts.iter().any(|c| c.name == cluster) {
        return Err(CloudError::Permanent(format!(
            "the kubeconfig {} has no context named {cluster}; add one for this cluster \
             (Slipway never uses the current context, which may be another cluster)",
            path.display()
        )));
    }
    let context = Some(cluster.to_owned());
    let options = kube::config::KubeConfigOptions {
        context,
        ..Default::default()
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| {
            CloudError::Permanent(format!(
                "the kubeconfig {} is unusable: {e}",
                path.display()
            ))
        })?;
    kube::Client::try_from(config)
        .map_err(|e| CloudError::Permanent(format!("cannot build a Kubernetes client: {e}")))
}

/// Built-in kinds Slipway applies: (apiVersion, kind) → plural and whether namespaced. Kinds of
/// custom resources come from the CustomResourceDefinitions applied before them, and anything
/// else from the cluster's discovery, so an unserved kind is a clear error before it is applied.
const BUILT_IN: &[(&str, &str, &str, bool)] = &[
    ("v1", "Namespace", "namespaces", false),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Secret", "secrets", true),
    ("v1", "Service", "services", true),
    ("v1", "ResourceQuota", "resourcequotas", true),
    ("v1", "LimitRange", "limitranges", true),
    ("v1", "PersistentVolume", "persistentvolumes", false),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        "clusterroles",
        false,
    ),
    (
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
    ),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    ("apps/v1", "DaemonSet", "daemonsets", true),
    ("apps/v1", "Deployment", "deployments", true),
    ("apps/v1", "StatefulSet", "statefulsets", true),
    ("batch/v1", "Job", "jobs", true),
    (
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
    ),
    (
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
];

const CRD_API_VERSION: &str = "apiextensions.k8s.io/v1";

fn is_built_in(object: &Value) -> bool {
    let (api_version, kind) = (str_at(object, "/apiVersion"), str_at(object, "/kind"));
    BUILT_IN
        .iter()
        .any(|(v, k, _, _)| *v == api_version && *k == kind)
}

fn str_at<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn is_crd(object: &Value) -> bool {
    str_at(object, "/apiVersion") == CRD_API_VERSION
        && str_at(object, "/kind") == "CustomResourceDefinition"
}

/// A kind's REST resource and scope.
#[derive(Clone)]
struct Kind {
    resource: ApiResource,
    namespaced: bool,
}

/// Why a kind cannot be used.
enum Unserved {
    /// The cluster does not serve it: no CRD defines it.
    NotServed(String),
    Failed(CloudError),
}

/// The kinds of one apply or delete run: built-ins, those the run's CRDs define, and those
/// discovery found (asked once per kind).
struct Kinds {
    known: HashMap<(String, String), Kind>,
}

impl Kinds {
    fn new(objects: &[Value]) -> Kinds {
        let mut known = HashMap::new();
        for (api_version, kind, plural, namespaced) in BUILT_IN {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            let gvk = GroupVersionKind::gvk(group, version, kind);
            known.insert(
                (api_version.to_string(), kind.to_string()),
                Kind {
                    resource: ApiResource::from_gvk_with_plural(&gvk, plural),
                    namespaced: *namespaced,
                },
            );
        }
        for crd in objects.iter().filter(|o| is_crd(o)) {
            let group = str_at(crd, "/spec/group");
            let kind = str_at(crd, "/spec/names/kind");
            let plural = str_at(crd, "/spec/names/plural");
            let namespaced = str_at(crd, "/spec/scope") == "Namespaced";
            let versions = crd["spec"]["versions"].as_array().into_iter().flatten();
            for version in versions.filter_map(|v| v["name"].as_str()) {
                let gvk = GroupVersionKind::gvk(group, version, kind);
                known.insert(
                    (format!("{group}/{version}"), kind.to_owned()),
                    Kind {
                        resource: ApiResource::from_gvk_with_plural(&gvk, plural),
                        namespaced,
                    },
                );
            }
        }
        Kinds { known }
    }

    async fn resolve(
        &mut self,
        client: &kube::Client,
        api_version: &str,
        kind: &str,
    ) -> Result<Kind, Unserved> {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Some(known) = self.known.get(&key) {
            return Ok(known.clone());
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let not_served = || {
            Unserved::NotServed(format!(
                "the cluster does not serve {api_version} {kind}: no CustomResourceDefinition \
                 defines it; install the operator that owns it first"
            ))
        };
        let (resource, capabilities) = match kube::discovery::pinned_kind(client, &gvk).await {
            Ok(found) => found,
            Err(kube::Error::Api(status)) if status.code == 404 => return Err(not_served()),
            Err(kube::Error::Discovery(_)) => return Err(not_served()),
            Err(e) => {
                return Err(Unserved::Failed(kube_error(
                    &format!("discovering {kind}"),
                    e,
                )));
            }
        };
        let found = Kind {
            resource,
            namespaced: capabilities.scope == kube::discovery::Scope::Namespaced,
        };
        self.known.insert(key, found.clone());
        Ok(found)
    }

    /// The API of one object: its resource and, for namespaced kinds, its namespace.
    async fn api_for(
        &mut self,
        client: &kube::Client,
        object: &Value,
    ) -> Result<Api<DynamicObject>, Unserved> {
        let kind = self
            .resolve(
                client,
                str_at(object, "/apiVersion"),
                str_at(object, "/kind"),
            )
            .await?;
        Ok(if kind.namespaced {
            let namespace = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            Api::namespaced_with(client.clone(), namespace, &kind.resource)
        } else {
            Api::all_with(client.clone(), &kind.resource)
        })
    }
}

impl From<Unserved> for CloudError {
    fn from(e: Unserved) -> Self {
        match e {
            Unserved::NotServed(message) => CloudError::Permanent(message),
            Unserved::Failed(e) => e,
        }
    }
}

fn kube_error(what: &str, e: kube::Error) -> CloudError {
    let message = format!("{what} failed: {e}");
    match &e {
        // Throttling, overload, a webhook not answering yet, a write race.
        kube::Error::Api(status)
            if status.code >= 500 || status.code == 429 || status.code == 409 =>
        {
            CloudError::Transient(message)
        }
        // Invalid, forbidden, not found (namespaces and CRDs are applied before what needs
        // them, so a 404 here is not something waiting will fix).
        kube::Error::Api(_) => CloudError::Permanent(message),
        _ => CloudError::Transient(message),
    }
}

fn name_of(object: &Value) -> &str {
    str_at(object, "/metadata/name")
}

/// How long a CRD may take to be Established, or a custom resource to go once deleted, inside
/// one step (usually well under a second; the step is retried after this).
const SETTLE: Duration = Duration::from_secs(60);
const SETTLE_POLL: Duration = Duration::from_millis(250);

fn condition_is_true(live: &Value, condition: &str) -> Option<bool> {
    live["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == condition)
        .map(|c| c["status"] == "True")
}

/// The message of the condition `condition` (its reason when it has none).
fn condition_message<'a>(live: &'a Value, condition: &str) -> &'a str {
    live["status"]["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == condition))
        .and_then(|c| c["message"].as_str().or(c["reason"].as_str()))
        .unwrap_or("no reason given")
}

/// Waits until the CRD just applied is served.
async fn until_established(api: &Api<DynamicObject>, name: &str) -> Result<(), CloudError> {
    let started = std::time::Instant::now();
    loop {
        let live = api
            .get(name)
            .await
            .map_err(|e| kube_error(&format!("reading CustomResourceDefinition {name}"), e))?;
        let live = serde_json::to_value(&live).unwrap_or_default();
        if condition_is_true(&live, "NamesAccepted") == Some(false) {
            return Err(CloudError::Permanent(format!(
                "CustomResourceDefinition {name} was refused: its names clash with another CRD"
            )));
        }
        if condition_is_true(&live, "Established") == Some(true) {
            return Ok(());
        }
        if started.elapsed() > SETTLE {
            return Err(CloudError::Transient(format!(
                "CustomResourceDefinition {name} is not Established after {} s",
                SETTLE.as_secs()
            )));
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// How long the Deployments applied so far (the operators) may take to become available before
/// the first custom resource after them (pulling images on new nodes takes minutes).
const OPERATORS_READY: Duration = Duration::from_secs(15 * 60);

/// The operators are polled after 250 ms, 500 ms and 750 ms, then every second: a Deployment
/// whose image is cached is available within a second, and this wait is on every
/// environment's critical path (a poll is one GET per Deployment).
const AVAILABLE_POLL: Duration = Duration::from_millis(250);

/// Waits until every Deployment in `workloads` is available.
async fn until_available(workloads: &[(Api<DynamicObject>, &Value)]) -> Result<(), CloudError> {
    let started = std::time::Instant::now();
    let mut polls = 0;
    loop {
        let mut waiting = Vec::new();
        for (api, object) in workloads {
            waiting.extend(not_healthy(api, object).await?);
        }
        if waiting.is_empty() {
            return Ok(());
        }
        polls += 1;
        if started.elapsed() > OPERATORS_READY {
            return Err(CloudError::Transient(format!(
                "the operators are not available after {} minutes: {}",
                OPERATORS_READY.as_secs() / 60,
                waiting.join("; ")
            )));
        }
        tokio::time::sleep(AVAILABLE_POLL * polls.min(4)).await;
    }
}

/// Server-side applies `objects` in order. CRDs applied one after another are Established
/// before anything after them is applied, so their custom resources never meet a 404 (waited
/// for together: one wait for a run of CRDs, not one each); and the Deployments applied before a
/// custom resource (its operator, whose webhooks may have to admit it) are available first.
pub async fn apply(client: &kube::Client, objects: &[Value]) -> Result<Vec<Applied>, CloudError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut kinds = Kinds::new(objects);
    let mut applied = Vec::with_capacity(objects.len());
    let mut workloads = Vec::new();
    let mut unestablished = Vec::new();
    for object in objects {
        if !is_crd(object) {
            for (api, name) in unestablished.drain(..) {
                until_established(&api, name).await?;
            }
        }
        let api = kinds.api_for(client, object).await?;
        if !is_built_in(object) && !workloads.is_empty() {
            until_available(&workloads).await?;
            workloads.clear();
        }
        let resource = describe_object(object);
        let name = name_of(object);
        let (before, after) = async {
            let before = api
                .get_opt(name)
                .await
                .map_err(|e| kube_error(&format!("reading {resource}"), e))?
                .and_then(|o| o.metadata.resource_version);
            let after = api
                .patch(name, &params, &Patch::Apply(object))
                .await
                .map_err(|e| kube_error(&format!("applying {resource}"), e))?;
            Ok::<_, CloudError>((before, after))
        }
        .instrument(call_span("apply", object))
        .await?;
        if is_crd(object) {
            unestablished.push((api.clone(), name));
        }
        if str_at(object, "/kind") == "Deployment" {
            workloads.push((api, object));
        }
        applied.push(Applied {
            changed: before.is_none() || before != after.metadata.resource_version,
            resource,
        });
    }
    for (api, name) in unestablished {
        until_established(&api, name).await?;
    }
    Ok(applied)
}

/// How the objects in the cluster differ from `objects` as Slipway applies them: each is
/// server-side applied as a forced dry run (nothing is written) and the result compared with
/// the live object, so the API server's defaults and normalisations are on both sides and only
/// the fields Slipway's apply would change count.
pub async fn drift(client: &kube::Client, objects: &[Value]) -> Result<Vec<Drift>, CloudError> {
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    let mut kinds = Kinds::new(objects);
    let mut found = Vec::new();
    for object in objects {
        let api = match kinds.api_for(client, object).await {
            Ok(api) => api,
            // A CRD removed since: the objects of its kind are gone with it.
            Err(Unserved::NotServed(_)) => {
                found.push(missing_object(object));
                continue;
            }
            Err(Unserved::Failed(e)) => return Err(e),
        };
        let resource = describe_object(object);
        let name = name_of(object);
        let compared = async {
            let Some(live) = api
                .get_opt(name)
                .await
                .map_err(|e| kube_error(&format!("reading {resource}"), e))?
            else {
                return Ok(vec![missing_object(object)]);
            };
            let dry_run = api
                .patch(name, &params, &Patch::Apply(object))
                .await
                .map_err(|e| kube_error(&format!("comparing {resource}"), e))?;
            let as_json = |o: DynamicObject| {
                serde_json::to_value(o).map_err(|e| {
                    CloudError::Permanent(format!("{resource} does not read as JSON: {e}"))
                })
            };
            Ok::<_, CloudError>(object_drift(object, as_json(dry_run)?, as_json(live)?))
        }
        .instrument(call_span("compare", object))
        .await?;
        found.extend(compared);
    }
    Ok(found)
}

/// The trace span of one call on one object: its verb, kind, namespace and name.
fn call_span(verb: &'static str, object: &Value) -> tracing::Span {
    let kind = str_at(object, "/kind");
    tracing::info_span!(
        "kubernetes",
        otel.name = %format!("{verb} {kind}"),
        otel.kind = "client",
        k8s.verb = verb,
        k8s.kind = kind,
        k8s.namespace = str_at(object, "/metadata/namespace"),
        k8s.name = name_of(object),
    )
}

/// A random secret value: 32 bytes from the operating system, base64url.
fn generated_value() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Creates the missing Secrets; an existing one is kept, since its values are in use. Copies of
/// one name in several namespaces hold the same values: taken from a copy that exists (a crash
/// may have left one), else generated once. The values stay in memory only.
pub async fn create_secrets(
    client: &kube::Client,
    secrets: &[GeneratedSecret],
) -> Result<usize, CloudError> {
    let mut values: HashMap<&str, BTreeMap<String, ByteString>> = HashMap::new();
    let mut missing = Vec::new();
    for secret in secrets {
        let api: Api<Secret> = Api::namespaced(client.clone(), &secret.namespace);
        let described = format!("Secret {}/{}", secret.namespace, secret.name);
        match api
            .get_opt(&secret.name)
            .await
            .map_err(|e| kube_error(&format!("reading {described}"), e))?
        {
            Some(existing) => {
                values
                    .entry(&secret.name)
                    .or_insert_with(|| existing.data.unwrap_or_default());
            }
            None => missing.push(secret),
        }
    }
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..Default::default()
    };
    let mut created = 0;
    for secret in missing {
        let data = values
            .entry(&secret.name)
            .or_insert_with(|| {
                secret
                    .keys
                    .iter()
                    .map(|key| (key.clone(), ByteString(generated_value().into_bytes())))
                    .collect()
            })
            .clone();
        let object = managed_secret(&secret.namespace, &secret.name, data);
        let api: Api<Secret> = Api::namespaced(client.clone(), &secret.namespace);
        match api.create(&params, &object).await {
            Ok(_) => created += 1,
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            // The error names the Secret, never its values (they are not in it).
            Err(e) => {
                return Err(kube_error(
                    &format!("creating Secret {}/{}", secret.namespace, secret.name),
                    e,
                ));
            }
        }
    }
    Ok(created)
}

/// A Secret labelled as Slipway's.
fn managed_secret(namespace: &str, name: &str, data: BTreeMap<String, ByteString>) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some([(MANAGED_BY_LABEL.to_owned(), FIELD_MANAGER.to_owned())].into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

/// See [`super::cloud::ClusterApi::copy_secrets`].
pub async fn copy_secrets(client: &kube::Client, copies: &[SecretCopy]) -> Result<(), CloudError> {
    for copy in copies {
        let source = format!("Secret {}/{}", copy.from_namespace, copy.from_name);
        let from: Api<Secret> = Api::namespaced(client.clone(), &copy.from_namespace);
        let data = from
            .get_opt(&copy.from_name)
            .await
            .map_err(|e| kube_error(&format!("reading {source}"), e))?
            .ok_or_else(|| {
                CloudError::Transient(format!("{source} is not there yet (its operator makes it)"))
            })?
            .data
            .unwrap_or_default();
        let mut picked = BTreeMap::new();
        for key in &copy.keys {
            let value = data
                .get(key)
                .ok_or_else(|| CloudError::Transient(format!("{source} has no key {key} yet")))?;
            picked.insert(key.clone(), value.clone());
        }
        let object = managed_secret(&copy.to_namespace, &copy.to_name, picked);
        let to: Api<Secret> = Api::namespaced(client.clone(), &copy.to_namespace);
        let target = format!("Secret {}/{}", copy.to_namespace, copy.to_name);
        // Server-side apply writes only when the copy differs (a renewed source).
        to.patch(
            &copy.to_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|e| kube_error(&format!("applying {target}"), e))?;
    }
    Ok(())
}

/// Kinds whose operator reports on them; until it has, they are not healthy.
const RECONCILED: &[&str] = &[
    "Kafka",
    "KafkaNodePool",
    "KafkaUser",
    "MongoDBCommunity",
    "ScyllaCluster",
    "SpinnakerService",
];

/// Why a live object is not healthy yet, or `None` when it is.
fn unhealthy_because(planned: &Value, live: &Value) -> Option<String> {
    let kind = str_at(planned, "/kind");
    let generation = live["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = live["status"]["observedGeneration"].as_i64().unwrap_or(-1);
    let number = |pointer: &str| live.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
    match kind {
        "CustomResourceDefinition" => (condition_is_true(live, "Established") != Some(true))
            .then(|| "not Established".to_owned()),
        "Deployment" | "StatefulSet" => {
            let wanted = live["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = if kind == "Deployment" {
                number("/status/availableReplicas")
            } else {
                number("/status/readyReplicas")
            };
            (observed < generation || ready < wanted)
                .then(|| format!("{ready} of {wanted} replicas available"))
        }
        "DaemonSet" => {
            let wanted = number("/status/desiredNumberScheduled");
            let ready = number("/status/numberAvailable");
            (observed < generation || ready < wanted)
                .then(|| format!("{ready} of {wanted} pods available"))
        }
        "Job" => match (
            condition_is_true(live, "Complete"),
            condition_is_true(live, "Failed"),
        ) {
            (Some(true), _) => None,
            (_, Some(true)) => Some(format!(
                "failed ({}): see its pods' logs, then delete the Job so the retry runs it again",
                condition_message(live, "Failed")
            )),
            _ => Some("not complete yet".to_owned()),
        },
        // Other built-in kinds (namespaces, RBAC, policies, config) work once accepted.
        _ if is_built_in(planned) => None,
        _ => {
            let reported = |condition| condition_is_true(live, condition);
            match (
                reported("Ready").or(reported("Available")),
                live["status"]["phase"].as_str(),
            ) {
                (Some(true), _) => None,
                (Some(false), _) => Some("its operator reports it not ready".into()),
                (None, Some("Running" | "Ready" | "Succeeded")) => None,
                (None, Some(phase)) => Some(format!("phase {phase}")),
                (None, None) if RECONCILED.contains(&kind) => {
                    Some("not reconciled by its operator yet".into())
                }
                (None, None) => None,
            }
        }
    }
}

/// The applied objects that are not healthy yet, each with why.
pub async fn unhealthy(
    client: &kube::Client,
    objects: &[Value],
) -> Result<Vec<String>, CloudError> {
    let mut kinds = Kinds::new(objects);
    let mut out = Vec::new();
    for object in objects {
        let api = kinds.api_for(client, object).await?;
        out.extend(not_healthy(&api, object).await?);
    }
    Ok(out)
}

/// `Kind namespace/name: why` when the live copy of `object` is not healthy (or missing).
async fn not_healthy(
    api: &Api<DynamicObject>,
    object: &Value,
) -> Result<Option<String>, CloudError> {
    let resource = describe_object(object);
    let live = api
        .get_opt(name_of(object))
        .await
        .map_err(|e| kube_error(&format!("reading {resource}"), e))?;
    let because = match live {
        Some(live) => unhealthy_because(object, &serde_json::to_value(&live).unwrap_or_default()),
        None => Some("missing".into()),
    };
    Ok(because.map(|because| format!("{resource}: {because}")))
}

/// Deletes `objects` in reverse order and waits for each custom
/// resource to be gone before going on, so its operator, deleted later, can still run its
/// finalizers. Returns how many were still there.
pub async fn delete(client: &kube::Client, objects: &[Value]) -> Result<usize, CloudError> {
    let mut kinds = Kinds::new(objects);
    let mut deleted = 0;
    for object in objects.iter().rev() {
        let api = match kinds.api_for(client, object).await {
            Ok(api) => api,
            // Its CRD is gone already, and with it every object of the kind.
            Err(Unserved::NotServed(_)) => continue,
            Err(Unserved::Failed(e)) => return Err(e),
        };
        let resource = describe_object(object);
        let name = name_of(object);
        let outcome = api
            .delete(name, &DeleteParams::background())
            .instrument(call_span("delete", object))
            .await;
        match outcome {
            Ok(_) => deleted += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(e) => return Err(kube_error(&format!("deleting {resource}"), e)),
        }
        if !is_built_in(object) {
            let started = std::time::Instant::now();
            while api
                .get_opt(name)
                .await
                .map_err(|e| kube_error(&format!("reading {resource}"), e))?
                .is_some()
            {
                if started.elapsed() > SETTLE {
                    return Err(CloudError::Transient(format!(
                        "{resource} is still being finalized by its operator after {} s",
                        SETTLE.as_secs()
                    )));
                }
                tokio::time::sleep(SETTLE_POLL).await;
            }
        }
    }
    Ok(deleted)
}

/// What deleting `objects` left still going: their namespaces until they have terminated, and
/// persistent volumes still bound to claims in them.
pub async fn remaining(
    client: &kube::Client,
    objects: &[Value],
) -> Result<Vec<String>, CloudError> {
    let namespaces: Vec<&str> = objects
        .iter()
        .filter(|o| o["apiVersion"] == "v1" && o["kind"] == "Namespace")
        .map(name_of)
        .collect();
    let mut out = Vec::new();
    let api: Api<Namespace> = Api::all(client.clone());
    for namespace in &namespaces {
        if let Some(live) = api
            .get_opt(namespace)
            .await
            .map_err(|e| kube_error(&format!("reading Namespace {namespace}"), e))?
        {
            let phase = live.status.and_then(|s| s.phase).unwrap_or_default();
            out.push(format!("Namespace {namespace} is {phase}"));
        }
    }
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let listed = volumes
        .list(&ListParams::default())
        .await
        .map_err(|e| kube_error("listing PersistentVolumes", e))?;
    for volume in listed {
        let claim = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        if let Some(claim) = claim.filter(|c| {
            c.namespace
                .as_deref()
                .is_some_and(|ns| namespaces.contains(&ns))
        }) {
            out.push(format!(
                "PersistentVolume {} of claim {}/{} is still there",
                volume.metadata.name.unwrap_or_default(),
                claim.namespace.as_deref().unwrap_or_default(),
                claim.name.as_deref().unwrap_or_default()
            ));
        }
    }
    Ok(out)
}

/// The deprecated APIs in Prometheus text from an API server's `/metrics`: each
/// `apiserver_requested_deprecated_apis` series at 1 (asked for since the server started).
fn deprecated_in_metrics(metrics: &str) -> Vec<DeprecatedApi> {
    let mut found: Vec<DeprecatedApi> = metrics
        .lines()
        .filter_map(|line| {
            let series = line.strip_prefix("apiserver_requested_deprecated_apis{")?;
            let (labels, value) = series.rsplit_once('}')?;
            if value.trim().parse::<f64>().ok()? < 1.0 {
                return None;
            }
            let label = |name: &str| {
                labels.split(',').find_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    (key.trim() == name).then(|| value.trim().trim_matches('"').to_owned())
                })
            };
            let group = label("group").unwrap_or_default();
            let version = label("version").unwrap_or_default();
            let api = if group.is_empty() {
                version
            } else {
                format!("{group}/{version}")
            };
            let resource = label("resource").unwrap_or_default();
            let subresource = label("subresource").filter(|s| !s.is_empty());
            Some(DeprecatedApi {
                api: match subresource {
                    Some(sub) => format!("{api} {resource}/{sub}"),
                    None => format!("{api} {resource}"),
                },
                removed_release: label("removed_release").filter(|r| !r.is_empty()),
            })
        })
        .collect();
    found.sort_by(|a, b| a.api.cmp(&b.api));
    found.dedup();
    found
}

async fn deprecated_apis(client: &kube::Client) -> Result<Vec<DeprecatedApi>, CloudError> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| CloudError::Permanent(format!("the metrics request: {e}")))?;
    let metrics = client
        .request_text(request)
        .await
        .map_err(|e| kube_error("reading the API server's metrics", e))?;
    Ok(deprecated_in_metrics(&metrics))
}

impl super::cloud::ClusterApi for kube::Client {
    async fn deprecated_apis(&self) -> Result<Vec<DeprecatedApi>, CloudError> {
        deprecated_apis(self).await
    }

    async fn apply(&self, objects: &[Value]) -> Result<Vec<Applied>, CloudError> {
        apply(self, objects).await
    }

    async fn create_secrets(&self, secrets: &[GeneratedSecret]) -> Result<usize, CloudError> {
        create_secrets(self, secrets).await
    }

    async fn copy_secrets(&self, copies: &[SecretCopy]) -> Result<(), CloudError> {
        copy_secrets(self, copies).await
    }

    async fn unhealthy(&self, objects: &[Value]) -> Result<Vec<String>, CloudError> {
        unhealthy(self, objects).await
    }

    async fn drift(&self, objects: &[Value]) -> Result<Vec<Drift>, CloudError> {
        drift(self, objects).await
    }

    async fn delete(&self, objects: &[Value]) -> Result<usize, CloudError> {
        delete(self, objects).await
    }

    async fn remaining(&self, objects: &[Value]) -> Result<Vec<String>, CloudError> {
        remaining(self, objects).await
    }
}

/// A kubeconfig for the cluster without any secret: the token comes from `aws eks get-token`,
/// as `role` (assumed by the reader's credentials) when given.
pub fn kubeconfig(
    cluster: &str,
    endpoint: &str,
    ca: &str,
    region: &str,
    role: Option<&str>,
) -> String {
    let role = role.map_or(String::new(), |arn| format!(", --role-arn, {arn}"));
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {endpoint}\n    certificate-authority-data: {ca}\ncontexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n    user: {cluster}\ncurrent-context: {cluster}\nusers:\n- name: {cluster}\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token, --region, {region}, --cluster-name, {cluster}{role}]\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deprecated_apis_are_read_from_the_metrics_each_once() {
        let metrics = "# HELP apiserver_requested_deprecated_apis Gauge of deprecated APIs\n\
            apiserver_requested_deprecated_apis{group=\"flowcontrol.apiserver.k8s.io\",removed_release=\"1.32\",resource=\"flowschemas\",subresource=\"\",version=\"v1beta3\"} 1\n\
            apiserver_requested_deprecated_apis{group=\"\",removed_release=\"\",resource=\"componentstatuses\",subresource=\"\",version=\"v1\"} 1\n\
            apiserver_requested_deprecated_apis{group=\"batch\",removed_release=\"1.25\",resource=\"cronjobs\",subresource=\"status\",version=\"v1beta1\"} 0\n\
            apiserver_request_total{code=\"200\"} 7\n";
        assert_eq!(
            deprecated_in_metrics(metrics),
            [
                DeprecatedApi {
                    api: "flowcontrol.apiserver.k8s.io/v1beta3 flowschemas".into(),
                    removed_release: Some("1.32".into()),
                },
                DeprecatedApi {
                    api: "v1 componentstatuses".into(),
                    removed_release: None,
                },
            ]
        );
    }

    #[test]
    fn the_eks_token_is_a_presigned_sts_url_for_the_cluster() {
        let credentials = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let token = eks_token(
            "shop-perf-1",
            "eu-west-1",
            &credentials,
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        let encoded = token
            .strip_prefix("k8s-aws-v1.")
            .expect("the EKS token prefix");
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap();
        assert!(url.starts_with("https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity"));
        assert!(url.contains("X-Amz-Expires=60"));
        assert!(
            url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Credential=AKIDEXAMPLE%2F19700101%2Feu-west-1%2Fsts"));
        assert!(!url.contains("secret"), "the secret key never leaves");
    }
}
