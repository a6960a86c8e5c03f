//! Notifications (from the notifications-provider SSE demo): a typed message broadcast to every
//! page as a toast, kept in a durable "recent" list, and sent as the `notification.created` event
//! on the `notifications` topic of `GET /api/stream`; plus `GET /ping`.
//!
//! The dashboard shows the newest [`RECENT`] in the `notifications-list` region, each entry
//! `#note-{id}`. A new notification's message is its toast plus its entry prepended, and the
//! entry it pushes out of the list deleted (`hub::list_changes`), so the list stays equal to what
//! [`regions`] renders without being sent whole.

pub mod input;
mod routes;
mod views;

use serde::{Deserialize, Serialize};

use crate::store::StoreResult;
pub use routes::{form_page, ping, send};
pub use views::{NotifyForm, NotifyPage, Toast, json_state, live, regions};

pub const LIST_REGION: &str = "notifications-list";
pub const TOASTS: &str = "toasts";
/// The notifications' topic on `GET /api/stream`.
pub const TOPIC: &str = "notifications";
/// How many notifications the recent list keeps.
pub const RECENT: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
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
