//! Notifications (from the notifications-provider SSE demo): a typed message broadcast to every
//! page as a toast, kept in a durable "recent" list; plus `GET /ping`.

mod views;

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::clock;
use crate::hub::{Audience, Region, Swap, frame, periodic, push_partial};
use crate::store::{SharedStore, StoreResult, call};
use crate::web::assets;
use crate::web::error::{ApiError, FieldError};
use crate::web::input::{Input, required_text};
use crate::web::sse;
pub use views::{NotifyForm, NotifyPage, RecentList, Toast};

pub const LIST_REGION: &str = "notifications-list";
pub const TOASTS: &str = "toasts";
/// How many notifications the recent list keeps.
pub const RECENT: usize = 20;
const PING_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Info,
    Success,
    Warning,
    Error,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Info, Kind::Success, Kind::Warning, Kind::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Info => "info",
            Kind::Success => "success",
            Kind::Warning => "warning",
            Kind::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Result<Kind, FieldError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                FieldError::new(
                    "type",
                    format!("unknown notification type {s:?}: use info, success, warning or error"),
                )
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub title: String,
    pub body: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

pub trait NotifyStore {
    /// Stores `n` (its `id` is assigned), keeps the newest `keep`, and returns them newest first.
    fn add_notification(&self, n: &Notification, keep: usize) -> StoreResult<Vec<Notification>>;
    fn recent_notifications(&self, limit: usize) -> StoreResult<Vec<Notification>>;
}

#[derive(Debug, Default, Deserialize)]
pub struct NotificationInput {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: String,
}

/// `GET /send-notification`: the form on a page of its own.
pub async fn form_page(State(state): State<AppState>) -> NotifyPage {
    NotifyPage {
        assets: assets::prefix(),
        form: NotifyForm::blank(&state.config.limits).html(),
    }
}

/// `POST /send-notification`: JSON `{"type","title","body"}` or the form.
pub async fn send(State(state): State<AppState>, input: Input<NotificationInput>) -> Response {
    let limits = state.config.limits;
    match input {
        Input::Json(raw) => match broadcast(&state, &raw).await {
            Ok(n) => (StatusCode::CREATED, Json(n)).into_response(),
            Err(e) => e.into_response(),
        },
        Input::Form(raw) => match broadcast(&state, &raw).await {
            Ok(n) => NotifyForm::sent(&limits, n.kind).into_response(),
            Err(e) => (e.status, NotifyForm::failed(&limits, &raw, e)).into_response(),
        },
    }
}

fn validate(raw: &NotificationInput, state: &AppState) -> Result<Notification, FieldError> {
    let limits = state.config.limits;
    Ok(Notification {
        id: 0,
        kind: Kind::parse(raw.kind.trim())?,
        title: required_text("title", &raw.title, limits.title_chars)?,
        body: required_text("body", &raw.body, limits.body_chars)?,
        created_at: clock::now_ms(),
    })
}

async fn broadcast(state: &AppState, raw: &NotificationInput) -> Result<Notification, ApiError> {
    let new = validate(raw, state)?;
    let change = state.hub.change().await;
    let recent = call(&state.store, move |s| s.add_notification(&new, RECENT)).await?;
    let stored = recent.first().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "notification was not stored",
        )
    })?;
    let mut html = String::new();
    push_partial(
        &mut html,
        TOASTS,
        Swap::BeforeEnd,
        &Toast::new(&stored).html(),
    );
    push_partial(
        &mut html,
        LIST_REGION,
        Swap::InnerHtml,
        &RecentList::new(&recent).html(),
    );
    change.publish(Audience::Everyone, &html);
    Ok(stored)
}

/// The recent list's region for a page or a resync.
pub async fn regions(store: &SharedStore) -> StoreResult<Vec<Region>> {
    let recent = call(store, |s| s.recent_notifications(RECENT)).await?;
    Ok(vec![Region {
        id: LIST_REGION,
        html: RecentList::new(&recent).html(),
    }])
}

/// `GET /ping`: `data: pong` every two seconds.
pub async fn ping(State(state): State<AppState>) -> Response {
    sse::response(periodic::every(PING_EVERY, state.hub.closing(), || async {
        frame::message(None, "pong")
    }))
}
