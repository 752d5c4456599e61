//! Reading JSON bodies: malformed documents become problem documents with a field path.

use serde_json::Value;

use crate::http::error::{AppError, FieldError};

/// A JSON body read leniently, so a malformed document becomes a problem with a field path
/// instead of the extractor's plain rejection.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBody {
    type Rejection = AppError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|_| AppError::PayloadTooLarge)?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            AppError::Validation(vec![FieldError {
                field: String::new(),
                message: format!("The body is not valid JSON: {e}."),
            }])
        })
    }
}

pub fn field_error(field: &str, message: impl Into<String>) -> AppError {
    AppError::Validation(vec![FieldError {
        field: field.to_owned(),
        message: message.into(),
    }])
}

pub fn str_field<'a>(body: &'a Value, field: &str) -> &'a str {
    body.get(field).and_then(Value::as_str).unwrap_or("")
}
