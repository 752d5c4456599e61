//! OpenID Connect single sign-on: discovery from the issuer URL, the authorization-code flow with
//! PKCE, `state` bound to the browser and checked once, `nonce` checked, the ID token's signature
//! verified against the provider's JWKS (cached; fetched again when a token names an unknown
//! key), `iss`, `aud` and `exp` checked with a small clock skew. Groups from a configurable claim
//! map to roles at every sign-in.

use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    TokenResponse,
};
use sqlx::PgPool;
use tokio::sync::RwLock;

use super::{Role, RoleSet, secret_hash};
use crate::secret::Secret;

/// One entry of `oidc_role_map`: members of `group` get `role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMapping {
    pub group: String,
    pub role: Role,
}

#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// The ID-token claim that lists the user's groups.
    pub groups_claim: String,
    pub role_map: Vec<RoleMapping>,
    /// Scopes asked for besides `openid email profile` (e.g. `groups` for some providers).
    pub extra_scopes: Vec<String>,
}

/// Tolerated difference between our clock and the provider's when checking `exp`.
const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(60);
/// How long a browser may take between leaving for the provider and coming back.
const LOGIN_LIFETIME_MINUTES: i64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error(
        "the identity provider at {issuer} cannot be reached or described itself wrongly: {detail}"
    )]
    Discovery { issuer: String, detail: String },
    #[error(
        "the sign-in answer does not belong to a sign-in started in this browser (state mismatch)"
    )]
    StateMismatch,
    #[error("the sign-in started too long ago, or was already completed; start again")]
    UnknownState,
    #[error("the identity provider refused the authorization code: {0}")]
    CodeExchange(String),
    #[error("the identity provider returned no ID token")]
    NoIdToken,
    #[error("the ID token is not valid: {0}")]
    InvalidToken(String),
    #[error("the identity provider reported an error: {0}")]
    Provider(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Who signed in, as the provider vouches.
#[derive(Debug, Clone)]
pub struct SsoIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub name: String,
    pub groups: Vec<String>,
    pub roles: RoleSet,
    pub next_path: String,
}

pub struct Oidc {
    config: OidcConfig,
    redirect_url: RedirectUrl,
    http: BackChannel,
    /// Discovery document and JWKS, fetched on first use and again on an unknown signing key.
    metadata: RwLock<Option<CoreProviderMetadata>>,
}

