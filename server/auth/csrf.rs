//! CSRF tokens: HMAC-SHA256 of the browser's session cookie (or, before sign-in, of a random
//! pre-session cookie) under the instance key. A forged cross-site request carries the cookie but
//! cannot know the token; a token from one session is worthless in another.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;

/// The form field and header that carry the token.
pub const FORM_FIELD: &str = "_csrf";
pub const HEADER: &str = "x-csrf-token";

/// The instance's secret key, shared by all processes through the database.
#[derive(Clone)]
pub struct CsrfKey([u8; 32]);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(…)")
    }
}

impl CsrfKey {
    pub async fn load(db: &PgPool) -> Result<Self, sqlx::Error> {
        let key: Vec<u8> = sqlx::query_scalar("SELECT key FROM instance_secret")
            .fetch_one(db)
            .await?;
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&key);
        Ok(Self(bytes))
    }

    #[cfg(test)]
    fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn mac(&self, basis: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"slipway-csrf:");
        mac.update(basis.as_bytes());
        mac
    }

    /// The token for forms of the browser whose cookie value is `basis`.
    pub fn token(&self, basis: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.mac(basis).finalize().into_bytes())
    }

    /// Constant-time check of a submitted token.
    pub fn verify(&self, basis: &str, token: &str) -> bool {
        match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token) {
            Ok(bytes) => self.mac(basis).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CsrfKey;

    #[test]
    fn tokens_are_bound_to_their_cookie_and_key() {
        let key = CsrfKey::from_bytes([7; 32]);
        let token = key.token("session-a");
        assert!(key.verify("session-a", &token));
        assert!(!key.verify("session-b", &token));
        assert!(!key.verify("session-a", "not-a-token"));
        assert!(!CsrfKey::from_bytes([8; 32]).verify("session-a", &token));
    }
}
