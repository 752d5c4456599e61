//! The single sign-on page: which groups give which roles, edited by admins (audited), or reset
//! to the `oidc_role_map` setting.

use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::auth::oidc::RoleMapping;
use crate::auth::role_map::{self, RoleMap, Source};
use crate::http::error::AppError;
use crate::http::extract::{Allowed, Ctx, FormFields, ManageUsers};
use crate::http::flash::{Flash, done};
use crate::http::views::{Shell, render, unprocessable};
use crate::validation::FieldErrors;

#[derive(Template)]
#[template(path = "sso.html")]
pub struct SsoPage {
    pub shell: Shell,
    /// Whether single sign-on is configured at all (`oidc_issuer`).
    pub enabled: bool,
    pub issuer: String,
    pub groups_claim: String,
    pub role_map: RoleMap,
    /// The text in the box: the mapping in force, or what was typed.
    pub text: String,
    pub errors: FieldErrors,
}

impl SsoPage {
    fn edited(&self) -> Option<(&str, &chrono::DateTime<chrono::Utc>)> {
        match &self.role_map.source {
            Source::Edited { by, at } => Some((by, at)),
            Source::Configuration => None,
        }
    }
}

/// The setting's mapping (empty without single sign-on).
fn configured(state: &AppState) -> &[RoleMapping] {
    state.oidc.as_ref().map_or(&[], |o| o.configured_role_map())
}

async fn page(
    state: &AppState,
    ctx: &Ctx,
    text: Option<String>,
    errors: FieldErrors,
) -> Result<SsoPage, AppError> {
    let role_map = role_map::in_force(&state.pool, configured(state)).await?;
    let oidc = state.config.oidc.as_ref();
    Ok(SsoPage {
        shell: ctx.shell(state, "sso", "Single sign-on"),
        enabled: oidc.is_some(),
        issuer: oidc.map(|o| o.issuer.clone()).unwrap_or_default(),
        groups_claim: oidc.map(|o| o.groups_claim.clone()).unwrap_or_default(),
        text: text.unwrap_or_else(|| role_map::to_text(&role_map.mapping)),
        role_map,
        errors,
    })
}

pub async fn sso_page(
    State(state): State<AppState>,
    ctx: Ctx,
    _: Allowed<ManageUsers>,
) -> Result<Response, AppError> {
    Ok(render(&page(&state, &ctx, None, FieldErrors::default()).await?)?.into_response())
}

pub async fn sso_save(
    State(state): State<AppState>,
    ctx: Ctx,
    allowed: Allowed<ManageUsers>,
    form: FormFields,
) -> Result<Response, AppError> {
    let text = form.get("mapping").to_owned();
    match role_map::parse(&text) {
        Ok(mapping) => {
            role_map::save(
                &state.pool,
                configured(&state),
                &mapping,
                allowed.principal(),
            )
            .await?;
            Ok(done("/admin/sso", Flash::SsoRolesSaved))
        }
        Err(errors) => Ok(unprocessable(render(
            &page(&state, &ctx, Some(text), errors).await?,
        )?)),
    }
}

pub async fn sso_reset(
    State(state): State<AppState>,
    allowed: Allowed<ManageUsers>,
) -> Result<Response, AppError> {
    role_map::reset(&state.pool, configured(&state), allowed.principal()).await?;
    Ok(done("/admin/sso", Flash::SsoRolesReset))
}
