//! The fan-out core: broadcast and per-client logs, cursors, replay, resync and SSE framing.
//!
//! It knows nothing of Herald's features, nor of HTTP (`web::sse` serves its streams). A change
//! publishes its rendered HTML, and its JSON event for JSON streams (`json.rs`), through
//! `Hub::commit`, once the change has succeeded ([`Publish`]); the hub frames each once, into
//! one log entry, and every stream reads the same bytes. A page, or a
//! stream whose cursor history no longer covers, gets a [`Snapshot`] of the regions the
//! application describes through [`Regions`]. A stream that has caught up can park with the
//! fan-out (`fanout.rs`), which then writes broadcasts to its socket without waking its task.
//!
//! Consistency rule: a state change and its publish happen under one lock, and so does a
//! snapshot. So a snapshot at cursor C reflects exactly the messages up to C, replay after C
//! neither repeats nor misses anything, and messages are published in the order their changes
//! were stored (two changes interleaving store and publish could otherwise leave every tab
//! showing an older state than the store). The store serialises its writes anyway, so the lock
//! costs no parallelism it had.

mod cursor;
mod fanout;
pub mod frame;
mod json;
mod json_stream;
mod log;
mod partial;
pub mod periodic;
mod publish;
pub mod stats;
mod stream;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard, watch};
use uuid::Uuid;

pub use cursor::Cursor;
pub use fanout::Sink;
pub use json::{JsonEvent, JsonState};
pub use json_stream::JsonStream;
pub use log::{Entry, Limits};
use log::{Log, Sequence};
pub use partial::{Swap, partial, push_partial};
pub use publish::{Outgoing, Publish};
pub use stream::{Due, LiveStream, Park, Parked};

/// A browser tab's identity; each has a private log beside the broadcast one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientId(pub Uuid);

impl FromStr for ClientId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(ClientId)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Everyone,
    Client(ClientId),
}

#[derive(Debug, Clone)]
pub struct HubConfig {
    pub history: Limits,
    pub client_history: Limits,
    pub heartbeat: Duration,
    /// Sent as `retry:` so browsers reconnect after this delay.
    pub retry: Duration,
    /// How long a client's private log outlives its last stream.
    pub client_idle: Duration,
}

/// One region of the page: an element id and its full inner HTML.
#[derive(Debug, Clone)]
pub struct Region {
    pub id: &'static str,
    pub html: String,
}

/// The application's view of its regions, rendered from current state.
pub trait Regions: Send + Sync + 'static {
    /// Regions every tab shares.
    fn broadcast(&self) -> BoxFuture<'static, Vec<Region>>;
    /// Regions only this tab sees.
    fn private(&self, client: ClientId) -> BoxFuture<'static, Vec<Region>>;
}

/// Which logs a snapshot covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope {
    pub broadcast: bool,
    pub private: bool,
}

impl Scope {
    pub const ALL: Scope = Scope {
        broadcast: true,
        private: true,
    };
}

/// Regions rendered at a cursor: everything published after `cursor` is not in them.
pub struct Snapshot {
    pub cursor: Cursor,
    pub broadcast: Arc<Vec<Region>>,
    pub private: Vec<Region>,
}

impl Snapshot {
    pub fn region(&self, id: &str) -> &str {
        self.broadcast
            .iter()
            .chain(&self.private)
            .find(|r| r.id == id)
            .map_or("", |r| r.html.as_str())
    }
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    epoch: u64,
    config: HubConfig,
    broadcast: Log,
    clients: Mutex<HashMap<ClientId, ClientLog>>,
    private_seq: Arc<AtomicU64>,
    gate: AsyncMutex<()>,
    /// The broadcast regions at a broadcast head: state only changes with a publish, so while
    /// the head stands still every snapshot can reuse one rendering.
    broadcast_cache: Mutex<Option<(u64, Arc<Vec<Region>>)>>,
    beat: Box<dyn Fn() -> String + Send + Sync>,
    heartbeat: watch::Sender<Bytes>,
    closing: watch::Sender<bool>,
    fanout: fanout::Fanout,
}

struct ClientLog {
    log: Arc<Log>,
    last_used: Instant,
}

impl Hub {
    /// `beat` renders the data of each heartbeat message (and of a stream's first message).
    pub fn new(config: HubConfig, beat: impl Fn() -> String + Send + Sync + 'static) -> Hub {
        let inner = Arc::new(Inner {
            epoch: rand_epoch(),
            broadcast: Log::new(Sequence::Own, config.history),
            clients: Mutex::new(HashMap::new()),
            private_seq: Arc::new(AtomicU64::new(0)),
            gate: AsyncMutex::new(()),
            broadcast_cache: Mutex::new(None),
            heartbeat: watch::Sender::new(Bytes::new()),
            closing: watch::Sender::new(false),
            beat: Box::new(beat),
            fanout: fanout::Fanout::new(),
            config,
        });
        tokio::spawn(heartbeat(Arc::downgrade(&inner)));
        let parts = std::thread::available_parallelism().map_or(1, |n| n.get());
        for part in 0..parts {
            tokio::spawn(fanout::run(
                Arc::downgrade(&inner),
                inner.broadcast.watch(),
                inner.heartbeat.subscribe(),
                part,
                parts,
            ));
        }
        Hub { inner }
    }

