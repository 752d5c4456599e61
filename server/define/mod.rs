//! The Define phase: platforms, the technical scope and its timebox, the versioned technical
//! blueprint with review, and the implementation-plan backlog derived from it.

pub mod backlog;
pub mod blueprint;
pub mod diff;
pub mod platforms;
pub mod revisions;
pub mod scope;

use crate::validation::FieldErrors;

/// Why a change to a platform or its scope was refused.
#[derive(Debug, thiserror::Error)]
pub enum DefineError {
    #[error("invalid")]
    Invalid(FieldErrors),
    #[error("the platform is archived")]
    Archived,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<FieldErrors> for DefineError {
    fn from(e: FieldErrors) -> Self {
        DefineError::Invalid(e)
    }
}
