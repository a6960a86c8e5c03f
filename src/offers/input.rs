//! Reading an offer from a request: JSON for API callers, a form for the page.
//!
//! JSON is read field by field from its raw text, so each mistake is reported with the field it
//! concerns and money never passes through a float. Every check runs before anything is stored.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Form, FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;

use super::money::{Money, MoneyError};
use crate::web::error::{ApiError, FieldError};
use crate::web::input::{BodyFormat, required_text};

/// Client-chosen ids stay within what a JavaScript number holds exactly, and the server's
/// `max + 1` can never overflow.
pub const MAX_ID: i64 = (1 << 53) - 1;

/// A request body, not yet validated, and how it came so the answer can go back the same way.
pub enum OfferBody {
    Json(Bytes),
    Form(Vec<(String, String)>),
}

impl<S: Send + Sync> FromRequest<S> for OfferBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // Both extractors honour the body limit and answer 413 past it.
        match BodyFormat::of(req.headers())? {
            BodyFormat::Json => Bytes::from_request(req, state)
                .await
                .map(OfferBody::Json)
                .map_err(|r| ApiError::new(r.status(), r.body_text())),
            BodyFormat::Form => Form::<Vec<(String, String)>>::from_request(req, state)
                .await
                .map(|Form(pairs)| OfferBody::Form(pairs))
                .map_err(|r| ApiError::new(r.status(), r.body_text())),
        }
    }
}

/// A refused JSON body. Like [`ApiError`], but the field may be one the caller made up (an
/// unknown field is reported by its own name).
#[derive(Debug)]
pub struct Rejected {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
}

impl From<ApiError> for Rejected {
    fn from(e: ApiError) -> Self {
        Rejected {
            status: e.status,
            message: e.message,
            field: e.field.map(str::to_string),
        }
    }
}

impl From<FieldError> for Rejected {
    fn from(e: FieldError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for Rejected {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let Some(field) = self.field {
            body["field"] = field.into();
        }
        (self.status, Json(body)).into_response()
    }
}

/// What a create or update asks for, every field checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferInput {
    pub id: Option<i64>,
    pub description: String,
    pub value: Money,
}

/// The form's fields as typed, to show them again next to an error.
#[derive(Debug, Clone, Default)]
pub struct Typed {
    pub description: String,
    pub value: String,
}

const FIELDS: [&str; 3] = ["id", "description", "value"];

/// Parses a JSON object `{"id"?, "description", "value"}`.
pub fn from_json(body: &[u8], max_description: usize) -> Result<OfferInput, Rejected> {
    let fields: BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "expected a JSON object like {\"description\": \"…\", \"value\": 100}",
            ),
            _ => ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
        })?;
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Rejected {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!(
                "unknown field {unknown:?}: an offer has only id, description and value"
            ),
            field: Some(unknown.clone()),
        });
    }
    let raw = |name: &str| fields.get(name).map(|v| v.get()).filter(|v| *v != "null");
    let id = raw("id").map(json_id).transpose()?;
    let description = match raw("description") {
        None => return Err(FieldError::new("description", "description is required").into()),
        Some(text) => serde_json::from_str::<String>(text)
            .map_err(|_| FieldError::new("description", "description must be a string"))?,
    };
    let description = required_text("description", &description, max_description)?;
    let value = match raw("value") {
        None => return Err(FieldError::new("value", "value is required").into()),
        Some(text) => Money::parse_json_number(text).map_err(|e| money_error(&e))?,
    };
    Ok(OfferInput {
        id,
        description,
        value,
    })
}

/// Parses the page's form (`description`, `value`); the form never sends an id.
pub fn from_form(
    pairs: &[(String, String)],
    max_description: usize,
) -> (Typed, Result<OfferInput, FieldError>) {
    let mut typed = Typed::default();
    let mut unknown = None;
    for (name, value) in pairs {
        match name.as_str() {
            "description" => typed.description = value.clone(),
            "value" => typed.value = value.clone(),
            other => unknown = unknown.or(Some(other.to_string())),
        }
    }
    let result = (|| {
        if let Some(name) = unknown {
            return Err(FieldError::new(
                "form",
                format!("unknown field {name:?}: an offer has only description and value"),
            ));
        }
        let description = required_text("description", &typed.description, max_description)?;
        if typed.value.trim().is_empty() {
            return Err(FieldError::new("value", "value is required"));
        }
        let value = Money::parse_typed(&typed.value).map_err(|e| money_error(&e))?;
        Ok(OfferInput {
            id: None,
            description,
            value,
        })
    })();
    (typed, result)
}

fn json_id(text: &str) -> Result<i64, Rejected> {
    let whole = !text.is_empty()
        && text
            .strip_prefix('-')
            .unwrap_or(text)
            .bytes()
            .all(|b| b.is_ascii_digit());
    if !whole {
        return Err(FieldError::new("id", "id must be a whole number (or left out)").into());
    }
    match text.parse::<i64>() {
        Ok(id) if (1..=MAX_ID).contains(&id) => Ok(id),
        _ => Err(FieldError::new("id", format!("id must be between 1 and {MAX_ID}")).into()),
    }
}

fn money_error(e: &MoneyError) -> FieldError {
    FieldError::new("value", e.message("value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> Result<OfferInput, Rejected> {
        from_json(body.as_bytes(), 10)
    }

    #[test]
    fn a_null_or_missing_id_leaves_the_choice_to_the_server() {
        let input = json(r#"{"id": null, "description": " Deal ", "value": 2}"#).unwrap();
        assert_eq!(input.id, None);
        assert_eq!(input.description, "Deal");
        assert_eq!(input.value.cents(), 200);
        assert_eq!(
            json(r#"{"description": "x", "value": 0}"#).unwrap().id,
            None
        );
    }

    #[test]
    fn escaped_keys_are_the_same_fields() {
        let input = json(r#"{"\u0069d": 7, "description": "x", "value": 1}"#).unwrap();
        assert_eq!(input.id, Some(7));
    }

    #[test]
    fn each_mistake_names_its_field() {
        let field = |body: &str| json(body).unwrap_err().field;
        assert_eq!(
            field(r#"{"id": 1e2, "description": "x", "value": 1}"#).as_deref(),
            Some("id")
        );
        assert_eq!(
            field(r#"{"id": 9007199254740992, "description": "x", "value": 1}"#).as_deref(),
            Some("id")
        );
        assert_eq!(
            field(r#"{"description": "12345678901", "value": 1}"#).as_deref(),
            Some("description")
        );
        assert_eq!(
            field(r#"{"description": "x", "value": true}"#).as_deref(),
            Some("value")
        );
        assert_eq!(
            field(r#"{"description": "x", "value": 1, "Value": 1}"#).as_deref(),
            Some("Value")
        );
        assert_eq!(json("{").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(
            json("\"text\"").unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn the_form_reads_typed_money_and_keeps_what_was_typed() {
        let pairs = |v: &str| {
            vec![
                ("description".to_string(), "Sale".to_string()),
                ("value".to_string(), v.to_string()),
            ]
        };
        let (typed, parsed) = from_form(&pairs("1,000.5"), 10);
        assert_eq!(parsed.unwrap().value.cents(), 100_050);
        assert_eq!(typed.value, "1,000.5");
        let (typed, parsed) = from_form(&pairs("abc"), 10);
        assert_eq!(parsed.unwrap_err().field, "value");
        assert_eq!(typed.description, "Sale");
    }
}
