//! Configuration: one typed struct, filled from (lowest to highest precedence) built-in defaults,
//! an optional `slipway.toml`, `SLIPWAY_<KEY>` environment variables and command-line flags.
//!
//! Every key is documented in the README's configuration table; keep the two in step. Unknown keys
//! (in the file or as `SLIPWAY_*` variables) are errors, because a misspelt setting that is silently
//! ignored is worse than one that stops the start.

use crate::auth::oidc::{OidcConfig, RoleMapping};
pub use crate::secret::Secret;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Errors in configuration always name the key and say what was expected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("unknown environment variable {name}; known SLIPWAY_* keys are: {known}")]
    UnknownEnv { name: String, known: String },
    #[error("invalid value {value:?} for {key}: expected {expected}")]
    Invalid {
        key: String,
        value: String,
        expected: &'static str,
    },
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines, coloured when stderr is a terminal.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Which cloud the provisioning steps talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloudMode {
    /// An in-process cloud for the embedded default and demos; always labelled in the UI.
    Simulated,
    /// AWS (Organizations, STS, EKS) and the Kubernetes API of each new cluster.
    Aws,
}

/// The resolved configuration every subcommand runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None` selects the embedded PostgreSQL cluster under `data_dir/postgres`.
    pub database_url: Option<String>,
    /// Where to look for `initdb`, `pg_ctl` and `postgres`; `None` searches PATH and the usual
    /// install locations.
    pub postgres_bin_dir: Option<PathBuf>,
    pub db_max_connections: u32,
    pub log_format: LogFormat,
    /// A `tracing` filter directive such as `info` or `slipway=debug,tower_http=info`.
    pub log_level: String,
    pub request_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Job tasks run by this process (`serve` and `worker`); 0 in `serve` leaves jobs to
    /// separate `slipway worker` processes.
    pub workers: usize,
    /// How long finished jobs are kept before the periodic cleanup deletes them.
    pub job_retention: Duration,
    /// How often every ready environment is compared with its plan (drift).
    pub drift_interval: Duration,
    pub cloud: CloudMode,
    /// The domain of the root e-mail addresses of created accounts (`<account>@<domain>`).
    pub account_email_domain: String,
    /// How long the simulated cloud keeps a resource CREATING (clusters twice as long).
    pub simulated_delay: Duration,
    /// The AWS connection (with `cloud = aws`).
    pub aws: crate::provision::aws::AwsSettings,
    /// The URL people reach Slipway at; `None` derives it from the listen address. Cookies are
    /// `Secure` when it is https, and the single-sign-on redirect URL is built from it.
    pub public_url: Option<String>,
    /// Whether e-mail and password sign-in is offered (it can be turned off when SSO is on).
    pub local_login: bool,
    pub session_idle_timeout: Duration,
    pub session_max_age: Duration,
    /// Single sign-on, when `oidc_issuer` is set.
    pub oidc: Option<OidcConfig>,
    /// Address ranges webhooks may reach although they are loopback, private or link-local
    /// (refused by default, see `outbound`): e.g. `10.20.0.0/16` for an internal chat server.
    pub webhook_allowed_ranges: Vec<ipnet::IpNet>,
    /// Reverse proxies (load balancers, ingress controllers) whose `X-Forwarded-For` is
    /// believed: the client address of rate limits and the audit log comes from it only when
    /// the connection is from one of these. Empty: the connection's own address, always.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// An OpenTelemetry collector's OTLP/HTTP address (traces go to `<it>/v1/traces`);
    /// `None`: no traces.
    pub otlp_endpoint: Option<String>,
    /// Where environments' repositories live (the `git_*` keys); `None`: bare repositories
    /// under `data_dir/git`, see [`Config::git_host`].
    pub git: Option<crate::repositories::GitHost>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from(".slipway"),
            database_url: None,
            postgres_bin_dir: None,
            db_max_connections: 10,
            log_format: LogFormat::Human,
            log_level: "info".to_owned(),
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            workers: 8,
            job_retention: Duration::from_secs(14 * 86_400),
            drift_interval: Duration::from_secs(6 * 3600),
            cloud: CloudMode::Simulated,
            account_email_domain: "example.com".into(),
            simulated_delay: Duration::from_secs(3),
            aws: crate::provision::aws::AwsSettings {
                role_arn: None,
                organizational_unit: None,
                member_role_name: "OrganizationAccountAccessRole".into(),
                cluster_role_name: "SlipwayEksClusterRole".into(),
                node_role_name: "SlipwayEksNodeRole".into(),
                kube_endpoint_override: None,
                kube_endpoint_ca: None,
                kubeconfig: None,
            },
            public_url: None,
            local_login: true,
            session_idle_timeout: Duration::from_secs(12 * 3600),
            session_max_age: Duration::from_secs(7 * 86_400),
            oidc: None,
            webhook_allowed_ranges: Vec::new(),
            trusted_proxies: Vec::new(),
            otlp_endpoint: None,
            git: None,
        }
    }
}

