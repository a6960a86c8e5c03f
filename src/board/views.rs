//! The board's fragments: the current message, its live update (and its JSON event), and the
//! form.

use askama::Template;
use askama_web::WebTemplate;
use axum::response::{IntoResponse, Response};

use super::input::Typed;
use super::{BoardMessage, REGION, TOPIC};
use crate::AppState;
use crate::clock;
use crate::hub::{JsonEvent, Region, Swap, partial};
use crate::store::{Store, StoreResult};
use crate::web::error::{ApiError, FormError};
use crate::web::input::FormFields;

/// The current message, as shown in the board's region.
#[derive(Template)]
#[template(path = "board/message.html")]
pub struct MessageView {
    message: Option<(String, String, String)>,
}

impl MessageView {
    pub fn new(message: Option<&BoardMessage>) -> Self {
        MessageView {
            message: message.map(|m| {
                (
                    m.message.clone(),
                    clock::rfc3339(m.set_at),
                    clock::hms(m.set_at),
                )
            }),
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("board message template renders")
    }
}

/// The live message of a new board message: the region, replaced.
pub fn live(message: &BoardMessage) -> String {
    partial(
        REGION,
        Swap::InnerHtml,
        &MessageView::new(Some(message)).html(),
    )
}

/// The JSON event of a new board message: the message as `POST /send` answers it.
pub fn live_json(message: &BoardMessage) -> JsonEvent {
    JsonEvent::new(TOPIC, "board.message", message)
}

/// The board's region for a page or a resync.
pub fn regions(s: &dyn Store) -> StoreResult<Vec<Region>> {
    let current = s.current_message()?;
    Ok(vec![Region {
        id: REGION,
        html: MessageView::new(current.as_ref()).html(),
    }])
}

/// The board's state for a JSON resync: the current message, or `null`.
pub fn json_state(s: &dyn Store) -> StoreResult<serde_json::Value> {
    let current = s.current_message()?;
    Ok(serde_json::to_value(current).expect("a message serializes"))
}

/// The form that sets the message; answers its own submissions.
#[derive(Template, WebTemplate)]
#[template(path = "board/form.html")]
pub struct BoardForm {
    value: String,
    error: FormError,
    sent: bool,
    max: usize,
}

impl BoardForm {
    pub fn blank(max: usize) -> Self {
        BoardForm {
            value: String::new(),
            error: FormError::default(),
            sent: false,
            max,
        }
    }

    pub fn sent(max: usize) -> Self {
        BoardForm {
            sent: true,
            ..BoardForm::blank(max)
        }
    }

    /// Keeps what was typed, with the error beside it.
    pub fn failed(max: usize, typed: &Typed, error: ApiError) -> Self {
        BoardForm {
            value: typed.message.clone(),
            error: FormError::new(error, &["message"]),
            ..BoardForm::blank(max)
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("board form template renders")
    }
}

impl FormFields for Typed {
    fn unread(state: &AppState, error: ApiError) -> Response {
        let max = state.config.limits.message_chars;
        BoardForm::failed(max, &Typed::default(), error).into_response()
    }
}
