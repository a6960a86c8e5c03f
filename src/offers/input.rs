//! What an offer may be: the same rules for JSON from API callers and the page's form.
//!
//! Money never passes through a float: JSON's `value` is read from the number's exact text, the
//! form's from what was typed. Every check runs before anything is stored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::OfferInput;
use super::money::{Money, MoneyError};
use crate::web::error::FieldError;
use crate::web::id;
use crate::web::input::required_text;

/// `{"id"?, "description", "value"}` from an API caller; `null` is the same as left out.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonBody {
    pub id: Option<i64>,
    pub description: Option<String>,
    /// The number as sent, so its exact decimal is read.
    pub value: Option<Box<RawValue>>,
}

/// The form (`description`, `value`) as typed; it never sends an id.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Typed {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub value: String,
    /// Fields the form does not have, refused by name.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, String>,
}

impl JsonBody {
    pub fn validate(&self, max_description: usize) -> Result<OfferInput, FieldError> {
        let id = match self.id {
            Some(id) if !(1..=id::MAX).contains(&id) => {
                let message = format!("id must be between 1 and {}", id::MAX);
                return Err(FieldError::new("id", message));
            }
            id => id,
        };
        let description = self
            .description
            .as_deref()
            .ok_or_else(|| FieldError::new("description", "description is required"))?;
        let value = self
            .value
            .as_deref()
            .ok_or_else(|| FieldError::new("value", "value is required"))?;
        Ok(OfferInput {
            id,
            description: required_text("description", description, max_description)?,
            value: Money::parse_json_number(value.get()).map_err(|e| money_error(&e))?,
        })
    }
}

impl Typed {
    pub fn validate(&self, max_description: usize) -> Result<OfferInput, FieldError> {
        if let Some(name) = self.unknown.keys().next() {
            return Err(FieldError::new(
                "form",
                format!("unknown field {name:?}: an offer has only description and value"),
            ));
        }
        let description = required_text("description", &self.description, max_description)?;
        if self.value.trim().is_empty() {
            return Err(FieldError::new("value", "value is required"));
        }
        let value = Money::parse_typed(&self.value).map_err(|e| money_error(&e))?;
        Ok(OfferInput {
            id: None,
            description,
            value,
        })
    }
}

fn money_error(e: &MoneyError) -> FieldError {
    FieldError::new("value", e.message("value"))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;
    use crate::web::error::ApiError;
    use crate::web::input::json as read;

    fn json(body: &str) -> Result<OfferInput, ApiError> {
        Ok(read::<JsonBody>(body.as_bytes())?.validate(10)?)
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
    fn money_is_read_from_the_numbers_exact_text() {
        let cents = |body: &str| json(body).unwrap().value.cents();
        assert_eq!(cents(r#"{"description": "x", "value": 19.99}"#), 1999);
        assert_eq!(cents(r#"{"description": "x", "value": 1.5e2}"#), 15_000);
        let precise = json(r#"{"description": "x", "value": 0.001}"#).unwrap_err();
        assert_eq!(precise.field.as_deref(), Some("value"));
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
    fn the_form_reads_typed_money_and_refuses_fields_it_does_not_have() {
        let typed = |v: &str| Typed {
            description: "Sale".to_string(),
            value: v.to_string(),
            ..Typed::default()
        };
        assert_eq!(
            typed("1,000.5").validate(10).unwrap().value.cents(),
            100_050
        );
        assert_eq!(typed("abc").validate(10).unwrap_err().field, "value");
        let mut odd = typed("1");
        odd.unknown.insert("price".into(), "2".into());
        let refused = odd.validate(10).unwrap_err();
        assert_eq!(refused.field, "form");
        assert!(refused.message.contains("\"price\""), "{}", refused.message);
    }
}
