//! What a JSON resync holds: each requested topic's current state, as the REST API shows it.

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use crate::hub::JsonState;
use crate::store::{SharedStore, StoreResult};
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
        Box::pin(async move {
            let mut state = Map::new();
            for topic in topics {
                match read(&store, &topic).await {
                    Ok(value) => state.insert(topic, value),
                    Err(e) => {
                        tracing::error!(error = %e, topic, "cannot render a JSON resync");
                        return None;
                    }
                };
            }
            Some(Value::Object(state).to_string())
        })
    }
}

async fn read(store: &SharedStore, topic: &str) -> StoreResult<Value> {
    match topic {
        offers::TOPIC => offers::json_state(store).await,
        notify::TOPIC => notify::json_state(store).await,
        board::TOPIC => board::json_state(store).await,
        jobs::TOPIC => jobs::json_state(store).await,
        // Topics are checked when a stream opens (`input.rs`).
        _ => Ok(Value::Null),
    }
}
