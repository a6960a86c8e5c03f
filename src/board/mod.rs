//! Message board (from the raikg SSE demo): one current message, set with `GET /send` or the
//! page's form, shown live on every page and streamed as JSON by `GET /event`, and as the
//! `board.message` event on the `board` topic of `GET /api/stream`.

pub mod input;
mod routes;
mod views;

use serde::Serialize;

use crate::store::StoreResult;
pub use routes::{events, send_get, send_post};
pub use views::{BoardForm, MessageView, json_state, regions};

pub const REGION: &str = "board-message";
/// The board's topic on `GET /api/stream`.
pub const TOPIC: &str = "board";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoardMessage {
    pub message: String,
    /// Unix milliseconds.
    pub set_at: i64,
}

pub trait BoardStore {
    fn set_message(&self, message: &BoardMessage) -> StoreResult<()>;
    fn current_message(&self) -> StoreResult<Option<BoardMessage>>;
}
