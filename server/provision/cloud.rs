//! What the provisioning steps need from a cloud, as one trait with two providers: [`super::aws`]
//! (Organizations, STS, EKS and the Kubernetes API of the new cluster) and
//! [`super::simulated`] (an in-process stand-in with the same states, for the embedded default).
//! The steps in [`super::run`] are written once against this trait.

use std::collections::BTreeMap;
use std::future::Future;

use serde_json::Value;

use super::manifests::{GeneratedSecret, SecretCopy};
use crate::jobs::StepError;

/// Tags put on everything Slipway creates; `slipway:environment-id` is how a re-run recognises
/// what is its own.
pub type Tags = BTreeMap<String, String>;

pub const OWNER_TAG: &str = "slipway:environment-id";

/// The AWS partition of `region`, the second field of every ARN there: China and GovCloud
/// regions are partitions of their own, with their own accounts and policies.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Why a cloud call failed.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// Throttling, a timeout, a 5xx: worth another attempt.
    #[error("{0}")]
    Transient(String),
    /// Bad input, missing permissions, a resource that is not ours: a person must act.
    #[error("{0}")]
    Permanent(String),
    /// The thing to create exists already (EKS `ResourceInUseException`): look it up and adopt
    /// it if it is ours.
    #[error("{0}")]
    AlreadyExists(String),
    /// A refusal AWS documents as eventual consistency right after something was created: the
    /// new account's access role not assumable yet (`AccessDenied`), a new IAM role not yet
    /// visible to EKS. The step retries it for a bounded time, then a person must look.
    #[error("{0}")]
    NotYetPropagated(String),
}

impl From<CloudError> for StepError {
    fn from(e: CloudError) -> Self {
        match e {
            CloudError::Transient(m) | CloudError::NotYetPropagated(m) => StepError::Transient(m),
            CloudError::Permanent(m) | CloudError::AlreadyExists(m) => StepError::Permanent(m),
        }
    }
}

/// Who the provider acts as (the "Test connection" button shows it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

/// The organization Slipway creates accounts in.
#[derive(Debug, Clone)]
pub struct Organization {
    pub management_account: String,
    /// The unit platforms' units go under: the configured one, else the organization's root.
    pub base_unit: String,
}

#[derive(Debug, Clone)]
pub struct AccountSpec {
    pub name: String,
    pub email: String,
    pub tags: Tags,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
    /// Closed or suspended accounts count as gone.
    pub active: bool,
    pub tags: Tags,
}

/// What asking Organizations to close an account did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closure {
    /// Closed (suspended for 90 days), or closed already.
    Closed,
    /// Refused for now by AWS's closure quota (10% of the member accounts per rolling 30 days,
    /// and a few requests at a time): ask again later. Why, in AWS's words.
    Deferred(String),
}

/// Where an Organizations CreateAccount request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCreation {
    InProgress,
    Succeeded(String),
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Active,
    Deleting,
    Failed,
    /// Updating and the like: wait.
    Other,
}

impl Status {
    pub fn parse(aws: &str) -> Status {
        match aws {
            "CREATING" => Status::Creating,
            "ACTIVE" => Status::Active,
            "DELETING" => Status::Deleting,
            "FAILED" | "CREATE_FAILED" | "DELETE_FAILED" => Status::Failed,
            _ => Status::Other,
        }
    }
}

/// What a cluster needs in its account: the EKS roles and the subnets to run in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Network {
    pub cluster_role_arn: String,
    pub node_role_arn: String,
    /// The cluster's subnets: private and public, so load balancers can use the public ones.
    pub subnets: Vec<String>,
    /// The nodes' subnets (private). Empty in records made before Slipway built VPCs: the
    /// nodes use `subnets` then.
    #[serde(default)]
    pub node_subnets: Vec<String>,
    /// The VPC Slipway built; `None` when it uses subnets tagged `slipway:eks=true`.
    #[serde(default)]
    pub vpc_id: Option<String>,
    /// The VPC's range.
    #[serde(default)]
    pub cidr: Option<String>,
}

impl Network {
    pub fn nodes(&self) -> &[String] {
        if self.node_subnets.is_empty() {
            &self.subnets
        } else {
            &self.node_subnets
        }
    }
}

/// Who reaches a cluster's API endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointAccess {
    /// Private, and public from these ranges only (none: private only).
    Restricted { public_cidrs: Vec<String> },
    /// Public to anyone, EKS's default: plans made before endpoint access was planned.
    Open,
}

