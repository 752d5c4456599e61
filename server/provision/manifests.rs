//! The Kubernetes objects of an environment's bootstrap, built from the blueprint and the request
//! (pure functions). They are the plan's `kubernetes:apply` actions verbatim, so the preview
//! people approve is exactly what is applied.
//!
//! Apply order: [`operators`] (every CustomResourceDefinition first, then each operator's
//! namespace, RBAC and Deployment), then [`environment`] (the platform's own objects and the
//! custom resources the operators act on). Teardown deletes in reverse. The images come from
//! [`versions`]; credentials are never here: [`generated_secrets`] names the Secrets the applier
//! fills at apply time, and the objects refer to them by name.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::cloud::Grant;
use super::versions;
use crate::define::blueprint::{Blueprint, CentralStore, DevopsTool, Mtls, OpenSearch, Size};

const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const OBSERVABILITY: &str = "observability";
const DATA: &str = "data";
const ISTIO_SYSTEM: &str = "istio-system";
/// Prometheus-style scrapers run in namespaces carrying this label (set by the platform team).
const MONITORING_LABEL: &str = "slipway.dev/monitoring";
/// The data services' user for the app team; the password is in the team's Secret.
pub const APP_USER: &str = "app";
/// The namespace every team shares when teams have none of their own (the platform has no
/// teams yet, or its blueprint's `security.namespaces_per_team` is off).
pub const SHARED_TEAM_NAMESPACE: &str = "apps";
/// Marks the namespaces app teams work in: the data services and the collector admit those.
const TEAM_NAMESPACE_LABEL: &str = "slipway.dev/team-namespace";

/// Whether `name` is one of the namespaces Slipway keeps for the platform itself (or
/// Kubernetes for its own), which no team can have.
pub fn is_platform_namespace(name: &str) -> bool {
    name == "default"
        || name.starts_with("kube-")
        || [
            SHARED_TEAM_NAMESPACE,
            OBSERVABILITY,
            DATA,
            ISTIO_SYSTEM,
            "mongodb-operator",
            "scylla-operator",
            "strimzi",
            "spinnaker-operator",
            "spinnaker",
            "jenkins",
        ]
        .contains(&name)
}

/// A namespace app teams work in, and the Kubernetes groups bound to its developers Role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamNamespace {
    pub name: String,
    pub groups: Vec<String>,
}

fn labels(environment: &str, extra: Value) -> Value {
    let mut labels = json!({
        MANAGED_BY: "slipway",
        "slipway.dev/environment": environment,
    });
    if let (Some(map), Some(extra)) = (labels.as_object_mut(), extra.as_object()) {
        map.extend(extra.clone());
    }
    labels
}

fn object(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    environment: &str,
    rest: Value,
) -> Value {
    let mut metadata = json!({ "name": name, "labels": labels(environment, json!({})) });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    let mut object = json!({ "apiVersion": api_version, "kind": kind, "metadata": metadata });
    if let (Some(map), Some(rest)) = (object.as_object_mut(), rest.as_object()) {
        map.extend(rest.clone());
    }
    object
}

fn namespace(name: &str, environment: &str, istio: bool) -> Value {
    let extra = if istio {
        json!({ "istio-injection": "enabled" })
    } else {
        json!({})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name, "labels": labels(environment, extra) },
    })
}

fn replicas(size: Size) -> u32 {
    match size {
        Size::Small => 1,
        Size::Medium => 3,
        Size::Large => 5,
    }
}

fn storage(size: Size) -> &'static str {
    match size {
        Size::Small => "20Gi",
        Size::Medium => "100Gi",
        Size::Large => "500Gi",
    }
}

/// What an environment's bootstrap is made from.
pub struct Bootstrap<'a> {
    pub blueprint: &'a Blueprint,
    pub platform_slug: &'a str,
    pub environment: &'a str,
    /// The namespaces app teams work in (at least one).
    pub team_namespaces: &'a [TeamNamespace],
    pub max_nodes: u32,
    pub data_services: &'a [String],
}

/// The data services a request can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    MongoDb,
    ScyllaDb,
    Kafka,
}

impl Service {
    fn parse(name: &str) -> Option<Service> {
        match name {
            "mongodb" => Some(Service::MongoDb),
            "scylladb" => Some(Service::ScyllaDb),
            "kafka" => Some(Service::Kafka),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Service::MongoDb => "mongodb",
            Service::ScyllaDb => "scylladb",
            Service::Kafka => "kafka",
        }
    }

    /// The port apps connect to (Kafka: the TLS listener).
    fn client_port(self) -> u16 {
        match self {
            Service::MongoDb => 27017,
            Service::ScyllaDb => 9042,
            Service::Kafka => 9093,
        }
    }

    /// The Secret holding the app user's password, in the team namespace and, where the
    /// operator reads it, in `data`.
    fn credentials(self) -> String {
        format!("{}-{APP_USER}", self.name())
    }
}

fn services(b: &Bootstrap<'_>) -> Vec<Service> {
    b.data_services
        .iter()
        .filter_map(|s| Service::parse(s))
        .collect()
}

/// The namespaces an environment gets, in the order they are created (operators' namespaces,
/// `istio-system` among them, come from [`operators`]).
pub fn namespaces(b: &Bootstrap<'_>) -> Vec<String> {
    let bp = b.blueprint;
    let mut out: Vec<String> = b.team_namespaces.iter().map(|t| t.name.clone()).collect();
    if bp.logging.fluent_bit || bp.logging.opentelemetry {
        out.push(OBSERVABILITY.into());
    }
    if !b.data_services.is_empty() {
        out.push(DATA.into());
    }
    out
}

/// Namespaces whose pods get Istio sidecars. `data` stays out of the mesh: the data services
/// bring their own TLS, and their operators (outside the mesh) must reach them under STRICT mTLS.
fn in_mesh(b: &Bootstrap<'_>, namespace: &str) -> bool {
    b.blueprint.service_mesh.istio && namespace != DATA
}

// ---------------------------------------------------------------------------------------------
// Small builders

const READ: &[&str] = &["get", "list", "watch"];
const MANAGE: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({ "apiGroups": groups, "resources": resources, "verbs": verbs })
}

fn tcp(ports: &[u16]) -> Value {
    ports
        .iter()
        .map(|p| json!({ "protocol": "TCP", "port": p }))
        .collect()
}

fn namespace_selector(namespace: &str) -> Value {
    json!({ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": namespace } } })
}

/// Every team namespace of the environment, as a NetworkPolicy peer.
fn team_namespaces_selector() -> Value {
    json!({ "namespaceSelector": { "matchLabels": { TEAM_NAMESPACE_LABEL: "true" } } })
}

fn pods_of(namespace: &str, app: &str) -> Value {
    let mut peer = namespace_selector(namespace);
    peer["podSelector"] = json!({ "matchLabels": { "app": app } });
    peer
}

fn app_selector(app: &str) -> Value {
    json!({ "matchLabels": { "app": app } })
}

/// A container with requests, a memory limit and a readiness probe; `rest` adds the other fields.
fn container(name: &str, image: &str, requests: (&str, &str), probe: Value, rest: Value) -> Value {
    let (cpu, memory) = requests;
    let mut c = json!({
        "name": name,
        "image": image,
        "resources": {
            "requests": { "cpu": cpu, "memory": memory },
            "limits": { "memory": memory },
        },
        "readinessProbe": probe,
    });
    if let (Some(map), Some(rest)) = (c.as_object_mut(), rest.as_object()) {
        map.extend(rest.clone());
    }
    c
}

fn http_probe(path: &str, port: u16) -> Value {
    json!({ "httpGet": { "path": path, "port": port }, "periodSeconds": 10 })
}

/// For operators whose upstream image serves no health endpoint: says only that the process runs.
fn process_probe() -> Value {
    json!({ "exec": { "command": ["/bin/sh", "-c", "kill -0 1"] }, "periodSeconds": 10 })
}

fn field_env(name: &str, path: &str) -> Value {
    json!({ "name": name, "valueFrom": { "fieldRef": { "fieldPath": path } } })
}

/// One Deployment; its pods are labelled `app: <name>` (what the NetworkPolicies select).
fn deployment(
    namespace: &str,
    name: &str,
    environment: &str,
    replicas: u32,
    containers: Vec<Value>,
    volumes: Value,
) -> Value {
    object(
        "apps/v1",
        "Deployment",
        Some(namespace),
        name,
        environment,
        json!({
            "spec": {
                "replicas": replicas,
                "selector": { "matchLabels": { "app": name } },
                "template": {
                    "metadata": { "labels": { "app": name } },
                    "spec": {
                        "serviceAccountName": name,
                        "containers": containers,
                        "volumes": volumes,
                    },
                },
            },
        }),
    )
}

fn service_account(namespace: &str, name: &str, environment: &str) -> Value {
    object(
        "v1",
        "ServiceAccount",
        Some(namespace),
        name,
        environment,
        json!({}),
    )
}

/// A ClusterRole (or Role, with a namespace) and its binding to the ServiceAccount `name` in
/// `account_namespace`.
fn role_and_binding(
    scope: Option<&str>,
    account_namespace: &str,
    name: &str,
    environment: &str,
    rules: Vec<Value>,
) -> [Value; 2] {
    let (role, binding) = match scope {
        Some(_) => ("Role", "RoleBinding"),
        None => ("ClusterRole", "ClusterRoleBinding"),
    };
    let rbac = "rbac.authorization.k8s.io/v1";
    [
        object(
            rbac,
            role,
            scope,
            name,
            environment,
            json!({ "rules": rules }),
        ),
        object(
            rbac,
            binding,
            scope,
            name,
            environment,
            json!({
                "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": account_namespace }],
                "roleRef": { "kind": role, "name": name, "apiGroup": "rbac.authorization.k8s.io" },
            }),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// NetworkPolicies

/// A policy for the pods `selector` picks; `None` leaves that direction to other policies.
fn policy(
    namespace: &str,
    name: &str,
    environment: &str,
    selector: Value,
    ingress: Option<Vec<Value>>,
    egress: Option<Vec<Value>>,
) -> Value {
    let mut spec = json!({ "podSelector": selector });
    let mut types = Vec::new();
    // An empty rule list is left out: the API server stores it as absent, and sending `[]`
    // would make every re-apply a change. `policyTypes` alone denies.
    if let Some(ingress) = ingress {
        types.push("Ingress");
        if !ingress.is_empty() {
            spec["ingress"] = json!(ingress);
        }
    }
    if let Some(egress) = egress {
        types.push("Egress");
        if !egress.is_empty() {
            spec["egress"] = json!(egress);
        }
    }
    spec["policyTypes"] = json!(types);
    object(
        "networking.k8s.io/v1",
        "NetworkPolicy",
        Some(namespace),
        name,
        environment,
        json!({ "spec": spec }),
    )
}

/// Every Slipway namespace starts closed, with DNS to CoreDNS in kube-system open.
fn baseline_policies(namespace: &str, environment: &str) -> [Value; 2] {
    [
        policy(
            namespace,
            "default-deny",
            environment,
            json!({}),
            Some(vec![]),
            Some(vec![]),
        ),
        policy(
            namespace,
            "allow-dns",
            environment,
            json!({}),
            None,
            Some(vec![json!({
                "to": [{
                    "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } },
                    "podSelector": { "matchLabels": { "k8s-app": "kube-dns" } },
                }],
                "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }],
            })]),
        ),
    ]
}

/// Egress on TCP 443 to any address: the API server (EKS's endpoint ENIs) and AWS's service
/// endpoints have no pod or namespace to select, so the port is the only bound Slipway can
/// set before the cluster exists.
fn https_egress(namespace: &str, name: &str, environment: &str, selector: Value) -> Value {
    policy(
        namespace,
        name,
        environment,
        selector,
        None,
        Some(vec![json!({ "ports": tcp(&[443]) })]),
    )
}

/// Ingress on the metrics ports from the monitoring namespaces.
fn scrape_policy(namespace: &str, environment: &str, selector: Value, ports: &[u16]) -> Value {
    policy(
        namespace,
        "allow-metrics-scrape",
        environment,
        selector,
        Some(vec![json!({
            "from": [{ "namespaceSelector": { "matchLabels": { MONITORING_LABEL: "true" } } }],
            "ports": tcp(ports),
        })]),
        None,
    )
}

/// Sidecars fetch their configuration and certificates from istiod (15012).
fn istiod_egress(namespace: &str, environment: &str) -> Value {
    policy(
        namespace,
        "allow-istiod",
        environment,
        json!({}),
        None,
        Some(vec![
            json!({ "to": [pods_of(ISTIO_SYSTEM, "istiod")], "ports": tcp(&[15012]) }),
        ]),
    )
}

fn same_namespace(namespace: &str, environment: &str) -> Value {
    policy(
        namespace,
        "allow-same-namespace",
        environment,
        json!({}),
        Some(vec![json!({ "from": [{ "podSelector": {} }] })]),
        Some(vec![json!({ "to": [{ "podSelector": {} }] })]),
    )
}

// ---------------------------------------------------------------------------------------------
// CustomResourceDefinitions

/// One custom resource kind an operator serves.
struct Kind {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    /// Served versions; `storage` is one of them (upstream's, so upstream's CRDs can replace these).
    versions: &'static [&'static str],
    storage: &'static str,
}

const fn kind(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    versions: &'static [&'static str],
    storage: &'static str,
) -> Kind {
    Kind {
        group,
        kind,
        plural,
        namespaced: true,
        versions,
        storage,
    }
}

const fn cluster_kind(
    group: &'static str,
    kind_name: &'static str,
    plural: &'static str,
    versions: &'static [&'static str],
    storage: &'static str,
) -> Kind {
    Kind {
        namespaced: false,
        ..kind(group, kind_name, plural, versions, storage)
    }
}

const ISTIO_NETWORKING: &[&str] = &["v1", "v1beta1", "v1alpha3"];
const ISTIO_SECURITY: &[&str] = &["v1", "v1beta1"];

/// The `base` chart's kinds: istiod watches all of them, not only the one Slipway applies.
const ISTIO_KINDS: &[Kind] = &[
    kind(
        "networking.istio.io",
        "DestinationRule",
        "destinationrules",
        ISTIO_NETWORKING,
        "v1alpha3",
    ),
    kind(
        "networking.istio.io",
        "EnvoyFilter",
        "envoyfilters",
        &["v1alpha3"],
        "v1alpha3",
    ),
    kind(
        "networking.istio.io",
        "Gateway",
        "gateways",
        ISTIO_NETWORKING,
        "v1alpha3",
    ),
    kind(
        "networking.istio.io",
        "ProxyConfig",
        "proxyconfigs",
        &["v1beta1"],
        "v1beta1",
    ),
    kind(
        "networking.istio.io",
        "ServiceEntry",
        "serviceentries",
        ISTIO_NETWORKING,
        "v1alpha3",
    ),
    kind(
        "networking.istio.io",
        "Sidecar",
        "sidecars",
        ISTIO_NETWORKING,
        "v1alpha3",
    ),
    kind(
        "networking.istio.io",
        "VirtualService",
        "virtualservices",
        ISTIO_NETWORKING,
        "v1alpha3",
    ),
    kind(
        "networking.istio.io",
        "WorkloadEntry",
        "workloadentries",
        ISTIO_NETWORKING,
        "v1alpha3",
    ),
    kind(
        "networking.istio.io",
        "WorkloadGroup",
        "workloadgroups",
        ISTIO_NETWORKING,
        "v1alpha3",
    ),
    kind(
        "security.istio.io",
        "AuthorizationPolicy",
        "authorizationpolicies",
        ISTIO_SECURITY,
        "v1beta1",
    ),
    kind(
        "security.istio.io",
        "PeerAuthentication",
        "peerauthentications",
        ISTIO_SECURITY,
        "v1beta1",
    ),
    kind(
        "security.istio.io",
        "RequestAuthentication",
        "requestauthentications",
        ISTIO_SECURITY,
        "v1beta1",
    ),
    kind(
        "telemetry.istio.io",
        "Telemetry",
        "telemetries",
        &["v1", "v1alpha1"],
        "v1alpha1",
    ),
    kind(
        "extensions.istio.io",
        "WasmPlugin",
        "wasmplugins",
        &["v1alpha1"],
        "v1alpha1",
    ),
];

