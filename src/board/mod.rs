//! Message board (from the raikg SSE demo): one current message, set with `GET /send` or the
//! page's form, shown live on every page and streamed as JSON by `GET /event`.

mod views;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::clock;
use crate::hub::{Audience, Region, Swap, frame, partial, periodic};
use crate::store::{SharedStore, StoreResult, call};
use crate::web::error::ApiError;
use crate::web::input::{Input, is_htmx, required_text};
use crate::web::sse;
pub use views::{BoardForm, MessageView};

pub const REGION: &str = "board-message";
/// How often `GET /event` repeats the current message, as in the original demo.
const EVENT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardMessage {
    pub message: String,
    /// Unix milliseconds.
    pub set_at: i64,
}

pub trait BoardStore {
    fn set_message(&self, message: &BoardMessage) -> StoreResult<()>;
    fn current_message(&self) -> StoreResult<Option<BoardMessage>>;
}

#[derive(Deserialize)]
pub struct SendForm {
    #[serde(default)]
    message: String,
}

/// `GET /send?message=…`: the original API. API callers get its JSON echo.
pub async fn send_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let text = query.get("message").cloned().unwrap_or_default();
    if is_htmx(&headers) {
        return answer_form(&state, &text).await;
    }
    match set(&state, &text).await {
        Ok(_) => Json(serde_json::json!({
            "query": query,
            "body": {},
            "pathname": "/send",
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /send`: the page's form (or JSON `{"message": …}`).
pub async fn send_post(State(state): State<AppState>, input: Input<SendForm>) -> Response {
    match input {
        Input::Form(form) => answer_form(&state, &form.message).await,
        Input::Json(form) => match set(&state, &form.message).await {
            Ok(message) => (StatusCode::OK, Json(message)).into_response(),
            Err(e) => e.into_response(),
        },
    }
}

/// The form again: emptied with a confirmation, or keeping the input with the error.
async fn answer_form(state: &AppState, text: &str) -> Response {
    let max = state.config.limits.message_chars;
    match set(state, text).await {
        Ok(_) => BoardForm::sent(max).into_response(),
        Err(e) => (e.status, BoardForm::failed(text, e.message, max)).into_response(),
    }
}

async fn set(state: &AppState, text: &str) -> Result<BoardMessage, ApiError> {
    let message = BoardMessage {
        message: required_text("message", text, state.config.limits.message_chars)?,
        set_at: clock::now_ms(),
    };
    let change = state.hub.change().await;
    let stored = message.clone();
    call(&state.store, move |s| s.set_message(&stored)).await?;
    let html = partial(
        REGION,
        Swap::InnerHtml,
        &MessageView::new(Some(&message)).html(),
    );
    change.publish(Audience::Everyone, &html);
    Ok(message)
}

/// The board's region for a page or a resync.
pub async fn regions(store: &SharedStore) -> StoreResult<Vec<Region>> {
    let current = call(store, |s| s.current_message()).await?;
    Ok(vec![Region {
        id: REGION,
        html: MessageView::new(current.as_ref()).html(),
    }])
}

#[derive(Serialize)]
struct EventData {
    message: Option<String>,
    timestamp: Option<String>,
}

/// `GET /event`: `event: message` with `{message, timestamp}` every second.
pub async fn events(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    sse::response(periodic::every(
        EVENT_EVERY,
        state.hub.closing(),
        move || {
            let store = store.clone();
            async move {
                let current = call(&store, |s| s.current_message()).await.ok().flatten();
                let data = EventData {
                    timestamp: current.as_ref().map(|m| clock::rfc3339(m.set_at)),
                    message: current.map(|m| m.message),
                };
                let json = serde_json::to_string(&data).expect("plain struct serialises");
                frame::message(Some("message"), &json)
            }
        },
    ))
}
