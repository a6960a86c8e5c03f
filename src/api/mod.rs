//! The JSON event stream (`GET /api/stream`): every change to offers, notifications, the board
//! and jobs as a typed JSON event, for front ends that are not Herald's page (another origin's
//! web app, a mobile app, a script), with the page stream's guarantees: each event carries a
//! cursor, a reconnect replays exactly what was missed, and a client too far behind gets the
//! current state of its topics (`event: resync`) before it goes live.
//!
//! Each feature renders its events (`<feature>/views.rs`, beside its live HTML) and publishes
//! them with its page message, in one log entry (`hub::JsonEvent`), so a tab and an API client
//! never disagree about order. This module reads which topics a client wants and what a resync
//! holds; the hub serves the stream (`hub::JsonStream`).

mod input;
mod routes;
mod views;

use crate::{board, jobs, notify, offers};
pub use routes::stream;
pub use views::JsonTopics;

/// Every topic a client may ask for, in the order the README lists them.
pub const TOPICS: [&str; 4] = [offers::TOPIC, notify::TOPIC, board::TOPIC, jobs::TOPIC];
