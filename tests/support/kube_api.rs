//! A small in-memory Kubernetes API server, so the provisioner's `kube` client can be tested over
//! real HTTP without a cluster. It follows the REST conventions for the kinds Slipway applies:
//! paths, bearer authentication, server-side apply, create, get, list with label selectors,
//! delete, and `Status` bodies shaped as a real API server sends them.
//!
//! Deliberate simplifications, so tests do not lean on behaviour that is not real:
//! - Server-side apply assumes one manager per object: the applied configuration replaces every
//!   user field, conflicts are never reported (so `force` changes nothing), and `managedFields`
//!   entries carry no `fieldsV1`.
//! - No defaulting or validation beyond what a Namespace gets (its label, finalizer and phase).
//! - Deletion is immediate: no finalizers, no graceful deletion, no garbage collection of owned
//!   objects; deleting a Namespace removes everything in it at once.
//! - Not supported, and answered with an error rather than ignored: replace (PUT), merge and JSON
//!   patches, dry runs, watches, field selectors, set-based label selectors, subresources.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// A served resource: what discovery would report for it.
struct Resource {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    /// Defined by a CustomResourceDefinition: list items keep their apiVersion and kind.
    custom: bool,
}

impl Resource {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `configmaps` for the core group, `deployments.apps` otherwise, as in error messages.
    fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Status details name the resource (plural) as `kind`, as the API server does.
    fn details(&self, name: &str) -> Value {
        let mut details = json!({ "name": name, "kind": self.plural });
        if !self.group.is_empty() {
            details["group"] = json!(self.group);
        }
        details
    }
}

const fn builtin(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
) -> Resource {
    Resource {
        group,
        version,
        plural,
        kind,
        namespaced,
        custom: false,
    }
}

const fn custom(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
) -> Resource {
    Resource {
        group,
        version,
        plural,
        kind,
        namespaced: true,
        custom: true,
    }
}

const RBAC: &str = "rbac.authorization.k8s.io";

static RESOURCES: &[Resource] = &[
    builtin("", "v1", "namespaces", "Namespace", false),
    builtin("", "v1", "configmaps", "ConfigMap", true),
    builtin("", "v1", "serviceaccounts", "ServiceAccount", true),
    builtin("", "v1", "resourcequotas", "ResourceQuota", true),
    builtin("", "v1", "limitranges", "LimitRange", true),
    builtin("", "v1", "services", "Service", true),
    builtin(RBAC, "v1", "roles", "Role", true),
    builtin(RBAC, "v1", "rolebindings", "RoleBinding", true),
    builtin(RBAC, "v1", "clusterroles", "ClusterRole", false),
    builtin(
        RBAC,
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
    ),
    builtin(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
    ),
    builtin("apps", "v1", "daemonsets", "DaemonSet", true),
    builtin("apps", "v1", "deployments", "Deployment", true),
    custom(
        "security.istio.io",
        "v1",
        "peerauthentications",
        "PeerAuthentication",
    ),
    custom(
        "mongodbcommunity.mongodb.com",
        "v1",
        "mongodbcommunity",
        "MongoDBCommunity",
    ),
    custom(
        "scylla.scylladb.com",
        "v1",
        "scyllaclusters",
        "ScyllaCluster",
    ),
    custom("kafka.strimzi.io", "v1beta2", "kafkas", "Kafka"),
    custom(
        "kafka.strimzi.io",
        "v1beta2",
        "kafkanodepools",
        "KafkaNodePool",
    ),
    custom(
        "spinnaker.io",
        "v1alpha2",
        "spinnakerservices",
        "SpinnakerService",
    ),
];

/// Metadata only the server writes; an applied configuration cannot set it.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// (apiVersion, kind, namespace, name): the order `objects()` promises.
type Key = (String, String, Option<String>, String);

#[derive(Default)]
struct Store {
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    authorizations: Vec<String>,
    writes: usize,
    failing: BTreeSet<String>,
    forbidden: BTreeSet<String>,
}

pub struct KubeApi {
    pub url: String,
    store: Arc<Mutex<Store>>,
}

