//! The one way a feature changes state: write to the store, then publish what the change
//! announces, under the hub's change lock (see `crate::hub`).
//!
//! A feature hands [`AppState::change`] a closure that makes its store writes and renders its
//! messages ([`Publish`]), returning both. The closure runs on the blocking pool with the store;
//! its messages are published once it returns `Ok` (and none when it fails), so a message never
//! announces what was not stored, and tabs receive changes in the order they were stored.
//!
//! The closure is synchronous and returns its messages instead of publishing them, so a store
//! with transactions runs it in one transaction and keeps the messages with the change: on
//! PostgreSQL the messages go into the event log in that transaction (the outbox,
//! `store::postgres::outbox`; changes made at the same time share a transaction, see
//! `store::postgres::commit`), and every instance's follower publishes them from there, this
//! one's woken at once. The change answers once this instance has applied its messages, so a
//! reload here shows what it did.

use std::time::Duration;

use tracing::Instrument;

use crate::AppState;
use crate::hub::{Hub, Publish};
use crate::store::{self, Backend, SharedStore, Store, StoreError};

/// How long a change waits for this instance to apply its messages before it answers anyway
/// (they are stored; the follower delivers them when it can).
const APPLIED_LIMIT: Duration = Duration::from_secs(2);

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
    let change = async move {
        let Backend::Postgres(pg) = &*store else {
            return hub.commit(|| store::call(&store, write)).await;
        };
        let counted = move |s: &dyn Store| {
            write(s).map(|(value, publish)| ((value, publish.count()), publish))
        };
        let ((value, published), last) = pg.commits().submit(counted).await?;
        hub.published(published);
        if let Some(seq) = last {
            hub.applied(seq, APPLIED_LIMIT).await;
        }
        Ok(value)
    };
    tokio::spawn(change.in_current_span())
        .await
        .map_err(|e| StoreError::new(format!("change task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;
    use crate::hub::{ClientId, NoRegions, Scope, test_hub};
    use crate::store::SqliteStore;

    async fn published(hub: &Hub) -> u64 {
        let tab = ClientId(Uuid::new_v4());
        hub.snapshot(tab, Scope::ALL, &NoRegions)
            .await
            .cursor
            .broadcast
    }

    #[tokio::test]
    async fn a_change_is_published_even_when_its_caller_goes_away() {
        let dir = tempfile::tempdir().unwrap();
        let store: SharedStore = Arc::new(store::Backend::Sqlite(
            SqliteStore::open(&dir.path().join("t.db")).unwrap(),
        ));
        let hub = test_hub();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let change = apply(&store, &hub, move |_| {
            wait.recv().unwrap();
            Ok::<_, StoreError>(((), Publish::everyone("<p>stored</p>".into())))
        });
        // The caller gives up while the write is under way (a client that disconnected).
        let gave_up = tokio::time::timeout(Duration::from_millis(50), change).await;
        assert!(gave_up.is_err());
        go.send(()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while published(&hub).await == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never published");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let failed = apply(&store, &hub, |_| {
            Err::<((), Publish), _>(StoreError::new("refused"))
        });
        assert!(failed.await.is_err());
        assert_eq!(
            published(&hub).await,
            1,
            "a failed change publishes nothing"
        );
    }
}
