//! The tests' Git host (`tests/git/server.py`): Debian's `git http-backend` behind a token, on a
//! free loopback port, one per test, plus GitHub's and GitLab's repository REST calls answered as
//! recorded. Repositories are read back from its directory with the `git` program.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use slipway::repositories::GitHost;
use slipway::secret::Secret;

pub const TOKEN: &str = "glpat-slipway-test-token";

pub struct GitServer {
    pub url: String,
    root: tempfile::TempDir,
    child: Child,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the server counted.
#[derive(Debug, serde::Deserialize)]
pub struct Stats {
    /// `git-receive-pack` requests (pushes) that reached `git http-backend`.
    pub pushes: u32,
    /// Repositories made through the REST stand-ins.
    pub creates: u32,
    /// REST requests no recorded exchange matched.
    pub unmatched: Vec<String>,
}

impl GitServer {
    pub async fn start() -> GitServer {
        slipway::init_tls();
        super::require_program("git", "apt-get install git");
        let python = super::require_program("python3", "apt-get install python3");
        let root = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/git/server.py");
        let child = Command::new(python)
            .arg(script)
            .args(["--port", &port.to_string(), "--token", TOKEN])
            .arg("--root")
            .arg(root.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting the Git server");
        let server = GitServer {
            url: format!("http://127.0.0.1:{port}"),
            root,
            child,
        };
        let started = Instant::now();
        while reqwest::get(format!("{}/control/stats", server.url))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the Git server did not answer within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// A plain Git server over HTTP(S) with a token.
    pub fn https(&self) -> GitHost {
        GitHost::Https {
            base: format!("{}/git", self.url),
            token: Secret::new(TOKEN),
        }
    }

    pub fn github(&self, token: &str) -> GitHost {
        GitHost::GitHub {
            api: format!("{}/github", self.url),
            owner: "acme".into(),
            token: Secret::new(token),
        }
    }

    pub fn gitlab(&self, token: &str) -> GitHost {
        GitHost::GitLab {
            api: format!("{}/gitlab", self.url),
            group: "platforms".into(),
            token: Secret::new(token),
        }
    }

    /// The next `what` (`push` or `create`) is carried out and its answer lost.
    pub async fn lose_next(&self, what: &str) {
        let res = reqwest::Client::new()
            .post(format!("{}/control/lose-next/{what}", self.url))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
    }

    pub async fn stats(&self) -> Stats {
        reqwest::get(format!("{}/control/stats", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn bare(&self, repository: &str) -> PathBuf {
        self.root.path().join(format!("{repository}.git"))
    }

    /// `git args…` in the bare repository; its output.
    fn git(&self, repository: &str, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(self.bare(repository))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The commit messages of `main`, newest first.
    pub fn messages(&self, repository: &str) -> Vec<String> {
        self.git(repository, &["log", "--format=%B%x00", "main"])
            .split('\0')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The paths at `main`.
    pub fn paths(&self, repository: &str) -> Vec<String> {
        self.git(repository, &["ls-tree", "-r", "--name-only", "main"])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// One file at `main`.
    pub fn file(&self, repository: &str, path: &str) -> String {
        self.git(repository, &["show", &format!("main:{path}")])
    }
}