/// The keys as they appear in `slipway.toml`; every field optional, unknown ones rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    postgres_bin_dir: Option<PathBuf>,
    db_max_connections: Option<toml::Value>,
    log_format: Option<String>,
    log_level: Option<String>,
    request_timeout: Option<String>,
    shutdown_grace: Option<String>,
    workers: Option<toml::Value>,
    job_retention: Option<String>,
    drift_interval: Option<String>,
    cloud: Option<String>,
    account_email_domain: Option<String>,
    simulated_delay: Option<String>,
    kube_endpoint_override: Option<String>,
    kube_endpoint_ca: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    aws_role_arn: Option<String>,
    aws_organizational_unit: Option<String>,
    aws_member_role_name: Option<String>,
    aws_cluster_role_name: Option<String>,
    aws_node_role_name: Option<String>,
    public_url: Option<String>,
    local_login: Option<toml::Value>,
    session_idle_timeout: Option<String>,
    session_max_age: Option<String>,
    oidc_issuer: Option<String>,
    oidc_client_id: Option<String>,
    oidc_client_secret: Option<String>,
    oidc_groups_claim: Option<String>,
    oidc_role_map: Option<String>,
    oidc_scopes: Option<String>,
    webhook_allowed_ranges: Option<toml::Value>,
    trusted_proxies: Option<toml::Value>,
    otlp_endpoint: Option<String>,
    git_host: Option<String>,
    git_url: Option<String>,
    git_owner: Option<String>,
    git_token: Option<String>,
}

/// Every key, in the order of the README table. Each is also `SLIPWAY_<KEY upper-cased>`.
pub const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "postgres_bin_dir",
    "db_max_connections",
    "log_format",
    "log_level",
    "request_timeout",
    "shutdown_grace",
    "workers",
    "job_retention",
    "drift_interval",
    "cloud",
    "account_email_domain",
    "simulated_delay",
    "kube_endpoint_override",
    "kube_endpoint_ca",
    "kubeconfig",
    "aws_role_arn",
    "aws_organizational_unit",
    "aws_member_role_name",
    "aws_cluster_role_name",
    "aws_node_role_name",
    "public_url",
    "local_login",
    "session_idle_timeout",
    "session_max_age",
    "oidc_issuer",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_groups_claim",
    "oidc_role_map",
    "oidc_scopes",
    "webhook_allowed_ranges",
    "trusted_proxies",
    "otlp_endpoint",
    "git_host",
    "git_url",
    "git_owner",
    "git_token",
];

/// Environment variables that are not settings but are read by Slipway's launcher itself.
const ENV_NOT_KEYS: &[&str] = &["SLIPWAY_CONFIG"];

/// Values given on the command line; they win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub log_format: Option<String>,
}

impl Config {
    /// The cloud this configuration names; AWS credentials are resolved lazily by the SDK.
    pub async fn connect_cloud(&self, db: &sqlx::PgPool) -> crate::provision::Cloud {
        use crate::provision::{Cloud, aws, simulated};
        match self.cloud {
            CloudMode::Simulated => Cloud::Simulated(simulated::SimulatedCloud::new(
                db.clone(),
                self.simulated_delay,
            )),
            CloudMode::Aws => Cloud::Aws(Box::new(aws::AwsCloud::connect(self.aws.clone()).await)),
        }
    }

