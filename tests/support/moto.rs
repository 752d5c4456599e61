//! `moto_server` (PyPI `moto[server]`, run by `tests/moto/server.py`, which adds the operations
//! moto lacks in-process): a real AWS emulator over HTTP, one per test, on a free loopback port,
//! reached by the AWS SDK with an endpoint override and dummy credentials.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

pub const ACCESS_KEY: &str = "AKIASLIPWAYTESTING";
pub const SECRET_KEY: &str = "slipway-testing-secret";
pub const REGION: &str = "us-east-1";

pub struct Moto {
    pub url: String,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts `moto_server` and waits until it answers.
    pub async fn start() -> Moto {
        slipway::init_tls();
        let python = super::require_program("python3", "apt-get install python3");
        let installed = Command::new(&python)
            .args(["-c", "import moto.server"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed,
            "this test needs moto_server, which is not installed. Install it with: \
             python3 -m pip install -r tests/requirements.txt (./tests/run installs it for you)"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/moto/server.py");
        let child = Command::new(python)
            .args([server, "-H", "127.0.0.1", "-p", &port.to_string()])
            // AWS managed policies (AmazonEKSClusterPolicy, …) exist in every real account.
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let moto = Moto {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let started = Instant::now();
        let client = reqwest::Client::new();
        loop {
            if client
                .get(format!("{}/moto-api/", moto.url))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// The management account's SDK configuration (dummy credentials, the emulator's endpoint).
    pub async fn sdk_config(&self) -> SdkConfig {
        config(
            &self.url,
            Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"),
        )
        .await
    }

    /// The environment variables that point a `slipway` process at this emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// Turns the emulated account into an organisation's management account.
    pub async fn create_organization(&self) {
        aws_sdk_organizations::Client::new(&self.sdk_config().await)
            .create_organization()
            .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
            .send()
            .await
            .expect("CreateOrganization on moto");
    }

    /// The accounts of the organisation: (name, id, state).
    pub async fn accounts(&self) -> Vec<(String, String, String)> {
        let out = aws_sdk_organizations::Client::new(&self.sdk_config().await)
            .list_accounts()
            .send()
            .await
            .unwrap();
        out.accounts()
            .iter()
            .map(|a| {
                (
                    a.name().unwrap_or_default().to_owned(),
                    a.id().unwrap_or_default().to_owned(),
                    a.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
                )
            })
            .collect()
    }

    /// An EKS client acting in `account` (through its access role, as Slipway does).
    pub async fn eks_in(&self, account: &str) -> aws_sdk_eks::Client {
        aws_sdk_eks::Client::new(&self.config_in(account).await)
    }

    /// IAM inside a member account, as Slipway's access role.
    pub async fn iam_in(&self, account: &str) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.config_in(account).await)
    }

    /// Slipway's EC2 client acting in member `account` (through its access role).
    pub async fn ec2_in(&self, account: &str) -> slipway::provision::ec2::Ec2 {
        use aws_credential_types::provider::ProvideCredentials;
        let config = self.config_in(account).await;
        let credentials = config
            .credentials_provider()
            .unwrap()
            .provide_credentials()
            .await
            .unwrap();
        slipway::provision::ec2::Ec2::new("eu-west-1", credentials, Some(&self.url))
    }

    /// The SDK configuration of Slipway's access role in member `account`.
    pub async fn config_in(&self, account: &str) -> SdkConfig {
        let out = aws_sdk_sts::Client::new(&self.sdk_config().await)
            .assume_role()
            .role_arn(format!(
                "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
            ))
            .role_session_name("test")
            .send()
            .await
            .unwrap();
        let c = out.credentials().unwrap();
        let credentials = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            None,
            "assumed",
        );
        config(&self.url, credentials)
            .await
            .into_builder()
            .region(Region::new("eu-west-1"))
            .build()
    }

    /// The names of the organizational units `account` is in, outermost first (the root left
    /// out).
    pub async fn unit_path_of(&self, account: &str) -> Vec<String> {
        let orgs = aws_sdk_organizations::Client::new(&self.sdk_config().await);
        let mut path = vec![];
        let mut child = account.to_owned();
        loop {
            let parents = orgs.list_parents().child_id(&child).send().await.unwrap();
            let parent = &parents.parents()[0];
            if parent.r#type().map(|t| t.as_str()) == Some("ROOT") {
                path.reverse();
                return path;
            }
            let id = parent.id().unwrap().to_owned();
            let unit = orgs
                .describe_organizational_unit()
                .organizational_unit_id(&id)
                .send()
                .await
                .unwrap();
            path.push(
                unit.organizational_unit()
                    .unwrap()
                    .name()
                    .unwrap()
                    .to_owned(),
            );
            child = id;
        }
    }

    /// A service control policy named `name` in the organization (allowing everything).
    pub async fn create_scp(&self, name: &str) {
        aws_sdk_organizations::Client::new(&self.sdk_config().await)
            .create_policy()
            .name(name)
            .description("test")
            .r#type(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy)
            .content(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)
            .send()
            .await
            .expect("CreatePolicy on moto");
    }

    /// The names of the service control policies attached to `target`.
    pub async fn policies_on(&self, target: &str) -> Vec<String> {
        let out = aws_sdk_organizations::Client::new(&self.sdk_config().await)
            .list_policies_for_target()
            .target_id(target)
            .filter(aws_sdk_organizations::types::PolicyType::ServiceControlPolicy)
            .send()
            .await
            .unwrap();
        let mut names: Vec<String> = out
            .policies()
            .iter()
            .filter_map(|p| p.name().map(str::to_owned))
            .collect();
        names.sort();
        names
    }

    /// Clusters and their node groups in `account`.
    pub async fn clusters_in(&self, account: &str) -> Vec<(String, Vec<String>)> {
        let eks = self.eks_in(account).await;
        let mut out = vec![];
        for name in eks.list_clusters().send().await.unwrap().clusters() {
            let groups = eks
                .list_nodegroups()
                .cluster_name(name)
                .send()
                .await
                .unwrap()
                .nodegroups()
                .to_vec();
            out.push((name.clone(), groups));
        }
        out
    }
}

async fn config(url: &str, credentials: Credentials) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(credentials)
        .http_client(slipway::provision::aws::http_client())
        .load()
        .await
}