impl Oidc {
    pub fn new(config: OidcConfig, public_url: &str) -> anyhow::Result<Self> {
        let redirect_url = RedirectUrl::new(format!(
            "{}/auth/oidc/callback",
            public_url.trim_end_matches('/')
        ))?;
        crate::init_tls();
        let http = reqwest::Client::builder()
            // Never follow redirects from the provider's back channel (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self {
            config,
            redirect_url,
            http: BackChannel(http),
            metadata: RwLock::new(None),
        })
    }

    async fn metadata(&self, refresh: bool) -> Result<CoreProviderMetadata, OidcError> {
        if !refresh && let Some(metadata) = self.metadata.read().await.as_ref() {
            return Ok(metadata.clone());
        }
        let issuer =
            IssuerUrl::new(self.config.issuer.clone()).map_err(|e| OidcError::Discovery {
                issuer: self.config.issuer.clone(),
                detail: e.to_string(),
            })?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Discovery {
                issuer: self.config.issuer.clone(),
                detail: error_chain(&e),
            })?;
        *self.metadata.write().await = Some(metadata.clone());
        Ok(metadata)
    }

    fn client(&self, metadata: CoreProviderMetadata) -> ProviderClient {
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.config
                .client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_owned())),
        )
        .set_redirect_uri(self.redirect_url.clone())
    }

    /// Starts a sign-in: remembers state, nonce and PKCE verifier, and returns the provider's
    /// authorization URL and the state value to bind to the browser (cookie).
    /// The `oidc_role_map` setting (in force until an admin edits the mapping).
    pub fn configured_role_map(&self) -> &[RoleMapping] {
        &self.config.role_map
    }

    pub async fn begin(&self, db: &PgPool, next_path: &str) -> Result<(String, String), OidcError> {
        let client = self.client(self.metadata(false).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        for scope in &self.config.extra_scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        sqlx::query("DELETE FROM oidc_login WHERE expires_at < now()")
            .execute(db)
            .await?;
        sqlx::query(
            "INSERT INTO oidc_login (state_hash, nonce, pkce_verifier, next_path, expires_at)
             VALUES ($1, $2, $3, $4, now() + make_interval(mins => $5))",
        )
        .bind(secret_hash(state.secret()))
        .bind(nonce.secret())
        .bind(verifier.secret())
        .bind(next_path)
        .bind(LOGIN_LIFETIME_MINUTES as i32)
        .execute(db)
        .await?;
        Ok((url.to_string(), state.secret().clone()))
    }

    /// Completes a sign-in from the provider's redirect: checks `state` against the browser's
    /// cookie and our record (used once), exchanges the code with the PKCE verifier and verifies
    /// the ID token.
    pub async fn complete(
        &self,
        db: &PgPool,
        state: &str,
        browser_state: Option<&str>,
        code: &str,
    ) -> Result<SsoIdentity, OidcError> {
        let bound = browser_state
            .is_some_and(|cookie| constant_time_eq(cookie.as_bytes(), state.as_bytes()));
        if !bound {
            return Err(OidcError::StateMismatch);
        }
        let login: Option<(String, String, String)> = sqlx::query_as(
            "DELETE FROM oidc_login WHERE state_hash = $1 AND expires_at > now()
             RETURNING nonce, pkce_verifier, next_path",
        )
        .bind(secret_hash(state))
        .fetch_optional(db)
        .await?;
        let (nonce, verifier, next_path) = login.ok_or(OidcError::UnknownState)?;

        let client = self.client(self.metadata(false).await?);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::CodeExchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::CodeExchange(error_chain(&e)))?;
        let id_token = response.id_token().ok_or(OidcError::NoIdToken)?.clone();

        let nonce = Nonce::new(nonce);
        let claims = match self.verify(&client, &id_token, &nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys since we fetched them: fetch once more.
                tracing::info!(
                    "ID token signed by an unknown key; fetching the provider's keys again"
                );
                let client = self.client(self.metadata(true).await?);
                self.verify(&client, &id_token, &nonce)
            }
            other => other,
        }
        .map_err(|e| OidcError::InvalidToken(error_chain(&e)))?;

        let groups = groups_claim(&id_token, &self.config.groups_claim);
        let mapping = super::role_map::in_force(db, &self.config.role_map).await?;
        let roles = map_groups(&mapping.mapping, &groups);
        Ok(SsoIdentity {
            email: claims
                .email
                .unwrap_or_else(|| format!("{}@{}", claims.subject, host_of(&claims.issuer))),
            name: claims.name.unwrap_or_else(|| claims.subject.clone()),
            issuer: claims.issuer,
            subject: claims.subject,
            groups,
            roles,
            next_path,
        })
    }

    /// Signature, issuer, audience, expiry (with skew) and nonce; returns the claims we use.
    fn verify(
        &self,
        client: &ProviderClient,
        id_token: &CoreIdToken,
        nonce: &Nonce,
    ) -> Result<VerifiedClaims, ClaimsVerificationError> {
        let verifier = client
            .id_token_verifier()
            .set_time_fn(|| Utc::now() - CLOCK_SKEW);
        let claims = id_token.claims(&verifier, nonce)?;
        Ok(VerifiedClaims {
            issuer: claims.issuer().to_string(),
            subject: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.to_string()),
        })
    }
}

/// The client as built from discovery: authorization endpoint set, token endpoint maybe.
type ProviderClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

struct VerifiedClaims {
    issuer: String,
    subject: String,
    email: Option<String>,
    name: Option<String>,
}

/// The HTTP client for calls to the provider (discovery, keys, token exchange).
struct BackChannel(reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for BackChannel {
    type Error = reqwest::Error;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<openidconnect::HttpResponse, Self::Error>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let mut builder = openidconnect::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let bytes = response.bytes().await?;
            Ok(builder
                .body(bytes.to_vec())
                .expect("status and headers come from a valid response"))
        })
    }
}

/// The groups in the (already verified) token's claim `claim`: a list of strings or one string.
fn groups_claim(id_token: &CoreIdToken, claim: &str) -> Vec<String> {
    let text = id_token.to_string();
    let Some(payload) = text.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return Vec::new();
    };
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    match claims.get(claim) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// The roles a user's groups grant under the configured mapping.
pub fn map_groups(mapping: &[RoleMapping], groups: &[String]) -> RoleSet {
    mapping
        .iter()
        .filter(|m| groups.contains(&m.group))
        .map(|m| m.role)
        .collect::<Vec<Role>>()
        .into_iter()
        .collect()
}

fn host_of(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split(['/', ':'])
        .next()
        .unwrap_or("sso")
        .to_owned()
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Constant-time comparison, so the state check leaks nothing through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_the_union_of_their_roles() {
        let mapping = vec![
            RoleMapping {
                group: "devs".into(),
                role: Role::Developer,
            },
            RoleMapping {
                group: "platform".into(),
                role: Role::PlatformEngineer,
            },
            RoleMapping {
                group: "platform".into(),
                role: Role::Developer,
            },
        ];
        let roles = map_groups(&mapping, &["platform".into(), "unrelated".into()]);
        assert_eq!(roles.to_string(), "developer,platform_engineer");
        assert!(map_groups(&mapping, &[]).is_empty());
    }
}
