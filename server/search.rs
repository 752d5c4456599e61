//! The global search (the box atop every page): platforms, environments and backlog items whose
//! text contains the reader's words, each list cut to what the reader may see. Who sees what is
//! asked of [`auth::can`], so the rule stays in the policy.

use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::{self, Action, Principal, Subject, UserId};
use crate::define::backlog;
use crate::define::platforms::{self, Platform};
use crate::environments::queries::{self, Filter, Summary};
use crate::validation::{FieldErrors, TextKind, check_text};

/// Hits shown per kind; a reader who needs more narrows the words or opens the kind's own list.
pub const HITS_PER_KIND: i64 = 20;

/// What the search found, per kind, each in the order its own list uses.
pub struct Results {
    pub platforms: Vec<Platform>,
    pub environments: Vec<Summary>,
    pub backlog: Vec<backlog::Hit>,
}

impl Results {
    pub fn is_empty(&self) -> bool {
        self.platforms.is_empty() && self.environments.is_empty() && self.backlog.is_empty()
    }

    pub fn count(&self) -> usize {
        self.platforms.len() + self.environments.len() + self.backlog.len()
    }
}

/// The words searched for, trimmed: 2 to 100 characters on one line.
pub fn words(text: &str) -> Result<String, FieldErrors> {
    let words = text.trim();
    let mut errors = FieldErrors::default();
    if let Err(message) = check_text(words, TextKind::SingleLine) {
        errors.add("q", message);
    } else if words.chars().count() < 2 {
        errors.add("q", "Type at least 2 characters to search.");
    } else if words.chars().count() > 100 {
        errors.add("q", "Search for at most 100 characters.");
    }
    errors.into_result().map(|()| words.to_owned())
}

pub async fn search(
    db: &PgPool,
    principal: &Principal,
    words: &str,
) -> Result<Results, sqlx::Error> {
    // `member: false` where a row's membership is not read: the conservative answer, which
    // hides rather than shows should the policy ever depend on it.
    let platform = Subject::Platform { member: false };
    let platforms = if auth::can(principal, Action::ViewPlatform, platform) {
        platforms::search(db, words, HITS_PER_KIND).await?
    } else {
        vec![]
    };

    let anyones = Subject::Environment {
        requester: UserId(Uuid::nil()),
        member: false,
        in_team: false,
    };
    // Everyone's, or (the policy's other case) those the caller requested or whose teams they
    // are in, which the query selects.
    let filter = Filter {
        search: Some(words.to_owned()),
        visible_to: (!auth::can(principal, Action::ViewEnvironment, anyones))
            .then_some(principal.user.id.0),
        ..Filter::default()
    };
    let environments = queries::list(db, &filter, None, HITS_PER_KIND).await?;

    let planning = |member| {
        auth::can(
            principal,
            Action::ViewPlanning,
            Subject::Platform { member },
        )
    };
    let backlog = if planning(false) {
        backlog::search(db, words, None, HITS_PER_KIND).await?
    } else if planning(true) {
        backlog::search(db, words, Some(principal.user.id), HITS_PER_KIND).await?
    } else {
        vec![]
    };
    Ok(Results {
        platforms,
        environments,
        backlog,
    })
}
