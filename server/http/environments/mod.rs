//! Environments: the JSON API and the pages.

pub mod api;
pub mod json;
pub mod pages;
