//! What a new board message may be: the same rule for the page's form and JSON.

use serde::Deserialize;

use crate::web::error::FieldError;
use crate::web::input::required_text;

/// `{"message": "…"}` from an API caller.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonBody {
    pub message: Option<String>,
}

/// The form (or `GET /send`'s query) as typed.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Typed {
    #[serde(default)]
    pub message: String,
}

impl JsonBody {
    pub fn validate(&self, max: usize) -> Result<String, FieldError> {
        required_text("message", self.message.as_deref().unwrap_or(""), max)
    }
}

impl Typed {
    pub fn validate(&self, max: usize) -> Result<String, FieldError> {
        required_text("message", &self.message, max)
    }
}
