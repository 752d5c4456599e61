//! The test Kubernetes API server (`support::kube_api`) driven by the real `kube` client over
//! HTTP, the way the provisioner uses it: dynamic objects, a static `ApiResource` table,
//! server-side apply as field manager `slipway`.

mod support;

use std::fmt::Debug;

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::core::Status;
use serde_json::{Value, json};
use support::kube_api::KubeApi;

const TOKEN: &str = "k8s-aws-v1.test-token";

fn client(server: &KubeApi, token: Option<&str>) -> kube::Client {
    let mut config = kube::Config::new(server.url.parse().unwrap());
    config.auth_info.token = token.map(Into::into);
    kube::Client::try_from(config).unwrap()
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn namespaces() -> ApiResource {
    resource("", "v1", "Namespace", "namespaces")
}

fn config_maps() -> ApiResource {
    resource("", "v1", "ConfigMap", "configmaps")
}

fn namespace(name: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } })
}

fn config_map(name: &str, labels: Value, data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": name, "labels": labels },
        "data": data,
    })
}

async fn apply(api: &Api<DynamicObject>, object: &Value) -> Result<DynamicObject, kube::Error> {
    let name = object["metadata"]["name"].as_str().unwrap();
    let params = PatchParams::apply("slipway").force();
    api.patch(name, &params, &Patch::Apply(object)).await
}

/// A client, and the namespace `team` already applied.
async fn with_namespace(server: &KubeApi, team: &str) -> kube::Client {
    let client = client(server, Some(TOKEN));
    let namespaces = Api::<DynamicObject>::all_with(client.clone(), &namespaces());
    apply(&namespaces, &namespace(team)).await.unwrap();
    client
}

fn api_error<T: Debug>(result: Result<T, kube::Error>) -> Box<Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an error Status from the API server, got {other:?}"),
    }
}

fn resource_version(object: &DynamicObject) -> String {
    object.metadata.resource_version.clone().unwrap()
}

#[tokio::test]
async fn apply_creates_then_reapplying_changes_nothing_until_the_data_changes() {
    let server = KubeApi::start().await;
    let client = client(&server, Some(TOKEN));
    let namespaces = Api::<DynamicObject>::all_with(client.clone(), &namespaces());
    let config_maps = Api::<DynamicObject>::namespaced_with(client, "team-a", &config_maps());

    let ns = apply(&namespaces, &namespace("team-a")).await.unwrap();
    assert_eq!(ns.data["status"]["phase"], "Active");
    let settings = config_map(
        "settings",
        json!({ "tier": "db" }),
        json!({ "size": "small" }),
    );
    let created = apply(&config_maps, &settings).await.unwrap();
    assert_eq!(created.data["data"], json!({ "size": "small" }));

    let fetched = config_maps.get("settings").await.unwrap();
    assert_eq!(fetched.data["data"], json!({ "size": "small" }));
    assert_eq!(fetched.metadata.namespace.as_deref(), Some("team-a"));
    assert!(fetched.metadata.uid.is_some() && fetched.metadata.creation_timestamp.is_some());
    let managed = fetched.metadata.managed_fields.clone().unwrap();
    assert_eq!(managed.len(), 1);
    assert_eq!(managed[0].manager.as_deref(), Some("slipway"));
    assert_eq!(managed[0].operation.as_deref(), Some("Apply"));
    let fetched_ns = namespaces.get("team-a").await.unwrap();
    assert_eq!(
        fetched_ns.metadata.managed_fields.unwrap()[0]
            .manager
            .as_deref(),
        Some("slipway")
    );

    let writes = server.writes();
    let again = apply(&config_maps, &settings).await.unwrap();
    assert_eq!(resource_version(&again), resource_version(&fetched));
    assert_eq!(again.metadata.generation, Some(1));
    assert_eq!(server.writes(), writes + 1, "a re-apply is still a request");

    let bigger = config_map(
        "settings",
        json!({ "tier": "db" }),
        json!({ "size": "large" }),
    );
    let changed = apply(&config_maps, &bigger).await.unwrap();
    assert_ne!(resource_version(&changed), resource_version(&fetched));
    assert_eq!(changed.metadata.generation, Some(2));
    let stored = server
        .object("v1", "ConfigMap", Some("team-a"), "settings")
        .unwrap();
    assert_eq!(stored["data"], json!({ "size": "large" }));
    assert_eq!(
        server
            .objects()
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["ConfigMap", "Namespace"]
    );

    let authorizations = server.authorizations();
    assert!(!authorizations.is_empty());
    assert!(
        authorizations
            .iter()
            .all(|a| *a == format!("Bearer {TOKEN}"))
    );
}