    /// Starts a state change; its messages are published through the returned guard, which is
    /// held from the store write to the last publish. Only [`Hub::commit`] (and the hub's tests)
    /// take it, so the order cannot go wrong elsewhere.
    async fn change(&self) -> Change<'_> {
        Change {
            hub: self,
            _gate: self.inner.gate.lock().await,
        }
    }

    /// Renders the regions in `scope` and the cursor they correspond to.
    pub async fn snapshot(
        &self,
        client: ClientId,
        scope: Scope,
        regions: &dyn Regions,
    ) -> Snapshot {
        let private_log = self.client_log(client);
        let _exclusive = self.inner.gate.lock().await;
        let head = self.inner.broadcast.head();
        let broadcast = if scope.broadcast {
            self.broadcast_regions(head, regions).await
        } else {
            Arc::new(Vec::new())
        };
        let private = if scope.private {
            regions.private(client).await
        } else {
            Vec::new()
        };
        Snapshot {
            cursor: Cursor {
                epoch: self.inner.epoch,
                broadcast: head,
                private: private_log.head(),
            },
            broadcast,
            private,
        }
    }

    async fn broadcast_regions(&self, head: u64, regions: &dyn Regions) -> Arc<Vec<Region>> {
        if let Some((at, cached)) = &*self.inner.broadcast_cache.lock().expect("cache lock")
            && *at == head
        {
            return cached.clone();
        }
        let fresh = Arc::new(regions.broadcast().await);
        *self.inner.broadcast_cache.lock().expect("cache lock") = Some((head, fresh.clone()));
        fresh
    }

    /// Ends every stream cleanly, so browsers reconnect rather than report a broken response.
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves when [`Hub::close`] is called; for streams that live outside the hub.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// The private log of `client`, created on first use.
    fn client_log(&self, client: ClientId) -> Arc<Log> {
        let mut clients = self.inner.clients.lock().expect("clients lock");
        let entry = clients.entry(client).or_insert_with(|| ClientLog {
            log: Arc::new(Log::new(
                Sequence::Shared(self.inner.private_seq.clone()),
                self.inner.config.client_history,
            )),
            last_used: Instant::now(),
        });
        entry.last_used = Instant::now();
        entry.log.clone()
    }

    /// A stream of `client` has ended. A private log that never held a message goes at once
    /// when no other stream reads it: recreating it costs that tab at most a private resync,
    /// while keeping it for `client_idle` made memory follow every tab that connected in that
    /// time (herald-load --churn: ~700 bytes per connect, see BENCHMARKS.md).
    fn release(&self, client: ClientId) {
        let mut clients = self.inner.clients.lock().expect("clients lock");
        let Some(entry) = clients.get_mut(&client) else {
            return;
        };
        // The map and the ending stream hold the only references.
        if Arc::strong_count(&entry.log) <= 2 && entry.log.is_empty() {
            clients.remove(&client);
        } else {
            entry.last_used = Instant::now();
        }
    }

    /// How many private logs are held (for tests and metrics).
    pub fn client_logs(&self) -> usize {
        self.inner.clients.lock().expect("clients lock").len()
    }
}

/// A state change in progress: snapshots and other changes wait until it is dropped.
struct Change<'a> {
    hub: &'a Hub,
    _gate: AsyncMutexGuard<'a, ()>,
}

impl Change<'_> {
    /// Frames the message's renderings once and appends them to its audience's log, as one
    /// entry; returns its sequence number.
    fn append(&self, message: Outgoing) -> u64 {
        let entry = Entry::new(&message.html, message.json);
        match message.audience {
            Audience::Everyone => self.hub.inner.broadcast.append(entry),
            Audience::Client(client) => self.hub.client_log(client).append(entry),
        }
    }

    /// A message of HTML alone.
    #[cfg(test)]
    fn publish(&self, audience: Audience, html: &str) -> u64 {
        self.append(Outgoing {
            audience,
            html: html.to_string(),
            json: None,
        })
    }
}

/// One task beats for every stream: a timer per stream would cost memory and wake-ups per tab.
async fn heartbeat(hub: Weak<Inner>) {
    let period = match hub.upgrade() {
        Some(inner) => inner.config.heartbeat,
        None => return,
    };
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        ticks.tick().await;
        let Some(inner) = hub.upgrade() else { return };
        let data = frame::data_lines(&(inner.beat)());
        let mut beat = BytesMut::with_capacity(data.len() + 12);
        beat.put_slice(b": heartbeat\n");
        beat.put_slice(&data);
        inner.heartbeat.send_replace(beat.freeze());
        sweep_idle_clients(&inner);
    }
}

/// Drops private logs that no stream has used for `client_idle`, so memory follows the tabs
/// that are open rather than every tab that ever was.
fn sweep_idle_clients(inner: &Inner) {
    let idle = inner.config.client_idle;
    let mut clients = inner.clients.lock().expect("clients lock");
    clients.retain(|_, c| Arc::strong_count(&c.log) > 1 || c.last_used.elapsed() < idle);
    // A map keeps its capacity when emptied: give it back after a wave of tabs has gone.
    if clients.capacity() > 64 && clients.len() * 4 < clients.capacity() {
        clients.shrink_to_fit();
    }
}

fn rand_epoch() -> u64 {
    let (hi, lo) = Uuid::new_v4().as_u64_pair();
    (hi ^ lo) & 0xffff_ffff_ffff
}

/// Regions that are always empty, for tests that need a stream but no page.
#[cfg(test)]
pub(crate) struct NoRegions;

#[cfg(test)]
impl Regions for NoRegions {
    fn broadcast(&self) -> BoxFuture<'static, Vec<Region>> {
        Box::pin(async { Vec::new() })
    }
    fn private(&self, _: ClientId) -> BoxFuture<'static, Vec<Region>> {
        Box::pin(async { Vec::new() })
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fanout_tests;

#[cfg(test)]
mod json_tests;
