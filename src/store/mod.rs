//! Durable state behind traits, one per feature, so the features never see SQL.
//!
//! The traits are synchronous: the embedded SQLite store is, and [`call`] moves every call onto
//! tokio's blocking pool so request handlers never stall the runtime.

mod sqlite;

use std::fmt;
use std::sync::Arc;

use tracing::Dispatch;

pub use sqlite::SqliteStore;

use crate::board::BoardStore;
use crate::import::ImportStore;
use crate::jobs::JobStore;
use crate::notify::NotifyStore;
use crate::offers::OffersStore;
use crate::web::session::SessionStore;

/// Everything Herald persists.
pub trait Store:
    SessionStore
    + BoardStore
    + NotifyStore
    + OffersStore
    + JobStore
    + ImportStore
    + Send
    + Sync
    + 'static
{
}

impl Store for SqliteStore {}

pub type SharedStore = Arc<dyn Store>;

#[derive(Debug)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// Runs a store call on the blocking pool, in the caller's tracing span and subscriber, so what
/// the call logs is told apart by the request that made it.
pub async fn call<T, E, F>(store: &SharedStore, f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, E> + Send + 'static,
{
    let store = store.clone();
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
    tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || span.in_scope(|| f(&*store)))
    })
    .await
    .map_err(|e| StoreError(format!("store task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tracing::Instrument;
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
    use tracing_subscriber::registry::{LookupSpan, Registry};

    use super::*;

    /// Records the name of the span each event was emitted in.
    #[derive(Clone, Default)]
    struct SpansOfEvents(Arc<Mutex<Vec<Option<String>>>>);

    impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpansOfEvents {
        fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
            let span = ctx.event_span(event).map(|s| s.name().to_string());
            self.0.lock().unwrap().push(span);
        }
    }

    #[tokio::test]
    async fn a_store_call_logs_in_the_span_of_the_request_that_made_it() {
        let seen = SpansOfEvents::default();
        let _default = tracing::subscriber::set_default(Registry::default().with(seen.clone()));
        let dir = tempfile::tempdir().unwrap();
        let store: SharedStore = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
        call(&store, |_| {
            tracing::info!("inside the store call");
            Ok::<_, StoreError>(())
        })
        .instrument(tracing::info_span!("request"))
        .await
        .unwrap();
        assert_eq!(*seen.0.lock().unwrap(), [Some("request".to_string())]);
    }
}
