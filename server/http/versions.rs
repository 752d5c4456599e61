//! The Kubernetes version calendar in force (`/kubernetes-versions`, `GET
//! /api/v1/kubernetes-versions`): every version's end of standard and extended support and
//! where the dates come from; admins correct a version's dates (`POST /kubernetes-versions`,
//! `PUT /api/v1/kubernetes-versions/{version}`), all through `maintain::currency`.

use askama::Template;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{Html, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Action;
use crate::http::error::{AppError, FieldErrors};
use crate::http::extract::{Allowed, CorrectVersionCalendar, Ctx, FormFields, UsePortal};
use crate::http::flash::{Flash, done};
use crate::http::json::TypedJson;
use crate::http::paging::Page;
use crate::http::views::{Shell, render, unprocessable};
use crate::maintain::currency::{self, Calendar, Correction, CorrectionError, Entry};

impl From<CorrectionError> for AppError {
    fn from(e: CorrectionError) -> Self {
        match e {
            CorrectionError::Invalid(errors) => AppError::Validation(errors.0),
            CorrectionError::Db(e) => AppError::from(e),
        }
    }
}

/// The body of `PUT /api/v1/kubernetes-versions/{version}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionBody {
    /// `2027-06-30`.
    standard_support_ends: String,
    extended_support_ends: String,
    /// Where the dates come from (AWS's announcement).
    note: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/kubernetes-versions",
    tag = "maintain",
    responses((status = 200, description = "Every version of the calendar in force, oldest first, with where its dates come from", body = Page<Entry>), (status = 401, description = "Not signed in", body = crate::http::error::Problem))
)]
pub async fn api_versions(
    State(state): State<AppState>,
    _: Allowed<UsePortal>,
) -> Result<Json<Page<Entry>>, AppError> {
    let calendar = Calendar::load(&state.pool).await?;
    Ok(Json(Page {
        items: calendar.entries().to_vec(),
        next: None,
    }))
}

#[utoipa::path(
    put,
    path = "/api/v1/kubernetes-versions/{version}",
    tag = "maintain",
    params(("version" = String, Path, description = "The minor version, `1.36`")),
    request_body = CorrectionBody,
    responses((status = 200, description = "The version as the calendar now has it (EKS's own answer, once read, still wins)", body = Entry), (status = 401, description = "Not signed in", body = crate::http::error::Problem), (status = 403, description = "Not allowed; `detail` says why", body = crate::http::error::Problem), (status = 422, description = "Invalid input; `errors` names each field", body = crate::http::error::Problem))
)]
pub async fn api_correct(
    State(state): State<AppState>,
    Allowed(principal, _): Allowed<CorrectVersionCalendar>,
    Path(version): Path<String>,
    TypedJson(body): TypedJson<CorrectionBody>,
) -> Result<Json<Entry>, AppError> {
    let correction = Correction {
        version: &version,
        standard_support_ends: &body.standard_support_ends,
        extended_support_ends: &body.extended_support_ends,
        note: &body.note,
    };
    currency::correct(&state.pool, &correction, &principal).await?;
    let calendar = Calendar::load(&state.pool).await?;
    let entry = calendar
        .entries()
        .iter()
        .find(|e| Some(e.version.as_str()) == Some(version.trim()))
        .cloned()
        .ok_or(AppError::NotFound)?;
    Ok(Json(entry))
}

/// What the correction form holds, as typed.
#[derive(Default)]
pub struct CorrectionForm {
    pub version: String,
    pub standard_support_ends: String,
    pub extended_support_ends: String,
    pub note: String,
}

#[derive(Template)]
#[template(path = "kubernetes_versions.html")]
pub struct VersionsPage {
    pub shell: Shell,
    pub entries: Vec<Entry>,
    pub today: chrono::NaiveDate,
    pub calendar: Calendar,
    pub can_correct: bool,
    pub form: CorrectionForm,
    pub errors: FieldErrors,
}

impl VersionsPage {
    fn status(&self, version: &str) -> currency::Status {
        self.calendar.status(version, self.today)
    }
}

async fn versions_view(
    state: &AppState,
    ctx: &Ctx,
    principal: &crate::auth::Principal,
    form: CorrectionForm,
    errors: FieldErrors,
) -> Result<VersionsPage, AppError> {
    let calendar = Calendar::load(&state.pool).await?;
    Ok(VersionsPage {
        shell: ctx.shell(state, "platforms", "Kubernetes versions"),
        entries: calendar.entries().iter().rev().cloned().collect(),
        today: state.clock.today(),
        calendar,
        can_correct: crate::auth::can(
            principal,
            Action::CorrectVersionCalendar,
            crate::auth::Subject::Portal,
        ),
        form,
        errors,
    })
}

pub async fn versions_page(
    State(state): State<AppState>,
    ctx: Ctx,
    Allowed(principal, _): Allowed<UsePortal>,
) -> Result<Html<String>, AppError> {
    let page = versions_view(
        &state,
        &ctx,
        &principal,
        CorrectionForm::default(),
        FieldErrors::default(),
    );
    render(&page.await?)
}

pub async fn correct(
    State(state): State<AppState>,
    ctx: Ctx,
    Allowed(principal, _): Allowed<CorrectVersionCalendar>,
    form: FormFields,
) -> Result<Response, AppError> {
    let typed = CorrectionForm {
        version: form.get("version").to_owned(),
        standard_support_ends: form.get("standard_support_ends").to_owned(),
        extended_support_ends: form.get("extended_support_ends").to_owned(),
        note: form.get("note").to_owned(),
    };
    let correction = Correction {
        version: &typed.version,
        standard_support_ends: &typed.standard_support_ends,
        extended_support_ends: &typed.extended_support_ends,
        note: &typed.note,
    };
    match currency::correct(&state.pool, &correction, &principal).await {
        Ok(()) => Ok(done("/kubernetes-versions", Flash::VersionCorrected)),
        Err(CorrectionError::Invalid(errors)) => {
            let page = versions_view(&state, &ctx, &principal, typed, FieldErrors(errors.0));
            Ok(unprocessable(render(&page.await?)?))
        }
        Err(e) => Err(e.into()),
    }
}