    /// Loads the configuration from the process environment, the config file and `overrides`.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Self::from_sources(overrides, &env)
    }

    /// The same as [`Config::load`] over an explicit environment, so tests need not mutate the
    /// process environment.
    pub fn from_sources(
        overrides: &Overrides,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut raw: BTreeMap<&'static str, (String, String)> = BTreeMap::new();

        // 1. The file: an explicit path must exist; the default `./slipway.toml` is optional.
        let explicit = overrides
            .config_file
            .clone()
            .or_else(|| env.get("SLIPWAY_CONFIG").map(PathBuf::from));
        let path = explicit
            .clone()
            .unwrap_or_else(|| PathBuf::from("slipway.toml"));
        if explicit.is_some() || path.exists() {
            let file = read_file(&path)?;
            let location = |key: &str| format!("{key} in {}", path.display());
            let mut put = |key: &'static str, value: Option<String>| {
                if let Some(v) = value {
                    raw.insert(key, (location(key), v));
                }
            };
            put("listen", file.listen);
            put("data_dir", file.data_dir.map(path_string));
            put("database_url", file.database_url);
            put("postgres_bin_dir", file.postgres_bin_dir.map(path_string));
            put("db_max_connections", file.db_max_connections.map(toml_text));
            put("public_url", file.public_url);
            put("local_login", file.local_login.map(toml_text));
            put("session_idle_timeout", file.session_idle_timeout);
            put("session_max_age", file.session_max_age);
            put("oidc_issuer", file.oidc_issuer);
            put("oidc_client_id", file.oidc_client_id);
            put("oidc_client_secret", file.oidc_client_secret);
            put("oidc_groups_claim", file.oidc_groups_claim);
            put("oidc_role_map", file.oidc_role_map);
            put("oidc_scopes", file.oidc_scopes);
            // A TOML list or one comma-separated string.
            put(
                "webhook_allowed_ranges",
                file.webhook_allowed_ranges.map(list_text),
            );
            put("trusted_proxies", file.trusted_proxies.map(list_text));
            put("otlp_endpoint", file.otlp_endpoint);
            put("git_host", file.git_host);
            put("git_url", file.git_url);
            put("git_owner", file.git_owner);
            put("git_token", file.git_token);
            put("log_format", file.log_format);
            put("log_level", file.log_level);
            put("request_timeout", file.request_timeout);
            put("shutdown_grace", file.shutdown_grace);
            put("workers", file.workers.map(toml_text));
            put("job_retention", file.job_retention);
            put("drift_interval", file.drift_interval);
            put("cloud", file.cloud);
            put("account_email_domain", file.account_email_domain);
            put("simulated_delay", file.simulated_delay);
            put("kube_endpoint_override", file.kube_endpoint_override);
            put("kube_endpoint_ca", file.kube_endpoint_ca.map(path_string));
            put("kubeconfig", file.kubeconfig.map(path_string));
            put("aws_role_arn", file.aws_role_arn);
            put("aws_organizational_unit", file.aws_organizational_unit);
            put("aws_member_role_name", file.aws_member_role_name);
            put("aws_cluster_role_name", file.aws_cluster_role_name);
            put("aws_node_role_name", file.aws_node_role_name);
        }

        // 2. The environment. `DATABASE_URL` is honoured as well, as every Postgres tool does.
        if let Some(url) = env.get("DATABASE_URL").filter(|v| !v.is_empty()) {
            raw.insert("database_url", ("DATABASE_URL".into(), url.clone()));
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix("SLIPWAY_") else {
                continue;
            };
            if ENV_NOT_KEYS.contains(&name.as_str()) {
                continue;
            }
            let key_lower = key.to_ascii_lowercase();
            let Some(known) = KEYS.iter().find(|k| **k == key_lower) else {
                return Err(ConfigError::UnknownEnv {
                    name: name.clone(),
                    known: KEYS
                        .iter()
                        .map(|k| format!("SLIPWAY_{}", k.to_ascii_uppercase()))
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            raw.insert(known, (name.clone(), value.clone()));
        }

        // 3. Flags.
        let mut flag = |key: &'static str, value: Option<String>| {
            if let Some(v) = value {
                raw.insert(key, (format!("--{}", key.replace('_', "-")), v));
            }
        };
        flag("listen", overrides.listen.clone());
        flag("data_dir", overrides.data_dir.clone().map(path_string));
        flag("database_url", overrides.database_url.clone());
        flag("log_format", overrides.log_format.clone());

        let mut config = Config::default();
        let mut oidc = OidcKeys::default();
        let mut git = BTreeMap::new();
        for (key, (source, value)) in raw {
            if let Some(rest) = key.strip_prefix("oidc_") {
                oidc.set(rest, source, value)?;
            } else if let Some(rest) = key.strip_prefix("git_") {
                git.insert(rest, (source, value));
            } else {
                config.set(key, &source, value)?;
            }
        }
        config.oidc = oidc.finish()?;
        config.git = git_host(git)?;
        if config.cloud == CloudMode::Aws && config.account_email_domain == "example.com" {
            return Err(ConfigError::Invalid {
                key: "account_email_domain".into(),
                value: config.account_email_domain,
                expected: "your own domain with cloud = aws (SLIPWAY_ACCOUNT_EMAIL_DOMAIN): \
                           every new account's root e-mail address is <account>@<domain>",
            });
        }
        if !config.local_login && config.oidc.is_none() {
            return Err(ConfigError::Invalid {
                key: "local_login".into(),
                value: "false".into(),
                expected: "`true` unless single sign-on is configured (oidc_issuer): \
                           otherwise no one could sign in",
            });
        }
        Ok(config)
    }

    fn set(&mut self, key: &str, source: &str, value: String) -> Result<(), ConfigError> {
        let invalid = |expected: &'static str| ConfigError::Invalid {
            key: source.to_owned(),
            value: value.clone(),
            expected,
        };
        match key {
            "listen" => {
                self.listen = value.parse().map_err(|_| {
                    invalid(
                        "an IP address and port such as 127.0.0.1:8080 (port 0 picks a free port)",
                    )
                })?
            }
            "data_dir" => {
                if value.is_empty() {
                    return Err(invalid("a directory path"));
                }
                self.data_dir = PathBuf::from(value)
            }
            "database_url" => {
                if value.is_empty() {
                    self.database_url = None;
                } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
                    self.database_url = Some(value);
                } else {
                    return Err(invalid(
                        "a PostgreSQL URL such as postgres://user@host:5432/slipway",
                    ));
                }
            }
            "postgres_bin_dir" => self.postgres_bin_dir = Some(PathBuf::from(value)),
            "db_max_connections" => {
                self.db_max_connections = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| invalid("a whole number from 1 to 1000"))?
            }
            "log_format" => {
                self.log_format = match value.as_str() {
                    "human" => LogFormat::Human,
                    "json" => LogFormat::Json,
                    _ => return Err(invalid("`human` or `json`")),
                }
            }
            "log_level" => {
                tracing_subscriber::EnvFilter::try_new(&value)
                    .map_err(|_| invalid("a log filter such as `info` or `slipway=debug,info`"))?;
                self.log_level = value
            }
            "request_timeout" => {
                self.request_timeout = parse_duration(&value)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| invalid("a duration such as 30s, 5m or 1h"))?
            }
            "shutdown_grace" => {
                self.shutdown_grace = parse_duration(&value)
                    .ok_or_else(|| invalid("a duration such as 30s, 5m or 1h"))?
            }
            "workers" => {
                self.workers = value
                    .parse()
                    .ok()
                    .filter(|n| *n <= 256)
                    .ok_or_else(|| invalid("a whole number of job tasks from 0 to 256"))?
            }
            "job_retention" => {
                self.job_retention = parse_duration(&value)
                    .filter(|d| d.as_secs() >= 3600)
                    .ok_or_else(|| invalid("a duration of at least an hour, such as 14d"))?
            }
            "drift_interval" => {
                self.drift_interval = parse_duration(&value)
                    .filter(|d| (60..=7 * 86_400).contains(&d.as_secs()))
                    .ok_or_else(|| invalid("a duration from 1m to 7d, such as 6h"))?
            }
            "cloud" => {
                self.cloud = match value.as_str() {
                    "simulated" => CloudMode::Simulated,
                    "aws" => CloudMode::Aws,
                    _ => return Err(invalid("`simulated` or `aws`")),
                }
            }
            "simulated_delay" => {
                self.simulated_delay = parse_duration(&value)
                    .filter(|d| d.as_secs() <= 600)
                    .ok_or_else(|| invalid("a duration of at most 10m, such as 0s or 3s"))?
            }
            "kube_endpoint_override" => {
                let valid = (value.starts_with("http://") || value.starts_with("https://"))
                    && value.parse::<http::Uri>().is_ok();
                if !valid {
                    return Err(invalid("an http(s) URL, such as http://127.0.0.1:8001"));
                }
                self.aws.kube_endpoint_override = Some(value.trim_end_matches('/').to_owned());
            }
            "kube_endpoint_ca" => {
                // Read now, so a wrong path stops startup instead of failing every bootstrap.
                let pem = std::fs::read(&value)
                    .ok()
                    .filter(|pem| pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----"))
                    .ok_or_else(|| invalid("the path of a readable PEM CA bundle"))?;
                self.aws.kube_endpoint_ca = Some(pem);
            }
            "kubeconfig" => {
                if value.trim().is_empty() {
                    return Err(invalid("the path of a kubeconfig file"));
                }
                self.aws.kubeconfig = Some(PathBuf::from(value));
            }
            "aws_role_arn" => {
                if !(value.starts_with("arn:aws") && value.contains(":role/")) {
                    return Err(invalid(
                        "an IAM role ARN, such as arn:aws:iam::123456789012:role/slipway",
                    ));
                }
                self.aws.role_arn = Some(value);
            }
            "aws_organizational_unit" => {
                let valid = value.starts_with("ou-")
                    && value.len() <= 68
                    && value[3..]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-');
                if !valid {
                    return Err(invalid(
                        "an organisational unit id, such as ou-ab12-cd345678",
                    ));
                }
                self.aws.organizational_unit = Some(value);
            }
            "aws_member_role_name" | "aws_cluster_role_name" | "aws_node_role_name" => {
                let valid = !value.is_empty()
                    && value.len() <= 64
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
                if !valid {
                    return Err(invalid(
                        "an IAM role name, such as OrganizationAccountAccessRole",
                    ));
                }
                match key {
                    "aws_member_role_name" => self.aws.member_role_name = value,
                    "aws_cluster_role_name" => self.aws.cluster_role_name = value,
                    _ => self.aws.node_role_name = value,
                }
            }
            "webhook_allowed_ranges" => self.webhook_allowed_ranges =
                crate::outbound::parse_ranges(&value).map_err(|_| {
                    invalid(
                        "CIDR ranges or addresses, comma-separated, such as 10.20.0.0/16,127.0.0.1",
                    )
                })?,
            "otlp_endpoint" => {
                let endpoint = value.trim_end_matches('/');
                let valid = (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                    && !endpoint.contains(['?', '#', ' '])
                    && endpoint.split("://").nth(1).is_some_and(|h| !h.is_empty());
                if !valid {
                    return Err(invalid(
                        "the collector's OTLP/HTTP address, such as http://otel-collector:4318",
                    ));
                }
                self.otlp_endpoint = Some(endpoint.to_owned());
            }
            "trusted_proxies" => {
                self.trusted_proxies = crate::outbound::parse_ranges(&value).map_err(|_| {
                    invalid("CIDR ranges or addresses, comma-separated, such as 10.0.0.0/8")
                })?
            }
            "account_email_domain" => {
                let valid = value.len() <= 200
                    && value.contains('.')
                    && value.split('.').all(|label| {
                        !label.is_empty()
                            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    });
                if !valid {
                    return Err(invalid("a domain name such as aws.example.com"));
                }
                self.account_email_domain = value.to_ascii_lowercase();
            }
            "public_url" => {
                let trimmed = value.trim_end_matches('/');
                let valid = (trimmed.starts_with("http://") || trimmed.starts_with("https://"))
                    && trimmed
                        .split("://")
                        .nth(1)
                        .is_some_and(|h| !h.is_empty() && !h.contains('/'));
                if !valid {
                    return Err(invalid(
                        "an http(s) URL without a path, such as https://slipway.example.com",
                    ));
                }
                self.public_url = Some(trimmed.to_owned())
            }
            "local_login" => {
                self.local_login = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(invalid("`true` or `false`")),
                }
            }
            "session_idle_timeout" => {
                self.session_idle_timeout = parse_duration(&value)
                    .filter(|d| d.as_secs() >= 60)
                    .ok_or_else(|| invalid("a duration of at least a minute, such as 12h"))?
            }
            "session_max_age" => {
                self.session_max_age = parse_duration(&value)
                    .filter(|d| d.as_secs() >= 60)
                    .ok_or_else(|| invalid("a duration of at least a minute, such as 7d"))?
            }
            _ => unreachable!("every key in KEYS is handled"),
        }
        Ok(())
    }

    /// Where environments' repositories live: the configured host, else bare repositories in
    /// `data_dir/git` (made absolute, as Git wants for `file://` URLs).
    pub fn git_host(&self) -> crate::repositories::GitHost {
        self.git
            .clone()
            .unwrap_or_else(|| crate::repositories::GitHost::Local {
                root: std::path::absolute(self.data_dir.join("git"))
                    .unwrap_or_else(|_| self.data_dir.join("git")),
            })
    }

    /// Where the embedded PostgreSQL cluster lives.
    pub fn embedded_postgres_dir(&self) -> PathBuf {
        self.data_dir.join("postgres")
    }
}

