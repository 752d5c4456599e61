//! The technical blueprint: a typed document (serde), the built-in template, validation with a
//! path to every bad field, YAML and JSON import/export, and the Markdown rendering shared with
//! everyone involved.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::scope::{ConnectedService, Scope};
use crate::auth::Role;
use crate::validation::FieldErrors;
use crate::validation::{is_dns_label, is_region};

/// The Kubernetes minor versions EKS supports for new clusters (`1.N`).
pub const KUBERNETES_MINOR_VERSIONS: std::ops::RangeInclusive<u32> = 31..=35;
/// Instance types Slipway knows the price of (the request form's estimate needs it).
pub const INSTANCE_TYPES: &[&str] = &[
    "t3.medium",
    "t3.large",
    "m6i.large",
    "m6i.xlarge",
    "m6i.2xlarge",
    "m6i.4xlarge",
    "m7i.large",
    "m7i.xlarge",
    "m7i.2xlarge",
    "c6i.large",
    "c6i.xlarge",
    "c6i.2xlarge",
    "r6i.large",
    "r6i.xlarge",
    "r6i.2xlarge",
];
pub const MAX_NODES: u32 = 100;
/// No ephemeral environment may live longer than a week.
pub const MAX_TTL_HOURS: u32 = 168;
pub const DATA_SERVICES: [&str; 3] = ["mongodb", "scylladb", "kafka"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blueprint {
    pub cloud: Cloud,
    pub accounts: Accounts,
    pub devops: Devops,
    pub environment_types: Vec<EnvironmentType>,
    pub logging: Logging,
    pub data_services: DataServices,
    pub service_mesh: ServiceMesh,
    pub security: Security,
    #[serde(default)]
    pub connected_services: Vec<ConnectedService>,
    #[serde(default)]
    pub network: Network,
    #[serde(default)]
    pub access: Access,
}

/// Who may use each environment's cluster besides Slipway (its creator, admin through EKS's
/// bootstrap access entry): IAM roles given EKS access entries (authentication mode `API`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// The role the platform team assumes: cluster admin in every environment
    /// (`AmazonEKSClusterAdminPolicy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_team_role_arn: Option<String>,
    // App teams and their roles are the platform's teams (`teams`), not part of the blueprint:
    // they change with the organization, not with a reviewed design.
}

/// Whether `arn` is an IAM role's ARN (`arn:aws:iam::<12 digits>:role/<path and name>`).
pub fn is_role_arn(arn: &str) -> bool {
    let Some(rest) = arn
        .strip_prefix("arn:aws:iam::")
        .or_else(|| arn.strip_prefix("arn:aws-cn:iam::"))
        .or_else(|| arn.strip_prefix("arn:aws-us-gov:iam::"))
    else {
        return false;
    };
    let Some((account, role)) = rest.split_once(":role/") else {
        return false;
    };
    account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !role.is_empty()
        && role.len() <= 576
        && !role.ends_with('/')
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
}

/// Each environment's VPC: its range carved from the platform's, and who reaches its cluster's
/// API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The IPv4 range the platform's environment VPCs are carved from; no two environments of
    /// the platform get overlapping ones.
    pub cidr: ipnet::Ipv4Net,
    /// The size of each environment's VPC (16 gives 65,536 addresses; 16 to 24).
    pub environment_prefix_length: u8,
    /// The ranges allowed to reach each cluster's public API endpoint (Slipway's own address
    /// among them). Empty: the endpoint is private, reachable only from inside the VPC.
    #[serde(default)]
    pub api_public_cidrs: Vec<ipnet::Ipv4Net>,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            cidr: "10.64.0.0/10".parse().expect("a valid range"),
            environment_prefix_length: 16,
            api_public_cidrs: Vec::new(),
        }
    }
}

impl Network {
    /// How many environment VPCs the platform's range holds.
    pub fn environment_slots(&self) -> u32 {
        let spare = u32::from(
            self.environment_prefix_length
                .saturating_sub(self.cidr.prefix_len()),
        );
        1u32.checked_shl(spare).unwrap_or(u32::MAX)
    }

