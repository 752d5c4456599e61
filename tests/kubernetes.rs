//! The Kubernetes side of provisioning against a real kube-apiserver and controller manager
//! (`tests/kube/up`, see `support::kube`): EKS tokens checked by the token webhook against moto's
//! STS, the bootstrap applied in dependency order and validated by the real API server, a
//! re-apply that changes nothing, an unserved kind refused at once, and a teardown that waits for
//! namespaces to terminate.

mod support;

use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use slipway::define::blueprint::Blueprint;
use slipway::provision::kubernetes::{self, ClusterEndpoint};
use slipway::provision::manifests::{self, Bootstrap};
use support::kube::Kube;
use support::moto::Moto;

/// Credentials of the member account's access role, as the provisioner has them: assumed
/// through STS (moto), so the token webhook's GetCallerIdentity names the assumed role.
async fn member_credentials(moto: &Moto) -> Credentials {
    let sts = aws_sdk_sts::Client::new(&moto.sdk_config().await);
    let assumed = sts
        .assume_role()
        .role_arn("arn:aws:iam::111122223333:role/OrganizationAccountAccessRole")
        .role_session_name("slipway")
        .send()
        .await
        .unwrap();
    let c = assumed.credentials().unwrap();
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_owned()),
        None,
        "assumed",
    )
}

fn endpoint(kube: &Kube) -> ClusterEndpoint {
    ClusterEndpoint {
        url: kube.url.clone(),
        ca_pem: Some(kube.ca_pem()),
        cluster_name: "shop-perf-1".into(),
        region: support::moto::REGION.into(),
    }
}

fn with_token(kube: &Kube, token: String) -> kube::Client {
    let mut config = kube::Config::new(kube.url.parse().unwrap());
    config.root_cert = Some(vec![pem_body(&kube.ca_pem())]);
    config.auth_info.token = Some(token.into());
    kube::Client::try_from(config).unwrap()
}

