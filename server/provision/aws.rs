//! The AWS provider: Organizations for accounts, STS into each member account's access role,
//! EKS for clusters and node groups (in the member account, in the blueprint's region), and the
//! Kubernetes API of the new cluster through [`super::kubernetes`]. Credentials come from the
//! standard AWS chain (environment, profile, web identity, instance role), optionally through
//! an assumed role; `AWS_ENDPOINT_URL` and its per-service forms are honoured by the SDK, which
//! is how the tests reach moto.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_eks::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_eks::types::{
    AccessScope, AccessScopeType, AuthenticationMode, CreateAccessConfigRequest,
    NodegroupScalingConfig, VpcConfigRequest,
};

use super::cloud::{
    AccessEntry, Account, AccountCreation, AccountSpec, Addon, AddonSpec, AddonVersions, Closure,
    CloudError, Cluster, ClusterSpec, EndpointAccess, Identity, Insight, Network, Nodegroup,
    NodegroupSpec, OWNER_TAG, Organization, Provider, Scaling, Status, Tags, WorkloadIdentity,
    WorkloadIdentitySpec,
};
use super::kubernetes::{self, ClusterEndpoint};

/// The inline policy Slipway writes on a workload's role (its other policies are left alone).
const WORKLOAD_POLICY_NAME: &str = "slipway";

/// The settings of the AWS connection (the admin page shows them).
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// A role to assume in the management account first; `None` uses the chain's identity.
    pub role_arn: Option<String>,
    /// The organisational unit the platforms' units are made under; `None`: the root.
    pub organizational_unit: Option<String>,
    /// The role Organizations creates in every new account, assumed for the member's resources.
    pub member_role_name: String,
    /// IAM roles in the member account for the EKS control plane and for nodes.
    pub cluster_role_name: String,
    pub node_role_name: String,
    /// Used instead of every cluster's API endpoint (tests, emulators, tunnels).
    pub kube_endpoint_override: Option<String>,
    /// The CA bundle (PEM) the override's certificate is checked against, instead of the
    /// cluster's own CA from DescribeCluster.
    pub kube_endpoint_ca: Option<Vec<u8>>,
    /// A kubeconfig to reach clusters with instead of EKS tokens (its context named like the
    /// cluster, else its current one).
    pub kubeconfig: Option<std::path::PathBuf>,
}

#[derive(Clone)]
pub struct AwsCloud {
    base: SdkConfig,
    settings: AwsSettings,
}

/// Access into one member account: its assumed-role credentials (kept in memory only).
pub struct MemberSession {
    account_id: String,
    credentials: Credentials,
}

/// An HTTPS client on rustls with ring, the crypto the rest of Slipway uses.
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// AWS's codes for throttling, as each protocol names them (JSON services `…Exception`, Query
/// services such as IAM and STS without the suffix, EC2 its own).
const THROTTLING: [&str; 7] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "PriorRequestNotComplete",
];

/// Other codes AWS documents as worth a retry: server faults, timeouts, concurrent changes.
const TRANSIENT: [&str; 10] = [
    "ServiceException",
    "ServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "RequestTimeout",
    "RequestTimeoutException",
    "ConcurrentModificationException",
    "ConcurrentModification",
];

/// Sorts an SDK error into retry-worthy or not, in words a person can act on: the call, what
/// happened, and the service's own code and message.
fn classify<E>(what: &str, error: SdkError<E, aws_smithy_runtime_api::http::Response>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let SdkError::ServiceError(e) = &error else {
        // Timeouts, connection failures, unreadable responses: each cause in words (the SDK's
        // own rendering appends its debug output).
        let mut causes = vec![error.to_string()];
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        return CloudError::Transient(format!(
            "{what} failed: no answer from AWS ({})",
            causes.join(": ")
        ));
    };
    let code = e.err().code().unwrap_or("an error without a code");
    let detail = match e.err().message() {
        Some(message) => format!("{code}: {message}"),
        None => code.to_owned(),
    };
    let status = e.raw().status();
    if THROTTLING.contains(&code) {
        CloudError::Transient(format!("{what} was throttled by AWS ({detail})"))
    } else if status.is_server_error() || TRANSIENT.contains(&code) {
        // A 5xx is the service's own fault whatever it calls it (IAM's `ServiceFailure`).
        CloudError::Transient(format!(
            "{what} failed on AWS's side (HTTP {}, {detail})",
            status.as_u16()
        ))
    } else if code == "ResourceInUseException" {
        CloudError::AlreadyExists(format!("{what}: {detail}"))
    } else {
        CloudError::Permanent(format!("{what} failed: {detail}"))
    }
}

/// Deletes the role `name` with what IAM wants gone first: its managed policies detached, its
/// inline policies and instance-profile memberships removed. A role already gone is success.
async fn delete_role(iam: &aws_sdk_iam::Client, name: &str) -> Result<(), CloudError> {
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| classify("iam:ListAttachedRolePolicies", e))?;
    for policy in attached.attached_policies() {
        iam.detach_role_policy()
            .role_name(name)
            .set_policy_arn(policy.policy_arn().map(str::to_owned))
            .send()
            .await
            .map_err(|e| classify("iam:DetachRolePolicy", e))?;
    }
    let inline = iam
        .list_role_policies()
        .role_name(name)
        .send()
        .await
        .map_err(|e| classify("iam:ListRolePolicies", e))?;
    for policy in inline.policy_names() {
        iam.delete_role_policy()
            .role_name(name)
            .policy_name(policy)
            .send()
            .await
            .map_err(|e| classify("iam:DeleteRolePolicy", e))?;
    }
    let profiles = iam
        .list_instance_profiles_for_role()
        .role_name(name)
        .send()
        .await
        .map_err(|e| classify("iam:ListInstanceProfilesForRole", e))?;
    for profile in profiles.instance_profiles() {
        iam.remove_role_from_instance_profile()
            .role_name(name)
            .instance_profile_name(profile.instance_profile_name())
            .send()
            .await
            .map_err(|e| classify("iam:RemoveRoleFromInstanceProfile", e))?;
    }
    match iam.delete_role().role_name(name).send().await {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, "NoSuchEntity") => Ok(()),
        Err(e) => Err(classify("iam:DeleteRole", e)),
    }
}