impl KubeApi {
    /// Binds 127.0.0.1:0 and serves in a background tokio task (lives as long as the test runtime).
    pub async fn start() -> KubeApi {
        let store = Arc::new(Mutex::new(Store::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(serve).with_state(store.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        KubeApi { url, store }
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap()
    }

    /// Every stored object (full JSON as the server would return it), sorted by (apiVersion,
    /// kind, namespace, name).
    pub fn objects(&self) -> Vec<Value> {
        self.store().objects.values().cloned().collect()
    }

    /// One stored object by apiVersion, kind, namespace (None for cluster-scoped), name.
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let key = (
            api_version.to_owned(),
            kind.to_owned(),
            namespace.map(str::to_owned),
            name.to_owned(),
        );
        self.store().objects.get(&key).cloned()
    }

    /// The Authorization header values seen, in order (to assert the bearer token form).
    pub fn authorizations(&self) -> Vec<String> {
        self.store().authorizations.clone()
    }

    /// Count of write requests (POST/PUT/PATCH/DELETE) received, to assert re-runs. Every such
    /// request counts, including no-op re-applies and refused ones.
    pub fn writes(&self) -> usize {
        self.store().writes
    }

    /// From now on, any write to objects of this kind answers 500 with an InternalError Status
    /// (simulates a broken API server / admission webhook); `heal()` clears it.
    pub fn fail_writes_of(&self, kind: &str) {
        self.store().failing.insert(kind.to_owned());
    }

    /// From now on, any write to objects of this kind answers 403 Forbidden (as RBAC or an
    /// admission policy refusing it would): an error no retry can fix. `heal()` clears it.
    pub fn forbid_writes_of(&self, kind: &str) {
        self.store().forbidden.insert(kind.to_owned());
    }

    /// Ends every `fail_writes_of` and `forbid_writes_of`.
    pub fn heal(&self) {
        let mut store = self.store();
        store.failing.clear();
        store.forbidden.clear();
    }
}

async fn serve(
    State(store): State<Arc<Mutex<Store>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Request {
        method,
        uri,
        headers,
        body,
    };
    let mut store = store.lock().unwrap();
    store
        .handle(&request)
        .unwrap_or_else(IntoResponse::into_response)
}

struct Request {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// Where a path points: a resource, and for namespaced ones a namespace (None on the
/// all-namespaces collection), and a name for a single object.
struct Target {
    resource: &'static Resource,
    namespace: Option<String>,
    name: Option<String>,
}

impl Target {
    fn key(&self, name: &str) -> Key {
        (
            self.resource.api_version(),
            self.resource.kind.to_owned(),
            self.namespace.clone(),
            name.to_owned(),
        )
    }
}

fn route(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return None;
    }
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, plural, name) = match rest {
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        ["namespaces", namespace, plural] => (Some(*namespace), *plural, None),
        ["namespaces", namespace, plural, name] => (Some(*namespace), *plural, Some(*name)),
        _ => return None,
    };
    let resource = RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)?;
    // Namespaced kinds have no cluster-wide object path, cluster-scoped ones no namespaced path.
    let invalid = matches!(
        (resource.namespaced, namespace, name),
        (false, Some(_), _) | (true, None, Some(_))
    );
    (!invalid).then(|| Target {
        resource,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
    })
}

impl Store {
    fn handle(&mut self, request: &Request) -> Result<Response, Failure> {
        let method = &request.method;
        let write = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method);
        if write {
            self.writes += 1;
        }
        let authorization = request.headers.get(header::AUTHORIZATION);
        if let Some(value) = authorization {
            self.authorizations
                .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
        let token = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if token.is_none_or(str::is_empty) {
            return Err(failure(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized",
            ));
        }

        let target = route(request.uri.path()).ok_or_else(|| {
            failure(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            )
            .details(json!({}))
        })?;
        let query: HashMap<String, String> =
            form_urlencoded::parse(request.uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        if query.contains_key("dryRun") {
            return Err(bad_request(
                "dry runs are not supported by the test API server",
            ));
        }
        if write && self.forbidden.contains(target.resource.kind) {
            return Err(failure(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "{} is forbidden: writes of this kind are refused (KubeApi::forbid_writes_of)",
                    target.resource.kind
                ),
            ));
        }
        if write && self.failing.contains(target.resource.kind) {
            let cause = format!(
                "writes of {} fail (KubeApi::fail_writes_of)",
                target.resource.kind
            );
            return Err(failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                &format!("Internal error occurred: {cause}"),
            )
            .details(json!({ "causes": [{ "message": cause }] })));
        }

