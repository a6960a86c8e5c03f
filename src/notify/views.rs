//! The notifications' fragments: toasts, the recent list, the form and its page.

use askama::Template;
use askama_web::WebTemplate;
use axum::response::{IntoResponse, Response};

use super::input::Typed;
use super::{Kind, LIST_REGION, Notification, RECENT, TOASTS, TOPIC};
use crate::AppState;
use crate::clock;
use crate::config::InputLimits;
use crate::hub::{JsonEvent, Region, Swap, push_partial};
use crate::store::{Store, StoreResult};
use crate::web::error::{ApiError, FormError};
use crate::web::input::FormFields;

/// A toast that fades out by CSS alone.
#[derive(Template)]
#[template(path = "notify/toast.html")]
pub struct Toast<'a> {
    n: &'a Notification,
}

impl<'a> Toast<'a> {
    pub fn new(n: &'a Notification) -> Self {
        Toast { n }
    }

    pub fn html(&self) -> String {
        self.render().expect("toast template renders")
    }
}

/// The recent notifications, newest first.
#[derive(Template)]
#[template(path = "notify/list.html")]
pub struct RecentList<'a> {
    items: Vec<(&'a Notification, String, String)>,
}

impl<'a> RecentList<'a> {
    pub fn new(recent: &'a [Notification]) -> Self {
        RecentList {
            items: recent
                .iter()
                .map(|n| (n, clock::rfc3339(n.created_at), clock::hms(n.created_at)))
                .collect(),
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("notification list template renders")
    }
}

/// The live message of a new notification: its toast, and the recent list it is now first in.
pub fn live(stored: &Notification, recent: &[Notification]) -> String {
    let mut html = String::new();
    push_partial(
        &mut html,
        TOASTS,
        Swap::BeforeEnd,
        &Toast::new(stored).html(),
    );
    push_partial(
        &mut html,
        LIST_REGION,
        Swap::InnerHtml,
        &RecentList::new(recent).html(),
    );
    html
}

/// The JSON event of a new notification: the notification as `POST /send-notification`
/// answers it.
pub fn live_json(stored: &Notification) -> JsonEvent {
    JsonEvent::new(TOPIC, "notification.created", stored)
}

/// The recent list's region for a page or a resync.
pub fn regions(s: &dyn Store) -> StoreResult<Vec<Region>> {
    let recent = s.recent_notifications(RECENT)?;
    Ok(vec![Region {
        id: LIST_REGION,
        html: RecentList::new(&recent).html(),
    }])
}

/// The notifications' state for a JSON resync: the recent ones, newest first.
pub fn json_state(s: &dyn Store) -> StoreResult<serde_json::Value> {
    let recent = s.recent_notifications(RECENT)?;
    Ok(serde_json::to_value(recent).expect("notifications serialize"))
}

#[derive(Template, WebTemplate)]
#[template(path = "notify/form.html")]
pub struct NotifyForm {
    kind: Kind,
    title: String,
    body: String,
    error: FormError,
    sent: bool,
    limits: InputLimits,
    kinds: [Kind; 4],
}

impl NotifyForm {
    pub fn blank(limits: &InputLimits) -> Self {
        NotifyForm {
            kind: Kind::Info,
            title: String::new(),
            body: String::new(),
            error: FormError::default(),
            sent: false,
            limits: *limits,
            kinds: Kind::ALL,
        }
    }

    /// Emptied for the next one, keeping the type that was just sent.
    pub fn sent(limits: &InputLimits, kind: Kind) -> Self {
        NotifyForm {
            kind,
            sent: true,
            ..NotifyForm::blank(limits)
        }
    }

    /// Keeps what was typed, with the error beside its field.
    pub fn failed(limits: &InputLimits, typed: &Typed, error: ApiError) -> Self {
        NotifyForm {
            kind: Kind::parse(typed.kind.trim()).unwrap_or(Kind::Info),
            title: typed.title.clone(),
            body: typed.body.clone(),
            error: FormError::new(error, &["type", "title", "body"]),
            ..NotifyForm::blank(limits)
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("notification form template renders")
    }
}

/// `GET /send-notification`: the form on its own page.
#[derive(Template, WebTemplate)]
#[template(path = "notify/page.html")]
pub struct NotifyPage {
    pub assets: String,
    pub form: String,
}

impl FormFields for Typed {
    fn unread(state: &AppState, error: ApiError) -> Response {
        NotifyForm::failed(&state.config.limits, &Typed::default(), error).into_response()
    }
}