fn pem_body(pem: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let text = String::from_utf8_lossy(pem);
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

async fn namespaces_visible(client: &kube::Client) -> Result<usize, kube::Error> {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    api.list(&ListParams::default())
        .await
        .map(|l| l.items.len())
}

fn status_code(result: Result<usize, kube::Error>) -> u16 {
    match result {
        Err(kube::Error::Api(status)) => status.code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_eks_token_of_the_access_role_is_accepted_and_forged_or_expired_ones_are_refused() {
    let moto = Moto::start().await;
    let kube = Kube::start(&moto).await;
    let credentials = member_credentials(&moto).await;

    let client = kubernetes::client(&endpoint(&kube), &credentials).unwrap();
    assert!(
        namespaces_visible(&client).await.unwrap() >= 3,
        "the assumed role is mapped to cluster admin"
    );

    // Signed with credentials STS does not know: the caller is no mapped identity.
    let forged = Credentials::new("AKIAFORGEDFORGED0000", "made-up", None, None, "forged");
    let token = kubernetes::eks_token(
        "shop-perf-1",
        support::moto::REGION,
        &forged,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(
        status_code(namespaces_visible(&with_token(&kube, token)).await),
        401
    );

    // A real token, presigned 20 minutes ago (EKS tokens are good for 15).
    let stale = kubernetes::eks_token(
        "shop-perf-1",
        support::moto::REGION,
        &credentials,
        SystemTime::now() - Duration::from_secs(20 * 60),
    )
    .unwrap();
    assert_eq!(
        status_code(namespaces_visible(&with_token(&kube, stale)).await),
        401
    );

    // Not an EKS token at all.
    let bogus = with_token(&kube, "k8s-aws-v1.aHR0cHM6Ly9ldmlsLmV4YW1wbGUv".into());
    assert_eq!(status_code(namespaces_visible(&bogus).await), 401);
}

fn bootstrap_objects(blueprint: &Blueprint, services: &[String]) -> Vec<Value> {
    let teams = [manifests::TeamNamespace {
        name: manifests::SHARED_TEAM_NAMESPACE.into(),
        groups: vec!["shop:developers".into()],
    }];
    let bootstrap = Bootstrap {
        blueprint,
        platform_slug: "shop",
        environment: "perf-1",
        team_namespaces: &teams,
        max_nodes: 10,
        data_services: services,
    };
    let mut objects = manifests::operators(&bootstrap);
    objects.extend(manifests::environment(&bootstrap));
    objects
}

fn describe(object: &Value) -> String {
    slipway::provision::cloud::describe_object(object)
}

#[tokio::test]
async fn the_bootstrap_is_accepted_by_the_real_api_server_in_order_and_applying_again_changes_nothing()
 {
    let moto = Moto::start().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let client = kubernetes::client(&endpoint(&kube), &member_credentials(&moto).await).unwrap();
    let blueprint = Blueprint::from_template("shop", None);
    let services = ["mongodb", "scylladb", "kafka"].map(String::from).to_vec();
    let objects = bootstrap_objects(&blueprint, &services);

    let first = kubernetes::apply(&client, &objects).await.unwrap();
    assert!(first.iter().all(|a| a.changed));
    let live = kube.objects().await;
    let mut applied: Vec<String> = live.iter().map(describe).collect();
    let mut planned: Vec<String> = objects.iter().map(describe).collect();
    applied.sort();
    planned.sort();
    assert_eq!(applied, planned, "exactly the planned objects, once each");

    // Every object is owned by Slipway's field manager alone (no conflict to force through).
    for object in &live {
        let managers: Vec<&str> = object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["subresource"].is_null())
            .map(|f| f["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["slipway"], "{}", describe(object));
    }

    let again = kubernetes::apply(&client, &objects).await.unwrap();
    assert!(
        again.iter().all(|a| !a.changed),
        "re-applying is a no-op: {:?}",
        again
            .iter()
            .filter(|a| a.changed)
            .map(|a| &a.resource)
            .collect::<Vec<_>>()
    );

    // The NetworkPolicies and RBAC went through the real API server's validation.
    let deny = kube
        .object(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some("data"),
            "default-deny",
        )
        .await
        .unwrap();
    assert_eq!(deny["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let binding = kube
        .object(
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            Some("apps"),
            "developers",
        )
        .await
        .unwrap();
    assert_eq!(binding["subjects"][0]["name"], "shop:developers");
    let quota = kube
        .object("v1", "ResourceQuota", Some("apps"), "default")
        .await
        .unwrap();
    assert_eq!(quota["spec"]["hard"]["requests.cpu"], "20");
    // Fluent Bit may read pods and namespaces cluster-wide; the collector is reachable.
    let reader = kube
        .object(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            "fluent-bit",
        )
        .await
        .unwrap();
    assert!(
        reader["rules"].to_string().contains("namespaces"),
        "{reader}"
    );
    let collector = kube
        .object("v1", "Service", Some("observability"), "otel-collector")
        .await
        .unwrap();
    let ports: Vec<i64> = collector["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert!(ports.contains(&4317) && ports.contains(&4318), "{ports:?}");
    // The data services' ports open to the team namespaces only (by their label).
    let clients = kube
        .object(
            "networking.k8s.io/v1",
            "NetworkPolicy",
            Some("data"),
            "allow-team-clients",
        )
        .await
        .unwrap();
    assert_eq!(
        clients["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["slipway.dev/team-namespace"],
        "true",
        "{clients}"
    );
    let kafka = kube
        .object("kafka.strimzi.io/v1", "Kafka", Some("data"), "kafka")
        .await
        .expect("Strimzi's Kafka, served by the CRD applied before it");
    assert_eq!(kafka["metadata"]["managedFields"][0]["manager"], "slipway");

    // Every new pod of a mesh namespace goes through istiod's sidecar injector: with istiod
    // not answering (no node runs it here) such a pod is refused, never created without its
    // proxy; a pod that opts out is created.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "apps");
    let pod = |name: &str, labels: Value| {
        serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(json!({
            "metadata": { "name": name, "labels": labels },
            "spec": { "containers": [{ "name": "app", "image": "registry.example/app:1" }] },
        }))
        .unwrap()
    };
    let refused = pods
        .create(&Default::default(), &pod("meshed", json!({})))
        .await
        .expect_err("a mesh pod is not created while the injector cannot answer");
    assert!(
        refused.to_string().contains("sidecar-injector.istio.io"),
        "{refused}"
    );
    pods.create(
        &Default::default(),
        &pod("outside", json!({ "sidecar.istio.io/inject": "false" })),
    )
    .await
    .expect("a pod that opts out of the mesh is not sent to the injector");

    // Healthy once the stand-in has played the nodes and operators.
    let started = Instant::now();
    loop {
        let client =
            kubernetes::client(&endpoint(&kube), &member_credentials(&moto).await).unwrap();
        let unhealthy = kubernetes::unhealthy(&client, &objects).await.unwrap();
        if unhealthy.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "still unhealthy: {unhealthy:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The DevOps cluster's objects for both delivery tools, then an environment registered as a
/// deployment target (its kubeconfig Secret, and a `SpinnakerAccount` or a Jenkins folder), are
/// accepted by the real API server; a `SpinnakerAccount` without the key of its Secret is
/// refused by the CRD's schema.
#[tokio::test]
async fn the_devops_cluster_takes_its_delivery_tool_and_the_environments_as_deployment_targets() {
    use slipway::define::blueprint::DevopsTool;
    let moto = Moto::start().await;
    let mut kube = Kube::start(&moto).await;
    kube.play_nodes();
    let client = kubernetes::client(&endpoint(&kube), &member_credentials(&moto).await).unwrap();
    let kubeconfig =
        kubernetes::kubeconfig("shop-dev", "https://dev.example", "", "eu-west-1", None);
    for tool in [DevopsTool::Spinnaker, DevopsTool::Jenkins] {
        let mut blueprint = Blueprint::from_template("shop", None);
        blueprint.devops.tool = tool;
        let mut objects = manifests::devops(&blueprint, "devops");
        objects.extend(manifests::deployment_target(
            tool,
            "shop-dev",
            &kubeconfig,
            &["checkout".to_owned()],
        ));
        let applied = kubernetes::apply(&client, &objects).await.unwrap();
        assert_eq!(applied.len(), objects.len());
        // An onboarded service's pipeline: accepted, and (Spinnaker's Job) done once its pod
        // would have run.
        let definition = json!({"id": "slipway-shop-service-payments", "application": "payments",
                                "name": "Deploy payments", "stages": []});
        let pipeline = manifests::service_pipeline(
            tool,
            &manifests::PipelineSpec {
                service: "payments",
                name: "shop-service-payments",
                clone_url: "https://git.example/shop/shop-service-payments.git",
                git_credentials: "shop-git",
                owner_email: "dev@example.com",
                spinnaker_pipeline: &definition,
            },
        );
        kubernetes::apply(&client, &pipeline).await.unwrap();
        let again = kubernetes::apply(&client, &pipeline).await.unwrap();
        assert!(again.iter().all(|a| !a.changed), "{again:?}");
        let started = Instant::now();
        while !kubernetes::unhealthy(&client, &pipeline)
            .await
            .unwrap()
            .is_empty()
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the Job never completed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let job = kube
        .object(
            "v1",
            "ConfigMap",
            Some("jenkins"),
            "shop-service-payments-pipeline",
        )
        .await
        .unwrap();
    assert_eq!(job["metadata"]["labels"]["jenkins-jenkins-config"], "true");
    let casc = job["data"]["shop-service-payments.yaml"].as_str().unwrap();
    assert!(
        casc.contains("pipelineJob('shop-service-payments')")
            && casc.contains("credentials('shop-git')"),
        "{casc}"
    );
    let jenkins = kube
        .object("apps/v1", "Deployment", Some("jenkins"), "jenkins")
        .await
        .unwrap();
    let containers = &jenkins["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[1]["name"], "config-reload", "{jenkins}");
    let account = kube
        .object(
            "spinnaker.io/v1alpha2",
            "SpinnakerAccount",
            Some("spinnaker"),
            "shop-dev",
        )
        .await
        .unwrap();
    assert_eq!(
        account["spec"]["kubernetes"]["kubeconfigSecret"]["name"],
        "shop-dev-kubeconfig"
    );
    assert_eq!(
        account["spec"]["settings"]["namespaces"],
        json!(["checkout"])
    );
    let credential = kube
        .object("v1", "Secret", Some("jenkins"), "shop-dev-kubeconfig")
        .await
        .unwrap();
    assert_eq!(
        credential["metadata"]["labels"]["jenkins.io/credentials-type"],
        "secretFile"
    );
    let service = kube
        .object(
            "spinnaker.io/v1alpha2",
            "SpinnakerService",
            Some("spinnaker"),
            "spinnaker",
        )
        .await
        .unwrap();
    assert_eq!(
        service["spec"]["accounts"]["dynamic"], true,
        "kept by the schema"
    );

    let mut broken =
        manifests::deployment_target(DevopsTool::Spinnaker, "shop-test", &kubeconfig, &[])
            .pop()
            .unwrap();
    broken["spec"]["kubernetes"]["kubeconfigSecret"] = json!({ "name": "shop-test-kubeconfig" });
    let refused = kubernetes::apply(&client, &[broken]).await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn a_kind_no_crd_defines_fails_at_once_with_a_permanent_error() {
    let moto = Moto::start().await;
    let kube = Kube::start(&moto).await;
    let client = kubernetes::client(&endpoint(&kube), &member_credentials(&moto).await).unwrap();
    let peer = json!({
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": { "name": "default", "namespace": "default" },
        "spec": { "mtls": { "mode": "STRICT" } },
    });
    let started = Instant::now();
    let error = kubernetes::apply(&client, &[peer]).await.unwrap_err();
    assert!(
        matches!(error, slipway::provision::cloud::CloudError::Permanent(_)),
        "{error:?}"
    );
    assert!(
        error.to_string().contains(
            "the cluster does not serve security.istio.io/v1 PeerAuthentication: no CustomResourceDefinition defines it"
        ),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "no retry loop");
}

#[tokio::test]
async fn deleting_waits_for_the_namespaces_to_terminate() {
    let moto = Moto::start().await;
    let kube = Kube::start(&moto).await;
    let client = kubernetes::client(&endpoint(&kube), &member_credentials(&moto).await).unwrap();
    let objects = vec![
        json!({ "apiVersion": "v1", "kind": "Namespace",
                "metadata": { "name": "apps", "labels": { "app.kubernetes.io/managed-by": "slipway" } } }),
        json!({ "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "settings", "namespace": "apps", "labels": { "app.kubernetes.io/managed-by": "slipway" } },
                "data": { "a": "b" } }),
    ];
    kubernetes::apply(&client, &objects).await.unwrap();
    // Something in the namespace that a controller of the team's still has to clean up.
    let held: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(kube.admin(), "apps");
    held.patch(
        "held",
        &PatchParams::apply("team-controller"),
        &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "held", "finalizers": ["example.com/cleanup"] },
        })),
    )
    .await
    .unwrap();

    assert_eq!(kubernetes::delete(&client, &objects).await.unwrap(), 2);
    let left = kubernetes::remaining(&client, &objects).await.unwrap();
    assert_eq!(left, ["Namespace apps is Terminating"]);

    // The team's controller finishes; the namespace controller then removes the namespace.
    held.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
    )
    .await
    .unwrap();
    let started = Instant::now();
    while !kubernetes::remaining(&client, &objects)
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the namespace did not terminate"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        kubernetes::delete(&client, &objects).await.unwrap(),
        0,
        "deleting what is gone is success"
    );
}

#[tokio::test]
async fn a_kubeconfig_without_a_context_for_the_cluster_is_refused_never_the_current_one() {
    let moto = Moto::start().await;
    let kube = Kube::start(&moto).await;
    let admin = std::fs::read_to_string(kube.admin_kubeconfig()).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // The harness's context is `slipway-test`; the cluster is `shop-perf-1`.
    let other = dir.path().join("other");
    std::fs::write(&other, &admin).unwrap();
    let Err(refused) = kubernetes::client_from_kubeconfig(&other, "shop-perf-1").await else {
        panic!("a kubeconfig without the cluster's context was used");
    };
    assert!(
        refused
            .to_string()
            .contains("has no context named shop-perf-1"),
        "{refused}"
    );

    let named = dir.path().join("named");
    std::fs::write(
        &named,
        admin.replace(
            "- name: slipway-test\n  context:",
            "- name: shop-perf-1\n  context:",
        ),
    )
    .unwrap();
    let client = kubernetes::client_from_kubeconfig(&named, "shop-perf-1")
        .await
        .unwrap();
    assert!(namespaces_visible(&client).await.unwrap() >= 3);
}
