//! The page shell shared by every page (navigation, cloud label, asset URLs) and the pages of
//! the foundation: the overview, the system status and the error page.

use askama::Template;
use axum::extract::State;
use axum::response::Html;

use super::error::{AppError, Problem};
use super::extract::{Allowed, Ctx, UsePortal};
use super::{AppState, assets};
use crate::auth::{Action, Principal, Subject, can};
use crate::config::CloudMode;
use crate::db;

/// One entry of the sidebar navigation, shown to those allowed `action`.
pub struct NavItem {
    pub id: &'static str,
    pub label: &'static str,
    pub href: &'static str,
    pub action: Action,
}

/// The sidebar, in order. Only pages that exist are listed, and only to those who may open
/// them: a link that leads nowhere (or to a 403) is worse than no link.
pub const NAV: &[NavItem] = &[
    NavItem {
        id: "overview",
        label: "Overview",
        href: "/",
        action: Action::UsePortal,
    },
    NavItem {
        id: "platforms",
        label: "Platforms",
        href: "/platforms",
        action: Action::UsePortal,
    },
    NavItem {
        id: "environments",
        label: "My environments",
        href: "/environments",
        action: Action::UsePortal,
    },
    NavItem {
        id: "approvals",
        label: "Approvals",
        href: "/approvals",
        action: Action::ViewApprovals,
    },
    NavItem {
        id: "jobs",
        label: "Jobs",
        href: "/jobs",
        action: Action::ViewJobs,
    },
    NavItem {
        id: "status",
        label: "System status",
        href: "/status",
        action: Action::UsePortal,
    },
    NavItem {
        id: "users",
        label: "Users",
        href: "/admin/users",
        action: Action::ManageUsers,
    },
    NavItem {
        id: "cloud",
        label: "Cloud connection",
        href: "/admin/cloud",
        action: Action::ManageCloud,
    },
    NavItem {
        id: "audit",
        label: "Audit log",
        href: "/admin/audit",
        action: Action::ViewAudit,
    },
];

/// The signed-in user as the shell shows them.
pub struct ShellUser {
    pub name: String,
    pub email: String,
}

/// What the base layout needs from every page.
pub struct Shell {
    pub title: String,
    /// The `id` of the active navigation entry, or empty.
    pub active: &'static str,
    pub nav: Vec<&'static NavItem>,
    pub user: Option<ShellUser>,
    /// The CSRF token every form on the page carries.
    pub csrf: String,
    pub css_url: &'static str,
    pub js_url: &'static str,
    pub icon_url: &'static str,
    /// Shown on every page while the cloud is simulated, so no one mistakes a demo for AWS.
    pub simulated_cloud: bool,
    pub version: &'static str,
    /// The unread-notifications badge.
    pub unread_notifications: i64,
}

impl AppState {
    pub fn shell(
        &self,
        principal: Option<&Principal>,
        csrf: &str,
        active: &'static str,
        title: &str,
    ) -> Shell {
        let urls = assets::urls();
        Shell {
            title: title.to_owned(),
            active,
            nav: NAV
                .iter()
                .filter(|item| principal.is_some_and(|p| can(p, item.action, Subject::Portal)))
                .collect(),
            user: principal.map(|p| ShellUser {
                name: p.user.name.clone(),
                email: p.user.email.clone(),
            }),
            csrf: csrf.to_owned(),
            css_url: &urls.css,
            js_url: &urls.js,
            icon_url: &urls.icon,
            simulated_cloud: self.config.cloud == CloudMode::Simulated,
            version: env!("CARGO_PKG_VERSION"),
            unread_notifications: 0,
        }
    }
}

/// Renders a template; a rendering failure is an internal error, never a panic.
pub fn render<T: Template>(page: &T) -> Result<Html<String>, AppError> {
    page.render()
        .map(Html)
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("rendering a page")))
}

#[derive(Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    pub shell: Shell,
}

pub async fn overview(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<UsePortal>,
) -> Result<Html<String>, AppError> {
    render(&OverviewPage {
        shell: ctx.shell(&state, "overview", "Overview"),
    })
}

#[derive(Template)]
#[template(path = "status.html")]
pub struct StatusPage {
    pub shell: Shell,
    pub database: String,
    pub schema_applied: Option<i64>,
    pub schema_known: i64,
    pub cloud: &'static str,
    pub started_at: String,
}

pub async fn status(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<UsePortal>,
) -> Result<Html<String>, AppError> {
    let schema_applied = db::applied_version(&state.pool).await?;
    render(&StatusPage {
        shell: ctx.shell(&state, "status", "System status"),
        database: if state.embedded_db {
            format!(
                "Embedded PostgreSQL in {}",
                state.config.embedded_postgres_dir().display()
            )
        } else {
            "External PostgreSQL (DATABASE_URL)".to_owned()
        },
        schema_applied,
        schema_known: db::latest_known_version(),
        cloud: match state.config.cloud {
            CloudMode::Simulated => "Simulated (no real cloud resources are created)",
            CloudMode::Aws => "AWS (Organizations, STS, EKS)",
        },
        started_at: state.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    })
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub shell: Shell,
    pub problem: &'a Problem,
}
