//! The board's endpoints: the original `GET /send` and `GET /event`, and the page's form.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::BoardMessage;
use super::input::{JsonBody, Typed};
use super::views::{self, BoardForm};
use crate::hub::{Publish, frame, periodic};
use crate::store::call;
use crate::web::error::{ApiError, FieldError};
use crate::web::input::Input;
use crate::web::negotiate::Wants;
use crate::web::sse;
use crate::{AppState, clock};

/// How often `GET /event` repeats the current message, as in the original demo.
const EVENT_EVERY: Duration = Duration::from_secs(1);

/// `GET /send?message=…`: the original API. API callers get its JSON echo.
pub async fn send_get(
    State(state): State<AppState>,
    wants: Wants,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let typed = Typed {
        message: query.get("message").cloned().unwrap_or_default(),
    };
    if wants == Wants::Fragment {
        return answer_form(&state, typed).await;
    }
    let max = state.config.limits.message_chars;
    match set(&state, typed.validate(max)).await {
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
pub async fn send_post(State(state): State<AppState>, input: Input<JsonBody, Typed>) -> Response {
    let max = state.config.limits.message_chars;
    match input {
        Input::Json(body) => match set(&state, body.validate(max)).await {
            Ok(message) => Json(message).into_response(),
            Err(e) => e.into_response(),
        },
        Input::Form(typed) => answer_form(&state, typed).await,
    }
}

/// The form again: emptied with a confirmation, or keeping the input with the error.
async fn answer_form(state: &AppState, typed: Typed) -> Response {
    let max = state.config.limits.message_chars;
    match set(state, typed.validate(max)).await {
        Ok(_) => BoardForm::sent(max).into_response(),
        Err(e) => (e.status, BoardForm::failed(max, &typed, e)).into_response(),
    }
}

async fn set(state: &AppState, text: Result<String, FieldError>) -> Result<BoardMessage, ApiError> {
    let message = BoardMessage {
        message: text?,
        set_at: clock::now_ms(),
    };
    let stored = message.clone();
    state
        .change(move |s| {
            s.set_message(&stored)?;
            let publish =
                Publish::everyone(views::live(&stored)).with_json(views::live_json(&stored));
            Ok::<_, ApiError>(((), publish))
        })
        .await?;
    Ok(message)
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
