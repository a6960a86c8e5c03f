//! What a notification may be: the same rules for the page's form and JSON.

use serde::Deserialize;

use super::{Kind, Notification};
use crate::clock;
use crate::config::InputLimits;
use crate::web::error::FieldError;
use crate::web::input::required_text;

/// `{"type", "title", "body"}` from an API caller.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonBody {
    #[serde(rename = "type")]
    pub kind: Option<Kind>,
    pub title: Option<String>,
    pub body: Option<String>,
}

/// The form as typed.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Typed {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub body: String,
}

impl JsonBody {
    pub fn validate(&self, limits: &InputLimits) -> Result<Notification, FieldError> {
        let kind = self.kind.ok_or_else(|| kind_error("type is required"))?;
        let text = |t: &Option<String>| t.clone().unwrap_or_default();
        notification(kind, &text(&self.title), &text(&self.body), limits)
    }
}

impl Typed {
    pub fn validate(&self, limits: &InputLimits) -> Result<Notification, FieldError> {
        let kind = self.kind.trim();
        let kind = Kind::parse(kind)
            .ok_or_else(|| kind_error(&format!("unknown notification type {kind:?}")))?;
        notification(kind, &self.title, &self.body, limits)
    }
}

fn kind_error(what: &str) -> FieldError {
    FieldError::new(
        "type",
        format!("{what}: use info, success, warning or error"),
    )
}

fn notification(
    kind: Kind,
    title: &str,
    body: &str,
    limits: &InputLimits,
) -> Result<Notification, FieldError> {
    Ok(Notification {
        id: 0,
        kind,
        title: required_text("title", title, limits.title_chars)?,
        body: required_text("body", body, limits.body_chars)?,
        created_at: clock::now_ms(),
    })
}
