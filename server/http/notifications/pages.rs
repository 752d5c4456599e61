//! Notifications and the platform's webhook in the browser.

use crate::http::approvals::pages::DASHBOARD_PAGE;
use crate::http::flash::{Flash, done};
use crate::http::views::unprocessable;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Action;
use crate::define::platforms::Platform;
use crate::environments::notify::{self, Webhook};
use crate::http::error::AppError;
use crate::http::extract::{Allowed, Ctx, FormFields, OnPlatform, PlatformEditor, UsePortal};
use crate::http::views::{Shell, render};
use crate::inbox::{self, Notification};

// Notifications

#[derive(Template)]
#[template(path = "notifications.html")]
pub struct NotificationsPage {
    pub shell: Shell,
    pub items: Vec<Notification>,
    pub next: Option<i64>,
}

#[derive(Deserialize)]
pub struct BeforeQuery {
    before: Option<i64>,
}

pub async fn notifications_page(
    State(state): State<AppState>,
    ctx: Ctx,
    allowed: Allowed<UsePortal>,
    Query(query): Query<BeforeQuery>,
) -> Result<Html<String>, AppError> {
    let mut items = inbox::inbox(
        &state.pool,
        allowed.principal().user.id.0,
        query.before,
        DASHBOARD_PAGE + 1,
    )
    .await?;
    let next = (items.len() as i64 > DASHBOARD_PAGE).then(|| {
        items.truncate(DASHBOARD_PAGE as usize);
        items.last().map(|n| n.id).unwrap_or_default()
    });
    render(&NotificationsPage {
        shell: ctx.shell(&state, "notifications", "Notifications"),
        items,
        next,
    })
}

pub async fn notifications_read(
    State(state): State<AppState>,
    allowed: Allowed<UsePortal>,
) -> Result<Response, AppError> {
    inbox::mark_all_read(&state.pool, allowed.principal().user.id.0).await?;
    Ok(done("/notifications", Flash::NotificationsRead))
}

// ---------------------------------------------------------------------------------------------
// The platform's webhook

#[derive(Template)]
#[template(path = "webhook.html")]
pub struct WebhookPage {
    pub shell: Shell,
    pub platform: Platform,
    pub tab: &'static str,
    pub can_plan: bool,
    pub webhook: Option<Webhook>,
    /// Shown once, right after it was made.
    pub secret: Option<String>,
    pub url: String,
    pub error: Option<String>,
}

async fn webhook_view(
    state: &AppState,
    ctx: &Ctx,
    on: &OnPlatform<PlatformEditor>,
    secret: Option<String>,
    url: Option<String>,
    error: Option<String>,
) -> Result<WebhookPage, AppError> {
    let webhook = notify::webhook(&state.pool, on.platform().id).await?;
    Ok(WebhookPage {
        shell: ctx.shell(state, "platforms", "Webhook"),
        platform: on.platform().clone(),
        tab: "webhook",
        can_plan: on.can(Action::ViewPlanning),
        url: url.unwrap_or_else(|| webhook.as_ref().map(|w| w.url.clone()).unwrap_or_default()),
        webhook,
        secret,
        error,
    })
}

pub async fn webhook_page(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
) -> Result<Html<String>, AppError> {
    render(&webhook_view(&state, &ctx, &on, None, None, None).await?)
}

pub async fn webhook_save(
    State(state): State<AppState>,
    ctx: Ctx,
    on: OnPlatform<PlatformEditor>,
    form: FormFields,
) -> Result<Response, AppError> {
    let url = form.get("url").trim().to_owned();
    if let Err(message) =
        notify::check_webhook_url(&url, &state.config.webhook_allowed_ranges).await
    {
        return Ok(unprocessable(render(
            &webhook_view(&state, &ctx, &on, None, Some(url), Some(message)).await?,
        )?));
    }
    let secret = notify::set_webhook(
        &state.pool,
        on.platform().id,
        &url,
        form.get("rotate") == "1",
        &on.principal,
    )
    .await?;
    // The page that shows a new secret is the answer to this POST: it is shown once, never
    // stored anywhere the browser could load again.
    Ok(render(&webhook_view(&state, &ctx, &on, secret, None, None).await?)?.into_response())
}

pub async fn webhook_delete(
    State(state): State<AppState>,
    on: OnPlatform<PlatformEditor>,
) -> Result<Response, AppError> {
    notify::delete_webhook(&state.pool, on.platform().id, &on.principal).await?;
    Ok(done(
        &format!("/platforms/{}/webhook", on.platform().slug),
        Flash::WebhookRemoved,
    ))
}
