//! The offers' fragments: rows, the table body, the live messages that keep it current (and
//! their JSON events), the form, and the page that lists every offer (and its JSON).

use askama::Template;
use askama_web::WebTemplate;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::input::Typed;
use super::{BODY_REGION, Offer, SHOWN, TOPIC};
use crate::AppState;
use crate::clock;
use crate::hub::{JsonEvent, Region, Swap, partial, push_partial};
use crate::store::{Store, StoreResult};
use crate::web::error::{ApiError, FormError};
use crate::web::input::FormFields;
use crate::web::paging::{PER_PAGE, Paging};

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

fn row_id(id: i64) -> String {
    format!("offer-{id}")
}

/// The live message of a created offer: its row first, and the row it pushed out of the
/// dashboard's window gone.
pub fn created(offer: &Offer, evicted: Option<i64>) -> String {
    let mut html = String::new();
    push_partial(
        &mut html,
        BODY_REGION,
        Swap::AfterBegin,
        &OfferRow::fresh(offer).html(),
    );
    if let Some(evicted) = evicted {
        push_partial(&mut html, &row_id(evicted), Swap::Delete, "");
    }
    html
}

/// The live message of a replaced offer: its row, wherever a page shows it.
pub fn updated(offer: &Offer) -> String {
    partial(
        &row_id(offer.id),
        Swap::OuterHtml,
        &OfferRow::fresh(offer).html(),
    )
}

/// The live message of a deleted offer: its row gone, and the one that moved up into the
/// window appended.
pub fn deleted(offer: &Offer, moved_up: Option<&Offer>) -> String {
    let mut html = String::new();
    push_partial(&mut html, &row_id(offer.id), Swap::Delete, "");
    if let Some(moved_up) = moved_up {
        push_partial(
            &mut html,
            BODY_REGION,
            Swap::BeforeEnd,
            &OfferRow::settled(moved_up).html(),
        );
    }
    html
}

/// The JSON event of a created offer: the offer as `POST /offers` answers it.
pub fn created_json(offer: &Offer) -> JsonEvent {
    JsonEvent::new(TOPIC, "offer.created", offer)
}

/// The JSON event of a replaced offer: the offer as `PUT /offers/{id}` answers it.
pub fn updated_json(offer: &Offer) -> JsonEvent {
    JsonEvent::new(TOPIC, "offer.updated", offer)
}

/// The JSON event of a deleted offer: the offer as `DELETE /offers/{id}` answers it.
pub fn deleted_json(offer: &Offer) -> JsonEvent {
    JsonEvent::new(TOPIC, "offer.deleted", offer)
}

/// The dashboard's offers table body, for a page or a resync.
pub fn regions(s: &dyn Store) -> StoreResult<Vec<Region>> {
    let (newest, _) = s.offers_page(0, SHOWN)?;
    Ok(vec![Region {
        id: BODY_REGION,
        html: OfferRows::new(&newest).html(),
    }])
}

/// The offers' state for a JSON resync: the newest page, as `GET /offers` answers it.
pub fn json_state(s: &dyn Store) -> StoreResult<serde_json::Value> {
    let newest = Paging {
        page: 1,
        per_page: PER_PAGE,
    };
    let listing = Listing::read(s, newest)?;
    Ok(serde_json::to_value(listing).expect("a listing serializes"))
}

/// One page of offers as JSON (`GET /offers`), newest first, with links to its neighbours.
#[derive(Serialize)]
pub struct Listing {
    pub offers: Vec<Offer>,
    pub page: usize,
    pub per_page: usize,
    pub total: u64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Listing {
    pub fn read(s: &dyn Store, paging: Paging) -> StoreResult<Listing> {
        let Paging { page, per_page } = paging;
        let (offers, total) = s.offers_page(paging.offset(), per_page)?;
        let pages = page_count(total, per_page);
        let link = |p: usize| format!("/offers?page={p}&per_page={per_page}");
        Ok(Listing {
            offers,
            page,
            per_page,
            total,
            prev: (page > 1).then(|| link((page - 1).min(pages))),
            next: (page < pages).then(|| link(page + 1)),
        })
    }

    /// How many pages there are (one, even when there is no offer).
    pub fn pages(&self) -> usize {
        page_count(self.total, self.per_page)
    }
}

fn page_count(total: u64, per_page: usize) -> usize {
    (total as usize).div_ceil(per_page).max(1)
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
    error: FormError,
    added: Option<i64>,
    max: usize,
}

impl OfferForm {
    pub fn blank(max: usize) -> Self {
        OfferForm {
            description: String::new(),
            value: String::new(),
            error: FormError::default(),
            added: None,
            max,
        }
    }

    pub fn added(max: usize, id: i64) -> Self {
        OfferForm {
            added: Some(id),
            ..OfferForm::blank(max)
        }
    }

    /// Keeps what was typed, with the error next to its field.
    pub fn failed(max: usize, typed: &Typed, error: ApiError) -> Self {
        OfferForm {
            description: typed.description.clone(),
            value: typed.value.clone(),
            error: FormError::new(error, &["description", "value"]),
            ..OfferForm::blank(max)
        }
    }

    pub fn html(&self) -> String {
        self.render().expect("offer form template renders")
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

impl FormFields for Typed {
    fn unread(state: &AppState, error: ApiError) -> Response {
        let max = state.config.limits.description_chars;
        OfferForm::failed(max, &Typed::default(), error).into_response()
    }
}
