//! Identity: the JSON API and the pages.

pub mod account;
pub mod api;