/// A request forwarded to `upstream` as it came, and moto's answer.
struct Relayed {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: axum::body::Bytes,
}

async fn relay(
    client: &reqwest::Client,
    upstream: &str,
    parts: &axum::http::request::Parts,
    body: axum::body::Bytes,
) -> Relayed {
    let target = format!(
        "{upstream}{}",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut outgoing = client.request(parts.method.clone(), target).body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = outgoing.send().await.unwrap();
    Relayed {
        status: answer.status().as_u16(),
        headers: answer.headers().clone(),
        body: answer.bytes().await.unwrap(),
    }
}

impl Relayed {
    fn into_response(self) -> axum::response::Response {
        let mut response = axum::response::Response::builder().status(self.status);
        for (name, value) in &self.headers {
            if name != "content-length" && name != "transfer-encoding" {
                response = response.header(name, value);
            }
        }
        response.body(axum::body::Body::from(self.body)).unwrap()
    }
}

/// Serves `app` on a free loopback port; returns its URL.
async fn serve_proxy(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// A proxy in front of moto that, once armed with a process id, kills that process with
/// SIGKILL right after moto has carried out a chosen call and before its answer goes back: the
/// crash between "the cloud did it" and "we recorded it" that idempotent steps must survive.
pub struct CrashProxy {
    pub url: String,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
    killed: std::sync::Arc<tokio::sync::Notify>,
}

struct ProxyState {
    /// Whether a call (its request head) is the one after which to kill.
    trigger: Box<dyn Fn(&axum::http::request::Parts) -> bool + Send>,
    victim: Option<u32>,
    kills: usize,
}

impl CrashProxy {
    /// Kills after the call of `method` on `path` (REST services such as EKS).
    pub async fn start(upstream: &str, method: &str, path: &str) -> CrashProxy {
        let (method, path) = (method.to_owned(), path.to_owned());
        Self::start_after(upstream, move |parts| {
            parts.method == method.as_str() && parts.uri.path() == path
        })
        .await
    }

    /// Kills after the call of a JSON-protocol operation named by its `X-Amz-Target`, such as
    /// `AWSOrganizationsV20161128.CreateAccount`.
    pub async fn start_after_operation(upstream: &str, target: &str) -> CrashProxy {
        let target = target.to_owned();
        Self::start_after(upstream, move |parts| {
            parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                == Some(&target)
        })
        .await
    }

    async fn start_after(
        upstream: &str,
        trigger: impl Fn(&axum::http::request::Parts) -> bool + Send + 'static,
    ) -> CrashProxy {
        use axum::extract::Request;
        let state = std::sync::Arc::new(std::sync::Mutex::new(ProxyState {
            trigger: Box::new(trigger),
            victim: None,
            kills: 0,
        }));
        let killed = std::sync::Arc::new(tokio::sync::Notify::new());
        let upstream = upstream.to_owned();
        let client = reqwest::Client::new();
        let (s, k) = (state.clone(), killed.clone());
        let forward = move |request: Request| {
            let (upstream, client, state, killed) =
                (upstream.clone(), client.clone(), s.clone(), k.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let answer = relay(&client, &upstream, &parts, body).await;
                {
                    let mut state = state.lock().unwrap();
                    let hit = (state.trigger)(&parts);
                    if let Some(pid) = state.victim.filter(|_| hit) {
                        state.victim = None;
                        nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            nix::sys::signal::Signal::SIGKILL,
                        )
                        .unwrap();
                        state.kills += 1;
                        killed.notify_one();
                    }
                }
                answer.into_response()
            }
        };
        let url = serve_proxy(axum::Router::new().fallback(forward)).await;
        CrashProxy { url, state, killed }
    }

    /// Kills `pid` after the next trigger call.
    pub fn arm(&self, pid: u32) {
        self.state.lock().unwrap().victim = Some(pid);
    }

    /// Waits until the armed process has been killed.
    pub async fn until_killed(&self, within: Duration) {
        if self.state.lock().unwrap().kills > 0 {
            return;
        }
        tokio::time::timeout(within, self.killed.notified())
            .await
            .expect("the trigger call never came");
    }
}

/// What the fault proxy did to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Refused as throttled, in the service's own error shape; moto never saw it.
    Throttled,
    /// Refused with a 500 internal failure; moto never saw it.
    ServerError,
    /// Carried out by moto, then the connection broke before the answer: the caller cannot
    /// know it happened (as after a timeout).
    AnswerLost,
    /// Eventual consistency: STS `AccessDenied` for a role not assumable yet (a new account's
    /// access role), or EKS `InvalidParameterException` for a role it cannot see yet.
    NotYetPropagated,
    /// CreateAccount accepted, then its request failed (with the reason chosen); moto never
    /// saw it, so no account exists.
    AccountRequestFailed,
    /// CloseAccount refused by the closure quota; moto never saw it.
    ClosureDeferred,
}

