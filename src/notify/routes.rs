//! The notifications' endpoints: the form (on the dashboard and on a page of its own), the JSON
//! API, and the original `GET /ping`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::input::{JsonBody, Typed};
use super::views::{self, NotifyForm, NotifyPage};
use super::{LIST_REGION, Notification, RECENT};
use crate::AppState;
use crate::hub::{Publish, frame, list_ids, periodic};
use crate::web::assets;
use crate::web::error::{ApiError, FieldError};
use crate::web::input::Input;
use crate::web::sse;

const PING_EVERY: Duration = Duration::from_secs(2);

/// `GET /send-notification`: the form on a page of its own.
pub async fn form_page(State(state): State<AppState>) -> NotifyPage {
    NotifyPage {
        assets: assets::prefix(),
        form: NotifyForm::blank(&state.config.limits).html(),
    }
}

/// `POST /send-notification`: JSON `{"type","title","body"}` or the form.
pub async fn send(State(state): State<AppState>, input: Input<JsonBody, Typed>) -> Response {
    let limits = state.config.limits;
    match input {
        Input::Json(body) => match broadcast(&state, body.validate(&limits)).await {
            Ok(n) => (StatusCode::CREATED, Json(n)).into_response(),
            Err(e) => e.into_response(),
        },
        Input::Form(typed) => match broadcast(&state, typed.validate(&limits)).await {
            Ok(n) => NotifyForm::sent(&limits, n.kind).into_response(),
            Err(e) => (e.status, NotifyForm::failed(&limits, &typed, e)).into_response(),
        },
    }
}

async fn broadcast(
    state: &AppState,
    new: Result<Notification, FieldError>,
) -> Result<Notification, ApiError> {
    let new = new?;
    state
        .change(move |s| {
            s.hold_list(LIST_REGION)?;
            let before = list_ids(&s.recent_notifications(RECENT)?);
            let recent = s.add_notification(&new, RECENT)?;
            let stored = recent.first().cloned().ok_or_else(|| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "notification was not stored",
                )
            })?;
            let publish = Publish::everyone(views::live(&stored, &before, &recent))
                .with_json(views::live_json(&stored));
            Ok((stored, publish))
        })
        .await
}

/// `GET /ping`: `data: pong` every two seconds.
pub async fn ping(State(state): State<AppState>) -> Response {
    sse::response(periodic::every(PING_EVERY, state.hub.closing(), || async {
        frame::message(None, "pong")
    }))
}
