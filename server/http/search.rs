//! `GET /search?q=`: the global search page behind the box atop every page.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::app::AppState;
use crate::http::error::AppError;
use crate::http::extract::{Allowed, Ctx, UsePortal};
use crate::http::views::{Shell, render, unprocessable};
use crate::search::{self, Results};
use crate::validation::FieldErrors;

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    pub shell: Shell,
    pub q: String,
    pub errors: FieldErrors,
    /// `None` before a search (no words yet, or words refused).
    pub results: Option<Results>,
    pub hits_per_kind: usize,
}

pub async fn search_page(
    State(state): State<AppState>,
    ctx: Ctx,
    allowed: Allowed<UsePortal>,
    Query(query): Query<SearchQuery>,
) -> Result<Response, AppError> {
    let page = |results, errors| SearchPage {
        shell: ctx.shell(&state, "search", "Search"),
        q: query.q.clone(),
        errors,
        results,
        hits_per_kind: search::HITS_PER_KIND as usize,
    };
    if query.q.trim().is_empty() {
        return Ok(render(&page(None, FieldErrors::default()))?.into_response());
    }
    match search::words(&query.q) {
        Ok(words) => {
            let results = search::search(&state.pool, allowed.principal(), &words).await?;
            Ok(render(&page(Some(results), FieldErrors::default()))?.into_response())
        }
        Err(errors) => Ok(unprocessable(render(&page(None, errors))?)),
    }
}
