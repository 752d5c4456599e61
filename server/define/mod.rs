//! The Define phase: platforms, the technical scope and its timebox, the versioned technical
//! blueprint with review, and the implementation-plan backlog derived from it.

pub mod backlog;
pub mod blueprint;
pub mod diff;
mod parse;
pub mod platforms;
pub mod revisions;
pub mod scope;

use crate::validation::FieldErrors;

/// Why a Define use case (platforms, scope, blueprint revisions, backlog) was refused: the one
/// error type of this module, mapped to HTTP once.
#[derive(Debug, thiserror::Error)]
pub enum DefineError {
    #[error("not found")]
    NotFound,
    #[error("invalid")]
    Invalid(FieldErrors),
    #[error("the platform is archived")]
    Archived,
    #[error("the platform has no approved blueprint")]
    NoApprovedBlueprint,
    #[error("revision {latest} was saved after the one you edited ({base})")]
    Stale {
        base: i32,
        latest: i32,
        /// What the newer revision changed compared to the submitted document.
        changes: Vec<diff::Change>,
    },
    #[error("the revision is {0}, so this is not possible")]
    WrongState(&'static str),
    #[error("the author of a revision cannot approve it")]
    SelfApproval,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<FieldErrors> for DefineError {
    fn from(e: FieldErrors) -> Self {
        DefineError::Invalid(e)
    }
}
