//! Request bodies that may come as JSON (API callers) or as a form (the page), and the text
//! checks every feature shares.

use axum::extract::{Form, FromRequest, Json, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};

/// A parsed body and how it came, so the answer can come back the same way.
pub enum Input<T> {
    Json(T),
    Form(T),
}

impl<S, T> FromRequest<S> for Input<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match BodyFormat::of(req.headers())? {
            BodyFormat::Json => Json::<T>::from_request(req, state)
                .await
                .map(|Json(v)| Input::Json(v))
                .map_err(|r| ApiError::new(r.status(), r.body_text())),
            BodyFormat::Form => Form::<T>::from_request(req, state)
                .await
                .map(|Form(v)| Input::Form(v))
                .map_err(|r| ApiError::new(r.status(), r.body_text())),
        }
    }
}

/// The two body formats Herald accepts: JSON from API callers, urlencoded forms from the page.
pub enum BodyFormat {
    Json,
    Form,
}

impl BodyFormat {
    /// Reads `Content-Type`; anything else is a 415.
    pub fn of(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/json") {
            Ok(BodyFormat::Json)
        } else if content_type.starts_with("application/x-www-form-urlencoded") {
            Ok(BodyFormat::Form)
        } else {
            Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send application/json or an application/x-www-form-urlencoded form",
            ))
        }
    }
}

/// Trimmed, non-empty and at most `max` characters.
pub fn required_text(field: &'static str, value: &str, max: usize) -> Result<String, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(FieldError::new(field, format!("{field} must not be empty")));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(FieldError::new(
            field,
            format!("{field} is {chars} characters long; the limit is {max}"),
        ));
    }
    Ok(value.to_string())
}

/// Whether htmx sent the request (the page), rather than an API caller.
pub fn is_htmx(headers: &HeaderMap) -> bool {
    headers
        .get("hx-request")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_text_trims_and_bounds_by_characters() {
        assert_eq!(required_text("title", "  hi ", 5).unwrap(), "hi");
        assert_eq!(required_text("title", "ééééé", 5).unwrap(), "ééééé");
        let err = required_text("title", "   ", 5).unwrap_err();
        assert_eq!(err.field, "title");
        assert!(err.message.contains("empty"));
        let err = required_text("body", "abcdef", 5).unwrap_err();
        assert_eq!(err.message, "body is 6 characters long; the limit is 5");
    }
}
