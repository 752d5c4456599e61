//! What every handler can reach.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::config::Config;
use crate::auth::csrf::CsrfKey;
use crate::auth::oidc::Oidc;
use crate::auth::session::Lifetimes;
use crate::http::auth::Cookies;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub embedded_db: bool,
    pub started_at: DateTime<Utc>,
    /// The origin people use, e.g. `https://slipway.example.com` (no trailing slash).
    pub public_url: Arc<str>,
    pub cookies: Cookies,
    pub csrf: CsrfKey,
    /// Single sign-on, when configured.
    pub oidc: Option<Arc<Oidc>>,
    pub clock: crate::clock::Clock,
    /// Job progress notifications, for live pages.
    pub progress: crate::jobs::progress::ProgressHub,
    /// The cloud environments are provisioned in (the cloud connection page tests it).
    pub cloud: crate::provision::Cloud,
}

impl AppState {
    /// Builds the state for a migrated database. Browsers reach us at the configured
    /// `public_url`, or else at `fallback_url` (derived from the listen address).
    pub async fn new(
        pool: PgPool,
        config: Config,
        embedded_db: bool,
        fallback_url: &str,
    ) -> anyhow::Result<Self> {
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| fallback_url.to_owned());
        let public_url = public_url.trim_end_matches('/');
        let oidc = match &config.oidc {
            Some(oidc) => Some(Arc::new(Oidc::new(oidc.clone(), public_url)?)),
            None => None,
        };
        let progress = crate::jobs::progress::ProgressHub::start(pool.clone());
        let cloud = config.connect_cloud(&pool).await;
        Ok(Self {
            cloud,
            csrf: CsrfKey::load(&pool).await?,
            cookies: Cookies {
                secure: public_url.starts_with("https://"),
            },
            public_url: public_url.into(),
            pool,
            config: Arc::new(config),
            embedded_db,
            started_at: Utc::now(),
            oidc,
            clock: crate::clock::Clock::system(),
            progress,
        })
    }

    /// The environment use cases, at this moment.
    pub fn environments(&self) -> crate::environments::service::Environments<'_> {
        crate::environments::service::Environments {
            db: &self.pool,
            now: self.clock.now(),
            base_url: &self.public_url,
            account_email_domain: &self.config.account_email_domain,
        }
    }

    pub fn session_lifetimes(&self) -> Lifetimes {
        let to_chrono =
            |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        Lifetimes {
            idle: to_chrono(self.config.session_idle_timeout),
            absolute: to_chrono(self.config.session_max_age),
        }
    }
}
