//! Environments, born as requests (DESIGN §3): a developer requests one of the types the
//! approved blueprint defines ([`request`]), sees its cost ([`pricing`]) and plan, and the
//! platform team decides it under the type's approval policy ([`lifecycle`]). The dashboard and
//! the inventories read it through [`queries`]; people hear about it through [`notify`]; the
//! [`sweeper`] expires stale requests and ends ephemeral environments at their TTL.

pub mod lifecycle;
pub mod notify;
pub mod pricing;
pub mod provisioning;
pub mod queries;
pub mod request;
pub mod service;
pub mod sweeper;

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validation::FieldErrors;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct EnvironmentId(pub Uuid);

impl fmt::Display for EnvironmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for EnvironmentId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(EnvironmentId)
    }
}

/// The states of DESIGN §3; the database trigger allows only its transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnvState {
    Submitted,
    Approved,
    Rejected,
    Cancelled,
    Expired,
    Provisioning,
    Ready,
    Failed,
    TearingDown,
    TornDown,
}

// Stored as text; the column's CHECK lists the same names.
crate::text_column!(EnvState, "environment state");

impl EnvState {
    pub const ALL: [EnvState; 10] = [
        EnvState::Submitted,
        EnvState::Approved,
        EnvState::Rejected,
        EnvState::Cancelled,
        EnvState::Expired,
        EnvState::Provisioning,
        EnvState::Ready,
        EnvState::Failed,
        EnvState::TearingDown,
        EnvState::TornDown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EnvState::Submitted => "submitted",
            EnvState::Approved => "approved",
            EnvState::Rejected => "rejected",
            EnvState::Cancelled => "cancelled",
            EnvState::Expired => "expired",
            EnvState::Provisioning => "provisioning",
            EnvState::Ready => "ready",
            EnvState::Failed => "failed",
            EnvState::TearingDown => "tearing_down",
            EnvState::TornDown => "torn_down",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            EnvState::Submitted => "Awaiting approval",
            EnvState::Approved => "Approved",
            EnvState::Rejected => "Rejected",
            EnvState::Cancelled => "Cancelled",
            EnvState::Expired => "Expired",
            EnvState::Provisioning => "Provisioning",
            EnvState::Ready => "Ready",
            EnvState::Failed => "Failed",
            EnvState::TearingDown => "Tearing down",
            EnvState::TornDown => "Torn down",
        }
    }

    pub fn parse(text: &str) -> Option<EnvState> {
        EnvState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Requests that never became an environment, and environments that are gone.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            EnvState::Rejected | EnvState::Cancelled | EnvState::Expired | EnvState::TornDown
        )
    }
}

impl fmt::Display for EnvState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an action on an environment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnvironmentError {
    #[error("no such environment")]
    NotFound,
    #[error("invalid")]
    Invalid(FieldErrors),
    /// The action does not fit the state (already decided, not ready, …): 409.
    #[error("{0}")]
    Conflict(String),
    /// The caller may see the environment but not do this to it: 403.
    #[error("{0}")]
    NotAllowed(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Enqueue(#[from] crate::jobs::queue::EnqueueError),
}

/// An environment use case's error as a job step sees it: the database's is transient (the
/// step is retried), any other permanent. For the owners the provisioning jobs report to.
pub fn step_error(e: impl Into<EnvironmentError>) -> crate::jobs::StepError {
    match e.into() {
        EnvironmentError::Db(e) => crate::jobs::StepError::Transient(format!("database: {e}")),
        other => crate::jobs::StepError::Permanent(other.to_string()),
    }
}

/// Adds the job kinds of environments to `registry`: webhook delivery and the periodic sweep.
/// `base_url` is where people open Slipway (links in notifications); `webhook_allowed_ranges`
/// are the internal ranges webhooks may reach all the same (the setting of that name).
pub fn job_kinds(
    registry: crate::jobs::Registry,
    clock: crate::clock::Clock,
    base_url: &str,
    webhook_allowed_ranges: &[ipnet::IpNet],
) -> crate::jobs::Registry {
    registry
        .with(notify::WebhookDelivery::new(
            webhook_allowed_ranges.to_vec(),
        ))
        .with(sweeper::Sweeper {
            clock,
            base_url: base_url.to_owned(),
        })
}

impl From<FieldErrors> for EnvironmentError {
    fn from(e: FieldErrors) -> Self {
        EnvironmentError::Invalid(e)
    }
}