const MONGODB_KINDS: &[Kind] = &[kind(
    "mongodbcommunity.mongodb.com",
    "MongoDBCommunity",
    "mongodbcommunity",
    &["v1"],
    "v1",
)];

const SCYLLA_ALPHA: &[&str] = &["v1alpha1"];

/// The operator watches every kind it serves, so each needs its CRD.
const SCYLLA_KINDS: &[Kind] = &[
    kind(
        "scylla.scylladb.com",
        "ScyllaCluster",
        "scyllaclusters",
        &["v1"],
        "v1",
    ),
    kind(
        "scylla.scylladb.com",
        "ScyllaDBDatacenter",
        "scylladbdatacenters",
        SCYLLA_ALPHA,
        "v1alpha1",
    ),
    kind(
        "scylla.scylladb.com",
        "ScyllaDBCluster",
        "scylladbclusters",
        SCYLLA_ALPHA,
        "v1alpha1",
    ),
    kind(
        "scylla.scylladb.com",
        "ScyllaDBMonitoring",
        "scylladbmonitorings",
        SCYLLA_ALPHA,
        "v1alpha1",
    ),
    kind(
        "scylla.scylladb.com",
        "ScyllaDBManagerTask",
        "scylladbmanagertasks",
        SCYLLA_ALPHA,
        "v1alpha1",
    ),
    kind(
        "scylla.scylladb.com",
        "ScyllaDBManagerClusterRegistration",
        "scylladbmanagerclusterregistrations",
        SCYLLA_ALPHA,
        "v1alpha1",
    ),
    kind(
        "scylla.scylladb.com",
        "ScyllaDBDatacenterNodesStatusReport",
        "scylladbdatacenternodesstatusreports",
        SCYLLA_ALPHA,
        "v1alpha1",
    ),
    kind(
        "scylla.scylladb.com",
        "RemoteOwner",
        "remoteowners",
        SCYLLA_ALPHA,
        "v1alpha1",
    ),
    cluster_kind(
        "scylla.scylladb.com",
        "NodeConfig",
        "nodeconfigs",
        SCYLLA_ALPHA,
        "v1alpha1",
    ),
    cluster_kind(
        "scylla.scylladb.com",
        "ScyllaOperatorConfig",
        "scyllaoperatorconfigs",
        SCYLLA_ALPHA,
        "v1alpha1",
    ),
    cluster_kind(
        "scylla.scylladb.com",
        "RemoteKubernetesCluster",
        "remotekubernetesclusters",
        SCYLLA_ALPHA,
        "v1alpha1",
    ),
];

const STRIMZI_V1: &[&str] = &["v1"];

/// Strimzi's cluster operator watches all of these; `StrimziPodSet` is how it runs brokers.
const STRIMZI_KINDS: &[Kind] = &[
    kind("kafka.strimzi.io", "Kafka", "kafkas", STRIMZI_V1, "v1"),
    kind(
        "kafka.strimzi.io",
        "KafkaNodePool",
        "kafkanodepools",
        STRIMZI_V1,
        "v1",
    ),
    kind(
        "kafka.strimzi.io",
        "KafkaUser",
        "kafkausers",
        STRIMZI_V1,
        "v1",
    ),
    kind(
        "kafka.strimzi.io",
        "KafkaTopic",
        "kafkatopics",
        STRIMZI_V1,
        "v1",
    ),
    kind(
        "kafka.strimzi.io",
        "KafkaConnect",
        "kafkaconnects",
        STRIMZI_V1,
        "v1",
    ),
    kind(
        "kafka.strimzi.io",
        "KafkaConnector",
        "kafkaconnectors",
        STRIMZI_V1,
        "v1",
    ),
    kind(
        "kafka.strimzi.io",
        "KafkaMirrorMaker2",
        "kafkamirrormaker2s",
        STRIMZI_V1,
        "v1",
    ),
    kind(
        "kafka.strimzi.io",
        "KafkaBridge",
        "kafkabridges",
        STRIMZI_V1,
        "v1",
    ),
    kind(
        "kafka.strimzi.io",
        "KafkaRebalance",
        "kafkarebalances",
        STRIMZI_V1,
        "v1",
    ),
    kind(
        "core.strimzi.io",
        "StrimziPodSet",
        "strimzipodsets",
        STRIMZI_V1,
        "v1",
    ),
];

const SPINNAKER_KINDS: &[Kind] = &[
    kind(
        "spinnaker.io",
        "SpinnakerService",
        "spinnakerservices",
        &["v1alpha2"],
        "v1alpha2",
    ),
    kind(
        "spinnaker.io",
        "SpinnakerAccount",
        "spinnakeraccounts",
        &["v1alpha2"],
        "v1alpha2",
    ),
];

fn open_object() -> Value {
    json!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// An object whose `properties` are typed and whose other fields are kept as they are.
fn open_with(properties: Value) -> Value {
    json!({ "type": "object", "properties": properties, "x-kubernetes-preserve-unknown-fields": true })
}

fn string_enum(values: &[&str]) -> Value {
    json!({ "type": "string", "enum": values })
}

/// The `spec` schema: typed for the fields Slipway sets, open for the rest.
fn spec_schema(kind: &str) -> Value {
    match kind {
        "PeerAuthentication" => open_with(json!({
            "mtls": { "type": "object", "properties": {
                "mode": string_enum(&["UNSET", "DISABLE", "PERMISSIVE", "STRICT"]),
            } },
        })),
        "MongoDBCommunity" => open_with(json!({
            "members": { "type": "integer", "minimum": 1 },
            "type": string_enum(&["ReplicaSet"]),
            "version": { "type": "string" },
            "security": open_object(),
            "users": { "type": "array", "items": open_with(json!({
                "name": { "type": "string" },
                "db": { "type": "string" },
                "passwordSecretRef": { "type": "object", "required": ["name"], "properties": {
                    "name": { "type": "string" },
                    "key": { "type": "string" },
                } },
                "scramCredentialsSecretName": { "type": "string" },
                "roles": { "type": "array", "items": open_object() },
            })) },
            "statefulSet": open_object(),
        })),
        "ScyllaCluster" => open_with(json!({
            "version": { "type": "string" },
            "repository": { "type": "string" },
            "datacenter": open_object(),
        })),
        "Kafka" => open_with(json!({
            "kafka": open_object(),
            "entityOperator": open_object(),
        })),
        "KafkaNodePool" => open_with(json!({
            "replicas": { "type": "integer", "minimum": 0 },
            "roles": { "type": "array", "items": string_enum(&["controller", "broker"]) },
            "storage": open_object(),
        })),
        "KafkaUser" => open_with(json!({
            "authentication": open_with(json!({
                "type": string_enum(&["tls", "tls-external", "scram-sha-512"]),
            })),
        })),
        "SpinnakerService" => open_with(json!({
            "spinnakerConfig": open_object(),
            "accounts": open_with(json!({
                "enabled": { "type": "boolean" },
                "dynamic": { "type": "boolean" },
            })),
        })),
        "SpinnakerAccount" => open_with(json!({
            "type": string_enum(&["Kubernetes", "AWS", "Docker"]),
            "enabled": { "type": "boolean" },
            "kubernetes": open_with(json!({
                "kubeconfigSecret": {
                    "type": "object",
                    "required": ["name", "key"],
                    "properties": { "name": { "type": "string" }, "key": { "type": "string" } },
                },
            })),
        })),
        _ => open_object(),
    }
}

/// Slipway's reduced schema of a kind, not upstream's full one: structural (the API server
/// accepts and prunes by it), with the status subresource, validating only what Slipway sets.
fn crd(environment: &str, k: &Kind) -> Value {
    let schema = json!({ "openAPIV3Schema": {
        "type": "object",
        "properties": { "spec": spec_schema(k.kind), "status": open_object() },
    } });
    let versions: Vec<Value> = k
        .versions
        .iter()
        .map(|v| {
            json!({
                "name": v,
                "served": true,
                "storage": *v == k.storage,
                "subresources": { "status": {} },
                "schema": schema,
            })
        })
        .collect();
    object(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        &format!("{}.{}", k.plural, k.group),
        environment,
        json!({ "spec": {
            "group": k.group,
            "names": {
                "kind": k.kind,
                "listKind": format!("{}List", k.kind),
                "plural": k.plural,
                "singular": k.kind.to_lowercase(),
            },
            "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
            "versions": versions,
        } }),
    )
}

// ---------------------------------------------------------------------------------------------
// Operators

/// An operator Slipway installs. Its ServiceAccount, ClusterRole(Binding), Role(Binding) in its
/// own namespace and Deployment are all called `name`.
struct Operator {
    name: &'static str,
    namespace: &'static str,
    kinds: &'static [Kind],
    /// What it manages, bound cluster-wide (the namespaces it acts in may not exist yet).
    cluster_rules: Vec<Value>,
    /// Leader election and its own state, bound in its namespace only.
    own_rules: Vec<Value>,
    /// Applied after the RBAC, before the Deployment.
    extra: Vec<Value>,
    containers: Vec<Value>,
    volumes: Value,
    /// Ports the API server calls (admission webhooks); it is not a pod, so any source.
    webhook_ports: &'static [u16],
    /// Ports the operator connects to in `data`.
    data_ports: &'static [u16],
    /// Namespaces whose pods connect to the operator, and on which ports.
    clients: Vec<(String, &'static [u16])>,
    metrics_ports: &'static [u16],
}

fn leases() -> Value {
    rule(&["coordination.k8s.io"], &["leases"], MANAGE)
}

fn events() -> Value {
    rule(&["", "events.k8s.io"], &["events"], &["create", "patch"])
}

/// istiod: the mesh's control plane and CA. Sidecars are injected by its webhook, whose
/// configuration (a MutatingWebhookConfiguration and the injection templates) Slipway does not
/// generate yet; until then the namespaces' `istio-injection` label has no effect.
fn istiod(b: &Bootstrap<'_>) -> Operator {
    let istio_groups = [
        "networking.istio.io",
        "security.istio.io",
        "telemetry.istio.io",
        "extensions.istio.io",
    ];
    let env = b.environment;
    let image = versions::ISTIOD.image();
    let mesh_namespaces: Vec<(String, &'static [u16])> = namespaces(b)
        .into_iter()
        .filter(|ns| in_mesh(b, ns))
        .map(|ns| (ns, &[15012][..]))
        .collect();
    Operator {
        name: "istiod",
        namespace: ISTIO_SYSTEM,
        kinds: ISTIO_KINDS,
        cluster_rules: vec![
            rule(&istio_groups, &["*"], READ),
            rule(&istio_groups, &["*/status"], &["get", "update", "patch"]),
            rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                READ,
            ),
            rule(
                &[""],
                &[
                    "pods",
                    "nodes",
                    "services",
                    "namespaces",
                    "endpoints",
                    "serviceaccounts",
                ],
                READ,
            ),
            rule(&["discovery.k8s.io"], &["endpointslices"], READ),
            rule(
                &["networking.k8s.io"],
                &["ingresses", "ingressclasses"],
                READ,
            ),
            // The mesh's root certificate goes into a ConfigMap in every namespace.
            rule(
                &[""],
                &["configmaps"],
                &["get", "list", "watch", "create", "update"],
            ),
            // Proxies prove who they are with ServiceAccount tokens.
            rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
            rule(
                &["authorization.k8s.io"],
                &["subjectaccessreviews"],
                &["create"],
            ),
            rule(
                &["admissionregistration.k8s.io"],
                &[
                    "mutatingwebhookconfigurations",
                    "validatingwebhookconfigurations",
                ],
                &["get", "list", "watch", "update", "patch"],
            ),
        ],
        own_rules: vec![rule(&[""], &["secrets", "configmaps"], MANAGE), leases()],
        extra: vec![
            sidecar_injector_config(env),
            object(
                "v1",
                "Service",
                Some(ISTIO_SYSTEM),
                "istiod",
                env,
                json!({ "spec": {
            "selector": { "app": "istiod" },
            "ports": [
                { "name": "grpc-xds", "port": 15010, "targetPort": 15010 },
                { "name": "https-dns", "port": 15012, "targetPort": 15012 },
                { "name": "https-webhook", "port": 443, "targetPort": 15017 },
                { "name": "http-monitoring", "port": 15014, "targetPort": 15014 },
            ],
        } }),
            ),
        ],
        containers: vec![container(
            "discovery",
            image,
            ("500m", "2Gi"),
            http_probe("/ready", 8080),
            json!({
                "args": ["discovery", "--monitoringAddr=:15014", "--domain", "cluster.local", "--keepaliveMaxServerConnectionAge", "30m"],
                "ports": tcp_ports(&[8080, 15010, 15012, 15014, 15017]),
                "env": [
                    { "name": "REVISION", "value": "default" },
                    { "name": "PILOT_CERT_PROVIDER", "value": "istiod" },
                    { "name": "CLUSTER_ID", "value": "Kubernetes" },
                    { "name": "ISTIOD_ADDR", "value": "istiod.istio-system.svc:15012" },
                    // istiod puts its serving certificate's CA into this webhook's caBundle.
                    { "name": "INJECTION_WEBHOOK_CONFIG_NAME", "value": SIDECAR_INJECTOR },
                    field_env("POD_NAME", "metadata.name"),
                    field_env("POD_NAMESPACE", "metadata.namespace"),
                    field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
                ],
                "volumeMounts": [
                    { "name": "local-certs", "mountPath": "/var/run/secrets/istio-dns" },
                    { "name": "inject", "mountPath": "/var/lib/istio/inject", "readOnly": true },
                ],
            }),
        )],
        volumes: json!([
            { "name": "local-certs", "emptyDir": { "medium": "Memory" } },
            { "name": "inject", "configMap": { "name": SIDECAR_INJECTOR } },
        ]),
        webhook_ports: &[15017],
        data_ports: &[],
        clients: mesh_namespaces,
        metrics_ports: &[15014],
    }
}

/// The name istiod looks for: its injection ConfigMap and the mutating webhook it serves.
const SIDECAR_INJECTOR: &str = "istio-sidecar-injector";

/// Slipway's own sidecar template for istiod's injector (a Go template istiod renders per
/// pod and merges into it): `istio-init` redirects the pod's traffic through the proxy with
/// iptables (it needs NET_ADMIN and NET_RAW), and the proxy runs as a native sidecar (an init
/// container that keeps running, Kubernetes 1.29 and later), so Jobs still complete and apps
/// start once the proxy is ready. Its identity is a ServiceAccount token for the `istio-ca`
/// audience; istiod's root certificate comes from the `istio-ca-root-cert` ConfigMap istiod
/// writes into every namespace.
fn sidecar_template() -> String {
    let proxy = versions::ISTIOD.images[1];
    format!(
        r#"spec:
  initContainers:
  - name: istio-init
    image: {proxy}
    args: ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]
    resources: {{ requests: {{ cpu: 10m, memory: 40Mi }} }}
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {{ add: [NET_ADMIN, NET_RAW], drop: [ALL] }}
      runAsUser: 0
      runAsGroup: 0
      runAsNonRoot: false
  - name: istio-proxy
    image: {proxy}
    restartPolicy: Always
    args: ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local", "--proxyLogLevel=warning"]
    env:
    - {{ name: POD_NAME, valueFrom: {{ fieldRef: {{ fieldPath: metadata.name }} }} }}
    - {{ name: POD_NAMESPACE, valueFrom: {{ fieldRef: {{ fieldPath: metadata.namespace }} }} }}
    - {{ name: INSTANCE_IP, valueFrom: {{ fieldRef: {{ fieldPath: status.podIP }} }} }}
    - {{ name: SERVICE_ACCOUNT, valueFrom: {{ fieldRef: {{ fieldPath: spec.serviceAccountName }} }} }}
    - {{ name: HOST_IP, valueFrom: {{ fieldRef: {{ fieldPath: status.hostIP }} }} }}
    - {{ name: PILOT_CERT_PROVIDER, value: istiod }}
    - {{ name: CA_ADDR, value: "istiod.istio-system.svc:15012" }}
    - {{ name: ISTIO_META_CLUSTER_ID, value: Kubernetes }}
    - {{ name: ISTIO_META_MESH_ID, value: cluster.local }}
    - {{ name: TRUST_DOMAIN, value: cluster.local }}
    - {{ name: ISTIO_META_INTERCEPTION_MODE, value: REDIRECT }}
    - {{ name: ISTIO_META_WORKLOAD_NAME, value: "{{{{ .DeploymentMeta.Name }}}}" }}
    ports:
    - {{ name: http-envoy-prom, containerPort: 15090, protocol: TCP }}
    startupProbe: {{ httpGet: {{ path: /healthz/ready, port: 15021 }}, periodSeconds: 1, failureThreshold: 600 }}
    readinessProbe: {{ httpGet: {{ path: /healthz/ready, port: 15021 }}, periodSeconds: 15, failureThreshold: 4 }}
    resources: {{ requests: {{ cpu: 100m, memory: 128Mi }}, limits: {{ cpu: "2", memory: 1Gi }} }}
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {{ drop: [ALL] }}
      readOnlyRootFilesystem: true
      runAsUser: 1337
      runAsGroup: 1337
      runAsNonRoot: true
    volumeMounts:
    - {{ name: workload-socket, mountPath: /var/run/secrets/workload-spiffe-uds }}
    - {{ name: credential-socket, mountPath: /var/run/secrets/credential-uds }}
    - {{ name: workload-certs, mountPath: /var/run/secrets/workload-spiffe-credentials }}
    - {{ name: istiod-ca-cert, mountPath: /var/run/secrets/istio }}
    - {{ name: istio-data, mountPath: /var/lib/istio/data }}
    - {{ name: istio-envoy, mountPath: /etc/istio/proxy }}
    - {{ name: istio-token, mountPath: /var/run/secrets/tokens }}
    - {{ name: istio-podinfo, mountPath: /etc/istio/pod }}
  volumes:
  - {{ name: workload-socket, emptyDir: {{}} }}
  - {{ name: credential-socket, emptyDir: {{}} }}
  - {{ name: workload-certs, emptyDir: {{}} }}
  - {{ name: istio-envoy, emptyDir: {{ medium: Memory }} }}
  - {{ name: istio-data, emptyDir: {{}} }}
  - name: istio-podinfo
    downwardAPI:
      items:
      - {{ path: labels, fieldRef: {{ fieldPath: metadata.labels }} }}
      - {{ path: annotations, fieldRef: {{ fieldPath: metadata.annotations }} }}
  - name: istio-token
    projected:
      sources:
      - serviceAccountToken: {{ audience: istio-ca, expirationSeconds: 43200, path: istio-token }}
  - {{ name: istiod-ca-cert, configMap: {{ name: istio-ca-root-cert }} }}
"#
    )
}

/// istiod's injection settings (mounted at `/var/lib/istio/inject`): inject into namespaces
/// labelled `istio-injection: enabled` with [`sidecar_template`].
fn sidecar_injector_config(env: &str) -> Value {
    let template = sidecar_template()
        .lines()
        .map(|line| format!("    {line}\n"))
        .collect::<String>();
    let config = format!(
        "policy: enabled\nalwaysInjectSelector: []\nneverInjectSelector: []\ninjectedAnnotations: {{}}\ndefaultTemplates: [sidecar]\ntemplates:\n  sidecar: |\n{template}"
    );
    object(
        "v1",
        "ConfigMap",
        Some(ISTIO_SYSTEM),
        SIDECAR_INJECTOR,
        env,
        json!({ "data": {
            "config": config,
            // The template above takes nothing from the chart values istiod also reads.
            "values": "{}",
        } }),
    )
}

/// The webhook through which the API server asks istiod to inject a sidecar into each new
/// pod of a mesh namespace. A pod labelled `sidecar.istio.io/inject: "false"` is not sent; one
/// annotated so is sent, and istiod leaves it alone.
/// Applied after istiod is available, so no pod of a mesh namespace is refused meanwhile.
fn sidecar_injector_webhook(env: &str) -> Value {
    object(
        "admissionregistration.k8s.io/v1",
        "MutatingWebhookConfiguration",
        None,
        SIDECAR_INJECTOR,
        env,
        json!({ "webhooks": [{
            "name": "namespace.sidecar-injector.istio.io",
            "clientConfig": { "service": {
                "name": "istiod", "namespace": ISTIO_SYSTEM, "path": "/inject", "port": 443,
            } },
            "rules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                "resources": ["pods"], "scope": "Namespaced",
            }],
            "namespaceSelector": { "matchLabels": { "istio-injection": "enabled" } },
            "objectSelector": { "matchExpressions": [{
                "key": "sidecar.istio.io/inject", "operator": "NotIn", "values": ["false"],
            }] },
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            // A mesh pod without its proxy would bypass STRICT mTLS: refuse it instead.
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "timeoutSeconds": 10,
        }] }),
    )
}