/// The `git_*` keys, checked together: `git_host` says which others it needs.
fn git_host(
    mut keys: BTreeMap<&str, (String, String)>,
) -> Result<Option<crate::repositories::GitHost>, ConfigError> {
    use crate::repositories::GitHost;
    let invalid = |(key, value): (String, String), expected: &'static str| ConfigError::Invalid {
        key,
        value,
        expected,
    };
    let kind = keys.remove("host");
    let url = keys.remove("url");
    let owner = keys.remove("owner");
    let token = keys.remove("token");
    let Some(kind) = kind.filter(|(_, v)| v != "local") else {
        // A token's value never appears in an error.
        let token = token.map(|(key, _)| (key, "(hidden)".to_owned()));
        return match url.or(owner).or(token) {
            Some(given) => Err(invalid(
                given,
                "to be set with git_host = https, github or gitlab (SLIPWAY_GIT_HOST)",
            )),
            None => Ok(None),
        };
    };
    // HTTPS, or plain HTTP to this machine only (a Git server beside Slipway, the tests').
    let url_of = |given: (String, String)| {
        let value = given.1.trim_end_matches('/').to_owned();
        let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|p| {
                value
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
            });
        let fine = (value.starts_with("https://") || loopback)
            && value.parse::<http::Uri>().is_ok()
            && !value.contains(['?', '#', '@', ' ']);
        if fine {
            Ok(value)
        } else {
            Err(invalid(
                given,
                "an https:// URL without credentials, such as https://git.example.com/platform \
                 (http:// only to this machine)",
            ))
        }
    };
    let token = token
        .filter(|(_, v)| !v.is_empty())
        .map(|(_, v)| crate::secret::Secret::new(v))
        .ok_or_else(|| ConfigError::Invalid {
            key: "git_token".into(),
            value: String::new(),
            expected: "an access token allowed to create and push repositories (required with \
                       git_host; SLIPWAY_GIT_TOKEN keeps it out of files)",
        })?;
    let owner_of = |owner: Option<(String, String)>| {
        let (key, value) = owner.unwrap_or_else(|| ("git_owner".into(), String::new()));
        let fine = !value.is_empty()
            && value.len() <= 200
            && !value.starts_with('/')
            && !value.ends_with('/')
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        if fine {
            Ok(value)
        } else {
            Err(invalid(
                (key, value),
                "the organisation (GitHub) or group path (GitLab) repositories are made in, \
                 such as acme or acme/platforms",
            ))
        }
    };
    let url_or = |default: &str| {
        url.clone()
            .unwrap_or_else(|| ("git_url".into(), default.into()))
    };
    Ok(Some(match kind.1.as_str() {
        "https" => GitHost::Https {
            base: url_of(url_or(""))?,
            token,
        },
        "github" => GitHost::GitHub {
            api: url_of(url_or("https://api.github.com"))?,
            owner: owner_of(owner)?,
            token,
        },
        "gitlab" => GitHost::GitLab {
            api: url_of(url_or("https://gitlab.com"))?,
            group: owner_of(owner)?,
            token,
        },
        _ => return Err(invalid(kind, "`local`, `https`, `github` or `gitlab`")),
    }))
}

