//! Provisioning: turning an approved request into an environment. [`plan`] builds the ordered
//! steps from the blueprint and the request; the same plan, not run, is the preview people
//! see before approving. Running the steps against AWS and Kubernetes is the provisioning
//! issue's work: until then approval leaves the request `approved` with its job queued.

pub mod plan;

/// The job kind that provisions an environment (payload `{"environment_id": …}`).
pub const PROVISION_JOB: &str = "environment.provision";
/// The job kind that tears an environment down.
pub const TEARDOWN_JOB: &str = "environment.teardown";

/// Whether this build runs the provisioning and teardown jobs. Until it does, their jobs wait
/// queued (workers claim only kinds they know) and the request page says so.
pub const PROVISIONING_BUILT: bool = false;
