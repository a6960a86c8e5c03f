//! The notifications' fragments: toasts, the recent list's entries, the live message of a new
//! notification (and its JSON event), the form and its page.

use askama::Template;
use askama_web::WebTemplate;
use axum::response::{IntoResponse, Response};

use super::input::Typed;
use super::{Kind, LIST_REGION, Notification, RECENT, TOASTS, TOPIC};
use crate::AppState;
use crate::clock;
use crate::config::InputLimits;
use crate::hub::{JsonEvent, Listed, Region, Swap, list_changes, list_html, push_partial};
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

/// One entry of the recent list, as a page, a resync or a live message shows it.
#[derive(Template)]
#[template(path = "notify/note.html")]
struct Note<'a> {
    n: &'a Notification,
    datetime: String,
    time: String,
}

impl<'a> Note<'a> {
    pub fn new(n: &'a Notification) -> Self {
        Note {
            n,
            datetime: clock::rfc3339(n.created_at),
            time: clock::hms(n.created_at),
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("notification entry template renders")
    }
}

/// The recent list shows each notification as its entry.
impl Listed for Notification {
    fn element_id(&self) -> String {
        format!("note-{}", self.id)
    }

    fn element(&self) -> String {
        Note::new(self).html()
    }
}

/// The live message of a new notification: its toast, and its entry first in the recent list
/// that showed `before` (entry ids), the entry it pushed out of the list removed.
pub fn live(stored: &Notification, before: &[String], recent: &[Notification]) -> String {
    let mut html = String::new();
    push_partial(
        &mut html,
        TOASTS,
        Swap::BeforeEnd,
        &Toast::new(stored).html(),
    );
    html.push_str(&list_changes(LIST_REGION, before, recent, None));
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
        html: list_html(&recent),
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