/// MongoDB Controllers for Kubernetes, reconciling only `MongoDBCommunity` in `data`.
fn mongodb_operator() -> Operator {
    let images = versions::MONGODB_OPERATOR.images;
    Operator {
        name: "mongodb-kubernetes-operator",
        namespace: "mongodb-operator",
        kinds: MONGODB_KINDS,
        cluster_rules: vec![
            rule(
                &[""],
                &["pods"],
                &["get", "list", "watch", "patch", "delete"],
            ),
            rule(&[""], &["services", "configmaps", "secrets"], MANAGE),
            rule(
                &[""],
                &["persistentvolumeclaims"],
                &["get", "list", "watch", "patch"],
            ),
            rule(&["apps"], &["statefulsets"], MANAGE),
            rule(
                &["mongodbcommunity.mongodb.com"],
                &[
                    "mongodbcommunity",
                    "mongodbcommunity/status",
                    "mongodbcommunity/spec",
                    "mongodbcommunity/finalizers",
                ],
                &["get", "list", "watch", "update", "patch"],
            ),
            rule(
                &["admissionregistration.k8s.io"],
                &["validatingwebhookconfigurations"],
                &["get", "create", "update", "delete"],
            ),
            events(),
        ],
        own_rules: vec![leases()],
        extra: vec![],
        containers: vec![container(
            "mongodb-kubernetes-operator",
            images[0],
            ("500m", "512Mi"),
            // Its webhook server listens once the manager has started; there is no health endpoint.
            json!({ "tcpSocket": { "port": 1993 }, "periodSeconds": 10 }),
            json!({
                "command": ["/usr/local/bin/mongodb-kubernetes-operator"],
                "args": ["-watch-resource=mongodbcommunity"],
                "ports": tcp_ports(&[1993]),
                "env": [
                    { "name": "OPERATOR_ENV", "value": "prod" },
                    { "name": "OPERATOR_NAME", "value": "mongodb-kubernetes-operator" },
                    { "name": "WATCH_NAMESPACE", "value": DATA },
                    field_env("NAMESPACE", "metadata.namespace"),
                    field_env("POD_NAME", "metadata.name"),
                    // Telemetry would need egress to MongoDB's servers.
                    { "name": "MDB_OPERATOR_TELEMETRY_ENABLED", "value": "false" },
                    { "name": "MDB_COMMUNITY_AGENT_IMAGE", "value": images[1] },
                    { "name": "VERSION_UPGRADE_HOOK_IMAGE", "value": images[2] },
                    { "name": "READINESS_PROBE_IMAGE", "value": images[3] },
                    { "name": "MDB_COMMUNITY_IMAGE", "value": "mongodb-community-server" },
                    { "name": "MDB_COMMUNITY_REPO_URL", "value": "quay.io/mongodb" },
                    { "name": "MDB_COMMUNITY_IMAGE_TYPE", "value": "ubi8" },
                ],
                "volumeMounts": [{ "name": "webhook-certs", "mountPath": "/tmp/k8s-webhook-server/serving-certs" }],
            }),
        )],
        volumes: json!([{ "name": "webhook-certs", "emptyDir": {} }]),
        webhook_ports: &[1993],
        data_ports: &[],
        clients: vec![],
        metrics_ports: &[],
    }
}

/// The ClusterRole the Scylla Operator binds to each ScyllaDB cluster's pods (their sidecar).
const SCYLLA_MEMBER_ROLE: &str = "scyllacluster-member";

fn scylla_operator(env: &str) -> Operator {
    let image = versions::SCYLLA_OPERATOR.image();
    Operator {
        name: "scylla-operator",
        namespace: "scylla-operator",
        kinds: SCYLLA_KINDS,
        cluster_rules: vec![
            rule(
                &[""],
                &[
                    "pods",
                    "services",
                    "endpoints",
                    "secrets",
                    "configmaps",
                    "serviceaccounts",
                    "persistentvolumeclaims",
                ],
                MANAGE,
            ),
            rule(&[""], &["nodes"], READ),
            rule(
                &["apps"],
                &["statefulsets", "daemonsets", "deployments"],
                MANAGE,
            ),
            rule(&["policy"], &["poddisruptionbudgets"], MANAGE),
            rule(&["batch"], &["jobs"], MANAGE),
            rule(&["discovery.k8s.io"], &["endpointslices"], MANAGE),
            rule(&["networking.k8s.io"], &["ingresses"], MANAGE),
            rule(
                &["rbac.authorization.k8s.io"],
                &["roles", "rolebindings"],
                MANAGE,
            ),
            json!({
                "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                "verbs": ["bind"], "resourceNames": [SCYLLA_MEMBER_ROLE],
            }),
            rule(&["scylla.scylladb.com"], &["*"], MANAGE),
            rule(
                &["apiextensions.k8s.io"],
                &["customresourcedefinitions"],
                READ,
            ),
            events(),
        ],
        own_rules: vec![leases()],
        extra: vec![object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            SCYLLA_MEMBER_ROLE,
            env,
            json!({ "rules": [
                rule(&[""], &["pods", "services"], &["get", "list", "watch", "update", "patch"]),
                rule(&[""], &["secrets", "configmaps"], READ),
                rule(&["apps"], &["statefulsets"], READ),
                rule(&["scylla.scylladb.com"], &["scyllaclusters", "scylladbdatacenters"], READ),
            ] }),
        )],
        containers: vec![container(
            "scylla-operator",
            image,
            ("100m", "256Mi"),
            process_probe(),
            json!({
                "args": ["operator", "--loglevel=2"],
                "env": [{ "name": "SCYLLA_OPERATOR_IMAGE", "value": image }],
            }),
        )],
        volumes: json!([]),
        webhook_ports: &[],
        // The ScyllaDB Manager agent's API in every ScyllaDB pod.
        data_ports: &[10001],
        clients: vec![],
        metrics_ports: &[],
    }
}

/// Strimzi's cluster operator, watching `data` only. It would generate NetworkPolicies of its
/// own that open the listeners to every namespace; Slipway's policies replace them.
fn strimzi() -> Operator {
    let images = versions::STRIMZI.images;
    let kafka_images = format!("{}={}", versions::KAFKA.version, versions::KAFKA.image());
    Operator {
        name: "strimzi-cluster-operator",
        namespace: "strimzi",
        kinds: STRIMZI_KINDS,
        cluster_rules: vec![
            rule(
                &[""],
                &[
                    "pods",
                    "services",
                    "endpoints",
                    "secrets",
                    "configmaps",
                    "serviceaccounts",
                    "persistentvolumeclaims",
                ],
                MANAGE,
            ),
            rule(&["apps"], &["deployments"], MANAGE),
            rule(&["policy"], &["poddisruptionbudgets"], MANAGE),
            rule(
                &["rbac.authorization.k8s.io"],
                &["roles", "rolebindings"],
                MANAGE,
            ),
            rule(&["kafka.strimzi.io", "core.strimzi.io"], &["*"], MANAGE),
            events(),
        ],
        own_rules: vec![leases()],
        extra: vec![],
        containers: vec![container(
            "strimzi-cluster-operator",
            images[0],
            ("200m", "384Mi"),
            http_probe("/ready", 8080),
            json!({
                "args": ["/opt/strimzi/bin/cluster_operator_run.sh"],
                "ports": tcp_ports(&[8080]),
                "env": [
                    { "name": "STRIMZI_NAMESPACE", "value": DATA },
                    { "name": "STRIMZI_NETWORK_POLICY_GENERATION", "value": "false" },
                    { "name": "STRIMZI_KAFKA_IMAGES", "value": kafka_images },
                    { "name": "STRIMZI_KAFKA_CONNECT_IMAGES", "value": kafka_images },
                    { "name": "STRIMZI_KAFKA_MIRROR_MAKER_2_IMAGES", "value": kafka_images },
                    { "name": "STRIMZI_DEFAULT_TOPIC_OPERATOR_IMAGE", "value": images[0] },
                    { "name": "STRIMZI_DEFAULT_USER_OPERATOR_IMAGE", "value": images[0] },
                    { "name": "STRIMZI_DEFAULT_KAFKA_INIT_IMAGE", "value": images[0] },
                    { "name": "STRIMZI_LEADER_ELECTION_ENABLED", "value": "true" },
                    { "name": "STRIMZI_LEADER_ELECTION_LEASE_NAME", "value": "strimzi-cluster-operator" },
                    field_env("STRIMZI_OPERATOR_NAMESPACE", "metadata.namespace"),
                    field_env("STRIMZI_LEADER_ELECTION_LEASE_NAMESPACE", "metadata.namespace"),
                    field_env("STRIMZI_LEADER_ELECTION_IDENTITY", "metadata.name"),
                ],
            }),
        )],
        volumes: json!([]),
        webhook_ports: &[],
        // KRaft controllers and the brokers' replication listener, for rolling and admin calls.
        data_ports: &[9090, 9091],
        clients: vec![],
        metrics_ports: &[8080],
    }
}

