//! The Kubernetes API of a new cluster, through the `kube` client: server-side apply with the
//! field manager `slipway` (re-applying the same object changes nothing), deletes in reverse
//! order ("already gone" is success). EKS authenticates a bearer token made from a presigned
//! STS GetCallerIdentity URL; the cluster's CA comes from DescribeCluster.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use base64::Engine;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::cloud::{Applied, CloudError, Cluster, describe_object};

pub const FIELD_MANAGER: &str = "slipway";

/// Where and how to reach a cluster's API.
#[derive(Debug, Clone)]
pub struct ClusterEndpoint {
    pub url: String,
    /// The CA bundle (PEM) to trust; `None` for plain HTTP.
    pub ca_pem: Option<Vec<u8>>,
    pub cluster_name: String,
    pub region: String,
}

/// The endpoint of `cluster`, or `override_url` (SLIPWAY_KUBE_ENDPOINT_OVERRIDE) instead.
pub fn endpoint(
    cluster: &Cluster,
    region: &str,
    override_url: Option<&str>,
) -> Result<ClusterEndpoint, CloudError> {
    let url = match override_url {
        Some(url) => url.to_owned(),
        None => cluster.endpoint.clone().ok_or_else(|| {
            CloudError::Transient(format!("cluster {} has no API endpoint yet", cluster.name))
        })?,
    };
    let ca_pem = match &cluster.certificate_authority {
        Some(data) if url.starts_with("https://") => Some(
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| {
                    CloudError::Permanent(format!("the cluster's CA is not base64: {e}"))
                })?,
        ),
        _ => None,
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
    let token = eks_token(
        &endpoint.cluster_name,
        &endpoint.region,
        credentials,
        SystemTime::now(),
    )?;
    config.auth_info.token = Some(token.into());
    config.read_timeout = Some(Duration::from_secs(30));
    kube::Client::try_from(config)
        .map_err(|e| CloudError::Permanent(format!("cannot build a Kubernetes client: {e}")))
}

/// A client for `cluster` from a kubeconfig file (clusters reached through a bastion, a VPN or
/// another identity): its context named like the cluster, else its current context.
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
    let context = kubeconfig
        .contexts
        .iter()
        .any(|c| c.name == cluster)
        .then(|| cluster.to_owned());
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

/// The resources Slipway applies: (apiVersion, kind) → plural and scope. A static table, so no
/// discovery round trips and an unknown kind is a clear error before anything is applied.
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("v1", "Namespace", "namespaces", false),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Service", "services", true),
    ("v1", "ResourceQuota", "resourcequotas", true),
    ("v1", "LimitRange", "limitranges", true),
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
    (
        "security.istio.io/v1",
        "PeerAuthentication",
        "peerauthentications",
        true,
    ),
    (
        "mongodbcommunity.mongodb.com/v1",
        "MongoDBCommunity",
        "mongodbcommunity",
        true,
    ),
    (
        "scylla.scylladb.com/v1",
        "ScyllaCluster",
        "scyllaclusters",
        true,
    ),
    ("kafka.strimzi.io/v1beta2", "Kafka", "kafkas", true),
    (
        "kafka.strimzi.io/v1beta2",
        "KafkaNodePool",
        "kafkanodepools",
        true,
    ),
    (
        "spinnaker.io/v1alpha2",
        "SpinnakerService",
        "spinnakerservices",
        true,
    ),
];

/// The API of one object: its resource and, for namespaced kinds, its namespace.
fn api_for(client: &kube::Client, object: &Value) -> Result<Api<DynamicObject>, CloudError> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let Some((_, _, plural, namespaced)) = RESOURCES
        .iter()
        .find(|(v, k, _, _)| *v == api_version && *k == kind)
    else {
        return Err(CloudError::Permanent(format!(
            "Slipway does not know how to apply {api_version} {kind}"
        )));
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let resource =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    Ok(if *namespaced {
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        Api::namespaced_with(client.clone(), namespace, &resource)
    } else {
        Api::all_with(client.clone(), &resource)
    })
}

fn kube_error(what: &str, e: kube::Error) -> CloudError {
    let message = format!("{what} failed: {e}");
    match &e {
        kube::Error::Api(status) if status.code >= 500 || status.code == 429 => {
            CloudError::Transient(message)
        }
        // A namespaced object before its namespace exists, a webhook not ready yet.
        kube::Error::Api(status) if status.code == 404 || status.code == 409 => {
            CloudError::Transient(message)
        }
        kube::Error::Api(_) => CloudError::Permanent(message),
        _ => CloudError::Transient(message),
    }
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// Server-side applies `objects` in order.
pub async fn apply(client: &kube::Client, objects: &[Value]) -> Result<Vec<Applied>, CloudError> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::with_capacity(objects.len());
    for object in objects {
        let api = api_for(client, object)?;
        let resource = describe_object(object);
        let name = name_of(object);
        let before = api
            .get_opt(name)
            .await
            .map_err(|e| kube_error(&format!("reading {resource}"), e))?
            .and_then(|o| o.metadata.resource_version);
        let after = api
            .patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(|e| kube_error(&format!("applying {resource}"), e))?;
        applied.push(Applied {
            changed: before.is_none() || before != after.metadata.resource_version,
            resource,
        });
    }
    Ok(applied)
}

/// Deletes `objects` in reverse order; returns how many were still there.
pub async fn delete(client: &kube::Client, objects: &[Value]) -> Result<usize, CloudError> {
    let mut deleted = 0;
    for object in objects.iter().rev() {
        let api = api_for(client, object)?;
        match api
            .delete(name_of(object), &DeleteParams::background())
            .await
        {
            Ok(_) => deleted += 1,
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => {
                return Err(kube_error(
                    &format!("deleting {}", describe_object(object)),
                    e,
                ));
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

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