#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub name: String,
    pub version: String,
    pub network: Network,
    pub endpoint: EndpointAccess,
    /// Authentication through EKS access entries (mode `API`), the creator (Slipway) admin;
    /// false only for plans made before (EKS's default: the `aws-auth` ConfigMap).
    pub access_entries: bool,
    /// Idempotency token for EKS, derived from the job.
    pub request_token: String,
    pub tags: Tags,
}

/// An EKS access entry: an IAM principal mapped to Kubernetes groups, or given an EKS access
/// policy for the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessEntry {
    pub principal_arn: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_groups: Vec<String>,
    /// EKS's username template (`team:checkout:{{SessionName}}`); none: EKS's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// An EKS access policy for the whole cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_policy: Option<String>,
}

/// EKS's access policy for cluster admins (`cluster-admin` in RBAC terms).
pub const CLUSTER_ADMIN_POLICY: &str =
    "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy";

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub arn: String,
    pub status: Status,
    pub endpoint: Option<String>,
    /// Base64 PEM, as DescribeCluster gives it.
    pub certificate_authority: Option<String>,
    pub tags: Tags,
    /// Its Kubernetes minor version ("1.35"), when EKS says.
    pub version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NodegroupSpec {
    pub cluster: String,
    pub network: Network,
    pub name: String,
    pub instance_type: String,
    pub min_size: i32,
    pub max_size: i32,
    pub request_token: String,
    pub tags: Tags,
}

#[derive(Debug, Clone)]
pub struct Nodegroup {
    pub status: Status,
    pub tags: Tags,
    /// Its sizes as EKS reports them (`None` when it does not say).
    pub scaling: Option<Scaling>,
    pub instance_types: Vec<String>,
    /// Its Kubernetes minor version, when EKS says.
    pub version: Option<String>,
}

/// What EKS offers of one add-on for one Kubernetes version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddonVersions {
    /// The version EKS installs when none is named.
    pub default: Option<String>,
    /// Every version compatible with it.
    pub compatible: Vec<String>,
}

/// One of EKS's upgrade insights (`ListInsights`, category `UPGRADE_READINESS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insight {
    pub name: String,
    /// `PASSING`, `WARNING`, `ERROR` or `UNKNOWN`.
    pub status: String,
    pub reason: String,
}

/// A deprecated API the cluster's API server has been asked for
/// (`apiserver_requested_deprecated_apis`), and the release that removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeprecatedApi {
    /// `flowcontrol.apiserver.k8s.io/v1beta3 flowschemas`.
    pub api: String,
    /// `1.32`; none when the server does not say.
    pub removed_release: Option<String>,
}

/// A node group's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaling {
    pub min_size: i32,
    pub max_size: i32,
    pub desired_size: i32,
}

/// What applying one Kubernetes object did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub resource: String,
    /// False when the object was already as applied (a re-run).
    pub changed: bool,
}

