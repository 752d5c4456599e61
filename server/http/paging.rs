//! Paging as API.md sets it: `limit` (default 50, max 200) and `after`; keyset cursors.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::http::error::{AppError, FieldError};

#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

pub fn parse_limit(limit: Option<&str>) -> Result<i64, AppError> {
    match limit {
        None => Ok(50),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| {
                AppError::Validation(vec![FieldError {
                    field: "limit".into(),
                    message: "Use a whole number from 1 to 200.".into(),
                }])
            }),
    }
}

/// One page of a bounded list (platforms, revisions, backlog items: hundreds at most, read
/// whole): up to `limit` items after the one whose key is `after`, and the key to continue from.
pub fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    limit: i64,
    after: Option<&str>,
) -> Result<(Vec<T>, Option<String>), AppError> {
    let start = match after {
        None => 0,
        Some(cursor) => {
            items.iter().position(|item| key(item) == cursor).ok_or_else(|| {
                AppError::Validation(vec![FieldError {
                    field: "after".into(),
                    message: "Not a cursor of this list (or its item is gone); start again without `after`.".into(),
                }])
            })? + 1
        }
    };
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    let next = (rest.len() as i64 > limit).then(|| {
        rest.truncate(limit as usize);
        rest.last().map(&key).unwrap_or_default()
    });
    Ok((rest, next))
}

#[derive(Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub after: Option<String>,
}

pub const PAGE_SIZE: i64 = 50;

/// Keyset cursors: `<microseconds since the epoch>_<id>`, opaque to users.
pub fn encode_cursor(at: DateTime<Utc>, id: impl std::fmt::Display) -> String {
    format!("{}_{id}", at.timestamp_micros())
}

pub fn decode_cursor<T: std::str::FromStr>(cursor: &str) -> Option<(DateTime<Utc>, T)> {
    let (micros, id) = cursor.split_once('_')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((at, id.parse().ok()?))
}

pub fn bad_cursor(field: &str) -> AppError {
    AppError::Validation(vec![crate::validation::FieldError {
        field: field.to_owned(),
        message: "Not a cursor from this list; use the `next` value of the previous page.".into(),
    }])
}

pub fn parse_cursor(
    after: Option<&str>,
) -> Result<Option<(chrono::DateTime<chrono::Utc>, uuid::Uuid)>, AppError> {
    match after.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(c) => crate::http::paging::decode_cursor(c)
            .map(Some)
            .ok_or_else(|| crate::http::paging::bad_cursor("after")),
    }
}

/// A query parameter with its blanks trimmed, or none when it is blank.
pub fn non_empty(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}
