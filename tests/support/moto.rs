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

    async fn config_in(&self, account: &str) -> SdkConfig {
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

/// A proxy in front of moto that, once armed with a process id, kills that process with
/// SIGKILL right after moto has carried out a chosen call and before its answer goes back: the
/// crash between "the cloud did it" and "we recorded it" that idempotent steps must survive.
pub struct CrashProxy {
    pub url: String,
    state: std::sync::Arc<std::sync::Mutex<ProxyState>>,
    killed: std::sync::Arc<tokio::sync::Notify>,
}

struct ProxyState {
    /// (method, path) of the call after which to kill.
    trigger: (String, String),
    victim: Option<u32>,
    kills: usize,
}

impl CrashProxy {
    pub async fn start(upstream: &str, method: &str, path: &str) -> CrashProxy {
        use axum::body::Body;
        use axum::extract::Request;
        use axum::response::Response;
        let state = std::sync::Arc::new(std::sync::Mutex::new(ProxyState {
            trigger: (method.to_owned(), path.to_owned()),
            victim: None,
            kills: 0,
        }));
        let killed = std::sync::Arc::new(tokio::sync::Notify::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.to_owned();
        let client = reqwest::Client::new();
        let (s, k) = (state.clone(), killed.clone());
        let forward = move |request: Request| {
            let (upstream, client, state, killed) =
                (upstream.clone(), client.clone(), s.clone(), k.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let path = parts.uri.path().to_owned();
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
                let status = answer.status();
                let headers = answer.headers().clone();
                let bytes = answer.bytes().await.unwrap();
                {
                    let mut state = state.lock().unwrap();
                    let hit = state.trigger == (parts.method.to_string(), path);
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
                let mut response = Response::builder().status(status.as_u16());
                for (name, value) in &headers {
                    if name != "content-length" && name != "transfer-encoding" {
                        response = response.header(name, value);
                    }
                }
                response.body(Body::from(bytes)).unwrap()
            }
        };
        let app = axum::Router::new().fallback(forward);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
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
