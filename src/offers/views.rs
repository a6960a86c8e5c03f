use askama::Template;
use askama_web::WebTemplate;

use super::Offer;
use super::input::Typed;
use crate::clock;

/// One offer as the row templates need it.
pub struct RowData {
    id: i64,
    description: String,
    value: String,
    datetime: String,
    time: String,
    /// Set on rows that arrive live: CSS highlights them once. A page or resync renders the
    /// same row without it, which looks the same once the highlight has faded.
    fresh: bool,
}

impl RowData {
    fn new(o: &Offer, fresh: bool) -> Self {
        RowData {
            id: o.id,
            description: o.description.clone(),
            value: o.value.to_string(),
            datetime: clock::rfc3339(o.updated_at),
            time: clock::hms(o.updated_at),
            fresh,
        }
    }
}

/// A single row, as a live create or update sends it.
#[derive(Template)]
#[template(path = "offers/row.html")]
pub struct OfferRow {
    o: RowData,
}

impl OfferRow {
    pub fn fresh(offer: &Offer) -> Self {
        OfferRow {
            o: RowData::new(offer, true),
        }
    }

    /// A row that slides into view from below (after a delete): nothing new, so no highlight.
    pub fn settled(offer: &Offer) -> Self {
        OfferRow {
            o: RowData::new(offer, false),
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("offer row template renders")
    }
}

/// The rows of an offers table, newest first.
#[derive(Template)]
#[template(path = "offers/rows.html")]
pub struct OfferRows {
    rows: Vec<RowData>,
}

impl OfferRows {
    pub fn new(offers: &[Offer]) -> Self {
        OfferRows {
            rows: offers.iter().map(|o| RowData::new(o, false)).collect(),
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("offer rows template renders")
    }
}

/// The page's form for a new offer; answers its own submissions.
#[derive(Template, WebTemplate)]
#[template(path = "offers/form.html")]
pub struct OfferForm {
    description: String,
    value: String,
    error: Option<(String, String)>,
    added: Option<i64>,
    max: usize,
}

impl OfferForm {
    pub fn blank(max: usize) -> Self {
        OfferForm {
            description: String::new(),
            value: String::new(),
            error: None,
            added: None,
            max,
        }
    }

    pub fn added(id: i64, max: usize) -> Self {
        OfferForm {
            added: Some(id),
            ..OfferForm::blank(max)
        }
    }

    /// Keeps what was typed, with the error next to its field.
    pub fn failed(typed: &Typed, field: &str, message: String, max: usize) -> Self {
        OfferForm {
            description: typed.description.clone(),
            value: typed.value.clone(),
            error: Some((field.to_string(), message)),
            ..OfferForm::blank(max)
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("offer form template renders")
    }

    fn field_error(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    fn other_error(&self) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(f, _)| f != "description" && f != "value")
            .map(|(_, m)| m.as_str())
    }
}

/// `GET /offers` for browsers: one page of every offer, with links to the others.
#[derive(Template, WebTemplate)]
#[template(path = "offers/page.html")]
pub struct OffersPage {
    pub assets: String,
    pub rows: Vec<RowData>,
    pub page: usize,
    pub pages: usize,
    pub total: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl OffersPage {
    pub fn rows(offers: &[Offer]) -> Vec<RowData> {
        offers.iter().map(|o| RowData::new(o, false)).collect()
    }
}
