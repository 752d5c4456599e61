//! Admin: the JSON API and the pages.

pub mod audit;
pub mod cloud;
pub mod sso;
pub mod users;
