//! Durable state behind traits, one per feature, so the features never see SQL.
//!
//! Two back ends implement every trait: the embedded SQLite file (the default, one instance) and
//! PostgreSQL (`HERALD_DATABASE_URL`, any number of instances sharing it). The traits are
//! synchronous: [`call`] moves every call onto tokio's blocking pool so request handlers never
//! stall the runtime, and on PostgreSQL each call is one transaction, so a feature's several
//! writes are stored together or not at all.

pub mod postgres;
mod sqlite;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use tracing::Dispatch;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::board::BoardStore;
use crate::hub::Publish;
use crate::import::ImportStore;
use crate::jobs::JobStore;
use crate::notify::NotifyStore;
use crate::offers::OffersStore;
use crate::web::session::SessionStore;

/// Everything Herald persists. A `&dyn Store` is the SQLite store itself, or one PostgreSQL
/// transaction.
pub trait Store:
    SessionStore + BoardStore + NotifyStore + OffersStore + JobStore + ImportStore + ListStore
{
}

impl<T: SessionStore + BoardStore + NotifyStore + OffersStore + JobStore + ImportStore + ListStore>
    Store for T
{
}

/// A live list's message is worked out from the list a change reads (the difference
/// `hub::list_changes` finds, the row an offer pushes out of the table or pulls into it), so
/// that must be the list the previous message left on pages: no other change to the list may
/// come in between, and none may alter an entry the message renders.
pub trait ListStore {
    /// Holds the list of region `region` until the change commits; every change to the list
    /// calls it before it reads or writes the list.
    fn hold_list(&self, region: &str) -> StoreResult<()>;
}

/// The store the app was started with.
pub enum Backend {
    Sqlite(SqliteStore),
    Postgres(Box<PgStore>),
}

pub type SharedStore = Arc<Backend>;

impl Backend {
    /// Runs `f` with the store, blocking: on PostgreSQL in one transaction, committed when `f`
    /// returns `Ok`.
    pub fn run<T, E>(&self, f: impl FnOnce(&dyn Store) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        match self {
            Backend::Sqlite(store) => f(store),
            Backend::Postgres(store) => store.run(f),
        }
    }

    /// Makes a change on the shared store: `write` and the event log entries of what it
    /// announces in one transaction; the number of its last entry. Only PostgreSQL has a shared
    /// log (SQLite publishes through the hub, `crate::change`).
    pub fn change<T, E>(
        &self,
        write: impl FnOnce(&dyn Store) -> Result<(T, Publish), E>,
    ) -> Result<(T, Option<u64>), E>
    where
        E: From<StoreError>,
    {
        match self {
            Backend::Sqlite(_) => Err(StoreError::new("SQLite keeps no event log").into()),
            Backend::Postgres(store) => store.change(write),
        }
    }

    /// Runs `f` on one consistent view of the state, with the event log's position it is at when
    /// the store has a shared log (PostgreSQL); SQLite answers `None`: there the hub's change
    /// lock makes a view consistent.
    pub fn snapshot<T>(&self, f: impl FnOnce(&dyn Store) -> T) -> StoreResult<(T, Option<u64>)> {
        match self {
            Backend::Sqlite(store) => Ok((f(store), None)),
            Backend::Postgres(store) => store.snapshot(f).map(|(value, at)| (value, Some(at))),
        }
    }

    /// What the store is, for the log: the SQLite file, or PostgreSQL's host and database
    /// (never the URL, which may hold a password).
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(store) => store.path().display().to_string(),
            Backend::Postgres(store) => store.target().to_string(),
        }
    }

    /// Whether several instances share this store (and its event log).
    pub fn is_shared(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }
}

#[derive(Debug)]
pub struct StoreError {
    message: String,
    unavailable: bool,
}

impl StoreError {
    pub fn new(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
            unavailable: false,
        }
    }

    /// The database cannot be reached: nothing was stored, and trying again later may work.
    pub fn unavailable(message: impl Into<String>) -> StoreError {
        StoreError {
            message: message.into(),
            unavailable: true,
        }
    }

    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage error: {}", self.message)
    }
}

impl std::error::Error for StoreError {}

pub type StoreResult<T> = Result<T, StoreError>;

/// Runs a store call on the blocking pool, in the caller's tracing span and subscriber, so what
/// the call logs is told apart by the request that made it; its latency goes to the metrics.
pub async fn call<T, E, F>(store: &SharedStore, f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, E> + Send + 'static,
{
    let store = store.clone();
    let started = Instant::now();
    let result = blocking(move || store.run(f)).await;
    crate::metrics::store_call(started.elapsed());
    result
}

/// Runs `f` on the blocking pool in the caller's span and subscriber.
pub async fn blocking<T, E, F>(f: F) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
    tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || span.in_scope(f))
    })
    .await
    .map_err(|e| StoreError::new(format!("store task failed: {e}")))?
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
        let store: SharedStore = Arc::new(Backend::Sqlite(
            SqliteStore::open(&dir.path().join("t.db")).unwrap(),
        ));
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