/// The Spinnaker Operator (cluster mode) with Halyard beside it. Its validating webhook is off:
/// it would need to manage webhook configurations cluster-wide for a check the operator repeats.
fn spinnaker_operator() -> Operator {
    let images = versions::SPINNAKER_OPERATOR.images;
    let apply = &["get", "list", "watch", "create", "update", "patch"];
    Operator {
        name: "spinnaker-operator",
        namespace: "spinnaker-operator",
        kinds: SPINNAKER_KINDS,
        cluster_rules: vec![
            rule(&[""], &["pods", "endpoints", "namespaces"], READ),
            rule(&[""], &["services", "configmaps", "secrets"], apply),
            rule(
                &["apps"],
                &["deployments", "replicasets", "statefulsets"],
                apply,
            ),
            rule(&["networking.k8s.io"], &["ingresses"], READ),
            rule(&["spinnaker.io"], &["*"], apply),
            events(),
        ],
        own_rules: vec![leases()],
        extra: vec![],
        containers: vec![
            container(
                "spinnaker-operator",
                images[0],
                ("100m", "256Mi"),
                process_probe(),
                json!({
                    "command": ["spinnaker-operator"],
                    "args": ["--disable-admission-controller"],
                    "env": [
                        field_env("POD_NAME", "metadata.name"),
                        { "name": "OPERATOR_NAME", "value": "spinnaker-operator" },
                    ],
                }),
            ),
            container(
                "halyard",
                images[1],
                ("500m", "1Gi"),
                http_probe("/health", 8064),
                json!({ "ports": tcp_ports(&[8064]) }),
            ),
        ],
        volumes: json!([]),
        webhook_ports: &[],
        data_ports: &[],
        clients: vec![],
        metrics_ports: &[],
    }
}

fn tcp_ports(ports: &[u16]) -> Value {
    ports
        .iter()
        .map(|p| json!({ "containerPort": p, "protocol": "TCP" }))
        .collect()
}

/// The operators this environment needs, in install order (Istio first: its CRDs and istiod
/// exist before any sidecar or policy).
fn required_operators(b: &Bootstrap<'_>) -> Vec<Operator> {
    let mut out = Vec::new();
    if b.blueprint.service_mesh.istio {
        out.push(istiod(b));
    }
    for service in services(b) {
        out.push(match service {
            Service::MongoDb => mongodb_operator(),
            Service::ScyllaDb => scylla_operator(b.environment),
            Service::Kafka => strimzi(),
        });
    }
    out
}

/// An operator's objects after its CRDs: namespace, RBAC, the rest, the Deployment and, with
/// `policies`, the NetworkPolicies that open exactly what it needs.
fn operator_objects(op: &Operator, env: &str, policies: bool) -> Vec<Value> {
    let ns = op.namespace;
    let mut out = vec![namespace(ns, env, false), service_account(ns, op.name, env)];
    out.extend(role_and_binding(
        None,
        ns,
        op.name,
        env,
        op.cluster_rules.clone(),
    ));
    out.extend(role_and_binding(
        Some(ns),
        ns,
        op.name,
        env,
        op.own_rules.clone(),
    ));
    out.extend(op.extra.iter().cloned());
    out.push(deployment(
        ns,
        op.name,
        env,
        1,
        op.containers.clone(),
        op.volumes.clone(),
    ));
    if !policies {
        return out;
    }
    let pods = app_selector(op.name);
    out.extend(baseline_policies(ns, env));
    out.push(https_egress(ns, "allow-kube-apiserver", env, pods.clone()));
    if !op.webhook_ports.is_empty() {
        out.push(policy(
            ns,
            "allow-webhooks",
            env,
            pods.clone(),
            Some(vec![json!({ "ports": tcp(op.webhook_ports) })]),
            None,
        ));
    }
    if !op.clients.is_empty() {
        let rules = op
            .clients
            .iter()
            .map(|(client, ports)| json!({ "from": [namespace_selector(client)], "ports": tcp(ports) }))
            .collect();
        out.push(policy(
            ns,
            "allow-clients",
            env,
            pods.clone(),
            Some(rules),
            None,
        ));
    }
    if !op.data_ports.is_empty() {
        out.push(policy(
            ns,
            "allow-data",
            env,
            pods.clone(),
            None,
            Some(vec![json!({
                "to": [namespace_selector(DATA)],
                "ports": tcp(op.data_ports),
            })]),
        ));
    }
    if !op.metrics_ports.is_empty() {
        out.push(scrape_policy(ns, env, pods, op.metrics_ports));
    }
    out
}

/// The operators an environment needs, in apply order: every CRD first (so no operator starts
/// watching a kind that does not exist), then each operator's namespace, ServiceAccount,
/// ClusterRole and binding, Role and binding, and Deployment. Applied before [`environment`],
/// whose custom resources these CRDs define.
pub fn operators(b: &Bootstrap<'_>) -> Vec<Value> {
    let env = b.environment;
    let policies = b.blueprint.security.default_deny_network_policies;
    let operators = required_operators(b);
    let mut out: Vec<Value> = operators
        .iter()
        .flat_map(|op| op.kinds.iter().map(|k| crd(env, k)))
        .collect();
    for op in &operators {
        out.extend(operator_objects(op, env, policies));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Logs, metrics and traces

/// Where logs (and the collector's telemetry) go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogStore<'a> {
    CloudWatch,
    OpenSearch(&'a OpenSearch),
}

/// A validated blueprint names its OpenSearch domain whenever `central_store` is `opensearch`
/// (`Blueprint::validate`), so the domain alone tells the two apart.
fn log_store(bp: &Blueprint) -> LogStore<'_> {
    match &bp.logging.opensearch {
        Some(domain) if bp.logging.central_store == CentralStore::Opensearch => {
            LogStore::OpenSearch(domain)
        }
        _ => LogStore::CloudWatch,
    }
}

/// The CloudWatch Logs group of an environment (its account's own).
pub fn log_group(platform_slug: &str, environment: &str) -> String {
    format!("/slipway/{platform_slug}/{environment}")
}

fn fluent_bit_config(b: &Bootstrap<'_>) -> String {
    let region = &b.blueprint.cloud.region;
    let output = match log_store(b.blueprint) {
        LogStore::CloudWatch => format!(
            "[OUTPUT]\n    Name cloudwatch_logs\n    Match kube.*\n    region {region}\n    log_group_name {}\n    log_stream_prefix node-\n    auto_create_group On\n",
            log_group(b.platform_slug, b.environment),
        ),
        LogStore::OpenSearch(domain) => format!(
            "[OUTPUT]\n    Name opensearch\n    Match kube.*\n    Host {}\n    Port 443\n    tls On\n    AWS_Auth On\n    AWS_Region {region}\n    Index slipway-{}-{}\n    Suppress_Type_Name On\n    Trace_Error On\n",
            domain.host(),
            b.platform_slug,
            b.environment,
        ),
    };
    format!(
        "[SERVICE]\n    HTTP_Server On\n    HTTP_Listen 0.0.0.0\n    HTTP_Port 2020\n    Health_Check On\n\n\
         [INPUT]\n    Name tail\n    Path /var/log/containers/*.log\n    multiline.parser docker, cri\n    Tag kube.*\n    Mem_Buf_Limit 50MB\n    Skip_Long_Lines On\n\n\
         [FILTER]\n    Name kubernetes\n    Match kube.*\n    Merge_Log On\n    Keep_Log Off\n\n{output}"
    )
}

/// Fluent Bit on every node. Its AWS credentials come from EKS Pod Identity: an association for
/// the `observability/fluent-bit` ServiceAccount with a role that may write to the log store
/// (CloudWatch Logs or the OpenSearch domain), made by the cluster step, never a key here.
fn fluent_bit(b: &Bootstrap<'_>) -> Vec<Value> {
    let env = b.environment;
    let ns = OBSERVABILITY;
    let fluent_bit_container = container(
        "fluent-bit",
        versions::FLUENT_BIT.image(),
        ("100m", "128Mi"),
        http_probe("/api/v1/health", 2020),
        json!({
            "command": ["/fluent-bit/bin/fluent-bit"],
            "args": ["-c", "/fluent-bit/etc/slipway/fluent-bit.conf"],
            "ports": tcp_ports(&[2020]),
            "volumeMounts": [
                { "name": "config", "mountPath": "/fluent-bit/etc/slipway" },
                { "name": "varlog", "mountPath": "/var/log", "readOnly": true },
            ],
        }),
    );
    let mut out = vec![service_account(ns, "fluent-bit", env)];
    out.extend(role_and_binding(
        None,
        ns,
        "fluent-bit",
        env,
        vec![rule(&[""], &["pods", "namespaces"], READ)],
    ));
    out.push(object(
        "v1",
        "ConfigMap",
        Some(ns),
        "fluent-bit",
        env,
        json!({ "data": { "fluent-bit.conf": fluent_bit_config(b) } }),
    ));
    out.push(object("apps/v1", "DaemonSet", Some(ns), "fluent-bit", env, json!({
        "spec": {
            "selector": { "matchLabels": { "app": "fluent-bit" } },
            "template": {
                // It talks only to the API server and AWS, both outside the mesh.
                "metadata": { "labels": { "app": "fluent-bit" }, "annotations": { "sidecar.istio.io/inject": "false" } },
                "spec": {
                    "serviceAccountName": "fluent-bit",
                    "tolerations": [{ "operator": "Exists" }],
                    "containers": [fluent_bit_container],
                    "volumes": [
                        { "name": "config", "configMap": { "name": "fluent-bit" } },
                        { "name": "varlog", "hostPath": { "path": "/var/log" } },
                    ],
                },
            },
        },
    })));
    out
}

fn collector_config(b: &Bootstrap<'_>) -> String {
    let region = &b.blueprint.cloud.region;
    let (extensions, exporters, logs, traces, metrics) = match log_store(b.blueprint) {
        LogStore::CloudWatch => (
            String::new(),
            format!(
                "  awscloudwatchlogs:\n    region: {region}\n    log_group_name: {group}\n    log_stream_name: otel-collector\n\
                 \x20 awsemf:\n    region: {region}\n    namespace: Slipway/{platform}/{env}\n    log_group_name: {group}/metrics\n\
                 \x20 awsxray:\n    region: {region}\n",
                group = log_group(b.platform_slug, b.environment),
                platform = b.platform_slug,
                env = b.environment,
            ),
            "awscloudwatchlogs",
            "awsxray",
            Some("awsemf"),
        ),
        LogStore::OpenSearch(domain) => (
            format!("  sigv4auth:\n    region: {region}\n    service: es\n"),
            format!(
                "  opensearch:\n    http:\n      endpoint: https://{}\n      auth:\n        authenticator: sigv4auth\n    dataset: {}\n    namespace: {}\n",
                domain.host(),
                b.environment,
                b.platform_slug,
            ),
            "opensearch",
            "opensearch",
            // The OpenSearch exporter takes logs and traces only; metrics are scraped instead.
            None,
        ),
    };
    let mut pipelines = format!(
        "    logs:\n      receivers: [otlp]\n      processors: [memory_limiter, batch]\n      exporters: [{logs}]\n\
         \x20   traces:\n      receivers: [otlp]\n      processors: [memory_limiter, batch]\n      exporters: [{traces}]\n"
    );
    if let (true, Some(metrics)) = (b.blueprint.logging.metrics, metrics) {
        pipelines.push_str(&format!(
            "    metrics:\n      receivers: [otlp]\n      processors: [memory_limiter, batch]\n      exporters: [{metrics}]\n"
        ));
    }
    let auth = if extensions.is_empty() {
        ""
    } else {
        ", sigv4auth"
    };
    format!(
        "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 0.0.0.0:4317\n      http:\n        endpoint: 0.0.0.0:4318\n\
         processors:\n  memory_limiter:\n    check_interval: 1s\n    limit_percentage: 80\n    spike_limit_percentage: 25\n  batch: {{}}\n\
         extensions:\n  health_check:\n    endpoint: 0.0.0.0:13133\n{extensions}\
         exporters:\n{exporters}\
         service:\n  extensions: [health_check{auth}]\n  telemetry:\n    metrics:\n      readers:\n        - pull:\n            exporter:\n              prometheus:\n                host: 0.0.0.0\n                port: 8888\n\
         \x20 pipelines:\n{pipelines}"
    )
}

/// The OpenTelemetry collector (contrib: it has the AWS and OpenSearch exporters), reachable
/// from the team namespace through its Service. AWS credentials: EKS Pod Identity for the
/// `observability/otel-collector` ServiceAccount.
fn collector(b: &Bootstrap<'_>) -> Vec<Value> {
    let env = b.environment;
    let ns = OBSERVABILITY;
    let name = "otel-collector";
    let collector_container = container(
        name,
        versions::OTEL_COLLECTOR.image(),
        ("200m", "512Mi"),
        http_probe("/", 13133),
        json!({
            "args": ["--config=/conf/config.yaml"],
            "ports": tcp_ports(&[4317, 4318, 8888, 13133]),
            "volumeMounts": [{ "name": "config", "mountPath": "/conf" }],
        }),
    );
    vec![
        service_account(ns, name, env),
        object(
            "v1",
            "ConfigMap",
            Some(ns),
            name,
            env,
            json!({ "data": { "config.yaml": collector_config(b) } }),
        ),
        deployment(
            ns,
            name,
            env,
            2,
            vec![collector_container],
            json!([{ "name": "config", "configMap": { "name": name } }]),
        ),
        object(
            "v1",
            "Service",
            Some(ns),
            name,
            env,
            json!({ "spec": {
            "selector": { "app": name },
            "ports": [
                { "name": "grpc-otlp", "port": 4317, "targetPort": 4317, "protocol": "TCP" },
                { "name": "http-otlp", "port": 4318, "targetPort": 4318, "protocol": "TCP" },
            ],
        } }),
        ),
    ]
}

/// A ServiceAccount of the platform that needs AWS permissions, and which (EKS Pod Identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadAccess {
    pub namespace: &'static str,
    pub service_account: &'static str,
    /// The IAM role's name in the environment's account.
    pub role: &'static str,
    pub grants: Vec<Grant>,
}

