//! Provisioning: turning an approved request into an environment, and tearing it down.
//! [`plan`] builds the ordered steps from the blueprint and the request (with [`manifests`], the
//! Kubernetes objects, whose images and versions [`versions`] pins); the same plan, not run, is
//! the preview people see before approving. [`run`] executes it as durable jobs against a
//! [`cloud::Provider`]: [`aws`] (with [`kubernetes`] for the cluster's API) or the [`simulated`]
//! cloud of the embedded default.

pub mod accounts;
pub mod aws;
pub mod billing;
pub mod closures;
pub mod cloud;
pub mod delivery;
pub mod desired;
pub mod drift;
pub mod ec2;
pub mod kubernetes;
pub mod manifests;
pub mod plan;
pub mod pool;
pub mod rollout;
pub mod run;
pub mod signing;
pub mod simulated;
pub mod upgrade;
pub mod versions;
pub mod vpc;
pub mod waits;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use run::{EnvironmentOwner, Runner, Target};

/// The job kind that provisions an environment (payload [`EnvironmentJobPayload`]).
pub const PROVISION_JOB: &str = "environment.provision";
/// The job kind that tears an environment down.
pub const TEARDOWN_JOB: &str = "environment.teardown";

/// The payload of both environment job kinds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentJobPayload {
    pub environment_id: uuid::Uuid,
}

impl EnvironmentJobPayload {
    pub fn to_json(self) -> serde_json::Value {
        serde_json::to_value(self).expect("the payload serialises")
    }
}

/// The cloud this process provisions in.
#[derive(Clone)]
pub enum Cloud {
    Aws(Box<aws::AwsCloud>),
    Simulated(simulated::SimulatedCloud),
}

/// What the cloud connection page's "Test connection" found.
#[derive(Debug)]
pub struct ConnectionCheck {
    pub identity: cloud::Identity,
    /// The organization, or why Slipway cannot create accounts in it.
    pub organization: Result<cloud::Organization, String>,
}

impl Cloud {
    /// Who Slipway acts as, and whether it may create accounts where it runs (the checks the
    /// account step makes before creating anything).
    pub async fn check_connection(&self) -> Result<ConnectionCheck, cloud::CloudError> {
        use cloud::Provider;
        let (identity, organization) = match self {
            Cloud::Aws(p) => (p.identity().await?, p.organization().await),
            Cloud::Simulated(p) => (p.identity().await?, p.organization().await),
        };
        Ok(ConnectionCheck {
            identity,
            organization: organization.map_err(|e| e.to_string()),
        })
    }
}

impl Cloud {
    /// Each account's cost per day from `from` up to `to` (Cost Explorer, asked of the
    /// management account); `None` for the simulated cloud, which has no bill.
    pub async fn daily_costs(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Option<Vec<billing::AccountDay>>, cloud::CloudError> {
        match self {
            Cloud::Aws(p) => p.daily_costs(from, to).await.map(Some),
            Cloud::Simulated(_) => Ok(None),
        }
    }

    /// EKS's Kubernetes versions with their end of standard and extended support
    /// (`DescribeClusterVersions`); `None` for the simulated cloud.
    pub async fn kubernetes_versions(
        &self,
    ) -> Result<Option<Vec<(String, chrono::NaiveDate, chrono::NaiveDate)>>, cloud::CloudError>
    {
        match self {
            Cloud::Aws(p) => p.kubernetes_versions().await.map(Some),
            Cloud::Simulated(_) => Ok(None),
        }
    }
}

/// Adds the provisioning, teardown, drift, upgrade and roll-out job kinds to `registry`. The
/// runner's `owner` is how the jobs read the environment they work on and report back, `drift`
/// where drift findings go, `upgrades` and `rollouts` how those are checked and reported; provisioning never
/// touches environments itself.
pub fn job_kinds(
    registry: crate::jobs::Registry,
    runner: Arc<run::Runner>,
    drift: Arc<dyn drift::DriftOwner>,
    upgrades: Arc<dyn upgrade::UpgradeOwner>,
    rollouts: Arc<dyn rollout::RolloutOwner>,
) -> crate::jobs::Registry {
    let cloud = runner.cloud.clone();
    registry
        .with(pool::TopUp { cloud })
        .with(run::EnvironmentJob::provision(runner.clone()))
        .with(run::EnvironmentJob::teardown(runner.clone()))
        .with(drift::DriftJob::check(runner.clone(), drift.clone()))
        .with(drift::DriftJob::reconcile(runner.clone(), drift))
        .with(upgrade::UpgradeJob {
            runner: runner.clone(),
            owner: upgrades,
        })
        .with(rollout::RolloutJob {
            runner: runner.clone(),
            owner: rollouts,
        })
        .with(closures::CloseQueued { runner })
}