/// Eventual consistency as AWS documents it, for the fault proxy: each of these refusals comes
/// the first `times` a resource is used, then the call goes through.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settling {
    /// AssumeRole of each role ARN is refused with `AccessDenied` this many times.
    pub assume_role: u32,
    /// CreateCluster and CreateNodegroup of each name are refused with
    /// `InvalidParameterException` ("Role … could not be assumed") this many times.
    pub eks_roles: u32,
    /// The first CreateAccount of each account name fails with this reason.
    pub first_account_request_fails: Option<&'static str>,
    /// CloseAccount of each account is refused this many times with AWS's closure quota
    /// (`ConstraintViolationException`, `CLOSE_ACCOUNT_QUOTA_EXCEEDED`).
    pub close_account_quota: u32,
}

/// A proxy in front of moto that injects faults into a share of the calls, chosen by a seeded
/// generator: throttling and 500s in each protocol's error shape (the service is read from the
/// SigV4 credential scope), and answers lost after moto did the work. While `storm` is on,
/// every call is throttled.
pub struct FaultProxy {
    pub url: String,
    state: std::sync::Arc<std::sync::Mutex<FaultState>>,
}

struct FaultState {
    seed: u64,
    /// Faults per 1,000 calls.
    per_mille: u64,
    storm: bool,
    settling: Settling,
    /// How often each settling refusal was given, by operation and resource.
    refused: std::collections::HashMap<String, u32>,
    /// The CreateAccount requests answered here (never sent to moto): id → failure reason.
    failed_requests: std::collections::HashMap<String, &'static str>,
    injected: std::collections::HashMap<(String, Fault), usize>,
}

