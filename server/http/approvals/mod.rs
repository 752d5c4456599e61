//! Approvals: the JSON API and the pages.

pub mod pages;