        let name = target.name.clone();
        let all_namespaces = target.resource.namespaced && target.namespace.is_none();
        match (method.clone(), name) {
            (Method::GET, Some(name)) => self.get(&target, &name),
            (Method::GET, None) => self.list(&target, &query),
            (Method::POST, None) if !all_namespaces => self.create(&target, &query, request),
            (Method::PATCH, Some(name)) => self.apply(&target, &name, &query, request),
            (Method::DELETE, Some(name)) => self.delete(&target, &name, &request.body),
            _ => Err(failure(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource \
                 (the test API server does not support it)",
            )
            .details(json!({}))),
        }
    }

    fn get(&self, target: &Target, name: &str) -> Result<Response, Failure> {
        match self.objects.get(&target.key(name)) {
            Some(object) => Ok(reply(StatusCode::OK, object)),
            None => Err(not_found(target.resource, name)),
        }
    }

    fn list(&self, target: &Target, query: &HashMap<String, String>) -> Result<Response, Failure> {
        if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
            return Err(bad_request("watch is not supported by the test API server"));
        }
        if query.contains_key("fieldSelector") {
            return Err(bad_request(
                "field selectors are not supported by the test API server",
            ));
        }
        let selector = parse_selector(query.get("labelSelector").map_or("", String::as_str))
            .map_err(|e| bad_request(&format!("unable to parse requirement: {e}")))?;
        let resource = target.resource;
        let (api_version, kind) = (resource.api_version(), resource.kind);
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|((v, k, namespace, _), _)| {
                *v == api_version
                    && k == kind
                    && (target.namespace.is_none() || *namespace == target.namespace)
            })
            .map(|(_, object)| object)
            .filter(|object| {
                selector
                    .iter()
                    .all(|r| r.matches(&object["metadata"]["labels"]))
            })
            .map(|object| {
                let mut item = object.clone();
                // Lists of built-in kinds carry the type once, on the list, not on every item.
                if !resource.custom {
                    let fields = item.as_object_mut().unwrap();
                    fields.remove("apiVersion");
                    fields.remove("kind");
                }
                item
            })
            .collect();
        let list = json!({
            "apiVersion": api_version,
            "kind": format!("{kind}List"),
            "metadata": { "resourceVersion": self.resource_version.to_string() },
            "items": items,
        });
        Ok(reply(StatusCode::OK, &list))
    }

    fn create(
        &mut self,
        target: &Target,
        query: &HashMap<String, String>,
        request: &Request,
    ) -> Result<Response, Failure> {
        let body: Value = serde_json::from_slice(&request.body).map_err(|e| {
            bad_request(&format!(
                "the body of the request could not be decoded: {e}"
            ))
        })?;
        let object = self.user_fields(target, None, body)?;
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        self.require_namespace(target)?;
        let key = target.key(&name);
        if self.objects.contains_key(&key) {
            let resource = target.resource;
            return Err(failure(
                StatusCode::CONFLICT,
                "AlreadyExists",
                &format!("{} \"{name}\" already exists", resource.qualified()),
            )
            .details(resource.details(&name)));
        }
        // Without fieldManager the API server names the manager after the client's user agent.
        let manager = query.get("fieldManager").cloned().unwrap_or_else(|| {
            let agent = request.headers.get(header::USER_AGENT);
            let agent = agent.and_then(|a| a.to_str().ok()).unwrap_or("unknown");
            agent.split('/').next().unwrap_or(agent).to_owned()
        });
        let created = self.created(target, object, &manager, "Update");
        self.objects.insert(key, created.clone());
        Ok(reply(StatusCode::CREATED, &created))
    }

    /// Server-side apply (`PATCH` with `application/apply-patch+yaml`).
    fn apply(
        &mut self,
        target: &Target,
        name: &str,
        query: &HashMap<String, String>,
        request: &Request,
    ) -> Result<Response, Failure> {
        let content_type = request
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if media_type != "application/apply-patch+yaml" {
            return Err(failure(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                &format!(
                    "the body of the request was in an unknown format - accepted media types \
                     include: application/apply-patch+yaml (the test API server supports \
                     server-side apply only, not {content_type:?})"
                ),
            )
            .details(json!({})));
        }
        let manager = query
            .get("fieldManager")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| bad_request("fieldManager is required for apply requests"))?;
        // JSON is YAML, and kube sends JSON; other clients may send YAML proper.
        let body: Value = yaml_serde::from_slice(&request.body)
            .map_err(|e| bad_request(&format!("error decoding YAML: {e}")))?;
        let mut object = self.user_fields(target, Some(name), body)?;
        let key = target.key(name);
        let Some(stored) = self.objects.get(&key).cloned() else {
            self.require_namespace(target)?;
            let created = self.created(target, object, manager, "Apply");
            self.objects.insert(key, created.clone());
            return Ok(reply(StatusCode::CREATED, &created));
        };

        for field in SERVER_METADATA {
            if let Some(value) = stored["metadata"].get(*field) {
                object["metadata"][*field] = value.clone();
            }
        }
        if let Some(status) = stored.get("status") {
            object["status"] = status.clone();
        }
        defaults(target.resource, &mut object);
        let entry = manager_entry(
            &mut object,
            manager,
            "Apply",
            &target.resource.api_version(),
        );
        if object == stored {
            return Ok(reply(StatusCode::OK, &stored));
        }
        // Generation counts changes to the desired state, not to metadata.
        let without_metadata = |o: &Value| {
            let mut o = o.as_object().unwrap().clone();
            o.remove("metadata");
            o
        };
        if without_metadata(&object) != without_metadata(&stored) {
            let generation = stored["metadata"]["generation"].as_i64().unwrap_or(0);
            object["metadata"]["generation"] = json!(generation + 1);
        }
        object["metadata"]["managedFields"][entry]["time"] = json!(now());
        object["metadata"]["resourceVersion"] = json!(self.next_resource_version());
        self.objects.insert(key, object.clone());
        Ok(reply(StatusCode::OK, &object))
    }

    fn delete(&mut self, target: &Target, name: &str, body: &[u8]) -> Result<Response, Failure> {
        let resource = target.resource;
        let key = target.key(name);
        let Some(stored) = self.objects.get(&key) else {
            return Err(not_found(resource, name));
        };
        let options: Value = if body.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(body)
                .map_err(|e| bad_request(&format!("invalid DeleteOptions: {e}")))?
        };
        if options["dryRun"].as_array().is_some_and(|d| !d.is_empty()) {
            return Err(bad_request(
                "dry runs are not supported by the test API server",
            ));
        }
        for field in ["uid", "resourceVersion"] {
            let expected = &options["preconditions"][field];
            let actual = &stored["metadata"][field];
            if !expected.is_null() && expected != actual {
                return Err(failure(
                    StatusCode::CONFLICT,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: \
                         {field} in precondition: {expected}, {field} in object meta: {actual}",
                        resource.qualified()
                    ),
                )
                .details(resource.details(name)));
            }
        }
        let uid = stored["metadata"]["uid"].clone();
        self.objects.remove(&key);
        // A real Namespace turns Terminating and its controller deletes the contents before the
        // Namespace goes; here all of that happens at once.
        if resource.kind == "Namespace" {
            self.objects
                .retain(|(_, _, namespace, _), _| namespace.as_deref() != Some(name));
        }
        self.resource_version += 1;
        // Some kinds (Namespace, ServiceAccount, custom resources) answer with the deleted
        // object instead; clients must accept both, as kube's `Either` does.
        let mut details = resource.details(name);
        details["uid"] = uid;
        let status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        });
        Ok(reply(StatusCode::OK, &status))
    }

    /// Checks a request body against the path and keeps the fields a client may set: no status,
    /// no server-written metadata. `name` is the path's name, when it has one.
    fn user_fields(
        &self,
        target: &Target,
        name: Option<&str>,
        body: Value,
    ) -> Result<Value, Failure> {
        let resource = target.resource;
        let Value::Object(mut fields) = body else {
            return Err(bad_request("the request body must be an object"));
        };
        let expected = resource.api_version();
        if fields.get("apiVersion") != Some(&json!(expected))
            || fields.get("kind") != Some(&json!(resource.kind))
        {
            return Err(bad_request(&format!(
                "the object's apiVersion and kind ({}, {}) do not match the URL's ({expected}, {})",
                fields.get("apiVersion").unwrap_or(&Value::Null),
                fields.get("kind").unwrap_or(&Value::Null),
                resource.kind
            )));
        }
        fields.remove("status");
        let metadata = fields
            .entry("metadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .ok_or_else(|| bad_request("metadata must be an object"))?;
        for field in SERVER_METADATA {
            metadata.remove(*field);
        }
        let given = metadata.get("name").and_then(Value::as_str).unwrap_or("");
        match name {
            Some(name) if given != name => {
                return Err(bad_request(&format!(
                    "the name of the object ({given}) does not match the name on the URL ({name})"
                )));
            }
            None if given.is_empty() => {
                let message = "Required value: name or generateName is required";
                return Err(failure(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    &format!(
                        "{} \"\" is invalid: metadata.name: {message}",
                        resource.kind
                    ),
                )
                .details(json!({
                    "name": "",
                    "group": resource.group,
                    "kind": resource.kind,
                    "causes": [{
                        "reason": "FieldValueRequired",
                        "message": message,
                        "field": "metadata.name",
                    }],
                })));
            }
            _ => {}
        }
        // The API server fills in the request's namespace, clears it for cluster-scoped kinds and
        // refuses a different one.
        match (
            metadata.get("namespace").and_then(Value::as_str),
            &target.namespace,
        ) {
            (Some(given), Some(path)) if given != path => {
                return Err(bad_request(
                    "the namespace of the provided object does not match the namespace sent on \
                     the request",
                ));
            }
            (_, Some(path)) => {
                metadata.insert("namespace".into(), json!(path));
            }
            (_, None) => {
                metadata.remove("namespace");
            }
        }
        Ok(Value::Object(fields))
    }

    /// Namespace admission: nothing is created in a namespace that does not exist.
    fn require_namespace(&self, target: &Target) -> Result<(), Failure> {
        let Some(namespace) = &target.namespace else {
            return Ok(());
        };
        let key = (
            "v1".to_owned(),
            "Namespace".to_owned(),
            None,
            namespace.clone(),
        );
        if self.objects.contains_key(&key) {
            Ok(())
        } else {
            Err(not_found(&RESOURCES[0], namespace))
        }
    }

    /// A new object with the metadata the server sets on creation.
    fn created(
        &mut self,
        target: &Target,
        mut object: Value,
        manager: &str,
        operation: &str,
    ) -> Value {
        let metadata = &mut object["metadata"];
        metadata["uid"] = json!(uuid::Uuid::new_v4().to_string());
        metadata["resourceVersion"] = json!(self.next_resource_version());
        metadata["creationTimestamp"] = json!(now());
        metadata["generation"] = json!(1);
        let api_version = target.resource.api_version();
        manager_entry(&mut object, manager, operation, &api_version);
        defaults(target.resource, &mut object);
        object
    }

    fn next_resource_version(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }
}