impl FaultProxy {
    pub async fn start(upstream: &str, seed: u64, per_mille: u64) -> FaultProxy {
        use axum::extract::Request;
        let state = std::sync::Arc::new(std::sync::Mutex::new(FaultState {
            seed: seed.max(1),
            per_mille,
            storm: false,
            settling: Settling::default(),
            refused: Default::default(),
            failed_requests: Default::default(),
            injected: Default::default(),
        }));
        let upstream = upstream.to_owned();
        let client = reqwest::Client::new();
        let s = state.clone();
        let forward = move |request: Request| {
            let (upstream, client, state) = (upstream.clone(), client.clone(), s.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let service = signed_service(&parts.headers);
                let settled = state.lock().unwrap().settle(&service, &parts, &body);
                if let Some(answer) = settled {
                    return answer;
                }
                let fault = {
                    let mut state = state.lock().unwrap();
                    let roll = state.next() % 3000;
                    let fault = if state.storm {
                        Some(Fault::Throttled)
                    } else {
                        match roll / 1000 {
                            _ if roll % 1000 >= state.per_mille => None,
                            0 => Some(Fault::Throttled),
                            1 => Some(Fault::ServerError),
                            _ => Some(Fault::AnswerLost),
                        }
                    };
                    if let Some(fault) = fault {
                        *state.injected.entry((service.clone(), fault)).or_default() += 1;
                    }
                    fault
                };
                match fault {
                    None => relay(&client, &upstream, &parts, body)
                        .await
                        .into_response(),
                    Some(Fault::Throttled) => throttled(&service),
                    Some(Fault::ServerError) => server_error(&service),
                    Some(
                        Fault::NotYetPropagated
                        | Fault::AccountRequestFailed
                        | Fault::ClosureDeferred,
                    ) => {
                        unreachable!("settling refusals are answered by FaultState::settle")
                    }
                    Some(Fault::AnswerLost) => {
                        let answer = relay(&client, &upstream, &parts, body).await;
                        // The status line goes out, then the body breaks off.
                        let broken = futures_util::stream::once(async {
                            Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other(
                                "connection lost",
                            ))
                        });
                        axum::response::Response::builder()
                            .status(answer.status)
                            .header("content-length", answer.body.len().max(1))
                            .body(axum::body::Body::from_stream(broken))
                            .unwrap()
                    }
                }
            }
        };
        let url = serve_proxy(axum::Router::new().fallback(forward)).await;
        FaultProxy { url, state }
    }

    /// Throttles every call while on.
    pub fn storm(&self, on: bool) {
        self.state.lock().unwrap().storm = on;
    }

    /// Turns eventual-consistency refusals on (they come on top of the seeded faults).
    pub fn settling(&self, settling: Settling) {
        self.state.lock().unwrap().settling = settling;
    }

    /// How many faults of each kind were injected into each service's calls.
    pub fn injected(&self) -> std::collections::HashMap<(String, Fault), usize> {
        self.state.lock().unwrap().injected.clone()
    }
}