/// The shippers' AWS access: Fluent Bit writes logs, the collector logs, metrics and traces,
/// each to the blueprint's store and nowhere else.
pub fn workload_access(b: &Bootstrap<'_>) -> Vec<WorkloadAccess> {
    let bp = b.blueprint;
    let group = log_group(b.platform_slug, b.environment);
    let store = |log_groups: Vec<String>| match log_store(bp) {
        LogStore::OpenSearch(domain) => Grant::Opensearch {
            domain_arn: domain.domain_arn.clone(),
        },
        LogStore::CloudWatch => Grant::CloudwatchLogs { log_groups },
    };
    let mut out = Vec::new();
    if bp.logging.fluent_bit {
        out.push(WorkloadAccess {
            namespace: OBSERVABILITY,
            service_account: "fluent-bit",
            role: "SlipwayFluentBit",
            grants: vec![store(vec![group.clone()])],
        });
    }
    if bp.logging.opentelemetry {
        let mut grants = vec![store(vec![group.clone(), format!("{group}/metrics")])];
        if log_store(bp) == LogStore::CloudWatch {
            grants.push(Grant::Xray);
        }
        out.push(WorkloadAccess {
            namespace: OBSERVABILITY,
            service_account: "otel-collector",
            role: "SlipwayOtelCollector",
            grants,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Data services

/// A Secret the applier creates with freshly generated values for `keys` (never stored in
/// Slipway's database, never in a manifest). Secrets of the same name in several namespaces
/// hold the same values: each name is generated once and written to every namespace listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedSecret {
    pub namespace: String,
    pub name: String,
    pub keys: Vec<String>,
}

/// The data services' credentials, created before [`environment`] is applied: for each
/// requested service the app user's password in the team namespace, and in `data` where the
/// operator reads it (MongoDB's `passwordSecretRef`, Strimzi's KafkaUser `valueFrom`) or, for
/// ScyllaDB, the role Job [`scylla_app_role`] does, with ScyllaDB's superuser password.
pub fn generated_secrets(b: &Bootstrap<'_>) -> Vec<GeneratedSecret> {
    let mut out = Vec::new();
    for service in services(b) {
        let name = service.credentials();
        let secret = |namespace: &str| GeneratedSecret {
            namespace: namespace.to_owned(),
            name: name.clone(),
            keys: vec!["password".to_owned()],
        };
        out.extend(b.team_namespaces.iter().map(|t| secret(&t.name)));
        out.push(secret(DATA));
        if service == Service::ScyllaDb {
            out.push(GeneratedSecret {
                namespace: DATA.to_owned(),
                name: SCYLLA_SUPERUSER.to_owned(),
                keys: vec!["password".to_owned()],
            });
        }
    }
    out
}

/// Keys of a Secret an operator makes, copied into another namespace once the platform is
/// healthy (the operator made it by then), so apps there can read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretCopy {
    pub from_namespace: String,
    pub from_name: String,
    pub to_namespace: String,
    pub to_name: String,
    pub keys: Vec<String>,
}

/// Strimzi's cluster CA certificate (`<cluster>-cluster-ca-cert`, key `ca.crt`) for the team:
/// its clients need it to trust the brokers' TLS listener. Strimzi renews the CA before it
/// expires (after a year by default); each bootstrap run copies it again.
pub fn copied_secrets(b: &Bootstrap<'_>) -> Vec<SecretCopy> {
    if !services(b).contains(&Service::Kafka) {
        return Vec::new();
    }
    b.team_namespaces
        .iter()
        .map(|team| SecretCopy {
            from_namespace: DATA.to_owned(),
            from_name: "kafka-cluster-ca-cert".to_owned(),
            to_namespace: team.name.clone(),
            to_name: "kafka-cluster-ca".to_owned(),
            keys: vec!["ca.crt".to_owned()],
        })
        .collect()
}

/// The generated password of ScyllaDB's superuser `cassandra`, which replaces the default one
/// (`cassandra`) on the first run of [`scylla_app_role`].
const SCYLLA_SUPERUSER: &str = "scylladb-superuser";

/// What the Job creating ScyllaDB's `app` role runs (the Scylla Operator manages no users). It
/// is safe to run again: it logs in with the generated superuser password, or on the first run
/// with the default one and replaces it at once, then creates what is missing and sets the
/// `app` password from its Secret. The passwords are base64url, so they need no CQL quoting.
const SCYLLA_APP_ROLE_SCRIPT: &str = r#"set -eu
rc=/tmp/cqlshrc
login() { printf '[authentication]\nusername = cassandra\npassword = %s\n' "$1" > "$rc"; }
cql() { cqlsh --cqlshrc "$rc" --request-timeout 30 "$SCYLLA_HOST" 9042 -e "$1"; }
until login "$SUPERUSER_PASSWORD" && cql 'SELECT now() FROM system.local' > /dev/null; do
  login cassandra
  if cql "ALTER ROLE cassandra WITH PASSWORD = '$SUPERUSER_PASSWORD'" > /dev/null; then continue; fi
  echo "ScyllaDB does not answer yet; trying again in 10 s"
  sleep 10
done
cql "CREATE KEYSPACE IF NOT EXISTS app WITH replication = {'class': 'NetworkTopologyStrategy', '$DATACENTER': $REPLICATION}"
cql "CREATE ROLE IF NOT EXISTS app WITH LOGIN = true AND PASSWORD = '$APP_PASSWORD'"
cql "ALTER ROLE app WITH PASSWORD = '$APP_PASSWORD'"
cql "GRANT ALL PERMISSIONS ON KEYSPACE app TO app"
echo "the app role and its keyspace are in place"
"#;

/// A Job that gives ScyllaDB its `app` role (password from `scylladb-app`) and keyspace `app`
/// (replicated up to three times in the cluster's datacenter); `ready` waits for it to
/// complete. Its cqlsh comes from the ScyllaDB image itself.
fn scylla_app_role(b: &Bootstrap<'_>, members: u32) -> Value {
    let secret_env = |name: &str, secret: &str| json!({ "name": name, "valueFrom": { "secretKeyRef": { "name": secret, "key": "password" } } });
    object(
        "batch/v1",
        "Job",
        Some(DATA),
        "scylladb-app-role",
        b.environment,
        json!({ "spec": {
            // Scylla takes minutes to start; the script waits for it, retries cover the rest.
            "backoffLimit": 20,
            "template": {
                "metadata": {
                    "labels": { "app": "scylladb-app-role" },
                    // A sidecar would keep the finished pod running.
                    "annotations": { "sidecar.istio.io/inject": "false" },
                },
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{
                        "name": "cqlsh",
                        "image": versions::SCYLLADB.image(),
                        "command": ["/bin/sh", "-c", SCYLLA_APP_ROLE_SCRIPT],
                        "env": [
                            { "name": "SCYLLA_HOST", "value": "scylladb-client" },
                            { "name": "DATACENTER", "value": b.blueprint.cloud.region },
                            { "name": "REPLICATION", "value": members.min(3).to_string() },
                            secret_env("APP_PASSWORD", &Service::ScyllaDb.credentials()),
                            secret_env("SUPERUSER_PASSWORD", SCYLLA_SUPERUSER),
                        ],
                        "resources": { "requests": { "cpu": "50m", "memory": "128Mi" } },
                    }],
                },
            },
        } }),
    )
}

fn with_labels(mut object: Value, extra: Value) -> Value {
    if let (Some(map), Some(extra)) = (
        object["metadata"]["labels"].as_object_mut(),
        extra.as_object(),
    ) {
        map.extend(extra.clone());
    }
    object
}

