//! `GET /debug/stats`: the stream write path's counters (`hub::stats`) as JSON, which
//! herald-load reads before and after publishing to report writes per message. Behind the same
//! guard as the routes that change state, so an API token keeps it private.

use axum::Json;

use crate::hub::stats::{Counts, STATS};

pub async fn show() -> Json<Counts> {
    Json(STATS.counts())
}
