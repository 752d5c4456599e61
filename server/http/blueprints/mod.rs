//! Blueprints: the JSON API and the pages.

pub mod api;
pub mod form;
pub mod pages;