impl FaultState {
    /// The settling refusal for this call, if it gets one (recorded in `injected`).
    fn settle(
        &mut self,
        service: &str,
        parts: &axum::http::request::Parts,
        body: &[u8],
    ) -> Option<axum::response::Response> {
        let json = || serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
        let target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (fault, answer) = match service {
            "sts" => {
                let form: std::collections::HashMap<String, String> =
                    form_urlencoded::parse(body).into_owned().collect();
                if form.get("Action").map(String::as_str) != Some("AssumeRole") {
                    return None;
                }
                let role = form.get("RoleArn").cloned().unwrap_or_default();
                if !self.refuse(format!("AssumeRole {role}"), self.settling.assume_role) {
                    return None;
                }
                let message = format!(
                    "User: arn:aws:iam::123456789012:user/slipway is not authorized to perform: sts:AssumeRole on resource: {role}"
                );
                (
                    Fault::NotYetPropagated,
                    refusal_saying(service, 403, "AccessDenied", &message),
                )
            }
            "eks" if parts.method == "POST" => {
                let path = parts.uri.path();
                let name = if path == "/clusters" {
                    json()["name"]
                        .as_str()
                        .map(|n| format!("CreateCluster {n}"))
                } else if path.ends_with("/node-groups") {
                    json()["nodegroupName"]
                        .as_str()
                        .map(|n| format!("CreateNodegroup {n}"))
                } else {
                    None
                }?;
                if !self.refuse(name, self.settling.eks_roles) {
                    return None;
                }
                let message = "Role with arn: arn:aws:iam::123456789012:role/slipway-eks-cluster, could not be assumed because it does not exist or the trusted entity is not correct";
                (
                    Fault::NotYetPropagated,
                    refusal_saying(service, 400, "InvalidParameterException", message),
                )
            }
            "organizations" if target.ends_with(".CreateAccount") => {
                let reason = self.settling.first_account_request_fails?;
                let name = json()["AccountName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if !self.refuse(format!("CreateAccount {name}"), 1) {
                    return None;
                }
                let id = format!("car-settling{:08x}", self.next() as u32);
                self.failed_requests.insert(id.clone(), reason);
                let status = serde_json::json!({ "CreateAccountStatus": {
                    "Id": id, "AccountName": name, "State": "IN_PROGRESS",
                }});
                (Fault::AccountRequestFailed, organizations_answer(&status))
            }
            "organizations" if target.ends_with(".CloseAccount") => {
                let account = json()["AccountId"].as_str().unwrap_or_default().to_owned();
                if !self.refuse(
                    format!("CloseAccount {account}"),
                    self.settling.close_account_quota,
                ) {
                    return None;
                }
                let body = serde_json::json!({
                    "__type": "ConstraintViolationException",
                    "Message": "You have exceeded close account quota for the past 30 days.",
                    "Reason": "CLOSE_ACCOUNT_QUOTA_EXCEEDED",
                });
                let answer = axum::response::Response::builder()
                    .status(400)
                    .header("content-type", "application/x-amz-json-1.1")
                    .body(axum::body::Body::from(body.to_string()))
                    .unwrap();
                (Fault::ClosureDeferred, answer)
            }
            "organizations" if target.ends_with(".DescribeCreateAccountStatus") => {
                let id = json()["CreateAccountRequestId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let reason = self.failed_requests.get(&id)?;
                let status = serde_json::json!({ "CreateAccountStatus": {
                    "Id": id, "State": "FAILED", "FailureReason": reason,
                }});
                return Some(organizations_answer(&status));
            }
            _ => return None,
        };
        *self
            .injected
            .entry((service.to_owned(), fault))
            .or_default() += 1;
        Some(answer)
    }

    /// Whether the call on `what` is still within its first `times`, counting it.
    fn refuse(&mut self, what: String, times: u32) -> bool {
        let refused = self.refused.entry(what).or_default();
        *refused += 1;
        *refused <= times
    }

    /// xorshift64: reproducible from the seed.
    fn next(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }
}

/// The AWS service a request is signed for: `…/<date>/<region>/<service>/aws4_request`.
fn signed_service(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|scope| scope.split('/').nth(3))
        .unwrap_or("unknown")
        .to_owned()
}