fn is_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>, code: &str) -> bool {
    matches!(error, SdkError::ServiceError(e) if e.err().code() == Some(code))
}

/// The answer to an EKS update call: EKS runs one update of a resource at a time, so
/// `ResourceInUseException` says `what` "is being updated already", which passes.
fn update_started<T, E>(
    operation: &str,
    what: &str,
    answer: Result<T, SdkError<E, aws_smithy_runtime_api::http::Response>>,
) -> Result<(), CloudError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match answer {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, "ResourceInUseException") => Err(CloudError::Transient(format!(
            "{what} is being updated already"
        ))),
        Err(e) => Err(classify(operation, e)),
    }
}

/// EKS's refusal when an IAM role created moments ago is not visible to it yet (IAM is
/// eventually consistent): `InvalidParameterException` saying the role cannot be assumed or
/// does not exist.
fn role_not_visible_yet<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    let SdkError::ServiceError(e) = error else {
        return false;
    };
    let message = e.err().message().unwrap_or_default().to_ascii_lowercase();
    e.err().code() == Some("InvalidParameterException")
        && message.contains("role")
        && [
            "could not be assumed",
            "cannot be assumed",
            "does not exist",
        ]
        .iter()
        .any(|m| message.contains(m))
}

/// [`classify`], except that a refusal `propagating` recognises is eventual consistency.
fn classify_propagating<E>(
    what: &str,
    error: SdkError<E, aws_smithy_runtime_api::http::Response>,
    propagating: fn(&SdkError<E, aws_smithy_runtime_api::http::Response>) -> bool,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if propagating(&error) {
        CloudError::NotYetPropagated(classify(what, error).to_string())
    } else {
        classify(what, error)
    }
}

/// The cluster's subnets and who reaches its API endpoint.
fn vpc_config(spec: &ClusterSpec) -> VpcConfigRequest {
    let config = VpcConfigRequest::builder().set_subnet_ids(Some(spec.network.subnets.clone()));
    match &spec.endpoint {
        EndpointAccess::Open => config,
        EndpointAccess::Restricted { public_cidrs } => config
            .endpoint_private_access(true)
            .endpoint_public_access(!public_cidrs.is_empty())
            .set_public_access_cidrs((!public_cidrs.is_empty()).then(|| public_cidrs.clone())),
    }
    .build()
}

