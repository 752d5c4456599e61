//! Provisioning: turning an approved request into an environment, and tearing it down.
//! [`plan`] builds the ordered steps from the blueprint and the request (with [`manifests`], the
//! Kubernetes objects); the same plan, not run, is the preview people see before approving.
//! [`run`] executes it as durable jobs against a [`cloud::Provider`]: [`aws`] (with
//! [`kubernetes`] for the cluster's API) or the [`simulated`] cloud of the embedded default.

pub mod aws;
pub mod cloud;
pub mod kubernetes;
pub mod manifests;
pub mod plan;
pub mod run;
pub mod simulated;

use std::sync::Arc;

use sqlx::PgPool;

use crate::app::config::{CloudMode, Config};
use crate::clock::Clock;

/// The job kind that provisions an environment (payload `{"environment_id": …}`).
pub const PROVISION_JOB: &str = "environment.provision";
/// The job kind that tears an environment down.
pub const TEARDOWN_JOB: &str = "environment.teardown";

/// The cloud this process provisions in.
#[derive(Clone)]
pub enum Cloud {
    Aws(Box<aws::AwsCloud>),
    Simulated(simulated::SimulatedCloud),
}

impl Cloud {
    /// The cloud the configuration names; AWS credentials are resolved lazily by the SDK.
    pub async fn from_config(config: &Config, db: &PgPool) -> Cloud {
        match config.cloud {
            CloudMode::Simulated => Cloud::Simulated(simulated::SimulatedCloud::new(
                db.clone(),
                config.simulated_delay,
            )),
            CloudMode::Aws => {
                Cloud::Aws(Box::new(aws::AwsCloud::connect(config.aws.clone()).await))
            }
        }
    }

    /// Who Slipway acts as (the cloud connection page's "Test connection").
    pub async fn identity(&self) -> Result<cloud::Identity, cloud::CloudError> {
        use cloud::Provider;
        match self {
            Cloud::Aws(p) => p.identity().await,
            Cloud::Simulated(p) => p.identity().await,
        }
    }
}

/// Adds the provisioning and teardown job kinds to `registry`.
pub fn job_kinds(
    registry: crate::jobs::Registry,
    db: PgPool,
    cloud: Cloud,
    clock: Clock,
    base_url: &str,
) -> crate::jobs::Registry {
    let runner = Arc::new(run::Runner {
        db,
        cloud,
        clock,
        base_url: base_url.to_owned(),
    });
    registry
        .with(run::EnvironmentJob::provision(runner.clone()))
        .with(run::EnvironmentJob::teardown(runner))
}
