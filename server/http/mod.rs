//! The HTTP layer: one folder per resource (its API handlers and its pages), and what they share:
//! the error mapping (once, in [`error`]), extractors and the policy checks they run, JSON bodies,
//! paging, the page shell. Handlers stay thin: extract, call one use case, render.

pub mod account_pool;
pub mod admin;
pub mod approvals;
pub mod assets;
pub mod auth;
pub mod backlog;
pub mod blueprints;
pub mod catalog;
pub mod cost;
pub mod drift;
pub mod environments;
pub mod error;
pub mod error_pages;
pub mod extract;
pub mod flash;
pub mod handover;
pub mod health;
pub mod home;
pub mod idempotency;
pub mod identity;
pub mod jobs;
pub mod json;
pub mod maintain;
pub mod notifications;
pub mod openapi;
pub mod paging;
pub mod platforms;
pub mod rollout;
pub mod search;
pub mod services;
pub mod teams;
pub mod upgrade;
pub mod versions;
pub mod views;
