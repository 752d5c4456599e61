//! The Define phase: platforms, the technical scope and its timebox, the versioned technical
//! blueprint with review, and the implementation-plan backlog derived from it.

pub mod backlog;
pub mod blueprint;
pub mod diff;
pub mod platforms;
pub mod revisions;
pub mod scope;
