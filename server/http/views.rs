//! The page shell shared by every page (navigation, cloud label, asset URLs), rendering, and
//! the redirects and statuses every page handler answers with.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::Html;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::app::config::CloudMode;
use crate::auth::{Action, Principal, Subject, can};
use crate::http::assets;
use crate::http::error::{AppError, Problem};

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
        id: "account-pool",
        label: "Account pool",
        href: "/account-pool",
        action: Action::ViewAccountPool,
    },
    NavItem {
        id: "api",
        label: "API reference",
        href: "/docs/api",
        action: Action::UsePortal,
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
        id: "sso",
        label: "Single sign-on",
        href: "/admin/sso",
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
    /// What the form before this page did.
    pub flash: Option<String>,
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
            flash: None,
        }
    }
}

/// Renders a template; a rendering failure is an internal error, never a panic.
pub fn render<T: Template>(page: &T) -> Result<Html<String>, AppError> {
    page.render()
        .map(Html)
        .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("rendering a page")))
}

/// A form shown again with its errors.
pub fn unprocessable(html: Html<String>) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, html).into_response()
}

/// A file to save rather than show: `body` as `content_type`, named `filename`.
pub fn download(content_type: &'static str, filename: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// A page with the status it answers with (a form with errors, a conflict).
pub fn with_status(status: StatusCode, html: Html<String>) -> Response {
    (status, html).into_response()
}

/// "3 d 4 h", "2 h 5 min", "4 min": how long, for ages and countdowns.
pub fn human_duration(d: chrono::Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, (minutes / 60) % 24, minutes % 60);
    if days > 0 {
        format!("{days} d {hours} h")
    } else if hours > 0 {
        format!("{hours} h {mins} min")
    } else {
        format!("{mins} min")
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub shell: Shell,
    pub problem: &'a Problem,
}

/// A moment as every page shows it: `2026-12-01 21:00 UTC`, to the minute, with the UTC time to
/// the second on hover. The script shows the same in the reader's time zone.
pub fn moment(at: &chrono::DateTime<chrono::Utc>) -> askama::filters::Safe<String> {
    askama::filters::Safe(format!(
        r#"<time datetime="{}" title="{} UTC">{} UTC</time>"#,
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        at.format("%Y-%m-%d %H:%M:%S"),
        at.format("%Y-%m-%d %H:%M")
    ))
}

/// A message written with `code` spans (names, commands), as HTML: the spans in `<code>`, the
/// rest escaped. Messages are stored as written, so e-mail and chat keep their Markdown.
pub fn message(text: &str) -> askama::filters::Safe<String> {
    let mut html = String::with_capacity(text.len() + 16);
    let escape = |html: &mut String, part: &str| {
        use std::fmt::Write;
        let escaped = askama::filters::escape(part, askama::filters::Html);
        let _ = write!(html, "{}", escaped.unwrap_or_else(|never| match never {}));
    };
    let parts: Vec<&str> = text.split('`').collect();
    // An odd number of parts: every span is closed. Otherwise the last backtick is just text.
    let closed = parts.len() % 2 == 1;
    for (i, part) in parts.iter().enumerate() {
        let last = i == parts.len() - 1;
        if i % 2 == 1 && (closed || !last) {
            html.push_str("<code>");
            escape(&mut html, part);
            html.push_str("</code>");
        } else {
            if i % 2 == 1 {
                html.push('`');
            }
            escape(&mut html, part);
        }
    }
    askama::filters::Safe(html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_shows_code_spans_as_code_and_escapes_everything_else() {
        assert_eq!(
            message("Ann approved `dev-1` <script>").0,
            "Ann approved <code>dev-1</code> &#60;script&#62;"
        );
        assert_eq!(message("a `b").0, "a `b");
        assert_eq!(
            message("`<b>` & `c`").0,
            "<code>&#60;b&#62;</code> &#38; <code>c</code>"
        );
    }

    #[test]
    fn a_moment_reads_to_the_minute_with_the_second_on_hover() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-01T21:00:38Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            moment(&at).0,
            r#"<time datetime="2026-12-01T21:00:38Z" title="2026-12-01 21:00:38 UTC">2026-12-01 21:00 UTC</time>"#
        );
    }
}
