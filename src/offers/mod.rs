//! Live offers board (from the offers SSE demo): durable offers created, replaced and deleted
//! through a JSON API or the page's form, with every open dashboard's table following live.
//!
//! The dashboard shows the newest [`SHOWN`] offers in the `offers-body` region. Every live
//! message keeps that region equal to what [`regions`] renders: a create prepends its row and
//! deletes the row it pushes out of the window; an update replaces its row (a no-op on pages that
//! do not show it); a delete removes its row and appends the one that moves up into the window.
//! Rows differ from a resync only by the one-shot `offer-fresh` highlight class.

pub mod input;
pub mod money;
mod views;

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::AppState;
use crate::clock;
use crate::hub::{Audience, Region, Swap, push_partial};
use crate::store::{SharedStore, StoreResult, call};
use crate::web::assets;
use crate::web::error::{ApiError, FieldError};
use crate::web::input::is_htmx;
use input::{OfferBody, OfferInput, Rejected};
use money::Money;
pub use views::{OfferForm, OfferRow, OfferRows, OffersPage};

pub const BODY_REGION: &str = "offers-body";
/// How many offers the dashboard shows; `GET /offers` pages through the rest.
pub const SHOWN: usize = 20;
const PER_PAGE: usize = 20;
const MAX_PER_PAGE: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offer {
    pub id: i64,
    pub description: String,
    /// A JSON number with the exact decimal (`1000000`, `19.99`).
    pub value: Money,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

pub struct NewOffer {
    /// The client's id, or `None` for the next free one.
    pub id: Option<i64>,
    pub description: String,
    pub value: Money,
    pub at: i64,
}

pub enum Created {
    /// Stored; `evicted` is the offer it pushed out of the newest `window`.
    New { offer: Offer, evicted: Option<i64> },
    /// The id is taken: nothing was written.
    Duplicate(Offer),
}

pub struct Deleted {
    pub offer: Offer,
    /// The offer that moved up into the newest `window`, if the deleted one was in it.
    pub backfill: Option<Offer>,
}

pub trait OffersStore {
    fn create_offer(&self, new: &NewOffer, window: usize) -> StoreResult<Created>;
    fn update_offer(
        &self,
        id: i64,
        description: &str,
        value: Money,
        at: i64,
    ) -> StoreResult<Option<Offer>>;
    fn delete_offer(&self, id: i64, window: usize) -> StoreResult<Option<Deleted>>;
    /// Newest first, and how many there are in all.
    fn offers_page(&self, offset: usize, limit: usize) -> StoreResult<(Vec<Offer>, u64)>;
}

fn row_id(id: i64) -> String {
    format!("offer-{id}")
}

/// `POST /offers`: JSON `{"id"?, "description", "value"}` → 201 with the stored offer, or the
/// page's form → the form again.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<OfferBody, ApiError>,
) -> Response {
    let max = state.config.limits.description_chars;
    let body = body.map_err(|e| readable(&state, e));
    match body {
        Err(e) if is_htmx(&headers) => {
            let form = OfferForm::failed(&Default::default(), "form", e.message, max);
            (e.status, form).into_response()
        }
        Err(e) => e.into_response(),
        Ok(OfferBody::Json(bytes)) => {
            let input = match input::from_json(&bytes, max) {
                Ok(input) => input,
                Err(e) => return e.into_response(),
            };
            match add(&state, input).await {
                Ok(Created::New { offer, .. }) => {
                    (StatusCode::CREATED, Json(offer)).into_response()
                }
                Ok(Created::Duplicate(existing)) => duplicate(existing),
                Err(e) => e.into_response(),
            }
        }
        Ok(OfferBody::Form(pairs)) => {
            let (typed, parsed) = input::from_form(&pairs, max);
            let result = match parsed {
                Ok(input) => add(&state, input).await,
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(Created::New { offer, .. }) => {
                    (StatusCode::CREATED, OfferForm::added(offer.id, max)).into_response()
                }
                Ok(Created::Duplicate(existing)) => {
                    let message = format!("an offer with id {} exists already", existing.id);
                    let form = OfferForm::failed(&typed, "form", message, max);
                    (StatusCode::CONFLICT, form).into_response()
                }
                Err(e) => {
                    let field = e.field.unwrap_or("form");
                    (e.status, OfferForm::failed(&typed, field, e.message, max)).into_response()
                }
            }
        }
    }
}

/// Says what the body limit is instead of the extractor's generic words.
fn readable(state: &AppState, e: ApiError) -> ApiError {
    if e.status == StatusCode::PAYLOAD_TOO_LARGE {
        let limit = state.config.limits.request_bytes;
        ApiError::new(
            e.status,
            format!("the body is larger than the {limit}-byte limit"),
        )
    } else {
        e
    }
}

/// 409 with the offer that holds the id, so a retried create can see it already landed.
fn duplicate(existing: Offer) -> Response {
    #[derive(Serialize)]
    struct Conflict {
        error: String,
        field: &'static str,
        offer: Offer,
    }
    let body = Conflict {
        error: format!("an offer with id {} exists already", existing.id),
        field: "id",
        offer: existing,
    };
    (StatusCode::CONFLICT, Json(body)).into_response()
}

