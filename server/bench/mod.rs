//! The benchmarks behind `slipway bench`: the job engine beside graphile-worker (`jobs`) and
//! the approvals dashboard over HTTP with a small and a large table (`approvals`). They start
//! the whole application, so they sit above it, not inside a domain module.

pub mod approvals;
pub mod jobs;