#[tokio::test]
async fn custom_resources_are_served_under_their_group() {
    let server = KubeApi::start().await;
    let client = with_namespace(&server, "data").await;
    let kafkas = resource("kafka.strimzi.io", "v1beta2", "Kafka", "kafkas");
    let api = Api::<DynamicObject>::namespaced_with(client, "data", &kafkas);
    let kafka = json!({
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "Kafka",
        "metadata": { "name": "events" },
        "spec": { "kafka": { "replicas": 3 } },
    });
    apply(&api, &kafka).await.unwrap();

    let listed = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].data["spec"]["kafka"]["replicas"], 3);
    let missing = api_error(api.get("other").await);
    assert_eq!(
        missing.message,
        r#"kafkas.kafka.strimzi.io "other" not found"#
    );
}

#[tokio::test]
async fn applying_into_a_missing_namespace_is_not_found() {
    let server = KubeApi::start().await;
    let api = Api::<DynamicObject>::namespaced_with(
        client(&server, Some(TOKEN)),
        "nowhere",
        &config_maps(),
    );
    let status = api_error(apply(&api, &config_map("a", json!({}), json!({}))).await);
    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");
    assert_eq!(status.message, r#"namespaces "nowhere" not found"#);
    assert!(server.objects().is_empty());
}

#[tokio::test]
async fn apply_checks_the_object_against_the_path() {
    let server = KubeApi::start().await;
    let client = with_namespace(&server, "team-a").await;
    let api = Api::<DynamicObject>::namespaced_with(client, "team-a", &config_maps());
    let params = PatchParams::apply("slipway");

    let renamed = config_map("other", json!({}), json!({}));
    let status = api_error(api.patch("a", &params, &Patch::Apply(&renamed)).await);
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));

    let mut elsewhere = config_map("a", json!({}), json!({}));
    elsewhere["metadata"]["namespace"] = json!("team-b");
    let status = api_error(api.patch("a", &params, &Patch::Apply(&elsewhere)).await);
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));

    let unmanaged = PatchParams::default();
    let object = config_map("a", json!({}), json!({}));
    let status = api_error(api.patch("a", &unmanaged, &Patch::Apply(&object)).await);
    assert_eq!(status.code, 400);
    assert_eq!(
        status.message,
        "fieldManager is required for apply requests"
    );

    let merge = Patch::Merge(json!({ "data": { "a": "b" } }));
    let status = api_error(api.patch("a", &params, &merge).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
}

#[tokio::test]
async fn get_of_a_missing_object_is_not_found() {
    let server = KubeApi::start().await;
    let client = with_namespace(&server, "team-a").await;
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), "team-a", &config_maps());
    let status = api_error(api.get("absent").await);
    assert_eq!(status.code, 404);
    assert_eq!(status.reason, "NotFound");
    assert_eq!(status.message, r#"configmaps "absent" not found"#);
    let details = status.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("absent", "configmaps")
    );

    let deployments = resource("apps", "v1", "Deployment", "deployments");
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), "team-a", &deployments);
    let status = api_error(api.get("web").await);
    assert_eq!(status.message, r#"deployments.apps "web" not found"#);
    assert_eq!(status.details.unwrap().group, "apps");

    let unknown = resource("example.com", "v1", "Widget", "widgets");
    let api = Api::<DynamicObject>::namespaced_with(client, "team-a", &unknown);
    let status = api_error(api.get("w").await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        status.message,
        "the server could not find the requested resource"
    );
}

#[tokio::test]
async fn creating_twice_is_already_exists() {
    let server = KubeApi::start().await;
    let client = with_namespace(&server, "team-a").await;
    let api = Api::<DynamicObject>::namespaced_with(client, "team-a", &config_maps());
    let object: DynamicObject =
        serde_json::from_value(config_map("once", json!({}), json!({ "k": "v" }))).unwrap();

    let created = api.create(&PostParams::default(), &object).await.unwrap();
    assert_eq!(created.data["data"]["k"], "v");
    assert_eq!(created.metadata.namespace.as_deref(), Some("team-a"));
    let status = api_error(api.create(&PostParams::default(), &object).await);
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "AlreadyExists");
    assert_eq!(status.message, r#"configmaps "once" already exists"#);
}

