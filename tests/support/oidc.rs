//! The OpenID Connect provider of the tests: `oauth2-mock-server` (npm) in a node process,
//! driven through a small control endpoint (who signs in next, how the next token is spoilt).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use slipway::app::config::Secret;
use slipway::auth::Role;
use slipway::auth::oidc::{OidcConfig, RoleMapping};

use super::require_program;

pub struct MockIdp {
    child: Child,
    pub issuer: String,
    control: String,
}

impl MockIdp {
    pub fn start() -> Self {
        let node = require_program("node", "apt-get install nodejs (Node.js 18 or newer)");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        assert!(
            dir.join("node_modules/oauth2-mock-server").is_dir(),
            "the OIDC tests need oauth2-mock-server from npm: run `npm ci --prefix tests/oidc` \
             (./tests/run does it for you)"
        );
        let mut child = Command::new(node)
            .arg(dir.join("mock-oidc.mjs"))
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the mock OpenID Connect provider");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let info: serde_json::Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| panic!("the mock provider did not start ({e}): {first:?}"));
        Self {
            issuer: info["issuer"].as_str().unwrap().to_owned(),
            control: info["control"].as_str().unwrap().to_owned(),
            child,
        }
    }

    /// Slipway's single-sign-on settings for this provider: groups `devs`, `platform-team` and
    /// `admins` map to the three roles.
    pub fn config(&self) -> OidcConfig {
        let map = |group: &str, role| RoleMapping {
            group: group.into(),
            role,
        };
        OidcConfig {
            issuer: self.issuer.clone(),
            client_id: "slipway".into(),
            client_secret: Some(Secret::new("mock-client-secret")),
            groups_claim: "groups".into(),
            role_map: vec![
                map("devs", Role::Developer),
                map("platform-team", Role::PlatformEngineer),
                map("admins", Role::Admin),
            ],
            extra_scopes: vec![],
        }
    }

    async fn control(&self, path: &str, body: serde_json::Value) {
        let res = super::client()
            .post(format!("{}{path}", self.control))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "mock provider control {path}: {}",
            res.status()
        );
    }

    /// Who signs in from now on.
    pub async fn identity(&self, subject: &str, email: &str, groups: &[&str]) {
        self.control(
            "/identity",
            serde_json::json!({ "sub": subject, "email": email, "name": email, "groups": groups }),
        )
        .await;
    }

    /// Spoils the next ID token: `expired`, `wrong_nonce`, `rogue_key` or `wrong_audience`.
    pub async fn tamper(&self, mode: &str) {
        self.control("/tamper", serde_json::json!({ "mode": mode }))
            .await;
    }

    /// Publishes a new signing key and signs the next token with it.
    pub async fn rotate_keys(&self) {
        self.control("/rotate", serde_json::json!({})).await;
    }
}

impl Drop for MockIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