fn tag_map(tags: &Tags) -> HashMap<String, String> {
    tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// One trace span per AWS operation (`EKS.CreateCluster`, with `rpc.service` and
/// `rpc.method`), from the operation's start to its end across the SDK's retries. The SDK's own
/// spans are debug-level and too many; this one is at info, a child of the step that calls.
#[derive(Debug)]
struct TracedOperation;

/// The span of the operation in flight, kept in its config bag.
#[derive(Debug, Clone)]
struct OperationSpan(tracing::Span);

impl aws_smithy_types::config_bag::Storable for OperationSpan {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for TracedOperation {
    fn name(&self) -> &'static str {
        "TracedOperation"
    }

    // Not `read_before_execution`: the operation's metadata is in the bag only after it.
    fn read_before_serialization(
        &self,
        _: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_smithy_runtime_api::client::orchestrator::Metadata;
        let (service, operation) = cfg
            .load::<Metadata>()
            .map_or(("AWS".to_owned(), "unknown".to_owned()), |m| {
                (m.service().to_owned(), m.name().to_owned())
            });
        let span = tracing::info_span!(
            "aws",
            otel.name = %format!("{service}.{operation}"),
            otel.kind = "client",
            rpc.system = "aws-api",
            rpc.service = %service,
            rpc.method = %operation,
            otel.status_code = tracing::field::Empty,
        );
        cfg.interceptor_state().store_put(OperationSpan(span));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(OperationSpan(span)) = cfg.load::<OperationSpan>()
            && matches!(context.output_or_error(), Some(Err(_)))
        {
            span.record("otel.status_code", "ERROR");
        }
        // Ends the span now rather than when the bag is dropped.
        cfg.interceptor_state().unset::<OperationSpan>();
        Ok(())
    }
}

impl AwsCloud {
    /// Loads the standard credential chain (and assumes `role_arn` when set).
    pub async fn connect(settings: AwsSettings) -> AwsCloud {
        let loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client());
        let mut base = loader.load().await;
        if base.region().is_none() {
            // Organizations and STS are global; us-east-1 is where they live.
            base = base.into_builder().region(Region::new("us-east-1")).build();
        }
        if let Some(arn) = &settings.role_arn {
            let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
                .session_name("slipway")
                .configure(&base)
                .build()
                .await;
            base = base
                .into_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(provider),
                )
                .build();
        }
        AwsCloud::from_sdk_config(base, settings)
    }

    /// The provider over an SDK configuration built elsewhere (tests build one for moto), with
    /// Slipway's timeouts: without them an answer that never comes would hold a step forever
    /// (its heartbeat keeps the lease). An attempt that times out is retried by the SDK.
    pub fn from_sdk_config(base: SdkConfig, settings: AwsSettings) -> AwsCloud {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .operation_attempt_timeout(std::time::Duration::from_secs(60))
            .operation_timeout(std::time::Duration::from_secs(300))
            .build();
        let base = base.into_builder().timeout_config(timeouts).build();
        AwsCloud { base, settings }
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    pub fn region(&self) -> Option<String> {
        self.base.region().map(|r| r.to_string())
    }

    fn organizations(&self) -> aws_sdk_organizations::Client {
        let config = aws_sdk_organizations::config::Builder::from(&self.base);
        aws_sdk_organizations::Client::from_conf(config.interceptor(TracedOperation).build())
    }

    fn sts(&self) -> aws_sdk_sts::Client {
        let config = aws_sdk_sts::config::Builder::from(&self.base);
        aws_sdk_sts::Client::from_conf(config.interceptor(TracedOperation).build())
    }

    fn eks(&self, session: &MemberSession, region: &str) -> aws_sdk_eks::Client {
        let config = aws_sdk_eks::config::Builder::from(&self.member_config(session, region));
        aws_sdk_eks::Client::from_conf(config.interceptor(TracedOperation).build())
    }

    fn iam(&self, session: &MemberSession, region: &str) -> aws_sdk_iam::Client {
        let config = aws_sdk_iam::config::Builder::from(&self.member_config(session, region));
        aws_sdk_iam::Client::from_conf(config.interceptor(TracedOperation).build())
    }

    fn ec2(&self, session: &MemberSession, region: &str) -> super::ec2::Ec2 {
        super::ec2::Ec2::new(
            region,
            session.credentials.clone(),
            self.base.endpoint_url(),
        )
    }

    /// Each linked account's cost per day from `from` up to `to`, from Cost Explorer as the
    /// management account (Slipway's own credentials) sees it.
    pub async fn daily_costs(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<super::billing::AccountDay>, CloudError> {
        use aws_credential_types::provider::ProvideCredentials;
        let provider = self.base.credentials_provider().ok_or_else(|| {
            CloudError::Permanent("no AWS credentials are configured for Slipway".into())
        })?;
        let credentials = provider.provide_credentials().await.map_err(|e| {
            CloudError::Transient(format!("reading Slipway's AWS credentials failed: {e}"))
        })?;
        super::billing::CostExplorer::new(self.partition(), credentials, self.base.endpoint_url())
            .daily_by_account(from, to)
            .await
    }

    /// EKS's Kubernetes versions in Slipway's region with their support dates, all pages;
    /// versions EKS gives no dates for are left out.
    pub async fn kubernetes_versions(
        &self,
    ) -> Result<Vec<(String, chrono::NaiveDate, chrono::NaiveDate)>, CloudError> {
        let config = aws_sdk_eks::config::Builder::from(&self.base);
        let eks = aws_sdk_eks::Client::from_conf(config.interceptor(TracedOperation).build());
        let day = |t: Option<&aws_smithy_types::DateTime>| {
            t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0))
                .map(|t| t.date_naive())
        };
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = eks
                .describe_cluster_versions()
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| classify("eks:DescribeClusterVersions", e))?;
            for v in out.cluster_versions() {
                if let (Some(version), Some(standard), Some(extended)) = (
                    v.cluster_version(),
                    day(v.end_of_standard_support_date()),
                    day(v.end_of_extended_support_date()),
                ) {
                    found.push((version.to_owned(), standard, extended));
                }
            }
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => return Ok(found),
            }
        }
    }

    /// The partition Slipway's organization is in (its accounts are all in it).
    fn partition(&self) -> &'static str {
        super::cloud::partition(&self.region().unwrap_or_default())
    }

    fn role_arn(&self, account: &str, role: &str) -> String {
        format!("arn:{}:iam::{account}:role/{role}", self.partition())
    }

    fn member_config(&self, session: &MemberSession, region: &str) -> SdkConfig {
        self.base
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    session.credentials.clone(),
                ),
            )
            .region(Region::new(region.to_owned()))
            .build()
    }

    /// The role `name` that `service` may take (with `trust_actions`), with `policies` (AWS
    /// managed) attached: adopted when it exists, created otherwise. Returns its ARN.
    #[allow(clippy::too_many_arguments)]
    async fn ensure_role(
        &self,
        iam: &aws_sdk_iam::Client,
        account: &str,
        name: &str,
        service: &str,
        trust_actions: &[&str],
        policies: &[&str],
        tags: &Tags,
    ) -> Result<String, CloudError> {
        let arn = match iam.get_role().role_name(name).send().await {
            Ok(out) => out.role().map(|r| r.arn().to_owned()),
            Err(e) if is_code(&e, "NoSuchEntity") => None,
            Err(e) => return Err(classify("iam:GetRole", e)),
        };
        let arn = match arn {
            Some(arn) => arn,
            None => {
                let trust = serde_json::json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": { "Service": service },
                        "Action": trust_actions,
                    }],
                });
                let tags = tags
                    .iter()
                    .filter_map(|(k, v)| {
                        aws_sdk_iam::types::Tag::builder()
                            .key(k)
                            .value(v)
                            .build()
                            .ok()
                    })
                    .collect();
                match iam
                    .create_role()
                    .role_name(name)
                    .assume_role_policy_document(trust.to_string())
                    .set_tags(Some(tags))
                    .send()
                    .await
                {
                    Ok(out) => out.role().map(|r| r.arn().to_owned()).unwrap_or_default(),
                    // Created meanwhile by a crashed attempt: the role's name is the key.
                    Err(e) if is_code(&e, "EntityAlreadyExists") => self.role_arn(account, name),
                    Err(e) => return Err(classify("iam:CreateRole", e)),
                }
            }
        };
        for policy in policies {
            iam.attach_role_policy()
                .role_name(name)
                .policy_arn(format!("arn:{}:iam::aws:policy/{policy}", self.partition()))
                .send()
                .await
                .map_err(|e| classify("iam:AttachRolePolicy", e))?;
        }
        Ok(arn)
    }

    /// The names of the account's IAM roles that carry [`OWNER_TAG`] (ListRoles does not
    /// return tags, so each role's are read).
    async fn owned_roles(&self, iam: &aws_sdk_iam::Client) -> Result<Vec<String>, CloudError> {
        let mut names = vec![];
        let mut marker: Option<String> = None;
        loop {
            let out = iam
                .list_roles()
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify("iam:ListRoles", e))?;
            names.extend(out.roles().iter().map(|r| r.role_name().to_owned()));
            match out.marker().filter(|_| out.is_truncated()) {
                Some(m) => marker = Some(m.to_owned()),
                None => break,
            }
        }
        let mut owned = vec![];
        for name in names {
            let tags = iam
                .list_role_tags()
                .role_name(&name)
                .send()
                .await
                .map_err(|e| classify("iam:ListRoleTags", e))?;
            if tags.tags().iter().any(|t| t.key() == OWNER_TAG) {
                owned.push(name);
            }
        }
        Ok(owned)
    }

    async fn account_tags(&self, id: &str) -> Result<Tags, CloudError> {
        let out = self
            .organizations()
            .list_tags_for_resource()
            .resource_id(id)
            .send()
            .await
            .map_err(|e| classify("organizations:ListTagsForResource", e))?;
        Ok(out
            .tags()
            .iter()
            .map(|t| (t.key().to_owned(), t.value().to_owned()))
            .collect())
    }
}

