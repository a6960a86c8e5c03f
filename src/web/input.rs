//! Request bodies: JSON from API callers, typed and strict; a form from the page, as typed.
//!
//! Each feature's `input.rs` declares both shapes: a JSON struct with typed fields that refuses
//! unknown ones, and the form's fields as text, parsed leniently (a form only sends text, and
//! what was typed is shown again next to an error). Both are checked by the same rules.

use axum::body::Bytes;
use axum::extract::{Form, FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use super::error::{ApiError, FieldError};
use super::negotiate::Wants;
use crate::AppState;

/// A body as it came: `J` from JSON, `F` from a form, so the answer goes back the same way.
pub enum Input<J, F> {
    Json(J),
    Form(F),
}

/// A feature's form fields, as typed.
pub trait FormFields: DeserializeOwned {
    /// The feature's form showing `error`, for a submission that could not be read at all (the
    /// answer gets the error's status).
    fn unread(state: &AppState, error: ApiError) -> Response;
}

/// A body that could not be read (too large, neither JSON nor a form) is answered in the
/// caller's language; the page's htmx gets the feature's form back with the error in it.
impl<J, F> FromRequest<AppState> for Input<J, F>
where
    J: DeserializeOwned,
    F: FormFields,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let wants = Wants::of(req.headers());
        read(req, state).await.map_err(|e| match wants {
            Wants::Fragment => (e.status, F::unread(state, e)).into_response(),
            _ => wants.error(e),
        })
    }
}

async fn read<J, F>(req: Request, state: &AppState) -> Result<Input<J, F>, ApiError>
where
    J: DeserializeOwned,
    F: DeserializeOwned,
{
    let limit = state.config.limits.request_bytes;
    // Both extractors honour the body limit and answer 413 past it.
    let unread = |status: StatusCode, text: String| {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                format!("the body is larger than the {limit}-byte limit"),
            )
        } else {
            ApiError::new(status, text)
        }
    };
    if is_json(req.headers())? {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| unread(r.status(), r.body_text()))?;
        json(&bytes).map(Input::Json)
    } else {
        let Form(form) = Form::<F>::from_request(req, state)
            .await
            .map_err(|r| unread(r.status(), r.body_text()))?;
        Ok(Input::Form(form))
    }
}

/// Whether `Content-Type` says JSON (or else a form); anything else is a 415.
fn is_json(headers: &HeaderMap) -> Result<bool, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/json") {
        Ok(true)
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        Ok(false)
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send application/json or an application/x-www-form-urlencoded form",
        ))
    }
}

/// Reads a JSON object into `T`: a syntax error is a 400; anything but an object is a 422; an
/// unknown field or a value of the wrong type is a 422 naming the field.
pub fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = serde_path_to_error::deserialize::<_, T>(&mut de).map_err(|e| {
        let field = match e.path().iter().next() {
            Some(Segment::Map { key }) => Some(key.clone()),
            _ => None,
        };
        (field, e.into_inner())
    });
    let parsed = parsed.and_then(|value| de.end().map(|()| value).map_err(|e| (None, e)));
    let object = body.trim_ascii_start().starts_with(b"{");
    match parsed {
        Err((_, e)) if e.is_syntax() || e.is_eof() => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON: {e}"),
        )),
        _ if !object => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "expected a JSON object",
        )),
        Err((field, e)) => {
            // serde_json ends its messages with where the error is; the field says it better.
            let text = e.to_string();
            let text = text.rsplit_once(" at line ").map_or(&*text, |(m, _)| m);
            Err(ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: match &field {
                    Some(field) => format!("{field}: {text}"),
                    None => text.to_string(),
                },
                field,
            })
        }
        Ok(value) => Ok(value),
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

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        count: Option<u32>,
        #[serde(rename = "type")]
        kind: Option<String>,
    }

    fn refusal(body: &str) -> (StatusCode, Option<String>, String) {
        let e = json::<Sample>(body.as_bytes()).unwrap_err();
        (e.status, e.field, e.message)
    }

    #[test]
    fn json_is_strict_and_names_the_field_at_fault() {
        let ok = json::<Sample>(br#" {"count": 3, "type": null} "#).unwrap();
        assert_eq!((ok.count, ok.kind), (Some(3), None));
        let (status, field, message) = refusal(r#"{"count": "3"}"#);
        assert_eq!(
            (status, field.as_deref()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("count"))
        );
        assert!(
            message.starts_with("count: invalid type: string"),
            "{message}"
        );
        assert!(!message.contains("line"), "{message}");
        let (status, field, _) = refusal(r#"{"count": 3, "Count": 4}"#);
        assert_eq!(
            (status, field.as_deref()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("Count"))
        );
        assert_eq!(refusal(r#"{"type": 7}"#).1.as_deref(), Some("type"));
        for not_an_object in ["[3, \"x\"]", "\"text\"", "7", "null"] {
            let (status, field, message) = refusal(not_an_object);
            assert_eq!(
                (status, field, message.as_str()),
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    "expected a JSON object"
                ),
                "{not_an_object}"
            );
        }
        for broken in ["{", "", "{\"count\": NaN}", "{} {}", "{\"count\": 1,}"] {
            assert_eq!(refusal(broken).0, StatusCode::BAD_REQUEST, "{broken}");
        }
    }

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
