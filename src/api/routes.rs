//! `GET /api/stream`: the typed JSON events of the chosen topics, resumable.

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::input;
use crate::AppState;
use crate::web::sse;

#[derive(Deserialize)]
pub struct StreamQuery {
    topics: Option<String>,
    cursor: Option<String>,
}

/// `GET /api/stream?topics=offers,notifications,board,jobs&cursor=…`: `Last-Event-ID` (a
/// reconnect) wins over `?cursor=`; without either the stream starts with a resync.
pub async fn stream(
    State(state): State<AppState>,
    Query(query): Query<StreamQuery>,
    headers: HeaderMap,
) -> Response {
    let topics = match input::topics(query.topics.as_deref()) {
        Ok(topics) => topics,
        Err(e) => return e.into_response(),
    };
    let requested = sse::resume_from(&headers, query.cursor);
    let live = state
        .hub
        .json_stream(topics, requested.as_deref(), state.json.clone());
    sse::response(futures_util::stream::unfold(live, |mut live| async move {
        let chunk = live.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), live))
    }))
}