/// The defaulting a real API server does for the kinds here: only Namespaces get any.
fn defaults(resource: &Resource, object: &mut Value) {
    if resource.kind == "Namespace" {
        let name = object["metadata"]["name"].clone();
        object["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
        if object["spec"]["finalizers"].is_null() {
            object["spec"]["finalizers"] = json!(["kubernetes"]);
        }
        if object["status"].is_null() {
            object["status"] = json!({ "phase": "Active" });
        }
    }
}

/// Finds or adds the `managedFields` entry of this manager and operation; returns its index.
fn manager_entry(object: &mut Value, manager: &str, operation: &str, api_version: &str) -> usize {
    let metadata = &mut object["metadata"];
    if !metadata["managedFields"].is_array() {
        metadata["managedFields"] = json!([]);
    }
    let entries = metadata["managedFields"].as_array_mut().unwrap();
    if let Some(i) = entries
        .iter()
        .position(|e| e["manager"] == manager && e["operation"] == operation)
    {
        return i;
    }
    entries.push(json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": now(),
    }));
    entries.len() - 1
}

/// An equality-based label selector requirement.
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    fn matches(&self, labels: &Value) -> bool {
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        match self {
            Requirement::Equals(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => label(k) != Some(v.as_str()),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        }
    }
}

fn parse_selector(selector: &str) -> Result<Vec<Requirement>, String> {
    if selector.contains('(') {
        return Err(format!(
            "set-based selectors are not supported by the test API server: {selector:?}"
        ));
    }
    let mut requirements = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let pair = |(k, v): (&str, &str)| (k.trim().to_owned(), v.trim().to_owned());
        let requirement = if let Some((k, v)) = term.split_once("!=").map(pair) {
            Requirement::NotEquals(k, v)
        } else if let Some((k, v)) = term.split_once("==").map(pair) {
            Requirement::Equals(k, v)
        } else if let Some((k, v)) = term.split_once('=').map(pair) {
            Requirement::Equals(k, v)
        } else if let Some(k) = term.strip_prefix('!') {
            Requirement::NotExists(k.trim().to_owned())
        } else {
            Requirement::Exists(term.to_owned())
        };
        requirements.push(requirement);
    }
    Ok(requirements)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn reply(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A failure `Status`, built up before it becomes a response.
struct Failure {
    code: StatusCode,
    body: Map<String, Value>,
}

fn failure(code: StatusCode, reason: &str, message: &str) -> Failure {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    let Value::Object(body) = body else {
        unreachable!()
    };
    Failure { code, body }
}

impl Failure {
    fn details(mut self, details: Value) -> Failure {
        self.body.insert("details".into(), details);
        self
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        reply(self.code, &Value::Object(self.body))
    }
}

fn bad_request(message: &str) -> Failure {
    failure(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn not_found(resource: &Resource, name: &str) -> Failure {
    failure(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{} \"{name}\" not found", resource.qualified()),
    )
    .details(resource.details(name))
}
