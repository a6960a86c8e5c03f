//! Durable state behind traits, one per feature, so the features never see SQL or Redis.
//!
//! The traits are synchronous: the embedded SQLite store is, and [`call`] moves every call onto
//! tokio's blocking pool so request handlers never stall the runtime.

mod sqlite;

use std::fmt;
use std::sync::Arc;

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

/// Runs a store call on the blocking pool.
pub async fn call<T, F>(store: &SharedStore, f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> StoreResult<T> + Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&*store))
        .await
        .map_err(|e| StoreError(format!("store task failed: {e}")))?
}