async fn add(state: &AppState, input: OfferInput) -> Result<Created, ApiError> {
    let new = NewOffer {
        id: input.id,
        description: input.description,
        value: input.value,
        at: clock::now_ms(),
    };
    let change = state.hub.change().await;
    let created = call(&state.store, move |s| s.create_offer(&new, SHOWN)).await?;
    if let Created::New { offer, evicted } = &created {
        let mut html = String::new();
        push_partial(
            &mut html,
            BODY_REGION,
            Swap::AfterBegin,
            &OfferRow::fresh(offer).html(),
        );
        if let Some(evicted) = evicted {
            push_partial(&mut html, &row_id(*evicted), Swap::Delete, "");
        }
        change.publish(Audience::Everyone, &html);
    }
    Ok(created)
}

/// `PUT /offers/{id}`: JSON `{"description", "value"}` (an `id`, if sent, must match) replaces
/// the offer → 200 with it.
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<OfferBody, ApiError>,
) -> Response {
    match replace(&state, &id, body).await {
        Ok(offer) => Json(offer).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn replace(
    state: &AppState,
    id: &str,
    body: Result<OfferBody, ApiError>,
) -> Result<Offer, Rejected> {
    let id = path_id(id)?;
    let max = state.config.limits.description_chars;
    let input = match body.map_err(|e| readable(state, e))? {
        OfferBody::Json(bytes) => input::from_json(&bytes, max)?,
        OfferBody::Form(pairs) => input::from_form(&pairs, max).1?,
    };
    if input.id.is_some_and(|given| given != id) {
        return Err(FieldError::new("id", "id in the body does not match the URL").into());
    }
    let change = state.hub.change().await;
    let at = clock::now_ms();
    let updated = call(&state.store, move |s| {
        s.update_offer(id, &input.description, input.value, at)
    })
    .await
    .map_err(ApiError::from)?;
    let offer = updated.ok_or_else(|| ApiError::not_found(format!("no offer with id {id}")))?;
    let mut html = String::new();
    push_partial(
        &mut html,
        &row_id(id),
        Swap::OuterHtml,
        &OfferRow::fresh(&offer).html(),
    );
    change.publish(Audience::Everyone, &html);
    Ok(offer)
}

/// `DELETE /offers/{id}` → 200 with the deleted offer.
pub async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match remove(&state, &id).await {
        Ok(offer) => Json(offer).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn remove(state: &AppState, id: &str) -> Result<Offer, ApiError> {
    let id = path_id(id)?;
    let change = state.hub.change().await;
    let deleted = call(&state.store, move |s| s.delete_offer(id, SHOWN)).await?;
    let Deleted { offer, backfill } =
        deleted.ok_or_else(|| ApiError::not_found(format!("no offer with id {id}")))?;
    let mut html = String::new();
    push_partial(&mut html, &row_id(id), Swap::Delete, "");
    if let Some(moved_up) = backfill {
        push_partial(
            &mut html,
            BODY_REGION,
            Swap::BeforeEnd,
            &OfferRow::settled(&moved_up).html(),
        );
    }
    change.publish(Audience::Everyone, &html);
    Ok(offer)
}

fn path_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| (1..=input::MAX_ID).contains(id))
        .ok_or_else(|| ApiError::not_found(format!("no offer with id {text:?}")))
}

#[derive(Serialize)]
struct Listing {
    offers: Vec<Offer>,
    page: usize,
    per_page: usize,
    total: u64,
    prev: Option<String>,
    next: Option<String>,
}

/// `GET /offers?page=&per_page=`: newest first; an HTML page for browsers (`Accept: text/html`),
/// JSON otherwise.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let (page, per_page) = match paging(&query) {
        Ok(paging) => paging,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let offset = (page - 1).saturating_mul(per_page);
    let (offers, total) = match call(&state.store, move |s| s.offers_page(offset, per_page)).await {
        Ok(found) => found,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let pages = (total as usize).div_ceil(per_page).max(1);
    let link = |p: usize| format!("/offers?page={p}&per_page={per_page}");
    let prev = (page > 1).then(|| link((page - 1).min(pages)));
    let next = (page < pages).then(|| link(page + 1));
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let mut response = if wants_html {
        OffersPage {
            assets: assets::prefix(),
            rows: OffersPage::rows(&offers),
            page,
            pages,
            total,
            prev,
            next,
        }
        .into_response()
    } else {
        Json(Listing {
            offers,
            page,
            per_page,
            total,
            prev,
            next,
        })
        .into_response()
    };
    response
        .headers_mut()
        .insert(header::VARY, "Accept".parse().expect("static"));
    response
}

fn paging(query: &BTreeMap<String, String>) -> Result<(usize, usize), FieldError> {
    let number = |name: &'static str, default: usize, max: usize| match query.get(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                FieldError::new(
                    name,
                    format!("{name} must be a whole number from 1 to {max}"),
                )
            }),
    };
    Ok((
        number("page", 1, 1_000_000)?,
        number("per_page", PER_PAGE, MAX_PER_PAGE)?,
    ))
}

/// The dashboard's offers table body, for a page or a resync.
pub async fn regions(store: &SharedStore) -> StoreResult<Vec<Region>> {
    let (newest, _) = call(store, |s| s.offers_page(0, SHOWN)).await?;
    Ok(vec![Region {
        id: BODY_REGION,
        html: OfferRows::new(&newest).html(),
    }])
}