impl Provider for AwsCloud {
    type Session = MemberSession;
    type ClusterApi = kube::Client;

    fn label(&self) -> &'static str {
        "AWS"
    }

    async fn identity(&self) -> Result<Identity, CloudError> {
        let out = self
            .sts()
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify("sts:GetCallerIdentity", e))?;
        Ok(Identity {
            account: out.account().unwrap_or_default().to_owned(),
            arn: out.arn().unwrap_or_default().to_owned(),
        })
    }

    async fn find_account(&self, name: &str) -> Result<Option<Account>, CloudError> {
        let orgs = self.organizations();
        let mut next: Option<String> = None;
        loop {
            let page = orgs
                .list_accounts()
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("organizations:ListAccounts", e))?;
            for account in page.accounts() {
                let active = account
                    .state()
                    .map(|s| s.as_str() == "ACTIVE")
                    .or_else(|| {
                        #[allow(deprecated)]
                        account.status().map(|s| s.as_str() == "ACTIVE")
                    })
                    .unwrap_or(true);
                if account.name() == Some(name) && active {
                    let id = account.id().unwrap_or_default().to_owned();
                    return Ok(Some(Account {
                        tags: self.account_tags(&id).await?,
                        id,
                        name: name.to_owned(),
                        active,
                    }));
                }
            }
            match page.next_token() {
                Some(token) => next = Some(token.to_owned()),
                None => return Ok(None),
            }
        }
    }

    async fn pending_account_request(&self, name: &str) -> Result<Option<String>, CloudError> {
        use aws_sdk_organizations::types::CreateAccountState;
        let orgs = self.organizations();
        let mut next: Option<String> = None;
        loop {
            let page = orgs
                .list_create_account_status()
                .states(CreateAccountState::InProgress)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("organizations:ListCreateAccountStatus", e))?;
            if let Some(status) = page
                .create_account_statuses()
                .iter()
                .find(|s| s.account_name() == Some(name))
            {
                return Ok(status.id().map(str::to_owned));
            }
            match page.next_token() {
                Some(token) => next = Some(token.to_owned()),
                None => return Ok(None),
            }
        }
    }

    async fn create_account(&self, spec: &AccountSpec) -> Result<String, CloudError> {
        let tags = spec
            .tags
            .iter()
            .filter_map(|(k, v)| {
                aws_sdk_organizations::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .ok()
            })
            .collect();
        let out = self
            .organizations()
            .create_account()
            .account_name(&spec.name)
            .email(&spec.email)
            .role_name(&self.settings.member_role_name)
            .set_tags(Some(tags))
            // CreateAccount has no idempotency token: an SDK retry after a lost answer would
            // ask for a second account. The step retries instead, and first looks for the
            // request in flight (`pending_account_request`).
            .customize()
            .config_override(
                aws_sdk_organizations::config::Builder::default()
                    .retry_config(aws_config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| classify("organizations:CreateAccount", e))?;
        out.create_account_status()
            .and_then(|s| s.id())
            .map(str::to_owned)
            .ok_or_else(|| CloudError::Transient("CreateAccount returned no request id".into()))
    }

    async fn account_creation(&self, request_id: &str) -> Result<AccountCreation, CloudError> {
        use aws_sdk_organizations::types::CreateAccountState;
        let out = self
            .organizations()
            .describe_create_account_status()
            .create_account_request_id(request_id)
            .send()
            .await
            .map_err(|e| classify("organizations:DescribeCreateAccountStatus", e))?;
        let Some(status) = out.create_account_status() else {
            return Ok(AccountCreation::InProgress);
        };
        Ok(match status.state() {
            Some(CreateAccountState::Succeeded) => match status.account_id() {
                Some(id) => AccountCreation::Succeeded(id.to_owned()),
                None => AccountCreation::InProgress,
            },
            Some(CreateAccountState::Failed) => AccountCreation::Failed(
                status
                    .failure_reason()
                    .map(|r| r.as_str().to_owned())
                    .unwrap_or_else(|| "unknown reason".into()),
            ),
            _ => AccountCreation::InProgress,
        })
    }

    async fn organization(&self) -> Result<Organization, CloudError> {
        use aws_sdk_organizations::types::OrganizationFeatureSet;
        let orgs = self.organizations();
        let me = self.identity().await?;
        let described = match orgs.describe_organization().send().await {
            Ok(out) => out,
            Err(e) if is_code(&e, "AWSOrganizationsNotInUseException") => {
                return Err(CloudError::Permanent(format!(
                    "account {} is not in an AWS organization: create one with all features from the account that should be the management account, and run Slipway with its credentials",
                    me.account
                )));
            }
            Err(e) => return Err(classify("organizations:DescribeOrganization", e)),
        };
        let Some(org) = described.organization() else {
            return Err(CloudError::Transient(
                "DescribeOrganization returned no organization".into(),
            ));
        };
        let management = org.master_account_id().unwrap_or_default().to_owned();
        if management != me.account {
            return Err(CloudError::Permanent(format!(
                "Slipway runs as {} in account {}, a member of organization {}: only its management account {management} can create and move accounts; give Slipway a role there (the role_arn setting)",
                me.arn,
                me.account,
                org.id().unwrap_or("?")
            )));
        }
        if org.feature_set() != Some(&OrganizationFeatureSet::All) {
            return Err(CloudError::Permanent(format!(
                "organization {} has consolidated billing only: enable all features (Organizations console, Settings) so accounts can be placed in units under service control policies",
                org.id().unwrap_or("?")
            )));
        }
        let base_unit = match &self.settings.organizational_unit {
            Some(unit) => unit.clone(),
            None => {
                let roots = orgs
                    .list_roots()
                    .send()
                    .await
                    .map_err(|e| classify("organizations:ListRoots", e))?;
                roots
                    .roots()
                    .first()
                    .and_then(|r| r.id())
                    .map(str::to_owned)
                    .ok_or_else(|| CloudError::Transient("ListRoots returned no root".into()))?
            }
        };
        Ok(Organization {
            management_account: management,
            base_unit,
        })
    }

    async fn ensure_unit(&self, parent: &str, name: &str) -> Result<String, CloudError> {
        let orgs = self.organizations();
        let find = || async {
            let mut next: Option<String> = None;
            loop {
                let page = orgs
                    .list_organizational_units_for_parent()
                    .parent_id(parent)
                    .set_next_token(next.take())
                    .send()
                    .await
                    .map_err(|e| classify("organizations:ListOrganizationalUnitsForParent", e))?;
                if let Some(id) = page
                    .organizational_units()
                    .iter()
                    .find(|u| u.name() == Some(name))
                    .and_then(|u| u.id())
                {
                    return Ok::<_, CloudError>(Some(id.to_owned()));
                }
                match page.next_token() {
                    Some(token) => next = Some(token.to_owned()),
                    None => return Ok(None),
                }
            }
        };
        if let Some(id) = find().await? {
            return Ok(id);
        }
        match orgs
            .create_organizational_unit()
            .parent_id(parent)
            .name(name)
            .send()
            .await
        {
            Ok(out) => out
                .organizational_unit()
                .and_then(|u| u.id())
                .map(str::to_owned)
                .ok_or_else(|| {
                    CloudError::Transient("CreateOrganizationalUnit returned no id".into())
                }),
            // Made meanwhile by another environment of the platform: that one is ours too.
            Err(e) if is_code(&e, "DuplicateOrganizationalUnitException") => {
                find().await?.ok_or_else(|| {
                    CloudError::Transient(format!(
                        "unit {name} exists under {parent} but is not listed yet"
                    ))
                })
            }
            Err(e) => Err(classify("organizations:CreateOrganizationalUnit", e)),
        }
    }

    async fn attach_policies(&self, unit: &str, names: &[String]) -> Result<(), CloudError> {
        use aws_sdk_organizations::types::PolicyType;
        if names.is_empty() {
            return Ok(());
        }
        let orgs = self.organizations();
        let mut policies = HashMap::new();
        let mut next: Option<String> = None;
        loop {
            let page = orgs
                .list_policies()
                .filter(PolicyType::ServiceControlPolicy)
                .set_next_token(next.take())
                .send()
                .await
                .map_err(|e| classify("organizations:ListPolicies", e))?;
            for policy in page.policies() {
                if let (Some(name), Some(id)) = (policy.name(), policy.id()) {
                    policies.insert(name.to_owned(), id.to_owned());
                }
            }
            match page.next_token() {
                Some(token) => next = Some(token.to_owned()),
                None => break,
            }
        }
        for name in names {
            let Some(id) = policies.get(name) else {
                return Err(CloudError::Permanent(format!(
                    "the blueprint names the service control policy {name:?}, and the organization has none of that name: create it, or remove it from the blueprint"
                )));
            };
            match orgs
                .attach_policy()
                .policy_id(id)
                .target_id(unit)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is_code(&e, "DuplicatePolicyAttachmentException") => {}
                Err(e) => return Err(classify("organizations:AttachPolicy", e)),
            }
        }
        Ok(())
    }

    async fn place_account(&self, account_id: &str, unit: &str) -> Result<(), CloudError> {
        let orgs = self.organizations();
        let parents = orgs
            .list_parents()
            .child_id(account_id)
            .send()
            .await
            .map_err(|e| classify("organizations:ListParents", e))?;
        let Some(current) = parents.parents().first().and_then(|p| p.id()) else {
            return Ok(());
        };
        if current == unit {
            return Ok(());
        }
        let moved = orgs
            .move_account()
            .account_id(account_id)
            .source_parent_id(current)
            .destination_parent_id(unit)
            .send()
            .await;
        match moved {
            Ok(_) => Ok(()),
            // A retried move whose first attempt went through (its answer was lost): the
            // account is where it should be.
            Err(e) if is_code(&e, "DuplicateAccountException") => Ok(()),
            Err(e) => Err(classify("organizations:MoveAccount", e)),
        }
    }

    async fn close_account(&self, id: &str) -> Result<Closure, CloudError> {
        use aws_sdk_organizations::operation::close_account::CloseAccountError;
        use aws_sdk_organizations::types::ConstraintViolationExceptionReason as Reason;
        match self
            .organizations()
            .close_account()
            .account_id(id)
            .send()
            .await
        {
            Ok(_) => Ok(Closure::Closed),
            Err(e)
                if is_code(&e, "AccountAlreadyClosedException")
                    || is_code(&e, "AccountNotFoundException") =>
            {
                Ok(Closure::Closed)
            }
            Err(e) => {
                if let Some(CloseAccountError::ConstraintViolationException(violation)) =
                    e.as_service_error()
                    && matches!(
                        violation.reason(),
                        Some(
                            Reason::CloseAccountQuotaExceeded
                                | Reason::CloseAccountRequestsLimitExceeded
                        )
                    )
                {
                    let reason = violation.reason().map(|r| r.as_str()).unwrap_or_default();
                    return Ok(Closure::Deferred(format!(
                        "{reason}: {}",
                        violation
                            .message()
                            .unwrap_or("AWS refused to close it for now")
                    )));
                }
                Err(classify("organizations:CloseAccount", e))
            }
        }
    }

    async fn open_session(&self, account_id: &str) -> Result<MemberSession, CloudError> {
        let out = self
            .sts()
            .assume_role()
            .role_arn(self.role_arn(account_id, &self.settings.member_role_name))
            .role_session_name("slipway-provisioner")
            .duration_seconds(3600)
            .send()
            .await
            // Organizations creates the access role with the account, but STS may refuse it
            // for minutes after the account is ACTIVE.
            .map_err(|e| {
                classify_propagating("sts:AssumeRole", e, |e| is_code(e, "AccessDenied"))
            })?;
        let c = out
            .credentials()
            .ok_or_else(|| CloudError::Transient("AssumeRole returned no credentials".into()))?;
        let expires = SystemTime::try_from(*c.expiration()).ok();
        Ok(MemberSession {
            account_id: account_id.to_owned(),
            credentials: Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_owned()),
                expires,
                "slipway-assumed-role",
            ),
        })
    }

    async fn prepare_network(
        &self,
        session: &MemberSession,
        region: &str,
        vpc: &super::vpc::VpcRequest,
    ) -> Result<Network, CloudError> {
        let tags = &vpc.tags;
        let iam = self.iam(session, region);
        let settings = &self.settings;
        let cluster_role_arn = self
            .ensure_role(
                &iam,
                &session.account_id,
                &settings.cluster_role_name,
                "eks.amazonaws.com",
                &["sts:AssumeRole"],
                &["AmazonEKSClusterPolicy"],
                tags,
            )
            .await?;
        let node_role_arn = self
            .ensure_role(
                &iam,
                &session.account_id,
                &settings.node_role_name,
                "ec2.amazonaws.com",
                &["sts:AssumeRole"],
                &[
                    "AmazonEKSWorkerNodePolicy",
                    "AmazonEKS_CNI_Policy",
                    "AmazonEC2ContainerRegistryReadOnly",
                ],
                tags,
            )
            .await?;
        let ec2 = self.ec2(session, region);
        let mut tagged: Vec<String> = ec2
            .describe_subnets(&[("tag:slipway:eks", "true")])
            .await?
            .into_iter()
            .map(|subnet| subnet.id)
            .collect();
        tagged.sort();
        if !tagged.is_empty() {
            if tagged.len() < 2 {
                return Err(CloudError::Permanent(format!(
                    "account {} has one subnet tagged slipway:eks=true in {region}; EKS needs two or more in different zones (or none tagged, and Slipway builds the environment's VPC)",
                    session.account_id
                )));
            }
            return Ok(Network {
                cluster_role_arn,
                node_role_arn,
                node_subnets: tagged.clone(),
                subnets: tagged,
                vpc_id: None,
                cidr: None,
            });
        }
        let built = super::vpc::ensure(&ec2, vpc).await?;
        Ok(Network {
            cluster_role_arn,
            node_role_arn,
            subnets: [built.private_subnets.clone(), built.public_subnets].concat(),
            node_subnets: built.private_subnets,
            vpc_id: Some(built.id),
            cidr: Some(vpc.cidr.to_string()),
        })
    }

    async fn delete_network(
        &self,
        session: &MemberSession,
        region: &str,
        tags: &Tags,
    ) -> Result<Vec<String>, CloudError> {
        super::vpc::delete(&self.ec2(session, region), tags).await
    }

    async fn clear_account(
        &self,
        session: &MemberSession,
        region: &str,
    ) -> Result<Vec<String>, CloudError> {
        let iam = self.iam(session, region);
        for role in self.owned_roles(&iam).await? {
            delete_role(&iam, &role).await?;
        }
        let mut left = vec![];
        let eks = self.eks(session, region);
        let mut next: Option<String> = None;
        loop {
            let out = eks
                .list_clusters()
                .set_next_token(next)
                .send()
                .await
                .map_err(|e| classify("eks:ListClusters", e))?;
            left.extend(out.clusters().iter().map(|c| format!("EKS cluster {c}")));
            match out.next_token() {
                Some(token) => next = Some(token.to_owned()),
                None => break,
            }
        }
        left.extend(super::vpc::leftovers(&self.ec2(session, region)).await?);
        left.extend(
            self.owned_roles(&iam)
                .await?
                .into_iter()
                .map(|r| format!("IAM role {r}")),
        );
        Ok(left)
    }

    async fn find_cluster(
        &self,
        session: &MemberSession,
        region: &str,
        name: &str,
    ) -> Result<Option<Cluster>, CloudError> {
        match self
            .eks(session, region)
            .describe_cluster()
            .name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.cluster().map(|c| Cluster {
                name: name.to_owned(),
                arn: c.arn().unwrap_or_default().to_owned(),
                status: Status::parse(c.status().map(|s| s.as_str()).unwrap_or("")),
                endpoint: c.endpoint().map(str::to_owned),
                version: c.version().map(str::to_owned),
                certificate_authority: c
                    .certificate_authority()
                    .and_then(|ca| ca.data())
                    .map(str::to_owned),
                tags: c
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
            })),
            Err(e) if is_code(&e, "ResourceNotFoundException") => Ok(None),
            Err(e) => Err(classify("eks:DescribeCluster", e)),
        }
    }

    async fn create_cluster(
        &self,
        session: &MemberSession,
        region: &str,
        spec: &ClusterSpec,
    ) -> Result<(), CloudError> {
        self.eks(session, region)
            .create_cluster()
            .name(&spec.name)
            .version(&spec.version)
            .role_arn(&spec.network.cluster_role_arn)
            .resources_vpc_config(vpc_config(spec))
            .client_request_token(&spec.request_token)
            .set_tags(Some(tag_map(&spec.tags)))
            .set_access_config(spec.access_entries.then(|| {
                CreateAccessConfigRequest::builder()
                    .authentication_mode(AuthenticationMode::Api)
                    .bootstrap_cluster_creator_admin_permissions(true)
                    .build()
            }))
            .send()
            .await
            .map_err(|e| classify_propagating("eks:CreateCluster", e, role_not_visible_yet))?;
        Ok(())
    }

    async fn ensure_access_entry(
        &self,
        session: &MemberSession,
        region: &str,
        cluster: &str,
        entry: &AccessEntry,
    ) -> Result<(), CloudError> {
        let eks = self.eks(session, region);
        let groups = Some(entry.kubernetes_groups.clone());
        let created = eks
            .create_access_entry()
            .cluster_name(cluster)
            .principal_arn(&entry.principal_arn)
            .set_kubernetes_groups(groups.clone())
            .set_username(entry.username.clone())
            .send()
            .await;
        match created {
            Ok(_) => {}
            // Made by an earlier attempt, or by hand: set to what the plan says.
            Err(e) if is_code(&e, "ResourceInUseException") => {
                eks.update_access_entry()
                    .cluster_name(cluster)
                    .principal_arn(&entry.principal_arn)
                    .set_kubernetes_groups(groups)
                    .set_username(entry.username.clone())
                    .send()
                    .await
                    .map_err(|e| classify("eks:UpdateAccessEntry", e))?;
            }
            Err(e) => return Err(classify("eks:CreateAccessEntry", e)),
        }
        if let Some(policy) = &entry.cluster_policy {
            // Associating again only sets the scope again.
            eks.associate_access_policy()
                .cluster_name(cluster)
                .principal_arn(&entry.principal_arn)
                .policy_arn(policy)
                .access_scope(
                    AccessScope::builder()
                        .r#type(AccessScopeType::Cluster)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| classify("eks:AssociateAccessPolicy", e))?;
        }
        Ok(())
    }

    async fn delete_cluster(
        &self,
        session: &MemberSession,
        region: &str,
        name: &str,
    ) -> Result<(), CloudError> {
        match self
            .eks(session, region)
            .delete_cluster()
            .name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, "ResourceNotFoundException") => Ok(()),
            Err(e) => Err(classify("eks:DeleteCluster", e)),
        }
    }

    async fn find_nodegroup(
        &self,
        session: &MemberSession,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<Option<Nodegroup>, CloudError> {
        match self
            .eks(session, region)
            .describe_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.nodegroup().map(|n| Nodegroup {
                status: Status::parse(n.status().map(|s| s.as_str()).unwrap_or("")),
                tags: n
                    .tags()
                    .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                scaling: n.scaling_config().and_then(|c| {
                    Some(Scaling {
                        min_size: c.min_size()?,
                        max_size: c.max_size()?,
                        desired_size: c.desired_size().unwrap_or_default(),
                    })
                }),
                instance_types: n.instance_types().to_vec(),
                version: n.version().map(str::to_owned),
            })),
            Err(e) if is_code(&e, "ResourceNotFoundException") => Ok(None),
            Err(e) => Err(classify("eks:DescribeNodegroup", e)),
        }
    }

    async fn create_nodegroup(
        &self,
        session: &MemberSession,
        region: &str,
        spec: &NodegroupSpec,
    ) -> Result<(), CloudError> {
        let scaling = NodegroupScalingConfig::builder()
            .min_size(spec.min_size)
            .max_size(spec.max_size)
            .desired_size(spec.min_size)
            .build();
        self.eks(session, region)
            .create_nodegroup()
            .cluster_name(&spec.cluster)
            .nodegroup_name(&spec.name)
            .node_role(&spec.network.node_role_arn)
            .set_subnets(Some(spec.network.nodes().to_vec()))
            .instance_types(&spec.instance_type)
            .scaling_config(scaling)
            .client_request_token(&spec.request_token)
            .set_tags(Some(tag_map(&spec.tags)))
            .send()
            .await
            .map_err(|e| classify_propagating("eks:CreateNodegroup", e, role_not_visible_yet))?;
        Ok(())
    }

    async fn delete_nodegroup(
        &self,
        session: &MemberSession,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<(), CloudError> {
        match self
            .eks(session, region)
            .delete_nodegroup()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, "ResourceNotFoundException") => Ok(()),
            Err(e) => Err(classify("eks:DeleteNodegroup", e)),
        }
    }

    async fn update_nodegroup_scaling(
        &self,
        session: &MemberSession,
        region: &str,
        cluster: &str,
        name: &str,
        min_size: i32,
        max_size: i32,
    ) -> Result<(), CloudError> {
        let current = self
            .find_nodegroup(session, region, cluster, name)
            .await?
            .ok_or_else(|| CloudError::Permanent(format!("node group {name} is not there")))?;
        let desired = current
            .scaling
            .map_or(min_size, |s| s.desired_size.clamp(min_size, max_size));
        let wanted = Scaling {
            min_size,
            max_size,
            desired_size: desired,
        };
        if current.scaling == Some(wanted) {
            return Ok(());
        }
        let scaling = NodegroupScalingConfig::builder()
            .min_size(min_size)
            .max_size(max_size)
            .desired_size(desired)
            .build();
        let answer = self
            .eks(session, region)
            .update_nodegroup_config()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .scaling_config(scaling)
            .send()
            .await;
        update_started(
            "eks:UpdateNodegroupConfig",
            &format!("node group {name}"),
            answer,
        )
    }

    async fn update_cluster_version(
        &self,
        session: &MemberSession,
        region: &str,
        cluster: &str,
        version: &str,
    ) -> Result<(), CloudError> {
        let answer = self
            .eks(session, region)
            .update_cluster_version()
            .name(cluster)
            .version(version)
            .send()
            .await;
        update_started(
            "eks:UpdateClusterVersion",
            &format!("cluster {cluster}"),
            answer,
        )
    }

    async fn update_nodegroup_version(
        &self,
        session: &MemberSession,
        region: &str,
        cluster: &str,
        name: &str,
        version: &str,
    ) -> Result<(), CloudError> {
        let answer = self
            .eks(session, region)
            .update_nodegroup_version()
            .cluster_name(cluster)
            .nodegroup_name(name)
            .version(version)
            .send()
            .await;
        update_started(
            "eks:UpdateNodegroupVersion",
            &format!("node group {name}"),
            answer,
        )
    }

    async fn addon_versions(
        &self,
        session: &MemberSession,
        region: &str,
        name: &str,
        kubernetes_version: &str,
    ) -> Result<AddonVersions, CloudError> {
        let out = self
            .eks(session, region)
            .describe_addon_versions()
            .addon_name(name)
            .kubernetes_version(kubernetes_version)
            .send()
            .await
            .map_err(|e| classify("eks:DescribeAddonVersions", e))?;
        let mut found = AddonVersions::default();
        for version in out.addons().iter().flat_map(|a| a.addon_versions()) {
            let Some(number) = version.addon_version() else {
                continue;
            };
            let fits = version
                .compatibilities()
                .iter()
                .filter(|c| c.cluster_version() == Some(kubernetes_version))
                .collect::<Vec<_>>();
            if fits.is_empty() {
                continue;
            }
            if fits.iter().any(|c| c.default_version()) {
                found.default = Some(number.to_owned());
            }
            found.compatible.push(number.to_owned());
        }
        Ok(found)
    }

    async fn update_addon(
        &self,
        session: &MemberSession,
        region: &str,
        cluster: &str,
        name: &str,
        version: &str,
    ) -> Result<(), CloudError> {
        let answer = self
            .eks(session, region)
            .update_addon()
            .cluster_name(cluster)
            .addon_name(name)
            .addon_version(version)
            .resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Overwrite)
            .send()
            .await;
        update_started("eks:UpdateAddon", &format!("add-on {name}"), answer)
    }

    async fn upgrade_insights(
        &self,
        session: &MemberSession,
        region: &str,
        cluster: &str,
        version: &str,
    ) -> Result<Option<Vec<Insight>>, CloudError> {
        let filter = aws_sdk_eks::types::InsightsFilter::builder()
            .categories(aws_sdk_eks::types::Category::UpgradeReadiness)
            .kubernetes_versions(version)
            .build();
        let mut found = Vec::new();
        let mut pages = self
            .eks(session, region)
            .list_insights()
            .cluster_name(cluster)
            .filter(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                // Partitions (and emulators) without insights: the pre-check says so and goes on.
                Err(e)
                    if is_code(&e, "UnknownOperationException")
                        || is_code(&e, "InvalidRequestException")
                        || matches!(&e, SdkError::ServiceError(s) if s.raw().status().as_u16() == 404) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(classify("eks:ListInsights", e)),
            };
            for insight in page.insights() {
                let status = insight.insight_status();
                found.push(Insight {
                    name: insight.name().unwrap_or_default().to_owned(),
                    status: status
                        .and_then(|s| s.status())
                        .map_or("UNKNOWN", |s| s.as_str())
                        .to_owned(),
                    reason: status
                        .and_then(|s| s.reason())
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
        }
        Ok(Some(found))
    }

    async fn find_addon(
        &self,
        session: &MemberSession,
        region: &str,
        cluster: &str,
        name: &str,
    ) -> Result<Option<Addon>, CloudError> {
        match self
            .eks(session, region)
            .describe_addon()
            .cluster_name(cluster)
            .addon_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.addon().map(|a| Addon {
                status: Status::parse(a.status().map(|s| s.as_str()).unwrap_or("")),
                version: a.addon_version().unwrap_or_default().to_owned(),
            })),
            Err(e) if is_code(&e, "ResourceNotFoundException") => Ok(None),
            Err(e) => Err(classify("eks:DescribeAddon", e)),
        }
    }

    async fn create_addon(
        &self,
        session: &MemberSession,
        region: &str,
        spec: &AddonSpec,
    ) -> Result<(), CloudError> {
        self.eks(session, region)
            .create_addon()
            .cluster_name(&spec.cluster)
            .addon_name(&spec.name)
            .set_addon_version(spec.version.clone())
            .set_configuration_values(spec.configuration.clone())
            .resolve_conflicts(aws_sdk_eks::types::ResolveConflicts::Overwrite)
            .set_tags(Some(tag_map(&spec.tags)))
            .send()
            .await
            .map_err(|e| classify("eks:CreateAddon", e))?;
        Ok(())
    }

    async fn ensure_workload_identity(
        &self,
        session: &MemberSession,
        region: &str,
        spec: &WorkloadIdentitySpec,
    ) -> Result<WorkloadIdentity, CloudError> {
        let iam = self.iam(session, region);
        // EKS Pod Identity's agent takes the role and tags the session with the pod's names.
        let role_arn = self
            .ensure_role(
                &iam,
                &session.account_id,
                &spec.role_name,
                "pods.eks.amazonaws.com",
                &["sts:AssumeRole", "sts:TagSession"],
                &[],
                &spec.tags,
            )
            .await?;
        // Setting the inline policy again is a no-op, and brings an edited one back in line.
        iam.put_role_policy()
            .role_name(&spec.role_name)
            .policy_name(WORKLOAD_POLICY_NAME)
            .policy_document(spec.policy.to_json())
            .send()
            .await
            .map_err(|e| classify("iam:PutRolePolicy", e))?;
        let eks = self.eks(session, region);
        let listed = eks
            .list_pod_identity_associations()
            .cluster_name(&spec.cluster)
            .namespace(&spec.namespace)
            .service_account(&spec.service_account)
            .send()
            .await
            .map_err(|e| classify("eks:ListPodIdentityAssociations", e))?;
        if let Some(id) = listed
            .associations()
            .first()
            .and_then(|a| a.association_id())
        {
            let described = eks
                .describe_pod_identity_association()
                .cluster_name(&spec.cluster)
                .association_id(id)
                .send()
                .await
                .map_err(|e| classify("eks:DescribePodIdentityAssociation", e))?;
            let current = described
                .association()
                .and_then(|a| a.role_arn())
                .unwrap_or_default();
            if current != role_arn {
                return Err(CloudError::Permanent(format!(
                    "ServiceAccount {}/{} of cluster {} is associated with {current}, not with {role_arn}: delete that Pod Identity association ({id}) and retry",
                    spec.namespace, spec.service_account, spec.cluster
                )));
            }
            return Ok(WorkloadIdentity {
                role_arn,
                created: false,
            });
        }
        match eks
            .create_pod_identity_association()
            .cluster_name(&spec.cluster)
            .namespace(&spec.namespace)
            .service_account(&spec.service_account)
            .role_arn(&role_arn)
            .client_request_token(&spec.request_token)
            .set_tags(Some(tag_map(&spec.tags)))
            .send()
            .await
        {
            Ok(_) => Ok(WorkloadIdentity {
                role_arn,
                created: true,
            }),
            // A crashed attempt's create got there first (the list above raced it).
            Err(e) if is_code(&e, "ResourceInUseException") => Ok(WorkloadIdentity {
                role_arn,
                created: false,
            }),
            Err(e) => Err(classify("eks:CreatePodIdentityAssociation", e)),
        }
    }

    async fn cluster_api(
        &self,
        session: &MemberSession,
        region: &str,
        cluster: &Cluster,
    ) -> Result<kube::Client, CloudError> {
        if let Some(path) = &self.settings.kubeconfig {
            return kubernetes::client_from_kubeconfig(path, &cluster.name).await;
        }
        let endpoint_override = self.settings.kube_endpoint_override.as_deref().map(|url| {
            kubernetes::EndpointOverride {
                url,
                ca_pem: self.settings.kube_endpoint_ca.as_deref(),
            }
        });
        let endpoint: ClusterEndpoint = kubernetes::endpoint(cluster, region, endpoint_override)?;
        kubernetes::client(&endpoint, &session.credentials)
    }
}