/// The `oidc_*` keys, gathered before they are checked together.
#[derive(Default)]
struct OidcKeys {
    values: BTreeMap<String, (String, String)>,
}

impl OidcKeys {
    fn set(&mut self, key: &str, source: String, value: String) -> Result<(), ConfigError> {
        self.values.insert(key.to_owned(), (source, value));
        Ok(())
    }

    fn finish(mut self) -> Result<Option<OidcConfig>, ConfigError> {
        let issuer = match self.values.remove("issuer") {
            Some((source, issuer)) => {
                if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                    return Err(ConfigError::Invalid {
                        key: source,
                        value: issuer,
                        expected: "the identity provider's issuer URL, such as https://login.example.com/realms/acme",
                    });
                }
                issuer
            }
            None => {
                return match self.values.into_iter().next() {
                    Some((_, (source, value))) => Err(ConfigError::Invalid {
                        key: source,
                        value,
                        expected: "to be set together with oidc_issuer (SLIPWAY_OIDC_ISSUER)",
                    }),
                    None => Ok(None),
                };
            }
        };
        let client_id = self
            .values
            .remove("client_id")
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ConfigError::Invalid {
                key: "oidc_client_id".into(),
                value: String::new(),
                expected: "the client id registered with the identity provider (required with oidc_issuer)",
            })?;
        let role_map = match self.values.remove("role_map") {
            Some((source, text)) => parse_role_map(&text).map_err(|_| ConfigError::Invalid {
                key: source,
                value: text,
                expected: "comma-separated group=role pairs, such as `platform-team=platform_engineer,devs=developer` (roles: developer, platform_engineer, admin)",
            })?,
            None => Vec::new(),
        };
        Ok(Some(OidcConfig {
            issuer,
            client_id,
            client_secret: self
                .values
                .remove("client_secret")
                .map(|(_, v)| Secret::new(v)),
            groups_claim: self
                .values
                .remove("groups_claim")
                .map(|(_, v)| v)
                .unwrap_or_else(|| "groups".to_owned()),
            role_map,
            extra_scopes: self
                .values
                .remove("scopes")
                .map(|(_, v)| {
                    v.split([',', ' '])
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        }))
    }
}