/// A cloud the steps can run against. `Session` is access into one member account (assumed-role
/// credentials for AWS); nothing secret in it is ever stored.
pub trait Provider: Send + Sync + 'static {
    type Session: Send + Sync;
    type ClusterApi: ClusterApi;

    /// A name for logs and the UI ("AWS", "simulated").
    fn label(&self) -> &'static str;

    fn identity(&self) -> impl Future<Output = Result<Identity, CloudError>> + Send;

    /// An active account of this name, if there is one.
    fn find_account(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Account>, CloudError>> + Send;
    /// A CreateAccount request for this name still in progress (accounts being created are
    /// not listed yet): its request id.
    fn pending_account_request(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<String>, CloudError>> + Send;
    /// Starts creating an account; returns the request id.
    fn create_account(
        &self,
        spec: &AccountSpec,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    fn account_creation(
        &self,
        request_id: &str,
    ) -> impl Future<Output = Result<AccountCreation, CloudError>> + Send;
    /// The organization, checked: Slipway must run in the management account of an
    /// organization with all features enabled (a permanent error says what to change).
    fn organization(&self) -> impl Future<Output = Result<Organization, CloudError>> + Send;
    /// The unit `name` directly under `parent`: adopted by name, created if missing. Its id.
    fn ensure_unit(
        &self,
        parent: &str,
        name: &str,
    ) -> impl Future<Output = Result<String, CloudError>> + Send;
    /// Attaches the service control policies named to `unit`; attached ones stay as they are.
    fn attach_policies(
        &self,
        unit: &str,
        names: &[String],
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Moves the account into `unit` unless it is there already.
    fn place_account(
        &self,
        account: &str,
        unit: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Closes the account (AWS suspends it for 90 days); closing a closed one is success.
    fn close_account(&self, id: &str) -> impl Future<Output = Result<Closure, CloudError>> + Send;

    /// Access into a member account (STS AssumeRole into its access role).
    fn open_session(
        &self,
        account_id: &str,
    ) -> impl Future<Output = Result<Self::Session, CloudError>> + Send;

    /// The account's EKS cluster and node roles (created if missing, adopted if there) and the
    /// subnets to use: those tagged `slipway:eks=true` when the account has them, else the
    /// environment's own VPC, built as `vpc` asks ([`super::vpc`]).
    fn prepare_network(
        &self,
        session: &Self::Session,
        region: &str,
        vpc: &super::vpc::VpcRequest,
    ) -> impl Future<Output = Result<Network, CloudError>> + Send;
    /// Deletes the VPC built for the environment tagged `tags` (nothing when it has none);
    /// returns what is still being deleted, empty once all is gone.
    fn delete_network(
        &self,
        session: &Self::Session,
        region: &str,
        tags: &Tags,
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;

    /// Empties a pooled account of what environments left in it that outlives its cluster
    /// and VPC (the IAM roles Slipway made) and returns what of Slipway's is still there,
    /// described: EKS clusters, VPCs, NAT gateways, Elastic IPs and IAM roles tagged
    /// [`OWNER_TAG`]. Empty: the account can be leased again.
    fn clear_account(
        &self,
        session: &Self::Session,
        region: &str,
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;

    fn find_cluster(
        &self,
        session: &Self::Session,
        region: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Cluster>, CloudError>> + Send;
    fn create_cluster(
        &self,
        session: &Self::Session,
        region: &str,
        spec: &ClusterSpec,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Deleting a missing cluster is success.
    fn delete_cluster(
        &self,
        session: &Self::Session,
        region: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    fn find_nodegroup(
        &self,
        session: &Self::Session,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Nodegroup>, CloudError>> + Send;
    fn create_nodegroup(
        &self,
        session: &Self::Session,
        region: &str,
        spec: &NodegroupSpec,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    fn delete_nodegroup(
        &self,
        session: &Self::Session,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Sets the node group's minimum and maximum size (`UpdateNodegroupConfig`), the desired
    /// size brought within them; a group already so is left alone.
    fn update_nodegroup_scaling(
        &self,
        session: &Self::Session,
        region: &str,
        cluster: &str,
        name: &str,
        min_size: i32,
        max_size: i32,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// Starts upgrading the control plane to `version` (`UpdateClusterVersion`); an update
    /// of the cluster already running is a transient error.
    fn update_cluster_version(
        &self,
        session: &Self::Session,
        region: &str,
        cluster: &str,
        version: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// Starts upgrading the node group to `version` (`UpdateNodegroupVersion`: new nodes of the
    /// version's AMI, old ones drained within their pods' disruption budgets).
    fn update_nodegroup_version(
        &self,
        session: &Self::Session,
        region: &str,
        cluster: &str,
        name: &str,
        version: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// What EKS offers of the add-on `name` for `kubernetes_version`
    /// (`DescribeAddonVersions`).
    fn addon_versions(
        &self,
        session: &Self::Session,
        region: &str,
        name: &str,
        kubernetes_version: &str,
    ) -> impl Future<Output = Result<AddonVersions, CloudError>> + Send;
    /// Moves the installed add-on `name` to `version` (`UpdateAddon`, Slipway's settings
    /// winning over conflicting ones as at creation).
    fn update_addon(
        &self,
        session: &Self::Session,
        region: &str,
        cluster: &str,
        name: &str,
        version: &str,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// EKS's upgrade insights of the cluster for `version`; `None` where EKS does not offer
    /// them (a partition or emulator without the operation).
    fn upgrade_insights(
        &self,
        session: &Self::Session,
        region: &str,
        cluster: &str,
        version: &str,
    ) -> impl Future<Output = Result<Option<Vec<Insight>>, CloudError>> + Send;

    /// The EKS add-on `name` of the cluster, if installed.
    fn find_addon(
        &self,
        session: &Self::Session,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Addon>, CloudError>> + Send;
    /// Installs an EKS add-on (taking over a self-managed copy EKS put there at creation).
    fn create_addon(
        &self,
        session: &Self::Session,
        region: &str,
        spec: &AddonSpec,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The IAM role and the EKS Pod Identity association that give one ServiceAccount its AWS
    /// permissions: the role is adopted by name or created, its inline policy set to
    /// `spec.policy`, and the association found or created. Returns the role's ARN.
    fn ensure_workload_identity(
        &self,
        session: &Self::Session,
        region: &str,
        spec: &WorkloadIdentitySpec,
    ) -> impl Future<Output = Result<WorkloadIdentity, CloudError>> + Send;

    /// Gives `entry.principal_arn` its access entry on `cluster` with exactly the planned
    /// groups and username (an entry that exists is updated to them), and associates the
    /// planned access policy.
    fn ensure_access_entry(
        &self,
        session: &Self::Session,
        region: &str,
        cluster: &str,
        entry: &AccessEntry,
    ) -> impl Future<Output = Result<(), CloudError>> + Send;

    /// The Kubernetes API of `cluster`, reached as this session's identity.
    fn cluster_api(
        &self,
        session: &Self::Session,
        region: &str,
        cluster: &Cluster,
    ) -> impl Future<Output = Result<Self::ClusterApi, CloudError>> + Send;
}

/// One cluster's Kubernetes API, as the bootstrap and the teardown use it.
pub trait ClusterApi: Send + Sync {
    /// Server-side applies the objects in order (field manager `slipway`).
    fn apply(
        &self,
        objects: &[Value],
    ) -> impl Future<Output = Result<Vec<Applied>, CloudError>> + Send;
    /// Creates the Secrets that are missing, with values generated here and sent only to the
    /// cluster; existing ones are kept (their values are in use). Returns how many it created.
    fn create_secrets(
        &self,
        secrets: &[GeneratedSecret],
    ) -> impl Future<Output = Result<usize, CloudError>> + Send;
    /// Copies each Secret's keys into its target namespace (server-side applied, so a renewed
    /// source is copied again). A source not there yet is a transient error.
    fn copy_secrets(
        &self,
        copies: &[SecretCopy],
    ) -> impl Future<Output = Result<(), CloudError>> + Send;
    /// What among the applied objects is not healthy yet, each with why ("Deployment
    /// istio-system/istiod: 0 of 1 available"); empty when the platform works.
    fn unhealthy(
        &self,
        objects: &[Value],
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;
    /// What differs between the objects as Slipway applies them and as they are: each object
    /// server-side applied as a dry run (field manager `slipway`, forced) and the result
    /// compared with the live object, so only the fields Slipway sets count and the server's
    /// defaults and normalisations are on both sides. A missing object is one difference.
    fn drift(
        &self,
        objects: &[Value],
    ) -> impl Future<Output = Result<Vec<super::drift::Drift>, CloudError>> + Send;
    /// The deprecated APIs clients asked this API server for since it started, read from
    /// its metrics: what an upgrade past their removal would break.
    fn deprecated_apis(
        &self,
    ) -> impl Future<Output = Result<Vec<DeprecatedApi>, CloudError>> + Send;
    /// Deletes the objects in reverse order; missing ones are success.
    fn delete(&self, objects: &[Value]) -> impl Future<Output = Result<usize, CloudError>> + Send;
    /// What deleting the objects left still going: namespaces terminating, volumes of their
    /// claims; empty once everything is gone.
    fn remaining(
        &self,
        objects: &[Value],
    ) -> impl Future<Output = Result<Vec<String>, CloudError>> + Send;
}

/// An EKS add-on to install.
#[derive(Debug, Clone)]
pub struct AddonSpec {
    pub cluster: String,
    pub name: String,
    /// `None`: the version EKS recommends for the cluster's Kubernetes version.
    pub version: Option<String>,
    /// The add-on's configuration values (JSON), if any.
    pub configuration: Option<String>,
    pub tags: Tags,
}

#[derive(Debug, Clone)]
pub struct Addon {
    pub status: Status,
    pub version: String,
}

/// What a workload in the cluster may do in AWS, as the plan states it (the account is not
/// known when the plan is made; [`PolicyDocument::granting`] fills it in).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "service", rename_all = "snake_case")]
pub enum Grant {
    /// Create and write streams of these CloudWatch Logs groups (in the environment's account).
    CloudwatchLogs { log_groups: Vec<String> },
    /// Send traces to X-Ray (its write actions take no resource).
    Xray,
    /// Read and write an OpenSearch Service domain over its HTTP API.
    Opensearch { domain_arn: String },
    /// Read the platform's clusters in any of its accounts (names `<prefix>-*`): the DevOps
    /// tool's kubeconfigs need their endpoints.
    DescribeClusters { prefix: String },
}

/// An IAM policy document, as `iam:PutRolePolicy` takes it (serialised to JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyDocument {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Statement")]
    statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
struct Statement {
    #[serde(rename = "Effect")]
    effect: &'static str,
    #[serde(rename = "Action")]
    actions: Vec<&'static str>,
    #[serde(rename = "Resource")]
    resources: Vec<String>,
}

impl PolicyDocument {
    /// The least privilege that covers `grants` in `account` and `region`.
    pub fn granting(grants: &[Grant], region: &str, account: &str) -> PolicyDocument {
        let statements = grants
            .iter()
            .map(|grant| match grant {
                Grant::CloudwatchLogs { log_groups } => Statement {
                    effect: "Allow",
                    actions: vec![
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:DescribeLogStreams",
                        "logs:PutLogEvents",
                        "logs:PutRetentionPolicy",
                    ],
                    resources: log_groups
                        .iter()
                        .flat_map(|group| {
                            let arn = format!(
                                "arn:{}:logs:{region}:{account}:log-group:{group}",
                                partition(region)
                            );
                            [format!("{arn}:*"), arn]
                        })
                        .collect(),
                },
                Grant::Xray => Statement {
                    effect: "Allow",
                    actions: vec![
                        "xray:GetSamplingRules",
                        "xray:GetSamplingTargets",
                        "xray:PutTelemetryRecords",
                        "xray:PutTraceSegments",
                    ],
                    resources: vec!["*".into()],
                },
                Grant::Opensearch { domain_arn } => Statement {
                    effect: "Allow",
                    actions: vec![
                        "es:ESHttpGet",
                        "es:ESHttpHead",
                        "es:ESHttpPost",
                        "es:ESHttpPut",
                    ],
                    resources: vec![format!("{domain_arn}/*")],
                },
                Grant::DescribeClusters { prefix } => Statement {
                    effect: "Allow",
                    actions: vec!["eks:DescribeCluster"],
                    resources: vec![format!(
                        "arn:{}:eks:{region}:*:cluster/{prefix}-*",
                        partition(region)
                    )],
                },
            })
            .collect();
        PolicyDocument {
            version: "2012-10-17",
            statements,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a policy document serialises")
    }
}

/// A ServiceAccount's AWS identity to set up (EKS Pod Identity).
#[derive(Debug, Clone)]
pub struct WorkloadIdentitySpec {
    pub cluster: String,
    pub namespace: String,
    pub service_account: String,
    /// The IAM role's name in the environment's account; a role of this name is adopted.
    pub role_name: String,
    pub policy: PolicyDocument,
    /// Idempotency token for EKS, derived from the job.
    pub request_token: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIdentity {
    pub role_arn: String,
    /// False when the association was there already (a re-run).
    pub created: bool,
}

/// `Kind namespace/name` (or `Kind name`) of a manifest, as the plan and logs show it.
pub fn describe_object(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("?");
    let name = object["metadata"]["name"].as_str().unwrap_or("?");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_name_the_partition_of_the_region() {
        assert_eq!(partition("eu-west-1"), "aws");
        assert_eq!(partition("cn-northwest-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
        let grants = [Grant::CloudwatchLogs {
            log_groups: vec!["/slipway/shop/dev".into()],
        }];
        let policy = PolicyDocument::granting(&grants, "cn-north-1", "222233334444").to_json();
        assert!(
            policy.contains("arn:aws-cn:logs:cn-north-1:222233334444:log-group:/slipway/shop/dev"),
            "{policy}"
        );
    }

    #[test]
    fn a_policy_grants_each_store_on_its_own_resources_in_the_account() {
        let grants = [
            Grant::CloudwatchLogs {
                log_groups: vec!["/slipway/shop/dev".into()],
            },
            Grant::Xray,
            Grant::Opensearch {
                domain_arn: "arn:aws:es:eu-west-1:111122223333:domain/logs".into(),
            },
        ];
        let policy: Value = serde_json::from_str(
            &PolicyDocument::granting(&grants, "eu-west-1", "222233334444").to_json(),
        )
        .unwrap();
        assert_eq!(policy["Version"], "2012-10-17");
        let statements = policy["Statement"].as_array().unwrap();
        assert_eq!(
            statements[0]["Resource"],
            serde_json::json!([
                "arn:aws:logs:eu-west-1:222233334444:log-group:/slipway/shop/dev:*",
                "arn:aws:logs:eu-west-1:222233334444:log-group:/slipway/shop/dev",
            ])
        );
        assert_eq!(statements[1]["Resource"], serde_json::json!(["*"]));
        assert!(
            statements[1]["Action"].as_array().unwrap().iter().all(|a| a
                .as_str()
                .unwrap()
                .starts_with("xray:Put")
                || a.as_str().unwrap().starts_with("xray:GetSampling"))
        );
        assert_eq!(
            statements[2]["Resource"],
            serde_json::json!(["arn:aws:es:eu-west-1:111122223333:domain/logs/*"])
        );
        assert!(statements.iter().all(|s| s["Effect"] == "Allow"));
    }
}