/// A throttling answer, with the status and code each service uses.
fn throttled(service: &str) -> axum::response::Response {
    match service {
        "organizations" => refusal(service, 400, "TooManyRequestsException"),
        "eks" => refusal(service, 429, "ThrottlingException"),
        "ec2" => refusal(service, 503, "RequestLimitExceeded"),
        _ => refusal(service, 400, "Throttling"),
    }
}

/// A server fault, with the status and code each service uses.
fn server_error(service: &str) -> axum::response::Response {
    match service {
        "organizations" => refusal(service, 500, "ServiceException"),
        "eks" => refusal(service, 500, "ServerException"),
        "iam" => refusal(service, 500, "ServiceFailure"),
        "ec2" => refusal(service, 500, "InternalError"),
        _ => refusal(service, 500, "InternalFailure"),
    }
}

/// A successful Organizations answer (JSON 1.1).
fn organizations_answer(body: &serde_json::Value) -> axum::response::Response {
    axum::response::Response::builder()
        .status(200)
        .header("content-type", "application/x-amz-json-1.1")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap()
}

fn refusal(service: &str, status: u16, code: &str) -> axum::response::Response {
    refusal_saying(service, status, code, "injected by the fault proxy")
}

/// An error answer as `service` gives it: JSON with `__type` (Organizations), JSON with the
/// `x-amzn-ErrorType` header (EKS), EC2's XML, or the Query services' XML (IAM, STS).
fn refusal_saying(
    service: &str,
    status: u16,
    code: &str,
    message: &str,
) -> axum::response::Response {
    let (content_type, code_header, body) = match service {
        "organizations" => (
            "application/x-amz-json-1.1",
            None,
            serde_json::json!({ "__type": code, "Message": message }).to_string(),
        ),
        "eks" => (
            "application/json",
            Some(code.to_owned()),
            serde_json::json!({ "message": message }).to_string(),
        ),
        "ec2" => (
            "text/xml",
            None,
            format!(
                "<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>fault</RequestID></Response>"
            ),
        ),
        _ => (
            "text/xml",
            None,
            format!(
                "<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
            ),
        ),
    };
    let mut response = axum::response::Response::builder()
        .status(status)
        .header("content-type", content_type);
    if let Some(code) = code_header {
        response = response.header("x-amzn-ErrorType", code);
    }
    response.body(axum::body::Body::from(body)).unwrap()
}

/// How long the cloud takes, for the latency proxy: moto finishes everything at once.
#[derive(Debug, Clone, Copy)]
pub struct CloudWaits {
    pub account: Duration,
    pub cluster: Duration,
    pub nodegroup: Duration,
    pub addon: Duration,
}

/// A proxy in front of moto that makes creations take time, as AWS's do: an account request
/// stays `IN_PROGRESS`, a cluster, node group or add-on `CREATING`, until its wait has passed
/// since its create call. It also notes when the first call came.
pub struct LatencyProxy {
    pub url: String,
    state: std::sync::Arc<std::sync::Mutex<LatencyState>>,
}

#[derive(Default)]
struct LatencyState {
    /// When each creation was asked for, by what identifies it in later reads.
    created: std::collections::HashMap<String, Instant>,
    first_call: Option<Instant>,
}

