//! Reading JSON bodies: malformed documents become problem documents with a field path.

use serde::de::DeserializeOwned;

use crate::http::error::{AppError, FieldError};

/// A JSON body read into `T`. A document that does not fit is a 422 naming the field it went
/// wrong at (`members[0].email`), an unknown field included where `T` denies them.
pub struct TypedJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequest<S> for TypedJson<T> {
    type Rejection = AppError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, AppError> {
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|_| AppError::PayloadTooLarge)?;
        from_slice(&bytes).map(TypedJson)
    }
}

/// Reads a JSON document into `T` as [`TypedJson`] does, for a handler that reads the body
/// itself (one that may be empty).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let document = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(document).map_err(|e| {
        let field = match e.path().to_string() {
            path if path == "." => String::new(),
            path => path,
        };
        field_error(&field, format!("{}.", e.into_inner()))
    })
}

pub fn field_error(field: &str, message: impl Into<String>) -> AppError {
    AppError::Validation(vec![FieldError {
        field: field.to_owned(),
        message: message.into(),
    }])
}
