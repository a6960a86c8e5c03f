use askama::Template;
use askama_web::WebTemplate;

use super::{Kind, Notification, NotificationInput};
use crate::clock;
use crate::config::InputLimits;
use crate::web::error::ApiError;

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

#[derive(Template, WebTemplate)]
#[template(path = "notify/form.html")]
pub struct NotifyForm {
    kind: Kind,
    title: String,
    body: String,
    error: Option<(&'static str, String)>,
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
            error: None,
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

    pub fn failed(limits: &InputLimits, raw: &NotificationInput, error: ApiError) -> Self {
        NotifyForm {
            kind: Kind::parse(raw.kind.trim()).unwrap_or(Kind::Info),
            title: raw.title.clone(),
            body: raw.body.clone(),
            error: Some((error.field.unwrap_or(""), error.message)),
            ..NotifyForm::blank(limits)
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("notification form template renders")
    }

    fn field_error(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    fn other_error(&self) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(f, _)| !["type", "title", "body"].contains(f))
            .map(|(_, m)| m.as_str())
    }
}

/// `GET /send-notification`: the form on its own page.
#[derive(Template, WebTemplate)]
#[template(path = "notify/page.html")]
pub struct NotifyPage {
    pub assets: String,
    pub form: String,
}