fn parse_role_map(text: &str) -> Result<Vec<RoleMapping>, ()> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| RoleMapping::parse(pair).map_err(|_| ()))
        .collect()
}

fn toml_text(value: toml::Value) -> String {
    match value {
        toml::Value::String(s) => s,
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// A TOML list or one comma-separated string, as one comma-separated string.
fn list_text(value: toml::Value) -> String {
    match value {
        toml::Value::Array(items) => items
            .into_iter()
            .map(toml_text)
            .collect::<Vec<_>>()
            .join(","),
        other => toml_text(other),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}

fn path_string(p: PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

/// Parses durations written as a whole number and a unit: `45s`, `5m`, `2h`, `30d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let seconds = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Tests run in the crate root, which holds no `slipway.toml`.
    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_sources(&Overrides::default(), &env(pairs))
    }

    #[test]
    fn defaults_without_any_source() {
        let c = load(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from(".slipway"));
        assert!(c.database_url.is_none());
        assert_eq!(c.log_format, LogFormat::Human);
    }

    #[test]
    fn environment_beats_defaults_and_flags_beat_environment() {
        let vars = env(&[
            ("SLIPWAY_LISTEN", "127.0.0.1:9000"),
            ("SLIPWAY_LOG_FORMAT", "json"),
        ]);
        let c = Config::from_sources(&Overrides::default(), &vars).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.log_format, LogFormat::Json);

        let flags = Overrides {
            listen: Some("127.0.0.1:0".into()),
            ..Overrides::default()
        };
        let c = Config::from_sources(&flags, &vars).unwrap();
        assert_eq!(c.listen.port(), 0);
    }

    #[test]
    fn database_url_from_either_variable() {
        let c = load(&[("DATABASE_URL", "postgres://a@h/db")]).unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://a@h/db"));
        let c = load(&[("SLIPWAY_DATABASE_URL", "postgresql://b@h/db")]).unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgresql://b@h/db"));
    }

    #[test]
    fn bad_values_name_the_key_and_the_expected_form() {
        let err = load(&[("SLIPWAY_LISTEN", "localhost")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SLIPWAY_LISTEN"), "{err}");
        assert!(err.contains("expected an IP address and port"), "{err}");

        let err = load(&[("SLIPWAY_DB_MAX_CONNECTIONS", "0")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SLIPWAY_DB_MAX_CONNECTIONS") && err.contains("1 to 1000"),
            "{err}"
        );

        let err = load(&[("SLIPWAY_REQUEST_TIMEOUT", "soon")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SLIPWAY_REQUEST_TIMEOUT") && err.contains("30s"),
            "{err}"
        );

        let err = load(&[("DATABASE_URL", "mysql://x")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DATABASE_URL") && err.contains("PostgreSQL URL"),
            "{err}"
        );
    }

    #[test]
    fn unknown_environment_key_is_an_error() {
        let err = load(&[("SLIPWAY_LISTN", "x")]).unwrap_err().to_string();
        assert!(
            err.contains("SLIPWAY_LISTN") && err.contains("SLIPWAY_LISTEN"),
            "{err}"
        );
    }

    #[test]
    fn file_keys_are_read_and_unknown_ones_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slipway.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7000\"\ndb_max_connections = 4\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(path.clone()),
            ..Overrides::default()
        };
        let c = Config::from_sources(&overrides, &BTreeMap::new()).unwrap();
        assert_eq!(c.listen.port(), 7000);
        assert_eq!(c.db_max_connections, 4);

        std::fs::write(&path, "listen = \"127.0.0.1:7000\"\nlisten_port = 1\n").unwrap();
        let err = Config::from_sources(&overrides, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("listen_port"), "{err}");
        assert!(err.contains("slipway.toml"), "{err}");

        std::fs::write(&path, "log_format = \"xml\"\n").unwrap();
        let err = Config::from_sources(&overrides, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("log_format in") && err.contains("`human` or `json`"),
            "{err}"
        );
    }

    #[test]
    fn webhook_allowed_ranges_are_cidr_lists() {
        let c = load(&[("SLIPWAY_WEBHOOK_ALLOWED_RANGES", "10.20.0.0/16, 127.0.0.1")]).unwrap();
        assert_eq!(
            c.webhook_allowed_ranges,
            vec![
                "10.20.0.0/16".parse::<ipnet::IpNet>().unwrap(),
                "127.0.0.1/32".parse().unwrap()
            ]
        );
        let err = load(&[("SLIPWAY_WEBHOOK_ALLOWED_RANGES", "10.0.0.0/40")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SLIPWAY_WEBHOOK_ALLOWED_RANGES"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slipway.toml");
        std::fs::write(
            &path,
            "webhook_allowed_ranges = [\"fd12::/16\", \"192.168.5.0/24\"]\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(path),
            ..Overrides::default()
        };
        let c = Config::from_sources(&overrides, &BTreeMap::new()).unwrap();
        assert_eq!(c.webhook_allowed_ranges.len(), 2);
        assert!(Config::default().webhook_allowed_ranges.is_empty());
    }

    #[test]
    fn trusted_proxies_are_cidr_lists_and_none_by_default() {
        let c = load(&[("SLIPWAY_TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.7")]).unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        let err = load(&[("SLIPWAY_TRUSTED_PROXIES", "everyone")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SLIPWAY_TRUSTED_PROXIES"), "{err}");
        assert!(Config::default().trusted_proxies.is_empty());
    }

    #[test]
    fn git_settings_are_checked_together_and_the_token_never_shown() {
        use crate::repositories::GitHost;
        let c = load(&[]).unwrap();
        assert!(
            matches!(c.git_host(), GitHost::Local { root } if root.is_absolute() && root.ends_with(".slipway/git"))
        );
        let c = load(&[
            ("SLIPWAY_GIT_HOST", "github"),
            ("SLIPWAY_GIT_OWNER", "acme"),
            ("SLIPWAY_GIT_TOKEN", "ghp_secret"),
        ])
        .unwrap();
        assert!(
            matches!(&c.git, Some(GitHost::GitHub { api, owner, .. }) if api == "https://api.github.com" && owner == "acme")
        );
        assert!(!format!("{c:?}").contains("ghp_secret"));
        let c = load(&[
            ("SLIPWAY_GIT_HOST", "gitlab"),
            ("SLIPWAY_GIT_URL", "https://gitlab.example.com/"),
            ("SLIPWAY_GIT_OWNER", "acme/platforms"),
            ("SLIPWAY_GIT_TOKEN", "glpat"),
        ])
        .unwrap();
        assert!(
            matches!(&c.git, Some(GitHost::GitLab { api, group, .. }) if api == "https://gitlab.example.com" && group == "acme/platforms")
        );
        let refused = |pairs: &[(&str, &str)], key: &str| {
            let err = load(pairs).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
            assert!(!err.contains("ghp_secret"), "{err}");
        };
        refused(&[("SLIPWAY_GIT_TOKEN", "ghp_secret")], "SLIPWAY_GIT_TOKEN");
        refused(
            &[
                ("SLIPWAY_GIT_HOST", "github"),
                ("SLIPWAY_GIT_OWNER", "acme"),
            ],
            "git_token",
        );
        refused(
            &[
                ("SLIPWAY_GIT_HOST", "github"),
                ("SLIPWAY_GIT_TOKEN", "ghp_secret"),
            ],
            "git_owner",
        );
        refused(
            &[
                ("SLIPWAY_GIT_HOST", "svn"),
                ("SLIPWAY_GIT_TOKEN", "ghp_secret"),
            ],
            "SLIPWAY_GIT_HOST",
        );
        // Plain HTTP only to this machine; no credentials in the URL.
        for url in [
            "http://git.example.com",
            "https://user:pw@git.example.com",
            "ftp://x",
        ] {
            refused(
                &[
                    ("SLIPWAY_GIT_HOST", "https"),
                    ("SLIPWAY_GIT_URL", url),
                    ("SLIPWAY_GIT_TOKEN", "ghp_secret"),
                ],
                "SLIPWAY_GIT_URL",
            );
        }
        let c = load(&[
            ("SLIPWAY_GIT_HOST", "https"),
            ("SLIPWAY_GIT_URL", "http://127.0.0.1:3000/git"),
            ("SLIPWAY_GIT_TOKEN", "t"),
        ])
        .unwrap();
        assert!(
            matches!(&c.git, Some(GitHost::Https { base, .. }) if base == "http://127.0.0.1:3000/git")
        );
    }

    #[test]
    fn single_sign_on_settings_are_checked_together() {
        let c = load(&[
            ("SLIPWAY_OIDC_ISSUER", "https://id.example.com"),
            ("SLIPWAY_OIDC_CLIENT_ID", "slipway"),
            ("SLIPWAY_OIDC_CLIENT_SECRET", "s3cret"),
            (
                "SLIPWAY_OIDC_ROLE_MAP",
                "platform=platform_engineer, devs=developer",
            ),
            ("SLIPWAY_LOCAL_LOGIN", "false"),
        ])
        .unwrap();
        let oidc = c.oidc.unwrap();
        assert_eq!(oidc.groups_claim, "groups");
        assert_eq!(oidc.role_map.len(), 2);
        assert!(!c.local_login);
        // The secret never shows in debug output.
        assert!(!format!("{:?}", oidc.client_secret).contains("s3cret"));

        let err = load(&[("SLIPWAY_OIDC_CLIENT_ID", "x")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SLIPWAY_OIDC_CLIENT_ID") && err.contains("oidc_issuer"),
            "{err}"
        );
        let err = load(&[("SLIPWAY_OIDC_ISSUER", "https://id.example.com")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("oidc_client_id"), "{err}");
        let err = load(&[
            ("SLIPWAY_OIDC_ISSUER", "https://id.example.com"),
            ("SLIPWAY_OIDC_CLIENT_ID", "x"),
            ("SLIPWAY_OIDC_ROLE_MAP", "devs=root"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("SLIPWAY_OIDC_ROLE_MAP") && err.contains("group=role"),
            "{err}"
        );
        let err = load(&[("SLIPWAY_LOCAL_LOGIN", "false")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no one could sign in"), "{err}");
    }

    #[test]
    fn public_url_must_be_an_origin() {
        assert!(load(&[("SLIPWAY_PUBLIC_URL", "https://slipway.example.com/")]).is_ok());
        let err = load(&[("SLIPWAY_PUBLIC_URL", "slipway.example.com")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SLIPWAY_PUBLIC_URL"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("45s"), Some(Duration::from_secs(45)));
        assert_eq!(
            parse_duration("30d"),
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("5w"), None);
    }
}
