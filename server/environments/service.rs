//! The environment use cases as the pages and the API call them: one entry point each, with
//! what they all need bound once (the database, the time of the request, where links in
//! notifications point, the domain of created accounts' e-mail). Authorization is not here: the
//! caller has asked `auth::can` (through its extractor) before calling.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::lifecycle::{self, Decided, Decision, DevopsRequest, Extended};
use super::request::{self, CheckedRequest, RawRequest};
use super::{EnvironmentError, EnvironmentId};
use crate::audit::Actor;
use crate::auth::Principal;
use crate::define::platforms::Platform;
use crate::define::revisions::{self, Revision};

pub struct Environments<'a> {
    pub db: &'a PgPool,
    pub now: DateTime<Utc>,
    pub base_url: &'a str,
    pub account_email_domain: &'a str,
}

impl Environments<'_> {
    /// The approved blueprint requests are made against; 409 when there is none.
    pub async fn approved_blueprint(
        &self,
        platform: &Platform,
    ) -> Result<Revision, EnvironmentError> {
        revisions::approved(self.db, platform.id)
            .await?
            .ok_or_else(|| {
                EnvironmentError::Conflict(format!(
                    "{} has no approved blueprint yet, so it offers no environment types.",
                    platform.name
                ))
            })
    }

    /// Checks a request against the platform's approved blueprint: the type, name, TTL, node
    /// sizes and data services, with its cost estimate and plan. Nothing is stored (a dry run).
    pub async fn check_request(
        &self,
        platform: &Platform,
        by: &Principal,
        raw: &RawRequest,
    ) -> Result<CheckedRequest, EnvironmentError> {
        let approved = self.approved_blueprint(platform).await?;
        request::check(
            self.db,
            platform,
            &approved,
            by,
            raw,
            self.account_email_domain,
        )
        .await
    }

    /// Submits a checked request: `submitted`, or `approved` at once when the type's policy
    /// auto-approves it.
    pub async fn submit(
        &self,
        platform: &Platform,
        by: &Principal,
        checked: &CheckedRequest,
    ) -> Result<EnvironmentId, EnvironmentError> {
        let (id, _) =
            lifecycle::submit(self.db, platform, by, checked, self.now, self.base_url).await?;
        Ok(id)
    }

    /// Approve or reject a request (or an extension beyond the type's maximum TTL).
    pub async fn decide(
        &self,
        id: EnvironmentId,
        by: &Principal,
        decision: Decision,
        comment: &str,
    ) -> Result<Decided, EnvironmentError> {
        lifecycle::decide(self.db, id, by, decision, comment, self.now, self.base_url).await
    }

    /// The requester withdraws a request awaiting a decision.
    pub async fn cancel(&self, id: EnvironmentId, by: &Principal) -> Result<(), EnvironmentError> {
        lifecycle::cancel(self.db, id, by, self.now, self.base_url).await
    }

    /// Extends the TTL, or asks for approval when it goes beyond the type's maximum.
    pub async fn extend(
        &self,
        id: EnvironmentId,
        by: &Principal,
        ttl_hours: &str,
    ) -> Result<Extended, EnvironmentError> {
        lifecycle::extend(self.db, id, by, ttl_hours, self.now, self.base_url).await
    }

    /// Tears down on the caller's request.
    pub async fn teardown(
        &self,
        id: EnvironmentId,
        by: &Principal,
    ) -> Result<(), EnvironmentError> {
        let reason = format!("requested by {}", by.user.name);
        lifecycle::teardown(self.db, id, &Actor::from(by), &reason, self.base_url).await
    }

    /// Retries a failed environment's job from its failed step.
    pub async fn retry(&self, id: EnvironmentId, by: &Principal) -> Result<(), EnvironmentError> {
        lifecycle::retry(self.db, id, &Actor::from(by)).await?;
        Ok(())
    }

    /// Starts the platform's DevOps environment from its approved blueprint.
    pub async fn start_devops(
        &self,
        platform: &Platform,
        by: &Principal,
    ) -> Result<EnvironmentId, EnvironmentError> {
        let approved = self.approved_blueprint(platform).await?;
        let (parameters, plan) = crate::provision::plan::build_devops(
            &platform.slug,
            &approved.document,
            self.account_email_domain,
        );
        let devops = DevopsRequest {
            blueprint_number: approved.number,
            parameters,
            plan,
        };
        lifecycle::create_devops(self.db, platform, by, &devops, self.now, self.base_url).await
    }
}