    /// The VPC range of the environment in `slot` (0, 1, …), if the platform's range has it.
    pub fn environment_cidr(&self, slot: u32) -> Option<ipnet::Ipv4Net> {
        self.cidr
            .subnets(self.environment_prefix_length)
            .ok()?
            .nth(usize::try_from(slot).ok()?)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cloud {
    pub vendor: String,
    pub region: String,
}

/// Account names: the parent (management) account, the DevOps account, and the prefix of each
/// environment's account (`<prefix>-<environment>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    pub parent: String,
    pub devops: String,
    pub environment_prefix: String,
    /// What teardown does with an environment's account once its cluster is gone.
    #[serde(default)]
    pub on_teardown: AccountTeardown,
    /// Service control policies (by name, existing in the organization) attached to the
    /// platform's organizational unit, so they bind every account of the platform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_control_policies: Vec<String>,
    /// How many accounts the platform keeps for its ephemeral environments, which lease one
    /// and give it back emptied instead of creating and closing an account each (AWS closes
    /// at most 10% of an organization's accounts a month). 0: each ephemeral environment has
    /// its own account, as long-lived ones do.
    #[serde(default = "default_ephemeral_pool_size")]
    pub ephemeral_pool_size: u32,
}

fn default_ephemeral_pool_size() -> u32 {
    DEFAULT_EPHEMERAL_POOL_SIZE
}

/// What a platform's account pool holds unless its blueprint says otherwise.
pub const DEFAULT_EPHEMERAL_POOL_SIZE: u32 = 3;
/// Organizations' default quota is 10 accounts per organization; a pool beyond this many is
/// a typing mistake more often than a plan.
pub const MAX_EPHEMERAL_POOL_SIZE: u32 = 50;

/// `close` (Organizations CloseAccount: suspended, then deleted by AWS after 90 days) or
/// `retain` (kept, for audits that need the account's logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountTeardown {
    #[default]
    Close,
    Retain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DevopsTool {
    /// Spinnaker on its own EKS cluster in the DevOps account.
    Spinnaker,
    Jenkins,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devops {
    pub tool: DevopsTool,
    /// Where people open the delivery tool (Deck, Jenkins), as the platform team publishes it:
    /// Slipway keeps the tool inside its cluster and shows this address in the hand-over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub kubernetes_version: String,
    pub node_group: NodeGroup,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroup {
    pub instance_types: Vec<String>,
    pub min_size: u32,
    pub max_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    LongLived,
    Ephemeral,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::LongLived => "long_lived",
            Lifecycle::Ephemeral => "ephemeral",
        }
    }

    pub fn parse(text: &str) -> Option<Lifecycle> {
        [Lifecycle::LongLived, Lifecycle::Ephemeral]
            .into_iter()
            .find(|l| l.as_str() == text)
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::text_column!(Lifecycle, "lifecycle");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ttl {
    pub default_hours: u32,
    pub max_hours: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub approvals_required: u32,
    /// Roles whose members may approve or reject (never the requester).
    #[serde(default = "default_approvers")]
    pub approvers: Vec<Role>,
    /// Requests estimated below this monthly cost are approved without a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_approve_below_monthly_usd: Option<u32>,
    /// Hours within which the platform team aims to decide.
    pub sla_hours: u32,
    /// Requests still pending after this many hours expire.
    pub expire_after_hours: u32,
}

fn default_approvers() -> Vec<Role> {
    vec![Role::PlatformEngineer]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentType {
    pub name: String,
    pub lifecycle: Lifecycle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Ttl>,
    pub kubernetes_version: String,
    pub node_group: NodeGroup,
    #[serde(default)]
    pub data_services: Vec<String>,
    /// Who may request this type.
    pub requesters: Vec<Role>,
    pub approval: Approval,
    /// What each environment of this type may spend in a month (actual spend, from Cost
    /// Explorer); warnings at 80 % and 100 %. None: no budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_month_usd: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    pub fluent_bit: bool,
    /// Where Fluent Bit and the collector ship logs.
    pub central_store: CentralStore,
    /// The domain when `central_store` is `opensearch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opensearch: Option<OpenSearch>,
    pub opentelemetry: bool,
    pub metrics: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CentralStore {
    /// CloudWatch Logs in each environment's own account (group `/slipway/<platform>/<env>`).
    Cloudwatch,
    /// An Amazon OpenSearch Service domain, often a central one in a log-archive account.
    Opensearch,
}

impl CentralStore {
    pub fn as_str(self) -> &'static str {
        match self {
            CentralStore::Cloudwatch => "cloudwatch",
            CentralStore::Opensearch => "opensearch",
        }
    }
}

/// An Amazon OpenSearch Service domain that the environments' Fluent Bit and collector write to
/// with SigV4 (their Pod Identity roles are granted `es:ESHttp*` on `domain_arn`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSearch {
    /// `https://search-logs-abc123.eu-west-1.es.amazonaws.com`
    pub endpoint: String,
    /// `arn:aws:es:eu-west-1:111122223333:domain/logs`
    pub domain_arn: String,
}

impl OpenSearch {
    /// The endpoint's host name (what the shippers connect to on port 443).
    pub fn host(&self) -> &str {
        self.endpoint
            .strip_prefix("https://")
            .unwrap_or(&self.endpoint)
            .trim_end_matches('/')
    }
}

/// Why the DevOps tool's address is unusable as a link, if it is: an `https://` URL with a host
/// and no credentials (it is shown to every team; Slipway never requests it).
fn check_tool_url(url: &str) -> Result<(), &'static str> {
    const MESSAGE: &str = "Use the tool's https:// address, e.g. https://spinnaker.example.com (no user name or password in it).";
    if url.len() > 2048 || url.chars().any(char::is_control) {
        return Err(MESSAGE);
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| MESSAGE)?;
    let plain = parsed.scheme() == "https"
        && parsed.host_str().is_some_and(|h| !h.is_empty())
        && parsed.username().is_empty()
        && parsed.password().is_none();
    if plain { Ok(()) } else { Err(MESSAGE) }
}

/// Why an OpenSearch endpoint is unusable, if it is: HTTPS (SigV4 needs it), a host name and
/// nothing else, so no credentials, path or port can ride along.
fn check_opensearch_endpoint(endpoint: &str) -> Result<(), &'static str> {
    const MESSAGE: &str = "Use the domain's HTTPS endpoint, e.g. https://search-logs-abc123.eu-west-1.es.amazonaws.com (no path, port or credentials).";
    let host = endpoint
        .strip_prefix("https://")
        .ok_or(MESSAGE)?
        .trim_end_matches('/');
    let labels_ok = host.split('.').count() >= 2
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        });
    if labels_ok && host.len() <= 253 {
        Ok(())
    } else {
        Err(MESSAGE)
    }
}

