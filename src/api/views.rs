//! What a JSON resync holds: each requested topic's current state, as the REST API shows it.

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use crate::hub::JsonState;
use crate::store::{SharedStore, Store, StoreResult, blocking, call};
use crate::{board, jobs, notify, offers};

/// The state of every topic, read from the store: `{"offers": <GET /offers>, "notifications":
/// [recent], "board": <message or null>, "jobs": [queued and running]}`, the requested ones.
pub struct JsonTopics {
    pub store: SharedStore,
}

impl JsonState for JsonTopics {
    fn render(&self, topics: &[String]) -> BoxFuture<'static, Option<String>> {
        let store = self.store.clone();
        let topics = topics.to_vec();
        Box::pin(async move { answer(call(&store, move |s| state(s, &topics)).await) })
    }

    /// The topics' state and the event log's position it is at, in one database snapshot.
    fn positioned(&self, topics: &[String]) -> BoxFuture<'static, Option<(String, u64)>> {
        let store = self.store.clone();
        let topics = topics.to_vec();
        Box::pin(async move {
            let read = blocking(move || store.snapshot(|s| state(s, &topics))).await;
            let (state, at) = read
                .and_then(|(state, at)| Ok((state?, at.unwrap_or_default())))
                .map_or_else(|e| (Err(e), 0), |(state, at)| (Ok(state), at));
            answer(state).map(|state| (state, at))
        })
    }
}

/// A resync that cannot be read is logged, and the stream ends (its client tries again).
fn answer(state: StoreResult<String>) -> Option<String> {
    state
        .inspect_err(|e| tracing::error!(error = %e, "cannot render a JSON resync"))
        .ok()
}

/// The requested topics' state, as one JSON object.
fn state(s: &dyn Store, topics: &[String]) -> StoreResult<String> {
    let mut state = Map::new();
    for topic in topics {
        state.insert(topic.clone(), read(s, topic)?);
    }
    Ok(Value::Object(state).to_string())
}

fn read(s: &dyn Store, topic: &str) -> StoreResult<Value> {
    match topic {
        offers::TOPIC => offers::json_state(s),
        notify::TOPIC => notify::json_state(s),
        board::TOPIC => board::json_state(s),
        jobs::TOPIC => jobs::json_state(s),
        // Topics are checked when a stream opens (`input.rs`).
        _ => Ok(Value::Null),
    }
}
