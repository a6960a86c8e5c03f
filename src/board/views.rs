use askama::Template;
use askama_web::WebTemplate;

use super::BoardMessage;
use crate::clock;

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

/// The form that sets the message; answers its own submissions.
#[derive(Template, WebTemplate)]
#[template(path = "board/form.html")]
pub struct BoardForm {
    value: String,
    error: Option<String>,
    sent: bool,
    max: usize,
}

impl BoardForm {
    pub fn blank(max: usize) -> Self {
        BoardForm {
            value: String::new(),
            error: None,
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

    pub fn failed(value: &str, error: String, max: usize) -> Self {
        BoardForm {
            value: value.to_string(),
            error: Some(error),
            ..BoardForm::blank(max)
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("board form template renders")
    }
}
