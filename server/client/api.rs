//! HTTP to the public API: the bearer token, problem documents turned into [`ClientError`]s,
//! and the raw body kept for `--json`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::ClientError;
use super::credentials::Credentials;

pub struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// A response body as parsed, and as received (what `--json` prints).
pub struct Body<T> {
    pub value: T,
    pub raw: String,
}

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    title: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    errors: Vec<ProblemField>,
}

#[derive(Deserialize)]
struct ProblemField {
    field: String,
    message: String,
}

impl Api {
    pub fn new(credentials: Credentials) -> Result<Self, ClientError> {
        crate::init_tls();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("slipway-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Local(format!("cannot build the HTTP client: {e}")))?;
        Ok(Api {
            base: credentials.url,
            token: credentials.token,
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The request for `/api/v1{path}`, signed with the token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Body<T>, ClientError> {
        self.call(
            self.request(Method::GET, path)
                .timeout(Duration::from_secs(60)),
        )
        .await
    }

    /// A POST with a JSON body; creating POSTs carry an `Idempotency-Key`, so a request retried
    /// after a lost answer is not made twice.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<Body<T>, ClientError> {
        let request = self
            .request(Method::POST, path)
            .timeout(Duration::from_secs(60))
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(body);
        self.call(request).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Body<T>, ClientError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let raw = checked(response)
            .await?
            .text()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let value = serde_json::from_str(&raw).map_err(|e| {
            ClientError::Local(format!(
                "{} answered with something this client does not understand ({e}); is it a Slipway of the same version?",
                self.base
            ))
        })?;
        Ok(Body { value, raw })
    }

    pub fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        // The innermost cause says what happened (refused, DNS, TLS); reqwest's own text does not.
        let mut source: &dyn std::error::Error = error;
        while let Some(next) = source.source() {
            source = next;
        }
        ClientError::Unreachable {
            url: self.base.clone(),
            reason: source.to_string(),
        }
    }
}

/// `response` if it succeeded, else its problem document as an error.
pub async fn checked(response: reqwest::Response) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let problem: Option<Problem> = serde_json::from_str(&text).ok();
    let reason = status.canonical_reason().unwrap_or("error").to_owned();
    Err(match problem {
        Some(p) => ClientError::Api {
            status: status.as_u16(),
            title: if p.title.is_empty() { reason } else { p.title },
            detail: p.detail,
            errors: p.errors.into_iter().map(|e| (e.field, e.message)).collect(),
        },
        None => ClientError::Api {
            status: status.as_u16(),
            title: reason,
            detail: if status == StatusCode::UNAUTHORIZED {
                "The token was refused: it may have expired or been revoked. Run `slipway login` with a new one.".into()
            } else {
                String::new()
            },
            errors: vec![],
        },
    })
}