fn data_service(b: &Bootstrap<'_>, service: Service) -> Vec<Value> {
    let env = b.environment;
    let bp = b.blueprint;
    let size = bp
        .data_services
        .get(service.name())
        .map(|s| s.size)
        .unwrap_or(Size::Medium);
    let members = replicas(size);
    let credentials = service.credentials();
    match service {
        Service::MongoDb => {
            // The pods' ServiceAccount, which MCK expects to exist in the namespace it watches.
            let mut out = vec![service_account(DATA, "mongodb-database", env)];
            out.extend(role_and_binding(
                Some(DATA),
                DATA,
                "mongodb-database",
                env,
                vec![
                    rule(&[""], &["secrets"], &["get"]),
                    rule(&[""], &["pods"], &["get", "patch", "delete"]),
                ],
            ));
            out.push(object(
                "mongodbcommunity.mongodb.com/v1",
                "MongoDBCommunity",
                Some(DATA),
                "mongodb",
                env,
                json!({
                    "spec": {
                        "members": members,
                        "type": "ReplicaSet",
                        "version": versions::MONGODB.version,
                        "security": { "authentication": { "modes": ["SCRAM"] } },
                        "users": [{
                            "name": APP_USER,
                            "db": "admin",
                            "passwordSecretRef": { "name": credentials, "key": "password" },
                            "roles": [{ "name": "readWrite", "db": APP_USER }],
                            "scramCredentialsSecretName": format!("{credentials}-scram"),
                        }],
                        "statefulSet": { "spec": { "volumeClaimTemplates": [{
                            "metadata": { "name": "data-volume" },
                            "spec": { "resources": { "requests": { "storage": storage(size) } } },
                        }] } },
                    },
                }),
            ));
            out
        }
        Service::ScyllaDb => vec![
            object(
                "v1",
                "ConfigMap",
                Some(DATA),
                "scylladb-config",
                env,
                json!({
                    "data": { "scylla.yaml": "authenticator: PasswordAuthenticator\nauthorizer: CassandraAuthorizer\n" },
                }),
            ),
            object(
                "scylla.scylladb.com/v1",
                "ScyllaCluster",
                Some(DATA),
                "scylladb",
                env,
                json!({
                    "spec": {
                        "version": versions::SCYLLADB.version,
                        "repository": "docker.io/scylladb/scylla",
                        "datacenter": {
                            "name": bp.cloud.region,
                            "racks": [{
                                "name": "rack-a",
                                "members": members,
                                "scyllaConfig": "scylladb-config",
                                "storage": { "capacity": storage(size) },
                                "resources": { "requests": { "cpu": "1", "memory": "4Gi" } },
                            }],
                        },
                    },
                }),
            ),
            scylla_app_role(b, members),
        ],
        Service::Kafka => {
            let cluster = json!({ "strimzi.io/cluster": "kafka" });
            // Internal topics need as many replicas as there are brokers, up to three.
            let replication = members.min(3);
            vec![
                with_labels(
                    object(
                        "kafka.strimzi.io/v1",
                        "KafkaNodePool",
                        Some(DATA),
                        "kafka-brokers",
                        env,
                        json!({
                            "spec": {
                                "replicas": members,
                                "roles": ["controller", "broker"],
                                "storage": { "type": "persistent-claim", "size": storage(size) },
                            },
                        }),
                    ),
                    cluster.clone(),
                ),
                object(
                    "kafka.strimzi.io/v1",
                    "Kafka",
                    Some(DATA),
                    "kafka",
                    env,
                    json!({
                        "spec": {
                            "kafka": {
                                "version": versions::KAFKA.version,
                                "listeners": [{
                                    "name": "tls", "port": 9093, "type": "internal", "tls": true,
                                    "authentication": { "type": "scram-sha-512" },
                                }],
                                "config": {
                                    "default.replication.factor": replication,
                                    "offsets.topic.replication.factor": replication,
                                    "transaction.state.log.replication.factor": replication,
                                    "min.insync.replicas": replication.saturating_sub(1).max(1),
                                    "transaction.state.log.min.isr": replication.saturating_sub(1).max(1),
                                },
                            },
                            "entityOperator": { "topicOperator": {}, "userOperator": {} },
                        },
                    }),
                ),
                with_labels(
                    object(
                        "kafka.strimzi.io/v1",
                        "KafkaUser",
                        Some(DATA),
                        APP_USER,
                        env,
                        json!({
                            "spec": { "authentication": {
                                "type": "scram-sha-512",
                                "password": { "valueFrom": { "secretKeyRef": { "name": credentials, "key": "password" } } },
                            } },
                        }),
                    ),
                    cluster,
                ),
            ]
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The environment

/// The NetworkPolicies of one team namespace: its services call each other, the data services
/// and the collector.
fn team_policies(b: &Bootstrap<'_>, team: &str, client_ports: &[u16]) -> Vec<Value> {
    let bp = b.blueprint;
    let env = b.environment;
    let mut out = vec![same_namespace(team, env)];
    if !client_ports.is_empty() {
        out.push(policy(
            team,
            "allow-data-services",
            env,
            json!({}),
            None,
            Some(vec![json!({
                "to": [namespace_selector(DATA)],
                "ports": tcp(client_ports),
            })]),
        ));
    }
    if bp.logging.opentelemetry {
        out.push(policy(
            team,
            "allow-telemetry",
            env,
            json!({}),
            None,
            Some(vec![json!({
                "to": [pods_of(OBSERVABILITY, "otel-collector")],
                "ports": tcp(&[4317, 4318]),
            })]),
        ));
    }
    // Istio's agent serves the app's merged metrics on 15020; without Istio the apps' own
    // metrics port is theirs to open.
    if bp.logging.metrics && bp.service_mesh.istio {
        out.push(scrape_policy(team, env, json!({}), &[15020]));
    }
    out
}

/// The NetworkPolicies of the environment's namespaces: closed, then opened for exactly the
/// platform's paths.
fn environment_policies(b: &Bootstrap<'_>) -> Vec<Value> {
    let bp = b.blueprint;
    let env = b.environment;
    let metrics = bp.logging.metrics;
    let requested = services(b);
    let client_ports: Vec<u16> = requested.iter().map(|s| s.client_port()).collect();
    let mut out = Vec::new();
    for ns in namespaces(b) {
        out.extend(baseline_policies(&ns, env));
        if in_mesh(b, &ns) {
            out.push(istiod_egress(&ns, env));
        }
    }

    // A team's services call each other, the data services and the collector.
    for team in b.team_namespaces {
        out.extend(team_policies(b, &team.name, &client_ports));
    }

    if bp.logging.fluent_bit {
        out.push(https_egress(
            OBSERVABILITY,
            "allow-fluent-bit-egress",
            env,
            app_selector("fluent-bit"),
        ));
    }
    if bp.logging.opentelemetry {
        out.push(policy(
            OBSERVABILITY,
            "allow-otlp",
            env,
            app_selector("otel-collector"),
            Some(vec![json!({
                "from": [team_namespaces_selector()],
                "ports": tcp(&[4317, 4318]),
            })]),
            None,
        ));
        out.push(https_egress(
            OBSERVABILITY,
            "allow-collector-egress",
            env,
            app_selector("otel-collector"),
        ));
    }
    if metrics && (bp.logging.fluent_bit || bp.logging.opentelemetry) {
        out.push(scrape_policy(OBSERVABILITY, env, json!({}), &[2020, 8888]));
    }

    if !requested.is_empty() {
        out.push(policy(
            DATA,
            "allow-team-clients",
            env,
            json!({}),
            Some(vec![json!({
                "from": [team_namespaces_selector()],
                "ports": tcp(&client_ports),
            })]),
            None,
        ));
        // Replica sets, gossip, KRaft and replication, and the entity operator.
        out.push(same_namespace(DATA, env));
        let from_operators: Vec<Value> = required_operators(b)
            .iter()
            .filter(|op| !op.data_ports.is_empty())
            .map(|op| json!({ "from": [namespace_selector(op.namespace)], "ports": tcp(op.data_ports) }))
            .collect();
        if !from_operators.is_empty() {
            out.push(policy(
                DATA,
                "allow-operators",
                env,
                json!({}),
                Some(from_operators),
                None,
            ));
        }
        // MongoDB's agents, Scylla's sidecars and the entity operator read the API.
        out.push(https_egress(DATA, "allow-kube-apiserver", env, json!({})));
        if metrics && requested.contains(&Service::ScyllaDb) {
            out.push(scrape_policy(DATA, env, json!({}), &[9180]));
        }
    }
    out
}

/// The Kubernetes group a team's access entry maps its role to.
pub fn team_group(platform_slug: &str, team: &str) -> String {
    format!("{platform_slug}:team:{team}")
}

/// A team namespace's developers Role, bound to the groups working there (each team's access
/// entry maps its role to its group), and its quota and default container limits.
fn team_objects(b: &Bootstrap<'_>, team: &TeamNamespace) -> Vec<Value> {
    let env = b.environment;
    let ns = Some(team.name.as_str());
    // The DevOps environment's delivery tool deploys into team namespaces as the teams do.
    let delivery = delivery_group(b.platform_slug);
    let subjects: Vec<Value> = team
        .groups
        .iter()
        .chain(std::iter::once(&delivery))
        .map(|group| json!({ "kind": "Group", "name": group, "apiGroup": "rbac.authorization.k8s.io" }))
        .collect();
    let mut out = vec![
        object(
            "rbac.authorization.k8s.io/v1",
            "Role",
            ns,
            "developers",
            env,
            json!({
                "rules": [
                    { "apiGroups": ["", "apps", "batch", "autoscaling"],
                      "resources": ["pods", "pods/log", "services", "configmaps", "secrets", "deployments", "statefulsets", "jobs", "cronjobs", "horizontalpodautoscalers"],
                      "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"] },
                ],
            }),
        ),
        object(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            ns,
            "developers",
            env,
            json!({
                "subjects": subjects,
                "roleRef": { "kind": "Role", "name": "developers", "apiGroup": "rbac.authorization.k8s.io" },
            }),
        ),
    ];
    if b.blueprint.security.resource_quotas {
        // Room for the team's workloads on the node group at its largest (2 vCPU, 8 GiB a
        // node): a quota keeps one team from taking more than the cluster, not a share of it.
        let cpu = b.max_nodes * 2;
        let memory = b.max_nodes * 8;
        out.push(object("v1", "ResourceQuota", ns, "default", env, json!({
            "spec": { "hard": {
                "requests.cpu": cpu.to_string(), "limits.cpu": (cpu * 2).to_string(),
                "requests.memory": format!("{memory}Gi"), "limits.memory": format!("{}Gi", memory * 2),
                "pods": (b.max_nodes * 30).to_string(),
            } },
        })));
        out.push(object(
            "v1",
            "LimitRange",
            ns,
            "default",
            env,
            json!({
                "spec": { "limits": [{
                    "type": "Container",
                    "default": { "cpu": "500m", "memory": "512Mi" },
                    "defaultRequest": { "cpu": "100m", "memory": "128Mi" },
                }] },
            }),
        ));
    }
    out
}

/// The platform's own objects, in apply order, after [`operators`]: namespaces, each team
/// namespace's RBAC and quotas, NetworkPolicies, mesh policy, logging and telemetry, and the data services as
/// their operators' custom resources (referring to [`generated_secrets`] by name).
pub fn environment(b: &Bootstrap<'_>) -> Vec<Value> {
    let bp = b.blueprint;
    let env = b.environment;
    let mut out: Vec<Value> = namespaces(b)
        .iter()
        .map(|ns| {
            let mut object = namespace(ns, env, in_mesh(b, ns));
            if b.team_namespaces.iter().any(|t| &t.name == ns) {
                object["metadata"]["labels"][TEAM_NAMESPACE_LABEL] = json!("true");
            }
            object
        })
        .collect();
    for team in b.team_namespaces {
        out.extend(team_objects(b, team));
    }
    if bp.security.default_deny_network_policies {
        out.extend(environment_policies(b));
    }
    if bp.service_mesh.istio {
        let mode = match bp.service_mesh.mtls {
            Mtls::Strict => "STRICT",
            Mtls::Permissive => "PERMISSIVE",
        };
        out.push(object(
            "security.istio.io/v1",
            "PeerAuthentication",
            Some(ISTIO_SYSTEM),
            "default",
            env,
            json!({
                "spec": { "mtls": { "mode": mode } },
            }),
        ));
        // After the first custom resource, before which istiod is available.
        out.push(sidecar_injector_webhook(env));
    }
    if bp.logging.fluent_bit {
        out.extend(fluent_bit(b));
    }
    if bp.logging.opentelemetry {
        out.extend(collector(b));
    }
    for service in services(b) {
        out.extend(data_service(b, service));
    }
    out
}

/// The DevOps environment's objects: the delivery tool on its own cluster. For Spinnaker, the
/// operator's CRDs and Deployment come before the `SpinnakerService` it reconciles.
pub fn devops(blueprint: &Blueprint, environment: &str) -> Vec<Value> {
    match blueprint.devops.tool {
        DevopsTool::Spinnaker => {
            let operator = spinnaker_operator();
            let mut out: Vec<Value> = operator.kinds.iter().map(|k| crd(environment, k)).collect();
            out.extend(operator_objects(&operator, environment, false));
            out.push(namespace("spinnaker", environment, false));
            let (ns, account) = delivery_identity(DevopsTool::Spinnaker);
            out.push(service_account(ns, account, environment));
            out.push(object(
                "spinnaker.io/v1alpha2",
                "SpinnakerService",
                Some("spinnaker"),
                "spinnaker",
                environment,
                json!({
                    "spec": {
                        "spinnakerConfig": {
                            "config": {
                                "version": versions::SPINNAKER.version,
                                "persistentStorage": { "persistentStoreType": "s3" },
                            },
                            // Clouddriver deploys as the ServiceAccount Pod Identity gives the
                            // delivery role to.
                            "service-settings": {
                                "clouddriver": { "kubernetes": { "serviceAccountName": account } },
                            },
                        },
                        // Environments are registered as SpinnakerAccount objects.
                        "accounts": { "enabled": true, "dynamic": true },
                    },
                }),
            ));
            out
        }
        DevopsTool::Jenkins => {
            let (ns, account) = delivery_identity(DevopsTool::Jenkins);
            let mut out = vec![
                namespace(ns, environment, false),
                service_account(ns, account, environment),
            ];
            // The reloader reads the namespace's Configuration-as-Code ConfigMaps.
            out.extend(role_and_binding(
                Some(ns),
                ns,
                account,
                environment,
                vec![json!({ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"] })],
            ));
            out.push(object(
                "apps/v1",
                "Deployment",
                Some(ns),
                "jenkins",
                environment,
                json!({
                    "spec": {
                        "replicas": 1,
                        "selector": { "matchLabels": { "app": "jenkins" } },
                        "template": {
                            "metadata": { "labels": { "app": "jenkins" } },
                            "spec": jenkins_pod(account),
                        },
                    },
                }),
            ));
            out.push(object(
                "v1",
                "Service",
                Some(ns),
                "jenkins",
                environment,
                json!({
                    "spec": { "selector": { "app": "jenkins" }, "ports": [{ "name": "http", "port": 8080 }, { "name": "agents", "port": 50000 }] },
                }),
            ));
            out
        }
    }
}

/// The plugins Jenkins needs for what Slipway gives it: Configuration as Code and Job DSL (the
/// folders and the services' pipeline jobs), pipelines from Git, and kubeconfig credentials
/// read from Secrets. `jenkins-plugin-cli` resolves the newest release compatible with the
/// pinned Jenkins, and their dependencies.
const JENKINS_PLUGINS: &str = "configuration-as-code job-dsl workflow-aggregator git \
                               kubernetes-credentials-provider kubernetes-cli";

/// Where Jenkins reads its Configuration as Code, which the reloader fills.
const JENKINS_CASC: &str = "/var/jenkins_home/casc_configs";

/// Jenkins as its Helm chart runs it, without the chart: the plugins installed by an init
/// container, and beside Jenkins the chart's configuration reloader (kiwigrid's k8s-sidecar),
/// which copies every ConfigMap labelled [`JENKINS_CASC_LABEL`] in the namespace into
/// [`JENKINS_CASC`] and asks Jenkins to reload it. The setup wizard stays: it secures Jenkins
/// (an admin password in the pod's log) until the platform team configures sign-in.
fn jenkins_pod(account: &str) -> Value {
    let home = json!({ "name": "home", "mountPath": "/var/jenkins_home" });
    let plugins = json!({ "name": "plugins", "mountPath": "/usr/share/jenkins/ref/plugins" });
    let pod_name = json!({ "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } });
    json!({
        "serviceAccountName": account,
        "securityContext": { "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "runAsNonRoot": true },
        "initContainers": [{
            "name": "plugins",
            "image": versions::JENKINS.image(),
            "command": ["/bin/sh", "-c", format!("jenkins-plugin-cli --plugin-download-directory /usr/share/jenkins/ref/plugins --plugins {JENKINS_PLUGINS}")],
            "resources": { "requests": { "cpu": "100m", "memory": "512Mi" }, "limits": { "memory": "512Mi" } },
            "volumeMounts": [plugins],
        }],
        "containers": [
            container(
                "jenkins",
                versions::JENKINS.image(),
                ("500m", "2Gi"),
                http_probe("/login", 8080),
                json!({
                    "ports": tcp_ports(&[8080, 50000]),
                    "env": [
                        pod_name,
                        { "name": "CASC_JENKINS_CONFIG", "value": JENKINS_CASC },
                        { "name": "JAVA_OPTS", "value": "-Dcasc.reload.token=$(POD_NAME)" },
                    ],
                    "volumeMounts": [home, plugins],
                }),
            ),
            container(
                "config-reload",
                versions::JENKINS.images[1],
                ("10m", "64Mi"),
                process_probe(),
                json!({
                    "env": [
                        pod_name,
                        { "name": "LABEL", "value": JENKINS_CASC_LABEL },
                        { "name": "FOLDER", "value": JENKINS_CASC },
                        { "name": "NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
                        { "name": "REQ_URL", "value": "http://localhost:8080/reload-configuration-as-code/?casc-reload-token=$(POD_NAME)" },
                        { "name": "REQ_METHOD", "value": "POST" },
                        { "name": "REQ_RETRY_CONNECT", "value": "10" },
                    ],
                    "volumeMounts": [home],
                }),
            ),
        ],
        "volumes": [{ "name": "home", "emptyDir": {} }, { "name": "plugins", "emptyDir": {} }],
    })
}

/// The IAM role of the DevOps environment's delivery tool (in the DevOps account), given to
/// its ServiceAccount through Pod Identity; each environment's cluster admits it by an access
/// entry mapped to [`delivery_group`].
pub const DELIVERY_ROLE: &str = "slipway-delivery";

/// The Kubernetes group the delivery tool is in every environment's cluster: bound like a team
/// in each team namespace.
pub fn delivery_group(platform_slug: &str) -> String {
    format!("{platform_slug}:delivery")
}

/// The namespace and ServiceAccount the delivery tool deploys as.
pub fn delivery_identity(tool: DevopsTool) -> (&'static str, &'static str) {
    match tool {
        DevopsTool::Spinnaker => ("spinnaker", "clouddriver"),
        DevopsTool::Jenkins => ("jenkins", "jenkins"),
    }
}

/// The name an environment has as a deployment target of the DevOps tool: its cluster's
/// (`shop-dev`), which the service template's pipelines name.
pub fn deployment_target_name(cluster: &str) -> String {
    cluster.to_owned()
}

/// What registers an environment's cluster as a deployment target in the DevOps cluster: the
/// kubeconfig Secret (no secret in it: `aws eks get-token` as the tool's own Pod Identity
/// role), labelled as the Jenkins Kubernetes credentials provider reads it, and for Spinnaker
/// a `SpinnakerAccount` limited to the team namespaces; for Jenkins a folder of the
/// environment for the Configuration-as-Code reloader.
pub fn deployment_target(
    tool: DevopsTool,
    cluster: &str,
    kubeconfig: &str,
    namespaces: &[String],
) -> Vec<Value> {
    use base64::Engine;
    let (ns, _) = delivery_identity(tool);
    let name = deployment_target_name(cluster);
    let secret = format!("{name}-kubeconfig");
    let encoded = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    // Labelled with the target, so teardown finds them; the Jenkins provider's own label too.
    let labelled = |mut object: Value, extra: Value| {
        let labels = &mut object["metadata"]["labels"];
        labels["slipway.dev/deployment-target"] = json!(name);
        if let (Some(labels), Some(extra)) = (labels.as_object_mut(), extra.as_object()) {
            labels.extend(extra.clone());
        }
        object
    };
    let mut kubeconfig_secret = labelled(
        object(
            "v1",
            "Secret",
            Some(ns),
            &secret,
            DEVOPS_OBJECTS,
            json!({
                "type": "Opaque",
                "data": { "kubeconfig": encoded(kubeconfig), "filename": encoded("kubeconfig"), "data": encoded(kubeconfig) },
            }),
        ),
        json!({ "jenkins.io/credentials-type": "secretFile" }),
    );
    kubeconfig_secret["metadata"]["annotations"] =
        json!({ "jenkins.io/credentials-description": format!("kubeconfig of {cluster}") });
    let mut out = vec![kubeconfig_secret];
    match tool {
        DevopsTool::Spinnaker => out.push(labelled(object(
            "spinnaker.io/v1alpha2",
            "SpinnakerAccount",
            Some(ns),
            &name,
            DEVOPS_OBJECTS,
            json!({
                "spec": {
                    "type": "Kubernetes",
                    "enabled": true,
                    "kubernetes": { "kubeconfigSecret": { "name": secret, "key": "kubeconfig" } },
                    "settings": { "namespaces": namespaces, "onlySpinnakerManaged": true },
                },
            }),
        ), json!({}))),
        DevopsTool::Jenkins => out.push(labelled(
            object(
                "v1",
                "ConfigMap",
                Some(ns),
                &format!("{name}-folder"),
                DEVOPS_OBJECTS,
                json!({
                    "data": { format!("{name}.yaml"): format!(
                        "jobs:\n  - script: >\n      folder('{name}') {{ description('Pipelines deploying to {cluster}, credentials {secret}') }}\n"
                    ) },
                }),
            ),
            json!({ JENKINS_CASC_LABEL: "true" }),
        )),
    }
    out
}

/// The environment label of the objects Slipway puts in the DevOps cluster for others.
const DEVOPS_OBJECTS: &str = "devops";

/// What registers an onboarded service's pipeline in the DevOps tool.
pub struct PipelineSpec<'a> {
    pub service: &'a str,
    /// The name the pipeline has in the tool: the service's repository's
    /// (`<platform>-service-<name>`), unique in the DevOps environment, which serves every
    /// platform's environment.
    pub name: &'a str,
    /// Where the tool clones the service's repository from.
    pub clone_url: &'a str,
    /// The Jenkins credentials the tool reads the repository with (made by the platform team).
    pub git_credentials: &'a str,
    /// The person the Spinnaker application names as its owner.
    pub owner_email: &'a str,
    /// Spinnaker's pipeline definition, the same as the repository's
    /// `spinnaker/pipeline.json`, with a stable `id` so a repeat saves over it.
    pub spinnaker_pipeline: &'a Value,
}

/// The label on a service's pipeline objects in the DevOps cluster.
pub const SERVICE_LABEL: &str = "slipway.dev/service";

/// Saves a Spinnaker application and pipeline through Gate, inside the DevOps cluster (Slipway
/// has no route to Gate; the cluster does). Retried by curl while Gate is starting; saving
/// twice saves over the same pipeline (its id is fixed).
const SPINNAKER_SAVE_SCRIPT: &str = r#"set -eu
post() {
  curl --fail-with-body --silent --show-error --retry 30 --retry-all-errors --retry-delay 10 \
    -X POST -H 'Content-Type: application/json' --data "@/pipeline/$1" "$GATE/$2"
  echo
}
post application.json tasks
post pipeline.json pipelines
echo "the pipeline is saved in Spinnaker"
"#;

/// The objects that make a service's pipeline in the DevOps tool. Spinnaker: a ConfigMap with
/// the application and pipeline and a Job that saves them through Gate (its name carries a hash
/// of what it saves: a Job's pods are immutable, and a changed pipeline needs a new run; the
/// same pipeline finds the same Job, which does not run again). Jenkins: a
/// Configuration-as-Code ConfigMap with a Job DSL `pipelineJob` that builds the repository's
/// `Jenkinsfile`, which the configuration reloader beside Jenkins loads.
pub fn service_pipeline(tool: DevopsTool, spec: &PipelineSpec<'_>) -> Vec<Value> {
    let (ns, _) = delivery_identity(tool);
    let label = |object: Value| with_labels(object, json!({ SERVICE_LABEL: spec.service }));
    match tool {
        DevopsTool::Spinnaker => {
            let application = json!({
                "application": spec.service,
                "description": format!("Create application {}", spec.service),
                "job": [{
                    "type": "createApplication",
                    "application": {
                        "name": spec.service,
                        "email": spec.owner_email,
                        "cloudProviders": "kubernetes",
                        "description": format!("Onboarded by Slipway ({})", spec.name),
                    },
                }],
            });
            let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
            let data = json!({
                "application.json": pretty(&application),
                "pipeline.json": pretty(spec.spinnaker_pipeline),
            });
            let digest = {
                use sha2::Digest;
                let bytes = sha2::Sha256::digest(data.to_string().as_bytes());
                bytes[..4]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            };
            let config = format!("{}-pipeline", spec.name);
            vec![
                label(object(
                    "v1",
                    "ConfigMap",
                    Some(ns),
                    &config,
                    DEVOPS_OBJECTS,
                    json!({ "data": data }),
                )),
                label(object(
                    "batch/v1",
                    "Job",
                    Some(ns),
                    &format!("{}-pipeline-{digest}", spec.name),
                    DEVOPS_OBJECTS,
                    json!({ "spec": {
                        "backoffLimit": 3,
                        "template": {
                            "metadata": { "labels": { SERVICE_LABEL: spec.service } },
                            "spec": {
                                "restartPolicy": "Never",
                                "securityContext": { "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532, "seccompProfile": { "type": "RuntimeDefault" } },
                                "containers": [{
                                    "name": "save",
                                    "image": versions::CURL.image(),
                                    "command": ["/bin/sh", "-c", SPINNAKER_SAVE_SCRIPT],
                                    "env": [{ "name": "GATE", "value": SPINNAKER_GATE }],
                                    "volumeMounts": [{ "name": "pipeline", "mountPath": "/pipeline", "readOnly": true }],
                                    "resources": { "requests": { "cpu": "10m", "memory": "32Mi" }, "limits": { "memory": "32Mi" } },
                                    "securityContext": { "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": { "drop": ["ALL"] } },
                                }],
                                "volumes": [{ "name": "pipeline", "configMap": { "name": config } }],
                            },
                        },
                    } }),
                )),
            ]
        }
        DevopsTool::Jenkins => {
            let script = format!(
                "pipelineJob('{name}') {{\n  description('Builds and deploys {service}; made by Slipway')\n  \
                 triggers {{ scm('H/5 * * * *') }}\n  definition {{\n    cpsScm {{\n      scm {{\n        \
                 git {{\n          remote {{\n            url('{url}')\n            credentials('{credentials}')\n          \
                 }}\n          branch('main')\n        }}\n      }}\n      scriptPath('Jenkinsfile')\n    }}\n  }}\n}}\n",
                name = spec.name,
                service = spec.service,
                url = spec.clone_url.replace('\\', "\\\\").replace('\'', "\\'"),
                credentials = spec.git_credentials,
            );
            let casc = yaml_serde::to_string(&json!({ "jobs": [{ "script": script }] }))
                .unwrap_or_default();
            vec![label(with_labels(
                object(
                    "v1",
                    "ConfigMap",
                    Some(ns),
                    &format!("{}-pipeline", spec.name),
                    DEVOPS_OBJECTS,
                    json!({ "data": { format!("{}.yaml", spec.name): casc } }),
                ),
                json!({ JENKINS_CASC_LABEL: "true" }),
            ))]
        }
    }
}

/// Spinnaker's API inside the DevOps cluster (the Service the operator makes for Gate).
const SPINNAKER_GATE: &str = "http://spin-gate.spinnaker:8084";

/// The label of the ConfigMaps Jenkins' configuration reloader loads (the Jenkins Helm chart's).
pub const JENKINS_CASC_LABEL: &str = "jenkins-jenkins-config";

/// In-cluster addresses of the data services (the hand-over shows them).
/// The Secret in each team namespace holding the app user's password for `service`.
pub fn credentials_secret(service: &str) -> Option<String> {
    Service::parse(service).map(Service::credentials)
}

/// Where people read an environment's logs, metrics and traces: the consoles of the
/// blueprint's store (CloudWatch in the environment's account, or the OpenSearch domain's
/// Dashboards). None for what the blueprint does not collect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TelemetryLinks {
    pub logs: Option<String>,
    pub metrics: Option<String>,
    pub traces: Option<String>,
}

pub fn telemetry_links(bp: &Blueprint, platform_slug: &str, environment: &str) -> TelemetryLinks {
    let logging = &bp.logging;
    let shipped = logging.fluent_bit || logging.opentelemetry;
    match log_store(bp) {
        LogStore::CloudWatch => {
            let region = &bp.cloud.region;
            let console =
                format!("https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}");
            // The console's own escaping of a log group's slashes in its fragment.
            let group = log_group(platform_slug, environment).replace('/', "$252F");
            TelemetryLinks {
                logs: shipped.then(|| format!("{console}#logsV2:log-groups/log-group/{group}")),
                metrics: (logging.metrics && logging.opentelemetry).then(|| {
                    format!("{console}#metricsV2?namespace=Slipway/{platform_slug}/{environment}")
                }),
                traces: logging
                    .opentelemetry
                    .then(|| format!("{console}#xray:traces/query")),
            }
        }
        LogStore::OpenSearch(domain) => {
            let dashboards = format!("https://{}/_dashboards/app", domain.host());
            TelemetryLinks {
                logs: shipped.then(|| format!("{dashboards}/data-explorer/discover")),
                // Metrics are scraped in the cluster, not shipped to OpenSearch.
                metrics: None,
                traces: logging
                    .opentelemetry
                    .then(|| format!("{dashboards}/observability-traces")),
            }
        }
    }
}

pub fn data_service_endpoints(
    data_services: &[String],
) -> std::collections::BTreeMap<String, String> {
    data_services
        .iter()
        .map(|service| {
            let endpoint = match service.as_str() {
                "mongodb" => "mongodb://mongodb-svc.data.svc.cluster.local:27017",
                "scylladb" => "scylladb-client.data.svc.cluster.local:9042",
                _ => "kafka-kafka-bootstrap.data.svc.cluster.local:9093",
            };
            (service.clone(), endpoint.to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const ALL_SERVICES: &[&str] = &["mongodb", "scylladb", "kafka"];

    const DOMAIN_HOST: &str = "search-logs-abc123.eu-west-1.es.amazonaws.com";

    fn blueprint(central_store: &str) -> Blueprint {
        let mut bp = Blueprint::from_template("shop", None);
        if central_store == "opensearch" {
            bp.logging.central_store = CentralStore::Opensearch;
            bp.logging.opensearch = Some(crate::define::blueprint::OpenSearch {
                endpoint: format!("https://{DOMAIN_HOST}"),
                domain_arn: "arn:aws:es:eu-west-1:111122223333:domain/logs".to_owned(),
            });
        }
        bp.validate().unwrap();
        bp
    }

    /// `operators` then `environment`, the order the plan applies them in.
    fn bootstrap_objects(bp: &Blueprint, services: &[&str]) -> Vec<Value> {
        let services: Vec<String> = services.iter().map(|s| s.to_string()).collect();
        let b = bootstrap(bp, &services);
        let mut out = operators(&b);
        out.extend(environment(&b));
        out
    }

    static APPS: std::sync::LazyLock<[TeamNamespace; 1]> = std::sync::LazyLock::new(|| {
        [TeamNamespace {
            name: "apps".into(),
            groups: vec!["shop:developers".into()],
        }]
    });

    fn bootstrap<'a>(bp: &'a Blueprint, services: &'a [String]) -> Bootstrap<'a> {
        Bootstrap {
            blueprint: bp,
            platform_slug: "shop",
            environment: "perf-1",
            team_namespaces: &*APPS,
            max_nodes: 10,
            data_services: services,
        }
    }

    fn find<'a>(
        objects: &'a [Value],
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> &'a Value {
        objects
            .iter()
            .find(|o| {
                o["kind"] == kind
                    && o["metadata"]["name"] == name
                    && o["metadata"]["namespace"].as_str() == namespace
            })
            .unwrap_or_else(|| panic!("{kind} {namespace:?}/{name}"))
    }

    const BUILT_IN: &[&str] = &[
        "v1",
        "admissionregistration.k8s.io/v1",
        "apps/v1",
        "batch/v1",
        "rbac.authorization.k8s.io/v1",
        "networking.k8s.io/v1",
        "apiextensions.k8s.io/v1",
    ];

    fn assert_custom_resources_follow_their_crds(objects: &[Value]) {
        let mut defined = BTreeSet::new();
        for o in objects {
            let api_version = o["apiVersion"].as_str().unwrap();
            let kind = o["kind"].as_str().unwrap();
            if kind == "CustomResourceDefinition" {
                let spec = &o["spec"];
                for v in spec["versions"].as_array().unwrap() {
                    defined.insert((
                        format!(
                            "{}/{}",
                            spec["group"].as_str().unwrap(),
                            v["name"].as_str().unwrap()
                        ),
                        spec["names"]["kind"].as_str().unwrap().to_owned(),
                    ));
                }
            } else if !BUILT_IN.contains(&api_version) {
                assert!(
                    defined.contains(&(api_version.to_owned(), kind.to_owned())),
                    "{api_version} {kind} {} comes after a CRD that serves it",
                    o["metadata"]["name"]
                );
            }
        }
    }

    fn assert_namespaces_come_first(objects: &[Value]) {
        let mut created = BTreeSet::new();
        for o in objects {
            if o["kind"] == "Namespace" {
                assert_eq!(o["metadata"]["labels"][MANAGED_BY], "slipway");
                created.insert(o["metadata"]["name"].as_str().unwrap().to_owned());
            } else if let Some(ns) = o["metadata"]["namespace"].as_str() {
                assert!(
                    created.contains(ns),
                    "{} {ns}/{} comes after its namespace",
                    o["kind"],
                    o["metadata"]["name"]
                );
            }
        }
    }

    #[test]
    fn operators_and_their_crds_come_before_every_custom_resource() {
        for store in ["opensearch", "cloudwatch"] {
            let objects = bootstrap_objects(&blueprint(store), ALL_SERVICES);
            assert_custom_resources_follow_their_crds(&objects);
            assert_namespaces_come_first(&objects);
        }
        let objects = bootstrap_objects(&blueprint("opensearch"), ALL_SERVICES);
        for deployment in [
            "istiod",
            "mongodb-kubernetes-operator",
            "scylla-operator",
            "strimzi-cluster-operator",
        ] {
            let at = objects
                .iter()
                .position(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == deployment)
                .unwrap_or_else(|| panic!("the {deployment} Deployment"));
            let first_custom = objects
                .iter()
                .position(|o| o["kind"] == "PeerAuthentication")
                .unwrap();
            assert!(
                at < first_custom,
                "{deployment} is installed before the first custom resource"
            );
        }
    }

    #[test]
    fn only_the_requested_data_services_get_an_operator() {
        let objects = bootstrap_objects(&blueprint("opensearch"), &["kafka"]);
        let deployments: Vec<&str> = objects
            .iter()
            .filter(|o| o["kind"] == "Deployment")
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        assert_eq!(
            deployments,
            ["istiod", "strimzi-cluster-operator", "otel-collector"]
        );

        let mut bp = blueprint("opensearch");
        bp.service_mesh.istio = false;
        let objects = bootstrap_objects(&bp, &[]);
        assert!(
            !objects
                .iter()
                .any(|o| o["kind"] == "CustomResourceDefinition")
        );
        assert!(
            !objects
                .iter()
                .any(|o| o["metadata"]["namespace"] == ISTIO_SYSTEM)
        );
    }

    #[test]
    fn crds_are_structural_with_one_storage_version_and_a_status_subresource() {
        fn assert_typed(node: &Value, path: &str) {
            assert!(node["type"].is_string(), "{path} has a type");
            if let Some(properties) = node["properties"].as_object() {
                for (name, child) in properties {
                    assert_typed(child, &format!("{path}.{name}"));
                }
            }
            if node["items"].is_object() {
                assert_typed(&node["items"], &format!("{path}[]"));
            }
        }
        let objects = bootstrap_objects(&blueprint("opensearch"), ALL_SERVICES);
        let crds: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "CustomResourceDefinition")
            .collect();
        assert!(crds.len() > 30);
        for crd in crds {
            let spec = &crd["spec"];
            let names = &spec["names"];
            assert_eq!(
                crd["metadata"]["name"],
                format!(
                    "{}.{}",
                    names["plural"].as_str().unwrap(),
                    spec["group"].as_str().unwrap()
                )
            );
            assert_eq!(
                names["listKind"],
                format!("{}List", names["kind"].as_str().unwrap())
            );
            assert_eq!(
                names["singular"],
                names["kind"].as_str().unwrap().to_lowercase()
            );
            assert!(["Namespaced", "Cluster"].contains(&spec["scope"].as_str().unwrap()));
            let versions = spec["versions"].as_array().unwrap();
            assert_eq!(versions.iter().filter(|v| v["storage"] == true).count(), 1);
            for v in versions {
                assert_eq!(v["served"], true);
                assert_eq!(v["subresources"], json!({ "status": {} }));
                let root = &v["schema"]["openAPIV3Schema"];
                assert_typed(root, "");
                assert_eq!(
                    root["properties"]["status"]["x-kubernetes-preserve-unknown-fields"],
                    true
                );
                assert_eq!(
                    root["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"],
                    true
                );
            }
        }
        let peer = find(
            &objects,
            "CustomResourceDefinition",
            None,
            "peerauthentications.security.istio.io",
        );
        assert!(
            peer["spec"]["versions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["name"] == "v1")
        );
        let mongo = find(
            &objects,
            "CustomResourceDefinition",
            None,
            "mongodbcommunity.mongodbcommunity.mongodb.com",
        );
        assert_eq!(mongo["spec"]["names"]["plural"], "mongodbcommunity");
    }

    #[test]
    fn every_network_policy_fits_the_networking_v1_schema() {
        let objects = bootstrap_objects(&blueprint("opensearch"), ALL_SERVICES);
        let policies: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "NetworkPolicy")
            .collect();
        for p in &policies {
            let spec = &p["spec"];
            assert!(spec["podSelector"].is_object());
            for t in spec["policyTypes"].as_array().unwrap() {
                assert!(t == "Ingress" || t == "Egress");
            }
            for rule in spec["ingress"]
                .as_array()
                .into_iter()
                .chain(spec["egress"].as_array())
                .flatten()
            {
                for port in rule["ports"].as_array().into_iter().flatten() {
                    assert!(port["port"].is_u64(), "{port} is numeric");
                    assert!(port["protocol"] == "TCP" || port["protocol"] == "UDP");
                }
            }
        }
        // Every namespace Slipway creates starts closed.
        for ns in objects.iter().filter(|o| o["kind"] == "Namespace") {
            let name = ns["metadata"]["name"].as_str();
            let deny = find(&objects, "NetworkPolicy", name, "default-deny");
            assert_eq!(deny["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
            find(&objects, "NetworkPolicy", name, "allow-dns");
        }
    }

    #[test]
    fn the_data_ports_are_open_only_from_the_team_namespace() {
        let objects = bootstrap_objects(&blueprint("opensearch"), ALL_SERVICES);
        let team = team_namespaces_selector();
        let client_ports = [27017, 9042, 9093];
        let mut team_ports = BTreeSet::new();
        for p in objects
            .iter()
            .filter(|o| o["kind"] == "NetworkPolicy" && o["metadata"]["namespace"] == DATA)
        {
            for rule in p["spec"]["ingress"].as_array().into_iter().flatten() {
                let ports: Vec<u64> = rule["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["port"].as_u64())
                    .collect();
                let all_ports = rule["ports"].is_null();
                let opens_client_port =
                    all_ports || ports.iter().any(|p| client_ports.contains(&(*p as u16)));
                if !opens_client_port {
                    continue;
                }
                for peer in rule["from"].as_array().expect("a source") {
                    let same_namespace =
                        peer.get("namespaceSelector").is_none() && peer["podSelector"] == json!({});
                    assert!(
                        *peer == team || same_namespace,
                        "{} opens a data port to {peer}",
                        p["metadata"]["name"]
                    );
                    if *peer == team {
                        team_ports.extend(ports.iter().copied());
                    }
                }
            }
        }
        assert_eq!(team_ports, BTreeSet::from([27017, 9042, 9093]));
        let egress = find(
            &objects,
            "NetworkPolicy",
            Some("apps"),
            "allow-data-services",
        );
        assert_eq!(
            egress["spec"]["egress"][0]["ports"],
            tcp(&[27017, 9042, 9093])
        );
        let otlp = find(&objects, "NetworkPolicy", Some("apps"), "allow-telemetry");
        assert_eq!(otlp["spec"]["egress"][0]["ports"], tcp(&[4317, 4318]));
    }

    #[test]
    fn fluent_bit_can_read_pods_and_ships_to_a_real_destination() {
        let objects = bootstrap_objects(&blueprint("cloudwatch"), &[]);
        let role = find(&objects, "ClusterRole", None, "fluent-bit");
        assert_eq!(role["rules"][0]["resources"], json!(["pods", "namespaces"]));
        assert_eq!(role["rules"][0]["verbs"], json!(["get", "list", "watch"]));
        let binding = find(&objects, "ClusterRoleBinding", None, "fluent-bit");
        assert_eq!(binding["subjects"][0]["namespace"], OBSERVABILITY);
        let config = find(&objects, "ConfigMap", Some(OBSERVABILITY), "fluent-bit")["data"]["fluent-bit.conf"]
            .as_str()
            .unwrap();
        assert!(config.contains("Name cloudwatch_logs"));
        assert!(config.contains("region eu-west-1"));
        assert!(config.contains("log_group_name /slipway/shop/perf-1"));
        assert!(config.contains("auto_create_group On"));
        find(
            &objects,
            "NetworkPolicy",
            Some(OBSERVABILITY),
            "allow-fluent-bit-egress",
        );

        let objects = bootstrap_objects(&blueprint("opensearch"), &[]);
        let config = find(&objects, "ConfigMap", Some(OBSERVABILITY), "fluent-bit")["data"]["fluent-bit.conf"]
            .as_str()
            .unwrap();
        assert!(config.contains("Name opensearch"));
        assert!(config.contains("AWS_Auth On"));
        assert!(config.contains(&format!("Host {DOMAIN_HOST}\n")));
        let daemon_set = find(&objects, "DaemonSet", Some(OBSERVABILITY), "fluent-bit");
        let container = &daemon_set["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], versions::FLUENT_BIT.image());
    }

    #[test]
    fn the_collector_has_a_service_and_exports_to_the_store() {
        for (store, exporters) in [
            ("cloudwatch", vec!["awscloudwatchlogs", "awsemf", "awsxray"]),
            ("opensearch", vec!["opensearch"]),
        ] {
            let objects = bootstrap_objects(&blueprint(store), &[]);
            let service = find(&objects, "Service", Some(OBSERVABILITY), "otel-collector");
            let ports: Vec<u64> = service["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["port"].as_u64().unwrap())
                .collect();
            assert_eq!(ports, [4317, 4318]);
            let text = find(&objects, "ConfigMap", Some(OBSERVABILITY), "otel-collector")["data"]["config.yaml"]
                .as_str()
                .unwrap();
            let config: Value = yaml_serde::from_str(text).expect("the collector's config is YAML");
            let mut configured: Vec<&str> = config["exporters"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            configured.sort_unstable();
            assert_eq!(configured, exporters, "{store}");
            let pipelines = config["service"]["pipelines"].as_object().unwrap();
            for pipeline in pipelines.values() {
                assert_eq!(pipeline["receivers"], json!(["otlp"]));
                for exporter in pipeline["exporters"].as_array().unwrap() {
                    assert!(exporters.contains(&exporter.as_str().unwrap()));
                }
            }
            assert!(!text.contains("debug"));
        }
    }

    #[test]
    fn no_generated_secret_value_is_in_any_object_only_its_name() {
        let bp = blueprint("opensearch");
        let services: Vec<String> = ALL_SERVICES.iter().map(|s| s.to_string()).collect();
        let b = bootstrap(&bp, &services);
        let secrets = generated_secrets(&b);
        let mut objects = operators(&b);
        objects.extend(environment(&b));
        objects.extend(devops(&bp, "devops"));
        assert!(
            !objects.iter().any(|o| o["kind"] == "Secret"),
            "no Secret is applied from the plan"
        );
        for o in &objects {
            let text = o.to_string();
            assert!(
                !text.contains("stringData") && !text.contains("\"password\":\""),
                "{text}"
            );
        }
        let team: Vec<&str> = secrets
            .iter()
            .filter(|s| s.namespace == "apps")
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(team, ["mongodb-app", "scylladb-app", "kafka-app"]);
        let in_data = |name: &str| {
            secrets
                .iter()
                .any(|s| s.namespace == DATA && s.name == name)
        };
        let mongo = find(&objects, "MongoDBCommunity", Some(DATA), "mongodb");
        assert!(in_data(
            mongo["spec"]["users"][0]["passwordSecretRef"]["name"]
                .as_str()
                .unwrap()
        ));
        let user = find(&objects, "KafkaUser", Some(DATA), APP_USER);
        assert_eq!(user["spec"]["authentication"]["type"], "scram-sha-512");
        let reference = &user["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"];
        assert!(in_data(reference["name"].as_str().unwrap()));
        assert_eq!(user["metadata"]["labels"]["strimzi.io/cluster"], "kafka");
        let round_trip: Vec<GeneratedSecret> =
            serde_json::from_value(serde_json::to_value(&secrets).unwrap()).unwrap();
        assert_eq!(round_trip, secrets);
    }

    #[test]
    fn istiod_injects_its_sidecar_into_mesh_namespaces_once_it_is_available() {
        let objects = bootstrap_objects(&blueprint("cloudwatch"), ALL_SERVICES);
        let position = |kind: &str, name: &str| {
            objects
                .iter()
                .position(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                .unwrap()
        };
        let webhook = position("MutatingWebhookConfiguration", SIDECAR_INJECTOR);
        assert!(position("ConfigMap", SIDECAR_INJECTOR) < position("Deployment", "istiod"));
        assert!(position("PeerAuthentication", "default") < webhook);
        let hook = &objects[webhook]["webhooks"][0];
        assert_eq!(hook["clientConfig"]["service"]["name"], "istiod");
        assert_eq!(
            hook["namespaceSelector"]["matchLabels"]["istio-injection"],
            "enabled"
        );
        let service = find(&objects, "Service", Some(ISTIO_SYSTEM), "istiod");
        assert!(
            service["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == 443 && p["targetPort"] == 15017)
        );

        let injector = find(&objects, "ConfigMap", Some(ISTIO_SYSTEM), SIDECAR_INJECTOR);
        let config: Value =
            yaml_serde::from_str(injector["data"]["config"].as_str().unwrap()).unwrap();
        assert_eq!(config["defaultTemplates"], json!(["sidecar"]));
        let template: Value =
            yaml_serde::from_str(config["templates"]["sidecar"].as_str().unwrap()).unwrap();
        let init = template["spec"]["initContainers"].as_array().unwrap();
        assert_eq!(init[0]["name"], "istio-init");
        assert_eq!(init[1]["name"], "istio-proxy");
        assert_eq!(init[1]["restartPolicy"], "Always");
        assert_eq!(init[1]["image"], versions::ISTIOD.images[1]);
        assert_eq!(init[1]["securityContext"]["runAsUser"], 1337);
        let mounted: BTreeSet<&str> = init[1]["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        let volumes: BTreeSet<&str> = template["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(mounted, volumes);
    }

    #[test]
    fn a_job_gives_scylladb_its_app_role_with_generated_passwords_only() {
        let bp = blueprint("cloudwatch");
        let services = vec!["scylladb".to_owned()];
        let b = bootstrap(&bp, &services);
        let objects = environment(&b);
        let job = find(&objects, "Job", Some(DATA), "scylladb-app-role");
        let position = |kind: &str| objects.iter().position(|o| o["kind"] == kind).unwrap();
        assert!(position("ScyllaCluster") < position("Job"));
        let container = &job["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], versions::SCYLLADB.image());
        let script = container["command"][2].as_str().unwrap();
        assert!(script.contains("CREATE ROLE IF NOT EXISTS app WITH LOGIN = true"));
        assert!(script.contains("ALTER ROLE cassandra WITH PASSWORD = '$SUPERUSER_PASSWORD'"));
        // Passwords come from Secrets the applier generates in `data`, never from the manifest.
        let secrets = generated_secrets(&b);
        for env in container["env"].as_array().unwrap() {
            if let Some(reference) = env["valueFrom"]["secretKeyRef"].as_object() {
                assert!(
                    secrets
                        .iter()
                        .any(|s| s.namespace == DATA && s.name == reference["name"]),
                    "{env}"
                );
            } else {
                assert!(!env["name"].as_str().unwrap().contains("PASSWORD"));
            }
        }
        assert_eq!(
            job["spec"]["template"]["metadata"]["annotations"]["sidecar.istio.io/inject"],
            "false"
        );
    }

    #[test]
    fn the_shippers_get_aws_access_to_their_store_only() {
        let services = vec![];
        let cloudwatch = blueprint("cloudwatch");
        let access = workload_access(&bootstrap(&cloudwatch, &services));
        let fluent_bit = &access[0];
        assert_eq!(
            (fluent_bit.namespace, fluent_bit.service_account),
            (OBSERVABILITY, "fluent-bit")
        );
        assert_eq!(
            fluent_bit.grants,
            [Grant::CloudwatchLogs {
                log_groups: vec!["/slipway/shop/perf-1".into()]
            }]
        );
        assert_eq!(access[1].service_account, "otel-collector");
        assert!(access[1].grants.contains(&Grant::Xray));
        let opensearch = blueprint("opensearch");
        for access in workload_access(&bootstrap(&opensearch, &services)) {
            assert_eq!(
                access.grants,
                [Grant::Opensearch {
                    domain_arn: "arn:aws:es:eu-west-1:111122223333:domain/logs".into()
                }]
            );
        }
        let mut quiet = blueprint("cloudwatch");
        quiet.logging.fluent_bit = false;
        quiet.logging.opentelemetry = false;
        assert!(workload_access(&bootstrap(&quiet, &services)).is_empty());
    }

    #[test]
    fn the_spinnaker_operator_is_installed_before_its_spinnaker_service() {
        let objects = devops(&blueprint("opensearch"), "devops");
        assert_custom_resources_follow_their_crds(&objects);
        assert_namespaces_come_first(&objects);
        let operator = objects
            .iter()
            .position(|o| {
                o["kind"] == "Deployment" && o["metadata"]["name"] == "spinnaker-operator"
            })
            .unwrap();
        let service = objects
            .iter()
            .position(|o| o["kind"] == "SpinnakerService")
            .unwrap();
        assert!(operator < service);

        let mut bp = blueprint("opensearch");
        bp.devops.tool = DevopsTool::Jenkins;
        let objects = devops(&bp, "devops");
        assert!(
            !objects
                .iter()
                .any(|o| o["kind"] == "CustomResourceDefinition")
        );
        let jenkins = find(&objects, "Deployment", Some("jenkins"), "jenkins");
        assert_eq!(
            jenkins["spec"]["template"]["spec"]["containers"][0]["image"],
            versions::JENKINS.image()
        );
    }

    #[test]
    fn every_deployment_pins_its_image_and_has_resources_and_a_readiness_probe() {
        let mut objects = bootstrap_objects(&blueprint("opensearch"), ALL_SERVICES);
        objects.extend(devops(&blueprint("opensearch"), "devops"));
        let pinned: BTreeSet<&str> = versions::COMPONENTS
            .iter()
            .flat_map(|c| c.images.iter().copied())
            .collect();
        for o in objects
            .iter()
            .filter(|o| o["kind"] == "Deployment" || o["kind"] == "DaemonSet")
        {
            let containers = o["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap();
            assert!(containers.iter().any(|c| c["readinessProbe"].is_object()));
            for c in containers {
                assert!(
                    pinned.contains(c["image"].as_str().unwrap()),
                    "{} is pinned in versions",
                    c["image"]
                );
                assert!(c["resources"]["requests"]["memory"].is_string());
            }
        }
    }
}
