//! The Kubernetes objects of an environment's bootstrap, built from the blueprint and the request
//! (pure functions). They are the plan's `kubernetes:apply` actions verbatim, so the preview
//! people approve is exactly what is applied. Installing the operators themselves (Istio, the
//! MongoDB, Scylla and Strimzi operators, Spinnaker's) is the cluster add-ons' job; these are
//! the objects that configure them.

use serde_json::{Value, json};

use crate::define::blueprint::{Blueprint, DevopsTool, Mtls, Size};

const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

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
    /// The team namespace the requesting team works in.
    pub team_namespace: &'a str,
    pub max_nodes: u32,
    pub data_services: &'a [String],
}

/// The namespaces an environment gets, in the order they are created.
pub fn namespaces(b: &Bootstrap<'_>) -> Vec<String> {
    let bp = b.blueprint;
    let mut out = vec![b.team_namespace.to_owned()];
    if bp.logging.fluent_bit || bp.logging.opentelemetry {
        out.push("observability".into());
    }
    if !b.data_services.is_empty() {
        out.push("data".into());
    }
    out
}

/// The objects, in apply order (namespaces first; teardown deletes in reverse).
pub fn environment(b: &Bootstrap<'_>) -> Vec<Value> {
    let bp = b.blueprint;
    let env = b.environment;
    let istio = bp.service_mesh.istio;
    let team = b.team_namespace;
    let namespaces = namespaces(b);
    let mut out: Vec<Value> = namespaces
        .iter()
        .map(|ns| namespace(ns, env, istio))
        .collect();
    if istio {
        out.push(namespace("istio-system", env, false));
    }
    let developers = format!("{}:developers", b.platform_slug);
    out.push(object("rbac.authorization.k8s.io/v1", "Role", Some(team), "developers", env, json!({
        "rules": [
            { "apiGroups": ["", "apps", "batch", "autoscaling"],
              "resources": ["pods", "pods/log", "services", "configmaps", "secrets", "deployments", "statefulsets", "jobs", "cronjobs", "horizontalpodautoscalers"],
              "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"] },
        ],
    })));
    out.push(object("rbac.authorization.k8s.io/v1", "RoleBinding", Some(team), "developers", env, json!({
        "subjects": [{ "kind": "Group", "name": developers, "apiGroup": "rbac.authorization.k8s.io" }],
        "roleRef": { "kind": "Role", "name": "developers", "apiGroup": "rbac.authorization.k8s.io" },
    })));
    if bp.security.resource_quotas {
        // Room for the team's workloads on the node group at its largest (2 vCPU, 8 GiB a node).
        let cpu = b.max_nodes * 2;
        let memory = b.max_nodes * 8;
        out.push(object("v1", "ResourceQuota", Some(team), "default", env, json!({
            "spec": { "hard": {
                "requests.cpu": cpu.to_string(), "limits.cpu": (cpu * 2).to_string(),
                "requests.memory": format!("{memory}Gi"), "limits.memory": format!("{}Gi", memory * 2),
                "pods": (b.max_nodes * 30).to_string(),
            } },
        })));
        out.push(object(
            "v1",
            "LimitRange",
            Some(team),
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
    if bp.security.default_deny_network_policies {
        for ns in &namespaces {
            out.push(object(
                "networking.k8s.io/v1",
                "NetworkPolicy",
                Some(ns),
                "default-deny",
                env,
                json!({
                    "spec": { "podSelector": {}, "policyTypes": ["Ingress", "Egress"] },
                }),
            ));
            out.push(object("networking.k8s.io/v1", "NetworkPolicy", Some(ns), "allow-dns", env, json!({
                "spec": {
                    "podSelector": {},
                    "policyTypes": ["Egress"],
                    "egress": [{
                        "to": [{ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": "kube-system" } } }],
                        "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }],
                    }],
                },
            })));
        }
    }
    if istio {
        let mode = match bp.service_mesh.mtls {
            Mtls::Strict => "STRICT",
            Mtls::Permissive => "PERMISSIVE",
        };
        out.push(object(
            "security.istio.io/v1",
            "PeerAuthentication",
            Some("istio-system"),
            "default",
            env,
            json!({
                "spec": { "mtls": { "mode": mode } },
            }),
        ));
    }
    if bp.logging.fluent_bit {
        out.push(object(
            "v1",
            "ServiceAccount",
            Some("observability"),
            "fluent-bit",
            env,
            json!({}),
        ));
        out.push(object("v1", "ConfigMap", Some("observability"), "fluent-bit", env, json!({
            "data": { "fluent-bit.conf": format!(
                "[INPUT]\n    Name tail\n    Path /var/log/containers/*.log\n    Tag kube.*\n\n[FILTER]\n    Name kubernetes\n    Match kube.*\n\n[OUTPUT]\n    Name {}\n    Match *\n    Index {}-{}\n",
                bp.logging.central_store, b.platform_slug, env,
            ) },
        })));
        out.push(object(
            "apps/v1",
            "DaemonSet",
            Some("observability"),
            "fluent-bit",
            env,
            json!({
                "spec": {
                    "selector": { "matchLabels": { "app": "fluent-bit" } },
                    "template": {
                        "metadata": { "labels": { "app": "fluent-bit" } },
                        "spec": {
                            "serviceAccountName": "fluent-bit",
                            "containers": [{
                                "name": "fluent-bit",
                                "image": "fluent/fluent-bit:3.2",
                                "volumeMounts": [
                                    { "name": "config", "mountPath": "/fluent-bit/etc/" },
                                    { "name": "varlog", "mountPath": "/var/log", "readOnly": true },
                                ],
                            }],
                            "volumes": [
                                { "name": "config", "configMap": { "name": "fluent-bit" } },
                                { "name": "varlog", "hostPath": { "path": "/var/log" } },
                            ],
                        },
                    },
                },
            }),
        ));
    }
    if bp.logging.opentelemetry {
        out.push(object("v1", "ConfigMap", Some("observability"), "otel-collector", env, json!({
            "data": { "config.yaml": format!(
                "receivers:\n  otlp:\n    protocols:\n      grpc: {{}}\n      http: {{}}\nexporters:\n  debug: {{}}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n{}",
                if bp.logging.metrics { "    metrics:\n      receivers: [otlp]\n      exporters: [debug]\n" } else { "" },
            ) },
        })));
        out.push(object("apps/v1", "Deployment", Some("observability"), "otel-collector", env, json!({
            "spec": {
                "replicas": 2,
                "selector": { "matchLabels": { "app": "otel-collector" } },
                "template": {
                    "metadata": { "labels": { "app": "otel-collector" } },
                    "spec": {
                        "containers": [{
                            "name": "otel-collector",
                            "image": "otel/opentelemetry-collector:0.115.0",
                            "args": ["--config=/conf/config.yaml"],
                            "ports": [{ "containerPort": 4317 }, { "containerPort": 4318 }],
                            "volumeMounts": [{ "name": "config", "mountPath": "/conf" }],
                        }],
                        "volumes": [{ "name": "config", "configMap": { "name": "otel-collector" } }],
                    },
                },
            },
        })));
    }
    for service in b.data_services {
        let size = bp
            .data_services
            .get(service)
            .map(|s| s.size)
            .unwrap_or(Size::Medium);
        match service.as_str() {
            "mongodb" => out.push(object(
                "mongodbcommunity.mongodb.com/v1",
                "MongoDBCommunity",
                Some("data"),
                "mongodb",
                env,
                json!({
                    "spec": {
                        "members": replicas(size),
                        "type": "ReplicaSet",
                        "version": "7.0.14",
                        "security": { "authentication": { "modes": ["SCRAM"] } },
                        "statefulSet": { "spec": { "volumeClaimTemplates": [{
                            "metadata": { "name": "data-volume" },
                            "spec": { "resources": { "requests": { "storage": storage(size) } } },
                        }] } },
                    },
                }),
            )),
            "scylladb" => out.push(object(
                "scylla.scylladb.com/v1",
                "ScyllaCluster",
                Some("data"),
                "scylladb",
                env,
                json!({
                    "spec": {
                        "version": "6.2.0",
                        "datacenter": {
                            "name": bp.cloud.region,
                            "racks": [{
                                "name": "rack-a",
                                "members": replicas(size),
                                "storage": { "capacity": storage(size) },
                                "resources": { "requests": { "cpu": "1", "memory": "4Gi" } },
                            }],
                        },
                    },
                }),
            )),
            _ => {
                out.push(object("kafka.strimzi.io/v1beta2", "KafkaNodePool", Some("data"), "kafka-brokers", env, json!({
                    "metadata": { "name": "kafka-brokers", "namespace": "data", "labels": labels(env, json!({ "strimzi.io/cluster": "kafka" })) },
                    "spec": {
                        "replicas": replicas(size),
                        "roles": ["controller", "broker"],
                        "storage": { "type": "persistent-claim", "size": storage(size) },
                    },
                })));
                out.push(object("kafka.strimzi.io/v1beta2", "Kafka", Some("data"), "kafka", env, json!({
                    "metadata": {
                        "name": "kafka", "namespace": "data", "labels": labels(env, json!({})),
                        "annotations": { "strimzi.io/kraft": "enabled", "strimzi.io/node-pools": "enabled" },
                    },
                    "spec": {
                        "kafka": {
                            "version": "3.9.0",
                            "listeners": [{ "name": "tls", "port": 9093, "type": "internal", "tls": true }],
                        },
                        "entityOperator": { "topicOperator": {}, "userOperator": {} },
                    },
                })));
            }
        }
    }
    out
}

/// The DevOps environment's objects: the delivery tool on its own cluster.
pub fn devops(blueprint: &Blueprint, environment: &str) -> Vec<Value> {
    match blueprint.devops.tool {
        DevopsTool::Spinnaker => vec![
            namespace("spinnaker", environment, false),
            object(
                "spinnaker.io/v1alpha2",
                "SpinnakerService",
                Some("spinnaker"),
                "spinnaker",
                environment,
                json!({
                    "spec": {
                        "spinnakerConfig": {
                            "config": {
                                "version": "1.36.1",
                                "persistentStorage": { "persistentStoreType": "s3" },
                            },
                        },
                    },
                }),
            ),
        ],
        DevopsTool::Jenkins => vec![
            namespace("jenkins", environment, false),
            object(
                "apps/v1",
                "Deployment",
                Some("jenkins"),
                "jenkins",
                environment,
                json!({
                    "spec": {
                        "replicas": 1,
                        "selector": { "matchLabels": { "app": "jenkins" } },
                        "template": {
                            "metadata": { "labels": { "app": "jenkins" } },
                            "spec": { "containers": [{
                                "name": "jenkins",
                                "image": "jenkins/jenkins:lts-jdk21",
                                "ports": [{ "containerPort": 8080 }, { "containerPort": 50000 }],
                            }] },
                        },
                    },
                }),
            ),
            object(
                "v1",
                "Service",
                Some("jenkins"),
                "jenkins",
                environment,
                json!({
                    "spec": { "selector": { "app": "jenkins" }, "ports": [{ "name": "http", "port": 8080 }, { "name": "agents", "port": 50000 }] },
                }),
            ),
        ],
    }
}

/// In-cluster addresses of the data services (the hand-over shows them).
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

// TEMPORARY until the bootstrap-manifests branch lands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GeneratedSecret {
    pub namespace: String,
    pub name: String,
    pub keys: Vec<String>,
}
pub fn operators(_b: &Bootstrap<'_>) -> Vec<Value> {
    Vec::new()
}
pub fn generated_secrets(_b: &Bootstrap<'_>) -> Vec<GeneratedSecret> {
    Vec::new()
}
