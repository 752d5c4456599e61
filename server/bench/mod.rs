//! The benchmarks behind `slipway bench`: the job engine beside graphile-worker and River
//! (`jobs`), the approvals dashboard over HTTP with a small and a large table (`approvals`),
//! pages and the API under wrk (`pages`), and the Markdown report of them all (`all`). They
//! start the whole application, so they sit above it, not inside a domain module.

pub mod approvals;
pub mod jobs;
pub mod pages;
pub mod report;
pub mod site;