/// Why an OpenSearch domain ARN is unusable, if it is.
fn check_domain_arn(arn: &str) -> Result<(), &'static str> {
    const MESSAGE: &str =
        "Use the domain's ARN, e.g. arn:aws:es:eu-west-1:111122223333:domain/logs.";
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return Err(MESSAGE);
    };
    let domain = resource.strip_prefix("domain/").ok_or(MESSAGE)?;
    let ok = prefix == "arn"
        && matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
        && service == "es"
        && is_region(region)
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && (3..=28).contains(&domain.len())
        && domain.starts_with(|c: char| c.is_ascii_lowercase())
        && domain
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok { Ok(()) } else { Err(MESSAGE) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Size {
    Small,
    Medium,
    Large,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataService {
    pub enabled: bool,
    pub size: Size,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataServices {
    pub mongodb: DataService,
    pub scylladb: DataService,
    pub kafka: DataService,
}

impl DataServices {
    pub fn get(&self, name: &str) -> Option<&DataService> {
        match name {
            "mongodb" => Some(&self.mongodb),
            "scylladb" => Some(&self.scylladb),
            "kafka" => Some(&self.kafka),
            _ => None,
        }
    }

    pub fn enabled(&self) -> impl Iterator<Item = &'static str> + '_ {
        DATA_SERVICES
            .into_iter()
            .filter(|name| self.get(name).is_some_and(|s| s.enabled))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mtls {
    Strict,
    Permissive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceMesh {
    pub istio: bool,
    pub mtls: Mtls,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    pub namespaces_per_team: bool,
    pub default_deny_network_policies: bool,
    pub resource_quotas: bool,
    /// Security and compliance requirements, carried over from the scope.
    #[serde(default)]
    pub requirements: Vec<String>,
}

const TEMPLATE: &str = include_str!("blueprint_template.yaml");

impl Blueprint {
    /// The built-in template, adapted to the scope: region, account names, connected services
    /// and security requirements.
    pub fn from_template(slug: &str, scope: Option<&Scope>) -> Blueprint {
        let mut blueprint =
            Blueprint::from_yaml(TEMPLATE).expect("the built-in template is a valid blueprint");
        blueprint.accounts = Accounts {
            parent: format!("{slug}-parent"),
            devops: format!("{slug}-devops"),
            environment_prefix: slug.to_owned(),
            on_teardown: AccountTeardown::Close,
            service_control_policies: Vec::new(),
            ephemeral_pool_size: DEFAULT_EPHEMERAL_POOL_SIZE,
        };
        if let Some(scope) = scope {
            if let Some(region) = scope.regions.first() {
                blueprint.cloud.region = region.clone();
            }
            blueprint.connected_services = scope.connected_services.clone();
            blueprint.security.requirements = scope.security.clone();
        }
        blueprint
    }

    /// Parses and validates YAML; errors carry the field path and, for what is not valid YAML,
    /// the line, the column and what to change.
    pub fn from_yaml(text: &str) -> Result<Blueprint, FieldErrors> {
        let blueprint: Blueprint = super::parse::yaml(text).map_err(|e| FieldErrors(vec![e]))?;
        blueprint.validate()?;
        Ok(blueprint)
    }

    /// Parses and validates a JSON document (the API's `document`).
    pub fn from_json(value: serde_json::Value) -> Result<Blueprint, FieldErrors> {
        let blueprint: Blueprint = super::parse::json(value).map_err(|e| FieldErrors(vec![e]))?;
        blueprint.validate()?;
        Ok(blueprint)
    }

    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).expect("a blueprint always serialises")
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a blueprint always serialises")
    }

    pub fn environment_type(&self, name: &str) -> Option<&EnvironmentType> {
        self.environment_types.iter().find(|e| e.name == name)
    }

    /// Every rule a document must meet, each failure with the path of its field.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::default();
        if self.cloud.vendor != "aws" {
            errors.add("cloud.vendor", "Only `aws` is supported for now.");
        }
        if !is_region(&self.cloud.region) {
            errors.add("cloud.region", "Use an AWS region such as eu-west-1.");
        }
        for (field, name) in [
            ("accounts.parent", &self.accounts.parent),
            ("accounts.devops", &self.accounts.devops),
            (
                "accounts.environment_prefix",
                &self.accounts.environment_prefix,
            ),
        ] {
            if !is_dns_label(name) {
                errors.add(
                    field,
                    "Use lowercase letters, digits and dashes (1–40 characters).",
                );
            }
        }
        let network = &self.network;
        // At most 65,536 environment ranges: the slot is chosen among them in the database.
        if !(16..=24).contains(&network.environment_prefix_length)
            || network.environment_prefix_length < network.cidr.prefix_len()
            || network.environment_prefix_length - network.cidr.prefix_len() > 16
        {
            errors.add(
                "network.environment_prefix_length",
                format!(
                    "Use 16 to 24, no less than the platform range's /{0} and at most /{1}.",
                    network.cidr.prefix_len(),
                    network.cidr.prefix_len() + 16
                ),
            );
        }
        if network.cidr.network() != network.cidr.addr() {
            errors.add(
                "network.cidr",
                format!("Use the range's first address: {}.", network.cidr.trunc()),
            );
        }
        for (i, range) in network.api_public_cidrs.iter().enumerate() {
            if range.network() != range.addr() {
                errors.add(
                    &format!("network.api_public_cidrs[{i}]"),
                    format!("Use the range's first address: {}.", range.trunc()),
                );
            }
        }
        for (i, name) in self.accounts.service_control_policies.iter().enumerate() {
            // Organizations' limits for a policy name; a comma would split it in the form's list.
            if name.trim().is_empty()
                || name.chars().count() > 128
                || name.chars().any(|c| c.is_control() || c == ',')
            {
                errors.add(
                    &format!("accounts.service_control_policies[{i}]"),
                    "Use the policy's name as Organizations shows it: 1–128 characters, no commas or control characters.",
                );
            }
        }
        const ROLE_ARN: &str =
            "Use an IAM role's ARN: arn:aws:iam::<12-digit account>:role/<name>.";
        if let Some(arn) = &self.access.platform_team_role_arn
            && !is_role_arn(arn)
        {
            errors.add("access.platform_team_role_arn", ROLE_ARN);
        }
        if self.accounts.ephemeral_pool_size > MAX_EPHEMERAL_POOL_SIZE {
            errors.add(
                "accounts.ephemeral_pool_size",
                format!(
                    "Use 0 (no pool: an account per ephemeral environment) to {MAX_EPHEMERAL_POOL_SIZE}."
                ),
            );
        }
        check_kubernetes(
            &mut errors,
            "devops.kubernetes_version",
            &self.devops.kubernetes_version,
        );
        check_node_group(&mut errors, "devops.node_group", &self.devops.node_group);
        if let Some(url) = &self.devops.url
            && let Err(message) = check_tool_url(url)
        {
            errors.add("devops.url", message);
        }

        if self.environment_types.is_empty() {
            errors.add("environment_types", "Define at least one environment type.");
        }
        let mut seen = BTreeSet::new();
        for (i, env) in self.environment_types.iter().enumerate() {
            let at = |field: &str| format!("environment_types[{i}].{field}");
            if !is_dns_label(&env.name) {
                errors.add(
                    &at("name"),
                    "Use lowercase letters, digits and dashes (1–40 characters).",
                );
            } else if !seen.insert(env.name.as_str()) {
                errors.add(
                    &at("name"),
                    format!("Another environment type is already called `{}`.", env.name),
                );
            }
            match (env.lifecycle, &env.ttl) {
                (Lifecycle::Ephemeral, None) => errors.add(
                    &at("ttl"),
                    "An ephemeral environment type needs a ttl (default_hours, max_hours).",
                ),
                (Lifecycle::LongLived, Some(_)) => {
                    errors.add(&at("ttl"), "Only ephemeral environment types have a ttl.")
                }
                (Lifecycle::Ephemeral, Some(ttl)) => {
                    if ttl.max_hours == 0 || ttl.max_hours > MAX_TTL_HOURS {
                        errors.add(
                            &at("ttl.max_hours"),
                            format!("Use 1 to {MAX_TTL_HOURS} hours."),
                        );
                    }
                    if ttl.default_hours == 0 || ttl.default_hours > ttl.max_hours {
                        errors.add(
                            &at("ttl.default_hours"),
                            "Use at least 1 hour and no more than max_hours.",
                        );
                    }
                }
                (Lifecycle::LongLived, None) => {}
            }
            check_kubernetes(
                &mut errors,
                &at("kubernetes_version"),
                &env.kubernetes_version,
            );
            check_node_group(&mut errors, &at("node_group"), &env.node_group);
            for (j, service) in env.data_services.iter().enumerate() {
                match self.data_services.get(service) {
                    None => errors.add(
                        &at(&format!("data_services[{j}]")),
                        format!(
                            "`{service}` is not a data service; use mongodb, scylladb or kafka."
                        ),
                    ),
                    Some(s) if !s.enabled => errors.add(
                        &at(&format!("data_services[{j}]")),
                        format!("`{service}` is not enabled under data_services."),
                    ),
                    Some(_) => {}
                }
            }
            if env.requesters.is_empty() {
                errors.add(
                    &at("requesters"),
                    "Name at least one role that may request it.",
                );
            }
            if env.approval.approvers.is_empty() {
                errors.add(
                    &at("approval.approvers"),
                    "Name at least one role that may approve requests.",
                );
            }
            if !(1..=5).contains(&env.approval.approvals_required) {
                errors.add(&at("approval.approvals_required"), "Use 1 to 5 approvals.");
            }
            if !(1..=720).contains(&env.approval.sla_hours) {
                errors.add(&at("approval.sla_hours"), "Use 1 to 720 hours.");
            }
            if env.approval.expire_after_hours < env.approval.sla_hours
                || env.approval.expire_after_hours > 2160
            {
                errors.add(
                    &at("approval.expire_after_hours"),
                    "Use sla_hours up to 2160 hours (90 days).",
                );
            }
            if env
                .budget_month_usd
                .is_some_and(|b| !(1..=10_000_000).contains(&b))
            {
                errors.add(
                    &at("budget_month_usd"),
                    "Use a whole number of dollars from 1 to 10,000,000.",
                );
            }
            if env.approval.auto_approve_below_monthly_usd.is_some()
                && env.lifecycle != Lifecycle::Ephemeral
            {
                errors.add(
                    &at("approval.auto_approve_below_monthly_usd"),
                    "Only ephemeral environment types may be approved automatically.",
                );
            }
        }
        match (self.logging.central_store, &self.logging.opensearch) {
            (CentralStore::Opensearch, None) => errors.add(
                "logging.opensearch.endpoint",
                "Give the OpenSearch domain's endpoint and ARN when logs go to opensearch.",
            ),
            (CentralStore::Opensearch, Some(domain)) => {
                if let Err(m) = check_opensearch_endpoint(&domain.endpoint) {
                    errors.add("logging.opensearch.endpoint", m);
                }
                if let Err(m) = check_domain_arn(&domain.domain_arn) {
                    errors.add("logging.opensearch.domain_arn", m);
                }
            }
            (CentralStore::Cloudwatch, Some(_)) => errors.add(
                "logging.opensearch",
                "Logs go to cloudwatch: remove the OpenSearch domain or set central_store to opensearch.",
            ),
            (CentralStore::Cloudwatch, None) => {}
        }
        super::scope::check_connected_services(&mut errors, &self.connected_services);
        super::scope::check_requirements(
            &mut errors,
            "security.requirements",
            &self.security.requirements,
        );
        errors.into_result()
    }

    /// A readable document for everyone involved.
    pub fn to_markdown(&self, platform_name: &str, number: i32, state: &str) -> String {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# {platform_name}: technical blueprint, revision {number} ({state})\n"
        );
        let _ = writeln!(md, "## Cloud and accounts\n");
        let _ = writeln!(
            md,
            "- Cloud: {} in {}",
            self.cloud.vendor.to_uppercase(),
            self.cloud.region
        );
        let _ = writeln!(md, "- Parent account: `{}`", self.accounts.parent);
        let _ = writeln!(md, "- DevOps account: `{}`", self.accounts.devops);
        let _ = writeln!(
            md,
            "- One account per environment: `{}-<environment>`",
            self.accounts.environment_prefix
        );
        match self.accounts.ephemeral_pool_size {
            0 => {}
            size => {
                let _ = writeln!(
                    md,
                    "- Ephemeral environments lease one of {size} pooled accounts (`{}-pool-<n>`), emptied and given back at teardown",
                    self.accounts.environment_prefix
                );
            }
        }
        let _ = writeln!(
            md,
            "- Organizational units: one named after the platform, with `devops`, `long-lived` and `ephemeral` beneath it"
        );
        if !self.accounts.service_control_policies.is_empty() {
            let _ = writeln!(
                md,
                "- Service control policies on the platform's unit: {}",
                self.accounts
                    .service_control_policies
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        md.push('\n');
        let _ = writeln!(md, "## DevOps environment\n");
        let tool = match self.devops.tool {
            DevopsTool::Spinnaker => "Spinnaker on a dedicated EKS cluster",
            DevopsTool::Jenkins => "Jenkins",
        };
        let _ = writeln!(
            md,
            "- {tool}, Kubernetes {}, nodes {} ({}–{})\n",
            self.devops.kubernetes_version,
            self.devops.node_group.instance_types.join(", "),
            self.devops.node_group.min_size,
            self.devops.node_group.max_size
        );
        let _ = writeln!(md, "## Environment types\n");
        let _ = writeln!(
            md,
            "| name | lifecycle | TTL (default / max) | Kubernetes | nodes | data services | approvals |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        for env in &self.environment_types {
            let ttl = env.ttl.as_ref().map_or("—".to_owned(), |t| {
                format!("{}h / {}h", t.default_hours, t.max_hours)
            });
            let lifecycle = match env.lifecycle {
                Lifecycle::LongLived => "long-lived",
                Lifecycle::Ephemeral => "ephemeral",
            };
            let auto = env
                .approval
                .auto_approve_below_monthly_usd
                .map_or(String::new(), |usd| format!(", auto under ${usd}/month"));
            let _ = writeln!(
                md,
                "| {} | {lifecycle} | {ttl} | {} | {} ({}–{}) | {} | {}{auto} |",
                env.name,
                env.kubernetes_version,
                env.node_group.instance_types.join(", "),
                env.node_group.min_size,
                env.node_group.max_size,
                if env.data_services.is_empty() {
                    "—".to_owned()
                } else {
                    env.data_services.join(", ")
                },
                env.approval.approvals_required,
            );
        }
        let _ = writeln!(md, "\n## Logging and diagnostics\n");
        let _ = writeln!(
            md,
            "- Fluent Bit to {}: {}",
            match &self.logging.opensearch {
                Some(domain) => format!("OpenSearch ({})", domain.host()),
                None => "CloudWatch Logs".to_owned(),
            },
            yes(self.logging.fluent_bit)
        );
        let _ = writeln!(
            md,
            "- OpenTelemetry collector: {}",
            yes(self.logging.opentelemetry)
        );
        let _ = writeln!(md, "- Metrics: {}\n", yes(self.logging.metrics));
        let _ = writeln!(md, "## Data services\n");
        for name in DATA_SERVICES {
            if let Some(s) = self.data_services.get(name) {
                let size = match s.size {
                    Size::Small => "small",
                    Size::Medium => "medium",
                    Size::Large => "large",
                };
                let _ = writeln!(md, "- {name}: {}", if s.enabled { size } else { "off" });
            }
        }
        let _ = writeln!(md, "\n## Service mesh\n");
        let mtls = match self.service_mesh.mtls {
            Mtls::Strict => "strict",
            Mtls::Permissive => "permissive",
        };
        let _ = writeln!(
            md,
            "- Istio: {}{}\n",
            yes(self.service_mesh.istio),
            if self.service_mesh.istio {
                format!(", mutual TLS {mtls}")
            } else {
                String::new()
            }
        );
        let network = &self.network;
        let _ = writeln!(md, "## Network\n");
        let _ = writeln!(
            md,
            "- A VPC per environment: a /{} from `{}` ({} environments at most), private subnets for nodes and public ones for load balancers in two zones, a NAT gateway",
            network.environment_prefix_length,
            network.cidr,
            network.environment_slots()
        );
        let _ = writeln!(
            md,
            "- Cluster API: private{}\n",
            if network.api_public_cidrs.is_empty() {
                " only".to_owned()
            } else {
                format!(
                    ", and public from {}",
                    network
                        .api_public_cidrs
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        let _ = writeln!(md, "## Security\n");
        let _ = writeln!(
            md,
            "- Namespaces per team: {}",
            yes(self.security.namespaces_per_team)
        );
        let _ = writeln!(
            md,
            "- Default-deny network policies: {}",
            yes(self.security.default_deny_network_policies)
        );
        let _ = writeln!(
            md,
            "- Resource quotas: {}",
            yes(self.security.resource_quotas)
        );
        for requirement in &self.security.requirements {
            let _ = writeln!(md, "- {requirement}");
        }
        let _ = writeln!(md, "\n## Cluster access\n");
        let _ = writeln!(
            md,
            "- EKS access entries (authentication mode API); Slipway is each cluster's creator and admin"
        );
        if let Some(arn) = &self.access.platform_team_role_arn {
            let _ = writeln!(md, "- Platform team: `{arn}`, cluster admin");
        }
        let _ = writeln!(
            md,
            "- App teams: each team's role (on the platform's Teams page), in its namespaces only"
        );
        if !self.connected_services.is_empty() {
            let _ = writeln!(md, "\n## Connected services\n");
            for s in &self.connected_services {
                let _ = writeln!(
                    md,
                    "- **{}** ({}) {} {}",
                    s.name, s.kind, s.endpoint, s.notes
                );
            }
        }
        md
    }
}

fn check_kubernetes(errors: &mut FieldErrors, field: &str, version: &str) {
    let minor = version
        .strip_prefix("1.")
        .and_then(|m| m.parse::<u32>().ok());
    if !minor.is_some_and(|m| KUBERNETES_MINOR_VERSIONS.contains(&m)) {
        errors.add(
            field,
            format!(
                "Use a Kubernetes version EKS supports: 1.{} to 1.{} (quoted, e.g. \"1.35\").",
                KUBERNETES_MINOR_VERSIONS.start(),
                KUBERNETES_MINOR_VERSIONS.end()
            ),
        );
    }
}

fn check_node_group(errors: &mut FieldErrors, field: &str, group: &NodeGroup) {
    if group.instance_types.is_empty() {
        errors.add(
            &format!("{field}.instance_types"),
            "Allow at least one instance type.",
        );
    }
    for (i, t) in group.instance_types.iter().enumerate() {
        if !INSTANCE_TYPES.contains(&t.as_str()) {
            errors.add(
                &format!("{field}.instance_types[{i}]"),
                format!(
                    "`{t}` is not an instance type Slipway can price; use one of {}.",
                    INSTANCE_TYPES.join(", ")
                ),
            );
        }
    }
    if group.min_size < 1 || group.min_size > MAX_NODES {
        errors.add(
            &format!("{field}.min_size"),
            format!("Use 1 to {MAX_NODES} nodes."),
        );
    }
    if group.max_size > MAX_NODES || group.max_size < group.min_size {
        errors.add(
            &format!("{field}.max_size"),
            format!(
                "Use at least min_size ({}) and at most {MAX_NODES} nodes.",
                group.min_size
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_valid_and_round_trips() {
        let b = Blueprint::from_template("payments", None);
        assert_eq!(b.accounts.parent, "payments-parent");
        assert_eq!(b.environment_types.len(), 4);
        assert_eq!(Blueprint::from_yaml(&b.to_yaml()).unwrap(), b);
        assert_eq!(Blueprint::from_json(b.to_json()).unwrap(), b);
        let md = b.to_markdown("Payments", 1, "draft");
        assert!(md.contains("| perf | ephemeral | 8h / 72h |"), "{md}");
    }

    /// Each bad document: a change to the template's YAML and the exact field path reported.
    #[test]
    fn bad_documents_name_the_field() {
        let template = Blueprint::from_template("p", None).to_yaml();
        let cases: &[(&str, &str, &str)] = &[
            ("region: eu-west-1", "region: europe", "cloud.region"),
            (
                "  tool: spinnaker",
                "  tool: spinnaker\n  colour: blue",
                "devops.colour",
            ),
            ("- name: perf", "- name: dev", "environment_types[2].name"),
            (
                "  on_teardown: close",
                "  on_teardown: close\n  service_control_policies: [deny-all, 'a,b']",
                "accounts.service_control_policies[1]",
            ),
            (
                "access: {}",
                "access:\n  platform_team_role_arn: arn:aws:iam::1234:role/admins",
                "access.platform_team_role_arn",
            ),
            (
                "- name: perf\n  lifecycle: ephemeral",
                "- name: perf\n  lifecycle: forever",
                "environment_types[2].lifecycle",
            ),
            (
                "    max_hours: 72",
                "    max_hours: 500",
                "environment_types[2].ttl.max_hours",
            ),
            (
                "- name: perf\n  lifecycle: ephemeral",
                "- name: perf\n  budget_month_usd: 0\n  lifecycle: ephemeral",
                "environment_types[2].budget_month_usd",
            ),
            (
                "    min_size: 3\n    max_size: 20",
                "    min_size: 3\n    max_size: 2",
                "environment_types[2].node_group.max_size",
            ),
            (
                "  data_services:\n  - mongodb\n  - kafka",
                "  data_services:\n  - mongodb\n  - redis",
                "environment_types[0].data_services[1]",
            ),
            (
                "- name: dev\n  lifecycle: long_lived\n  kubernetes_version: '1.35'",
                "- name: dev\n  lifecycle: long_lived\n  kubernetes_version: '1.12'",
                "environment_types[0].kubernetes_version",
            ),
            (
                "- name: dev\n  lifecycle: long_lived",
                "- name: dev\n  lifecycle: long_lived\n  ttl:\n    default_hours: 1\n    max_hours: 2",
                "environment_types[0].ttl",
            ),
        ];
        for (from, to, field) in cases {
            assert!(
                template.contains(from),
                "the template YAML has {from:?}:\n{template}"
            );
            let bad = template.replacen(from, to, 1);
            let errors = Blueprint::from_yaml(&bad).expect_err(field);
            assert!(
                errors.0.iter().any(|e| e.field == *field),
                "expected an error at {field}, got {:?}",
                errors.0
            );
        }
    }

    #[test]
    fn the_devops_tools_address_is_a_plain_https_link() {
        let errors_of = |url: &str| {
            let mut b = Blueprint::from_template("p", None);
            b.devops.url = Some(url.to_owned());
            match b.validate() {
                Ok(()) => vec![],
                Err(errors) => errors.0.into_iter().map(|e| e.field).collect::<Vec<_>>(),
            }
        };
        assert!(errors_of("https://spinnaker.example.com").is_empty());
        assert!(errors_of("https://ci.example.com:8443/jenkins/").is_empty());
        for refused in [
            "http://spinnaker.example.com",
            "javascript:alert(1)",
            "https://admin:pw@spinnaker.example.com",
            "https://spinnaker.example.com/\u{7}",
            "spinnaker.example.com",
            "",
        ] {
            assert_eq!(errors_of(refused), ["devops.url"], "{refused:?}");
        }
        assert!(
            Blueprint::from_template("p", None).devops.url.is_none(),
            "optional"
        );
    }

    #[test]
    fn logs_go_to_cloudwatch_or_to_a_named_opensearch_domain() {
        let errors_of = |central_store, endpoint: Option<&str>, domain_arn: &str| {
            let mut b = Blueprint::from_template("p", None);
            b.logging.central_store = central_store;
            b.logging.opensearch = endpoint.map(|endpoint| OpenSearch {
                endpoint: endpoint.to_owned(),
                domain_arn: domain_arn.to_owned(),
            });
            match b.validate() {
                Ok(()) => vec![],
                Err(errors) => errors.0.into_iter().map(|e| e.field).collect::<Vec<_>>(),
            }
        };
        let arn = "arn:aws:es:eu-west-1:111122223333:domain/logs";
        let endpoint = Some("https://search-logs-abc123.eu-west-1.es.amazonaws.com");
        assert!(errors_of(CentralStore::Cloudwatch, None, "").is_empty());
        assert!(errors_of(CentralStore::Opensearch, endpoint, arn).is_empty());
        assert_eq!(
            errors_of(CentralStore::Opensearch, None, ""),
            ["logging.opensearch.endpoint"]
        );
        assert_eq!(
            errors_of(CentralStore::Cloudwatch, endpoint, arn),
            ["logging.opensearch"]
        );
        for bad in [
            "http://search-logs.eu-west-1.es.amazonaws.com",
            "https://user:pw@search-logs.eu-west-1.es.amazonaws.com",
            "https://search-logs.eu-west-1.es.amazonaws.com/path",
            "https://search-logs.eu-west-1.es.amazonaws.com:8443",
            "https://localhost",
            "https://search-logs.\u{7}.com",
        ] {
            assert_eq!(
                errors_of(CentralStore::Opensearch, Some(bad), arn),
                ["logging.opensearch.endpoint"],
                "{bad}"
            );
        }
        for bad in [
            "arn:aws:s3:::logs",
            "arn:aws:es:eu-west-1:1111:domain/logs",
            "arn:aws:es:eu-west-1:111122223333:collection/logs",
            "arn:aws:es:eu-west-1:111122223333:domain/Logs",
        ] {
            assert_eq!(
                errors_of(CentralStore::Opensearch, endpoint, bad),
                ["logging.opensearch.domain_arn"],
                "{bad}"
            );
        }
        let yaml = Blueprint::from_template("p", None)
            .to_yaml()
            .replace("central_store: cloudwatch", "central_store: loki");
        let errors = Blueprint::from_yaml(&yaml).unwrap_err();
        assert_eq!(errors.0[0].field, "logging.central_store");
    }

    #[test]
    fn references_to_disabled_data_services_are_refused() {
        let mut b = Blueprint::from_template("p", None);
        b.data_services.kafka.enabled = false;
        let errors = b.validate().unwrap_err();
        assert!(
            errors
                .0
                .iter()
                .any(|e| e.field == "environment_types[0].data_services[1]"
                    && e.message.contains("not enabled"))
        );
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let errors = Blueprint::from_yaml("cloud:\n  vendor: aws\n   region: [").unwrap_err();
        assert_eq!(errors.0[0].field, "cloud.region");
        assert!(
            errors.0[0].message.starts_with("Line 3, column 10: "),
            "{:?}",
            errors.0
        );
    }
}