#[tokio::test]
async fn lists_filter_by_namespace_and_label() {
    let server = KubeApi::start().await;
    let client = with_namespace(&server, "team-a").await;
    let namespaces = Api::<DynamicObject>::all_with(client.clone(), &namespaces());
    apply(&namespaces, &namespace("team-b")).await.unwrap();
    let team_a = Api::<DynamicObject>::namespaced_with(client.clone(), "team-a", &config_maps());
    let team_b = Api::<DynamicObject>::namespaced_with(client.clone(), "team-b", &config_maps());
    for (api, name, tier) in [
        (&team_a, "db", "db"),
        (&team_a, "web", "web"),
        (&team_b, "db", "db"),
    ] {
        let object = config_map(name, json!({ "tier": tier, "app": "shop" }), json!({}));
        apply(api, &object).await.unwrap();
    }
    let names = |list: kube::core::ObjectList<DynamicObject>| {
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o.metadata.namespace.unwrap(),
                    o.metadata.name.unwrap()
                )
            })
            .collect();
        names.sort();
        names
    };

    let all = team_a.list(&ListParams::default()).await.unwrap();
    assert_eq!(names(all), ["team-a/db", "team-a/web"]);
    let db = team_a
        .list(&ListParams::default().labels("tier=db"))
        .await
        .unwrap();
    assert_eq!(names(db), ["team-a/db"]);
    let everywhere = Api::<DynamicObject>::all_with(client, &config_maps());
    let selector = ListParams::default().labels("tier=db,app=shop");
    assert_eq!(
        names(everywhere.list(&selector).await.unwrap()),
        ["team-a/db", "team-b/db"]
    );
}

#[tokio::test]
async fn deleted_objects_are_gone() {
    let server = KubeApi::start().await;
    let client = with_namespace(&server, "team-a").await;
    let api = Api::<DynamicObject>::namespaced_with(client, "team-a", &config_maps());
    apply(&api, &config_map("doomed", json!({}), json!({})))
        .await
        .unwrap();

    api.delete("doomed", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(api.get("doomed").await).code, 404);
    let status = api_error(api.delete("doomed", &DeleteParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
}

#[tokio::test]
async fn deleting_a_namespace_deletes_its_contents() {
    let server = KubeApi::start().await;
    let client = with_namespace(&server, "team-a").await;
    let config_maps =
        Api::<DynamicObject>::namespaced_with(client.clone(), "team-a", &config_maps());
    apply(&config_maps, &config_map("inside", json!({}), json!({})))
        .await
        .unwrap();

    let namespaces = Api::<DynamicObject>::all_with(client, &namespaces());
    namespaces
        .delete("team-a", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(config_maps.get("inside").await).code, 404);
    assert!(server.objects().is_empty());
}

#[tokio::test]
async fn requests_without_a_bearer_token_are_unauthorized() {
    let server = KubeApi::start().await;
    let api = Api::<DynamicObject>::all_with(client(&server, None), &namespaces());
    let status = api_error(api.list(&ListParams::default()).await);
    assert_eq!((status.code, status.reason.as_str()), (401, "Unauthorized"));
    assert!(server.authorizations().is_empty());
}

#[tokio::test]
async fn failing_writes_answer_internal_errors_until_healed() {
    let server = KubeApi::start().await;
    let client = with_namespace(&server, "team-a").await;
    let api = Api::<DynamicObject>::namespaced_with(client, "team-a", &config_maps());
    let object = config_map("flaky", json!({}), json!({}));

    server.fail_writes_of("ConfigMap");
    let status = api_error(apply(&api, &object).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (500, "InternalError")
    );
    assert!(
        server
            .object("v1", "ConfigMap", Some("team-a"), "flaky")
            .is_none()
    );
    assert_eq!(
        api_error(api.get("flaky").await).code,
        404,
        "reads still work"
    );

    server.heal();
    apply(&api, &object).await.unwrap();
    assert!(
        server
            .object("v1", "ConfigMap", Some("team-a"), "flaky")
            .is_some()
    );
}

/// The bytes on the wire, beyond what kube's `Status` keeps.
#[tokio::test]
async fn failures_are_kubernetes_status_objects() {
    let server = KubeApi::start().await;
    let http = support::client();
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("{}{path}", server.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let res = get("/apis/apps/v1/namespaces/a/deployments/web", Some(TOKEN))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "deployments.apps \"web\" not found",
            "reason": "NotFound",
            "details": { "name": "web", "group": "apps", "kind": "deployments" },
            "code": 404,
        })
    );

    // A cluster-scoped kind has no namespaced path.
    let res = get(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/a/clusterroles",
        Some(TOKEN),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 404);

    let res = get("/api/v1/namespaces", Some("")).await.unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        (body["reason"].as_str(), body["code"].as_u64()),
        (Some("Unauthorized"), Some(401))
    );
    // HTTP drops the trailing space.
    assert_eq!(server.authorizations().last().unwrap(), "Bearer");

    let res = get("/api/v1/namespaces", Some(TOKEN)).await.unwrap();
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["kind"], "NamespaceList");
    assert_eq!(list["items"], json!([]));
}
