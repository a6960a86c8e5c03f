//! The offers' endpoints: the JSON API (create, replace, delete, list) and the page's form.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::input::{JsonBody, Typed};
use super::views::{self, Listing, OfferForm, OffersPage};
use super::{BODY_REGION, Created, Deleted, Offer, OfferInput, SHOWN};
use crate::hub::Publish;
use crate::store::call;
use crate::web::assets;
use crate::web::error::{ApiError, FieldError};
use crate::web::id::{self, Id, Named};
use crate::web::input::Input;
use crate::web::negotiate::Wants;
use crate::web::paging::Paging;
use crate::{AppState, clock};

/// `POST /offers`: JSON `{"id"?, "description", "value"}` → 201 with the stored offer, or the
/// page's form → the form again.
pub async fn create(State(state): State<AppState>, input: Input<JsonBody, Typed>) -> Response {
    let max = state.config.limits.description_chars;
    match input {
        Input::Json(body) => match add(&state, body.validate(max)).await {
            Ok(Created::New { offer, .. }) => (StatusCode::CREATED, Json(offer)).into_response(),
            Ok(Created::Duplicate(existing)) => duplicate(existing),
            Err(e) => e.into_response(),
        },
        Input::Form(typed) => match add(&state, typed.validate(max)).await {
            Ok(Created::New { offer, .. }) => {
                (StatusCode::CREATED, OfferForm::added(max, offer.id)).into_response()
            }
            Ok(Created::Duplicate(existing)) => {
                let taken = ApiError::new(StatusCode::CONFLICT, taken(&existing));
                (taken.status, OfferForm::failed(max, &typed, taken)).into_response()
            }
            Err(e) => (e.status, OfferForm::failed(max, &typed, e)).into_response(),
        },
    }
}

fn taken(existing: &Offer) -> String {
    format!("an offer with id {} exists already", existing.id)
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
        error: taken(&existing),
        field: "id",
        offer: existing,
    };
    (StatusCode::CONFLICT, Json(body)).into_response()
}

async fn add(state: &AppState, input: Result<OfferInput, FieldError>) -> Result<Created, ApiError> {
    let input = input?;
    let at = clock::now_ms();
    state
        .change(move |s| {
            s.hold_list(BODY_REGION)?;
            let created = s.create_offer(&input, at, SHOWN)?;
            let publish = match &created {
                Created::New { offer, evicted } => {
                    Publish::everyone(views::created(offer, *evicted))
                        .with_json(views::created_json(offer))
                }
                Created::Duplicate(_) => Publish::nothing(),
            };
            Ok((created, publish))
        })
        .await
}

/// `PUT /offers/{id}`: JSON `{"description", "value"}` (an `id`, if sent, must match) replaces
/// the offer → 200 with it.
pub async fn update(
    State(state): State<AppState>,
    id: Id<Offer>,
    input: Input<JsonBody, Typed>,
) -> Result<Json<Offer>, ApiError> {
    let id = id.get();
    let max = state.config.limits.description_chars;
    let input = match input {
        Input::Json(body) => body.validate(max)?,
        Input::Form(typed) => typed.validate(max)?,
    };
    if input.id.is_some_and(|given| given != id) {
        return Err(FieldError::new("id", "id in the body does not match the URL").into());
    }
    let at = clock::now_ms();
    let updated = state
        .change(move |s| {
            s.hold_list(BODY_REGION)?;
            let updated = s.update_offer(id, &input, at)?;
            let publish = updated.as_ref().map_or_else(Publish::nothing, |o| {
                Publish::everyone(views::updated(o)).with_json(views::updated_json(o))
            });
            Ok::<_, ApiError>((updated, publish))
        })
        .await?;
    updated
        .map(Json)
        .ok_or_else(|| id::missing(Offer::NAME, id))
}

/// `DELETE /offers/{id}` → 200 with the deleted offer.
pub async fn delete(State(state): State<AppState>, id: Id<Offer>) -> Result<Json<Offer>, ApiError> {
    let id = id.get();
    let deleted = state
        .change(move |s| {
            s.hold_list(BODY_REGION)?;
            let deleted = s.delete_offer(id, SHOWN)?;
            let publish = deleted.as_ref().map_or_else(Publish::nothing, |d| {
                Publish::everyone(views::deleted(&d.offer, d.backfill.as_ref()))
                    .with_json(views::deleted_json(&d.offer))
            });
            Ok::<_, ApiError>((deleted, publish))
        })
        .await?;
    let Deleted { offer, .. } = deleted.ok_or_else(|| id::missing(Offer::NAME, id))?;
    Ok(Json(offer))
}

/// `GET /offers?page=&per_page=`: newest first; an HTML page for browsers (`Accept: text/html`),
/// JSON otherwise.
pub async fn list(State(state): State<AppState>, wants: Wants, paging: Paging) -> Response {
    let listing = match call(&state.store, move |s| Listing::read(s, paging)).await {
        Ok(listing) => listing,
        Err(e) => return wants.error(ApiError::from(e)),
    };
    wants.answer(
        || {
            let page = OffersPage {
                assets: assets::prefix(),
                rows: OffersPage::rows(&listing.offers),
                page: listing.page,
                pages: listing.pages(),
                total: listing.total,
                prev: listing.prev.clone(),
                next: listing.next.clone(),
            };
            page.into_response()
        },
        || Json(&listing).into_response(),
    )
}