impl LatencyProxy {
    pub async fn start(upstream: &str, waits: CloudWaits) -> LatencyProxy {
        use axum::extract::Request;
        let state = std::sync::Arc::new(std::sync::Mutex::new(LatencyState::default()));
        let upstream = upstream.to_owned();
        let client = reqwest::Client::new();
        let s = state.clone();
        let forward = move |request: Request| {
            let (upstream, client, state) = (upstream.clone(), client.clone(), s.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                state
                    .lock()
                    .unwrap()
                    .first_call
                    .get_or_insert_with(Instant::now);
                let target = parts
                    .headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let (method, path) = (
                    parts.method.as_str().to_owned(),
                    parts.uri.path().to_owned(),
                );
                let sent: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let mut answer = relay(&client, &upstream, &parts, body).await;
                let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&answer.body) else {
                    return answer.into_response();
                };
                let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
                // A creation starts its wait under a key; a read of that key within the wait is
                // answered (status pointer, "still going").
                type Reading = Option<(String, Duration, &'static str, &'static str)>;
                let created = |key: String| -> Reading {
                    state.lock().unwrap().created.insert(key, Instant::now());
                    None
                };
                let reading = |key: String, wait: Duration, at, going| -> Reading {
                    Some((key, wait, at, going))
                };
                let name_in = |field: &str| sent[field].as_str().unwrap_or_default().to_owned();
                let read = match (method.as_str(), segments.as_slice()) {
                    _ if target.ends_with(".CreateAccount") => created(
                        json["CreateAccountStatus"]["Id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                    _ if target.ends_with(".DescribeCreateAccountStatus") => reading(
                        name_in("CreateAccountRequestId"),
                        waits.account,
                        "/CreateAccountStatus",
                        "IN_PROGRESS",
                    ),
                    ("POST", ["clusters"]) => created(format!("cluster/{}", name_in("name"))),
                    ("GET", ["clusters", name]) => reading(
                        format!("cluster/{name}"),
                        waits.cluster,
                        "/cluster",
                        "CREATING",
                    ),
                    ("POST", ["clusters", cluster, "node-groups"]) => {
                        created(format!("nodegroup/{cluster}/{}", name_in("nodegroupName")))
                    }
                    ("GET", ["clusters", cluster, "node-groups", name]) => reading(
                        format!("nodegroup/{cluster}/{name}"),
                        waits.nodegroup,
                        "/nodegroup",
                        "CREATING",
                    ),
                    ("POST", ["clusters", cluster, "addons"]) => {
                        created(format!("addon/{cluster}/{}", name_in("addonName")))
                    }
                    ("GET", ["clusters", cluster, "addons", name]) => reading(
                        format!("addon/{cluster}/{name}"),
                        waits.addon,
                        "/addon",
                        "CREATING",
                    ),
                    _ => None,
                };
                if let Some((key, wait, at, going)) = read {
                    let since = state
                        .lock()
                        .unwrap()
                        .created
                        .get(&key)
                        .map(Instant::elapsed);
                    if since.is_some_and(|since| since < wait)
                        && let Some(object) = json.pointer_mut(at).and_then(|o| o.as_object_mut())
                    {
                        let field = if at == "/CreateAccountStatus" {
                            "State"
                        } else {
                            "status"
                        };
                        object.insert(field.to_owned(), going.into());
                        object.remove("AccountId");
                        answer.body = serde_json::to_vec(&json).unwrap().into();
                    }
                }
                answer.into_response()
            }
        };
        let url = serve_proxy(axum::Router::new().fallback(forward)).await;
        LatencyProxy { url, state }
    }

    /// When the first call came through since [`LatencyProxy::forget_calls`], if any has.
    pub fn first_call(&self) -> Option<Instant> {
        self.state.lock().unwrap().first_call
    }

    /// When each creation whose key starts with `prefix` (`cluster/`, `nodegroup/`, `addon/`, or
    /// an account request id) was asked for.
    pub fn created(&self, prefix: &str) -> Vec<(String, Instant)> {
        let state = self.state.lock().unwrap();
        let mut created: Vec<(String, Instant)> = state
            .created
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, at)| (key.clone(), *at))
            .collect();
        created.sort();
        created
    }

    pub fn forget_calls(&self) {
        self.state.lock().unwrap().first_call = None;
    }
}
