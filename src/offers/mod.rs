//! Live offers board (from the offers SSE demo): durable offers created, replaced and deleted
//! through a JSON API or the page's form, with every open dashboard's table following live.
//!
//! The dashboard shows the newest [`SHOWN`] offers in the `offers-body` region. Every live
//! message keeps that region equal to what [`regions`] renders: a create prepends its row and
//! deletes the row it pushes out of the window; an update replaces its row (a no-op on pages that
//! do not show it); a delete removes its row and appends the one that moves up into the window.
//! Rows differ from a resync only by the one-shot `offer-fresh` highlight class. Every change
//! holds the table (`store::ListStore`), so on PostgreSQL no two work out those rows from the
//! same table.
//!
//! Each change is also the `offer.created`, `offer.updated` or `offer.deleted` event on the
//! `offers` topic of `GET /api/stream`, with the offer as the JSON API answers it.

pub mod input;
pub mod money;
mod routes;
mod views;

use serde::Serialize;

use crate::store::StoreResult;
use crate::web::id::Named;
use money::Money;
pub use routes::{create, delete, list, update};
pub use views::{Listing, OfferForm, OfferRow, OfferRows, OffersPage, json_state, regions};

pub const BODY_REGION: &str = "offers-body";
/// The offers' topic on `GET /api/stream`.
pub const TOPIC: &str = "offers";
/// How many offers the dashboard shows; `GET /offers` pages through the rest.
pub const SHOWN: usize = 20;

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

impl Named for Offer {
    const NAME: &'static str = "offer";
}

/// What a create or update asks for, every field checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferInput {
    /// The client's id, or `None` for the next free one.
    pub id: Option<i64>,
    pub description: String,
    pub value: Money,
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
    /// Stores `new` at `at` (Unix milliseconds); `window` is how many newest offers are shown.
    fn create_offer(&self, new: &OfferInput, at: i64, window: usize) -> StoreResult<Created>;
    /// Replaces offer `id` (the input's own id is not used).
    fn update_offer(&self, id: i64, with: &OfferInput, at: i64) -> StoreResult<Option<Offer>>;
    fn delete_offer(&self, id: i64, window: usize) -> StoreResult<Option<Deleted>>;
    /// Newest first, and how many there are in all.
    fn offers_page(&self, offset: usize, limit: usize) -> StoreResult<(Vec<Offer>, u64)>;
}
