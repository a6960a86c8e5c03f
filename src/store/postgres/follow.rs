//! Each instance's follower of the event log: it applies new events to the hub in log order,
//! woken by `LISTEN`/`NOTIFY`, by a change made here, or by a slow poll (the safety net for a
//! notification lost with its connection). The hub's [`Archive`] reads the same table for
//! cursors older than what the hub holds.
//!
//! The follower has its own connection (tokio-postgres, so listening blocks no thread). When it
//! is lost (a restart of the database, `pg_terminate_backend`) the follower reconnects with a
//! growing pause and reads on from the last number it applied: nothing is lost or applied twice.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::{Notify, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use super::outbox::{CHANNEL, json_event};
use crate::clock;
use crate::config::EventLog;
use crate::hub::{Archive, Audience, ClientId, Entry, Hub, Outgoing};
use crate::store::{Backend, SharedStore, StoreError, blocking};

/// How the follower's connection shows in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "herald-follower";
/// How often the follower reads without being woken.
const POLL: Duration = Duration::from_secs(1);
/// Events applied per read at most; the next read follows at once.
const BATCH: i64 = 1000;
/// How long a catch-up waits for the follower at most.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(3);
/// How often old events are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// What the follower and the rest of the instance share.
#[derive(Default)]
pub struct Signals {
    /// Wakes the follower (a change committed here).
    poke: Notify,
    /// Counts the follower's reads that reached the end of the log.
    rounds: watch::Sender<u64>,
}

impl Signals {
    pub fn poke(&self) {
        self.poke.notify_one();
    }
}

/// Starts the follower of `store`'s event log into `hub`; it ends when the hub closes.
pub fn start(store: SharedStore, hub: Hub, log: EventLog) {
    tokio::spawn(follow(store, hub, log));
}

async fn follow(store: SharedStore, hub: Hub, log: EventLog) {
    let Backend::Postgres(pg) = &*store else {
        return;
    };
    let mut closing = hub.closing();
    let mut pause = Duration::from_millis(100);
    let mut pruned = (tokio::time::Instant::now(), hub.position());
    loop {
        let session = async {
            let mut config = pg.async_config().clone();
            config.application_name(APPLICATION_NAME);
            let (client, mut connection) = config.connect(NoTls).await?;
            let wake = Arc::new(Notify::new());
            let woken = wake.clone();
            // The connection is driven here; each notification wakes the reader.
            let driver = tokio::spawn(async move {
                let mut messages = futures_util::stream::poll_fn(|cx| connection.poll_message(cx));
                while let Some(Ok(message)) = messages.next().await {
                    if let AsyncMessage::Notification(_) = message {
                        woken.notify_one();
                    }
                }
                woken.notify_one();
            });
            client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
            pg.health().up();
            pause = Duration::from_millis(100);
            let read = client
                .prepare(
                    "SELECT seq, audience, html, topic, event, json FROM events WHERE seq > $1
                     ORDER BY seq LIMIT $2",
                )
                .await?;
            loop {
                let rows = client
                    .query(&read, &[&(hub.position() as i64), &BATCH])
                    .await?;
                let full = rows.len() as i64 == BATCH;
                if let Some(last) = rows.last() {
                    let upto = last.get::<_, i64>(0) as u64;
                    let messages = rows.iter().map(message).collect();
                    hub.apply(messages, upto);
                }
                if full {
                    continue;
                }
                pg.signals().rounds.send_modify(|n| *n += 1);
                if driver.is_finished() {
                    return Err(StoreError::unavailable("the listening connection closed").into());
                }
                // Every minute, or sooner when a quarter of what is kept has been added.
                let (at, from) = pruned;
                if at.elapsed() >= PRUNE_EVERY || hub.position() - from >= log.messages.div_ceil(4)
                {
                    pruned = (tokio::time::Instant::now(), hub.position());
                    prune(&store, log).await;
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = pg.signals().poke.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = closing.wait_for(|closed| *closed) => return Ok(()),
                }
            }
        };
        let outcome: Result<(), StoreError> = session.await.map_err(|e| match e {
            FollowError::Db(e) => pg.target().error(e),
            FollowError::Store(e) => e,
        });
        match outcome {
            Ok(()) => return,
            Err(e) => pg.health().down(&e),
        }
        // A change made here (the database answers again) cuts the pause short.
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = pg.signals().poke.notified() => {}
            _ = closing.wait_for(|closed| *closed) => return,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// An event row as the message it stores (read by `follow`'s query).
fn message(row: &tokio_postgres::Row) -> (u64, Outgoing) {
    let audience = match row.get::<_, Option<uuid::Uuid>>(1) {
        None => Audience::Everyone,
        Some(id) => Audience::Client(ClientId(id)),
    };
    let message = Outgoing {
        audience,
        html: row.get::<_, Option<String>>(2).unwrap_or_default(),
        json: json_event(row.get(3), row.get(4), row.get(5)),
    };
    (row.get::<_, i64>(0) as u64, message)
}

async fn prune(store: &SharedStore, log: EventLog) {
    let before = clock::now_ms() - log.age.as_millis() as i64;
    let store = store.clone();
    let pruned = blocking(move || {
        let Backend::Postgres(pg) = &*store else {
            return Ok(0);
        };
        pg.transaction(|tx| tx.prune_events(log.messages, before))
    })
    .await;
    match pruned {
        Ok(0) => {}
        Ok(n) => tracing::debug!(events = n, "pruned the event log"),
        Err(e) => tracing::debug!(error = %e, "could not prune the event log"),
    }
}

enum FollowError {
    Db(tokio_postgres::Error),
    Store(StoreError),
}

impl From<tokio_postgres::Error> for FollowError {
    fn from(e: tokio_postgres::Error) -> Self {
        FollowError::Db(e)
    }
}

impl From<StoreError> for FollowError {
    fn from(e: StoreError) -> Self {
        FollowError::Store(e)
    }
}

/// The events table, as the hub's archive.
pub struct EventArchive {
    store: SharedStore,
}

impl EventArchive {
    pub fn new(store: SharedStore) -> Arc<EventArchive> {
        Arc::new(EventArchive { store })
    }
}

impl Archive for EventArchive {
    fn replay(
        &self,
        audience: Audience,
        after: u64,
        upto: u64,
        max: usize,
    ) -> BoxFuture<'static, Option<Vec<(u64, Entry)>>> {
        let store = self.store.clone();
        Box::pin(async move {
            let read = blocking(move || {
                let Backend::Postgres(pg) = &*store else {
                    return Ok(None);
                };
                pg.transaction(|tx| tx.events_for(audience, after, upto, max))
            })
            .await;
            read.unwrap_or_else(|e: StoreError| {
                tracing::debug!(error = %e, "cannot replay from the event log");
                None
            })
        })
    }

    /// Waits for a read of the follower that began after this call.
    fn catch_up(&self) -> BoxFuture<'static, ()> {
        let store = self.store.clone();
        Box::pin(async move {
            let Backend::Postgres(pg) = &*store else {
                return;
            };
            let mut rounds = pg.signals().rounds.subscribe();
            let now = *rounds.borrow_and_update();
            pg.signals().poke();
            let _ = tokio::time::timeout(CATCH_UP_LIMIT, rounds.wait_for(|n| *n >= now + 2)).await;
        })
    }
}
