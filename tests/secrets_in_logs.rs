//! Secrets never reach the logs: the real binary runs with debug logging while people set it up,
//! sign in with a password and with single sign-on, and use an API token; its whole log is then
//! searched for every secret that crossed it.

mod support;

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use support::oidc::MockIdp;
use support::{
    PASSWORD, SlipwayProcess, TestDb, client, csrf_token, set_cookie_value, slipway_command,
};

#[tokio::test]
async fn no_password_token_code_or_cookie_is_logged() {
    let idp = MockIdp::start();
    idp.identity("sub-ops", "ops@example.com", &["admins"])
        .await;
    let db = TestDb::empty().await;
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = slipway_command(cwd.path());
    cmd.env("DATABASE_URL", db.url())
        .env("SLIPWAY_LOG_LEVEL", "trace")
        .env("SLIPWAY_OIDC_ISSUER", &idp.issuer)
        .env("SLIPWAY_OIDC_CLIENT_ID", "slipway")
        .env("SLIPWAY_OIDC_CLIENT_SECRET", "mock-client-secret")
        .env("SLIPWAY_OIDC_ROLE_MAP", "admins=admin");
    let mut process = SlipwayProcess::start(cmd);
    let mut secrets: Vec<String> = vec![PASSWORD.into(), "mock-client-secret".into()];

    // First-run setup through the printed link.
    let setup = process
        .preamble
        .iter()
        .find_map(|line| line.trim().strip_prefix(&process.base).map(str::to_owned))
        .expect("the setup link is printed on stdout");
    secrets.push(setup.trim_start_matches("/setup/").to_owned());
    let browser = client();
    let page = browser
        .get(process.url(&setup))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    secrets.push(csrf_token(&page));
    let res = browser
        .post(process.url(&setup))
        .form(&[
            ("_csrf", csrf_token(&page).as_str()),
            ("email", "admin@example.com"),
            ("name", "Admin"),
            ("password", PASSWORD),
            ("password_confirmation", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    secrets.push(set_cookie_value(&res, "slipway_session").unwrap());

    // A wrong password, then the right one, in a second browser.
    let other = client();
    let login = other
        .get(process.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_token(&login);
    for password in ["a wrong password", PASSWORD] {
        let res = other
            .post(process.url("/login"))
            .form(&[
                ("_csrf", csrf.as_str()),
                ("email", "admin@example.com"),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        if let Some(cookie) = set_cookie_value(&res, "slipway_session") {
            secrets.push(cookie);
        }
    }
    secrets.push("a wrong password".into());

    // An API token, created and used.
    let profile = other
        .get(process.url("/profile"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let created = other
        .post(process.url("/profile/tokens"))
        .form(&[
            ("_csrf", csrf_token(&profile).as_str()),
            ("name", "ci"),
            ("roles", "admin"),
            ("expires", "7d"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = created
        .split("<code>")
        .find_map(|p| p.split("</code>").next().filter(|t| t.starts_with("slw_")))
        .unwrap()
        .to_owned();
    let res = client()
        .get(process.url("/api/v1/audit"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    secrets.push(token);

    // Single sign-on: the authorization code and state travel through Slipway.
    let sso = client();
    let res = sso
        .get(process.url("/auth/oidc/login"))
        .send()
        .await
        .unwrap();
    let to_provider = res.headers()[LOCATION].to_str().unwrap().to_owned();
    let res = sso.get(&to_provider).send().await.unwrap();
    let callback = res.headers()[LOCATION].to_str().unwrap().to_owned();
    for (key, value) in reqwest::Url::parse(&callback).unwrap().query_pairs() {
        if key == "code" || key == "state" {
            secrets.push(value.into_owned());
        }
    }
    let res = sso.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", process.stderr());
    secrets.push(set_cookie_value(&res, "slipway_session").unwrap());

    assert!(process.terminate().success());
    let logs = process.stderr();
    assert!(logs.lines().count() > 50, "debug logging was on:\n{logs}");
    for secret in &secrets {
        assert!(secret.len() >= 8, "a secret worth looking for: {secret:?}");
        assert!(
            !logs.contains(secret.as_str()),
            "the logs contain the secret {secret:?}"
        );
    }
}
