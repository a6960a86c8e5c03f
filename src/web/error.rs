//! Errors as answers: JSON `{"error": …, "field": …}` for API callers (pages and fragments are
//! chosen by `negotiate`), and [`FormError`], the one way a form shows what was refused.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::store::StoreError;

/// A rejected field: which one, and a sentence a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The field at fault; a JSON body's unknown field is named as the caller spelled it.
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: e.message,
            field: Some(e.field.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    /// An outage is a 503 (logged once by the store when it begins, not here per request);
    /// anything else a 500.
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::debug!(error = %e, "request refused: the database is unreachable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unreachable; nothing was changed, try again shortly",
            );
        }
        tracing::error!(error = %e, "request failed in storage");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage failure; nothing was changed",
        )
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: &self.message,
            field: self.field.as_deref(),
        };
        (self.status, Json(body)).into_response()
    }
}

/// What a form shows after a refused submission: the message beside the field it concerns, or
/// under the form when it concerns none of the form's fields. Empty on a fresh form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormError {
    /// The form's field at fault; `None` for an error about the whole submission.
    field: Option<String>,
    message: Option<String>,
}

impl FormError {
    /// `error` as a form with `fields` shows it.
    pub fn new(error: ApiError, fields: &[&str]) -> FormError {
        FormError {
            field: error.field.filter(|f| fields.contains(&f.as_str())),
            message: Some(error.message),
        }
    }

    /// The message, if it concerns `field`.
    pub fn beside(&self, field: &str) -> Option<&str> {
        self.message
            .as_deref()
            .filter(|_| self.field.as_deref() == Some(field))
    }

    /// The message, if it concerns none of the form's fields.
    pub fn under(&self) -> Option<&str> {
        self.message.as_deref().filter(|_| self.field.is_none())
    }

    /// The message, wherever it goes.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_error_goes_beside_its_field_or_under_the_form() {
        let fields = ["title", "body"];
        let beside = FormError::new(FieldError::new("title", "too long").into(), &fields);
        assert_eq!(beside.beside("title"), Some("too long"));
        assert_eq!(beside.beside("body"), None);
        assert_eq!(beside.under(), None);
        let elsewhere = FormError::new(FieldError::new("id", "taken").into(), &fields);
        assert_eq!(elsewhere.beside("id"), None, "not a field of this form");
        assert_eq!(elsewhere.under(), Some("taken"));
        let fresh = FormError::default();
        assert_eq!((fresh.message(), fresh.under()), (None, None));
    }
}
