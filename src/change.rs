//! The one way a feature changes state: write to the store, then publish what the change
//! announces, under the hub's change lock (see `crate::hub`).
//!
//! A feature hands [`AppState::change`] a closure that makes its store writes and renders its
//! messages ([`Publish`]), returning both. The closure runs on the blocking pool with the store;
//! its messages are published once it returns `Ok` (and none when it fails), so a message never
//! announces what was not stored, and tabs receive changes in the order they were stored.
//!
//! The closure is synchronous and returns its messages instead of publishing them, so a store
//! with transactions can run it in one transaction and keep the messages with the change (an
//! outbox) before anything is published.

use tracing::Instrument;

use crate::AppState;
use crate::hub::{Hub, Publish};
use crate::store::{self, SharedStore, Store, StoreError};

impl AppState {
    /// Makes a change: `write` stores it and says what it announces; see the module docs.
    pub async fn change<T, E, W>(&self, write: W) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        W: FnOnce(&dyn Store) -> Result<(T, Publish), E> + Send + 'static,
    {
        apply(&self.store, &self.hub, write).await
    }
}

/// [`AppState::change`] for parts that hold the store and the hub but no state (the job runner).
///
/// A change that has begun is finished and published even if its caller goes away (a client
/// that disconnects mid-request drops the handler), so no stored change goes unannounced.
pub async fn apply<T, E, W>(store: &SharedStore, hub: &Hub, write: W) -> Result<T, E>
where
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
    W: FnOnce(&dyn Store) -> Result<(T, Publish), E> + Send + 'static,
{
    let (store, hub) = (store.clone(), hub.clone());
    let change = async move { hub.commit(|| store::call(&store, write)).await };
    tokio::spawn(change.in_current_span())
        .await
        .map_err(|e| StoreError(format!("change task failed: {e}")))?
}
