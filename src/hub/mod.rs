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
//!
//! With a shared log ([`Hub::shared`], PostgreSQL) the database keeps that rule instead: changes
//! number their messages in commit order, every instance applies them here in that order
//! ([`Hub::apply`]), a snapshot reads the state and the log position in one database snapshot
//! ([`Regions::positioned`]), and a cursor the logs here no longer cover is replayed from the
//! database ([`Archive`]) before it is resynced. Cursors then hold the database's identity and
//! the log's numbers, so they resume on any instance and across restarts.

mod counters;
mod cursor;
mod fanout;
pub mod frame;
mod json;
mod json_stream;
mod list;
mod log;
mod pack;
mod partial;
pub mod periodic;
mod publish;
pub mod stats;
mod stream;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use tokio::sync::{Mutex as AsyncMutex, MutexGuard as AsyncMutexGuard, watch};
use uuid::Uuid;

pub use counters::Counts;
pub use cursor::Cursor;
pub use fanout::Sink;
pub use json::{JsonEvent, JsonState};
pub use json_stream::JsonStream;
pub use list::{Listed, list_changes, list_html, list_ids};
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
    /// On a shared log: the regions in `scope` and the log position that state is at, read
    /// together. Only a hub made with [`Hub::shared`] asks.
    fn positioned(&self, client: ClientId, scope: Scope) -> BoxFuture<'static, Positioned> {
        let _ = (client, scope);
        Box::pin(async { Positioned::default() })
    }
}

/// Regions read at a position of the shared log.
#[derive(Default)]
pub struct Positioned {
    /// `None` when the state could not be read (the regions say so): the position applied here
    /// stands in.
    pub at: Option<u64>,
    pub broadcast: Vec<Region>,
    pub private: Vec<Region>,
}

/// The shared log's durable copy (PostgreSQL's events table), for cursors older than what the
/// hub holds in memory.
pub trait Archive: Send + Sync + 'static {
    /// The messages for `audience` numbered in `(after, upto]`, oldest first, at most `max`, as
    /// log entries (both renderings: page and JSON streams replay from it); `None` when the
    /// archive no longer reaches back to `after` (or cannot be read).
    fn replay(
        &self,
        audience: Audience,
        after: u64,
        upto: u64,
        max: usize,
    ) -> BoxFuture<'static, Option<Vec<(u64, Entry)>>>;
    /// Resolves once what the database held when called has been applied here, or after a
    /// bounded wait.
    fn catch_up(&self) -> BoxFuture<'static, ()>;
}

/// What a hub on a shared log starts from.
pub struct SharedLog {
    /// The database's identity: the epoch of every cursor.
    pub epoch: u64,
    /// The log position this instance starts applying after.
    pub position: u64,
    pub archive: Arc<dyn Archive>,
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
    /// Numbers private messages; on a shared log, how far that log has been applied here.
    private_seq: Arc<AtomicU64>,
    /// The shared log's durable copy, when the hub follows one.
    archive: Option<Arc<dyn Archive>>,
    /// The shared log's position applied here, for those waiting on it.
    applied: watch::Sender<u64>,
    /// Tab streams open here.
    streams: AtomicUsize,
    gate: AsyncMutex<()>,
    /// The broadcast regions at a broadcast head: state only changes with a publish, so while
    /// the head stands still every snapshot can reuse one rendering.
    broadcast_cache: Mutex<Option<(u64, Arc<Vec<Region>>)>>,
    beat: Box<dyn Fn() -> String + Send + Sync>,
    heartbeat: watch::Sender<Bytes>,
    closing: watch::Sender<bool>,
    fanout: fanout::Fanout,
    counters: counters::Counters,
}

struct ClientLog {
    log: Arc<Log>,
    last_used: Instant,
}

impl Hub {
    /// A hub of one process: it numbers what it publishes itself, and its cursors hold an
    /// epoch of its own. `beat` renders the data of each heartbeat message (and of a stream's
    /// first message).
    pub fn new(config: HubConfig, beat: impl Fn() -> String + Send + Sync + 'static) -> Hub {
        Hub::build(config, Box::new(beat), None)
    }

    /// A hub that follows a shared log: messages come in through [`Hub::apply`], numbered by
    /// that log, and cursors hold the log's epoch (see the module docs).
    pub fn shared(
        config: HubConfig,
        beat: impl Fn() -> String + Send + Sync + 'static,
        log: SharedLog,
    ) -> Hub {
        Hub::build(config, Box::new(beat), Some(log))
    }

    fn build(
        config: HubConfig,
        beat: Box<dyn Fn() -> String + Send + Sync>,
        shared: Option<SharedLog>,
    ) -> Hub {
        let (epoch, position, archive) = match shared {
            Some(log) => (log.epoch, log.position, Some(log.archive)),
            None => (rand_epoch(), 0, None),
        };
        let private_seq = Arc::new(AtomicU64::new(position));
        let sequence = match archive {
            Some(_) => Sequence::Global(private_seq.clone()),
            None => Sequence::Own,
        };
        let inner = Arc::new(Inner {
            epoch,
            broadcast: Log::packed(sequence, config.history),
            clients: Mutex::new(HashMap::new()),
            private_seq,
            archive,
            applied: watch::Sender::new(position),
            streams: AtomicUsize::new(0),
            gate: AsyncMutex::new(()),
            broadcast_cache: Mutex::new(None),
            heartbeat: watch::Sender::new(Bytes::new()),
            closing: watch::Sender::new(false),
            beat,
            fanout: fanout::Fanout::new(),
            counters: counters::Counters::default(),
            config,
        });
        tokio::spawn(heartbeat(Arc::downgrade(&inner)));
        fanout::start(&inner);
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
        if self.inner.archive.is_some() {
            return self.positioned_snapshot(client, scope, regions).await;
        }
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

    /// A snapshot on the shared log: the database gives state and position together. The
    /// broadcast regions are reused while nothing newer has been applied here, so a burst of
    /// page loads reads them once.
    async fn positioned_snapshot(
        &self,
        client: ClientId,
        scope: Scope,
        regions: &dyn Regions,
    ) -> Snapshot {
        let applied = self.position();
        let cached = match &*self.inner.broadcast_cache.lock().expect("cache lock") {
            Some((at, cached)) if scope.broadcast && *at >= applied => Some((*at, cached.clone())),
            _ => None,
        };
        let wanted = Scope {
            broadcast: scope.broadcast && cached.is_none(),
            private: scope.private,
        };
        let read = if wanted == Scope::default() {
            Positioned::default()
        } else {
            regions.positioned(client, wanted).await
        };
        let at = read.at.unwrap_or(applied);
        let (broadcast_at, broadcast) = match cached {
            Some(cached) => cached,
            None if scope.broadcast => {
                let fresh = Arc::new(read.broadcast);
                if read.at.is_some() {
                    *self.inner.broadcast_cache.lock().expect("cache lock") =
                        Some((at, fresh.clone()));
                }
                (at, fresh)
            }
            None => (at, Arc::new(Vec::new())),
        };
        Snapshot {
            cursor: Cursor {
                epoch: self.inner.epoch,
                broadcast: broadcast_at,
                private: at,
            },
            broadcast,
            private: read.private,
        }
    }

    /// How far the shared log has been applied here (0 for a hub of one process).
    pub fn position(&self) -> u64 {
        *self.inner.applied.borrow()
    }

    /// Whether a cursor at `position` can resume here. On a shared log a cursor from an
    /// instance further along waits until this one has caught up; one still ahead after that
    /// never came from this log. A hub of one process checks its cursors as it reads them.
    async fn resumes_at(&self, position: u64) -> bool {
        let Some(archive) = &self.inner.archive else {
            return true;
        };
        if position > self.position() {
            archive.catch_up().await;
        }
        position <= self.position()
    }

    /// Applies messages of the shared log, numbered in its order, and moves the position to
    /// `upto`. A private message goes only to a tab whose log is held here: one made later
    /// starts after `upto` (under the same lock), and the archive has the rest.
    pub fn apply(&self, messages: Vec<(u64, Outgoing)>, upto: u64) {
        let clients = self.inner.clients.lock().expect("clients lock");
        self.inner.counters.applied(messages.len());
        for (seq, message) in messages {
            let entry = Entry::new(&message.html, message.json);
            match message.audience {
                Audience::Everyone => self.inner.broadcast.append_at(seq, entry),
                Audience::Client(client) => {
                    if let Some(held) = clients.get(&client) {
                        held.log.append_at(seq, entry);
                    }
                }
            }
        }
        self.inner.private_seq.fetch_max(upto, Ordering::Relaxed);
        drop(clients);
        self.inner.applied.send_if_modified(|at| {
            let moved = upto > *at;
            *at = (*at).max(upto);
            moved
        });
    }

    /// Waits until the shared log has been applied up to `seq` here, at most `limit`: a change
    /// answers once this instance's tabs have it, so a reload shows what the writer just did.
    pub async fn applied(&self, seq: u64, limit: Duration) {
        let mut rx = self.inner.applied.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|at| *at >= seq)).await;
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
        let counter = self.inner.private_seq.clone();
        let sequence = match self.inner.archive {
            Some(_) => Sequence::Global(counter),
            None => Sequence::Shared(counter),
        };
        let entry = clients.entry(client).or_insert_with(|| ClientLog {
            log: Arc::new(Log::new(sequence, self.inner.config.client_history)),
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

    /// What the hub has done since it started (for metrics).
    pub fn counters(&self) -> Counts {
        self.inner.counters.counts()
    }

    /// A change here stored `messages` in the shared log: published by this instance (every
    /// instance's follower applies them).
    pub fn published(&self, messages: usize) {
        self.inner.counters.published(messages);
    }

    /// Sends every stream a heartbeat now, out of turn: what it shows has changed (presence).
    pub fn beat_now(&self) {
        beat(&self.inner);
    }

    /// How many tab streams are open here.
    pub fn open_streams(&self) -> usize {
        self.inner.streams.load(Ordering::Relaxed)
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
        self.hub.inner.counters.published(1);
        self.hub.inner.counters.applied(1);
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
        beat(&inner);
        sweep_idle_clients(&inner);
        inner.fanout.shrink();
    }
}

/// Renders a heartbeat and hands it to every stream.
fn beat(inner: &Inner) {
    let data = frame::data_lines(&(inner.beat)());
    let mut beat = BytesMut::with_capacity(data.len() + 12);
    beat.put_slice(b": heartbeat\n");
    beat.put_slice(&data);
    inner.heartbeat.send_replace(beat.freeze());
}

/// Drops private logs that no stream has used for `client_idle`, so memory follows the tabs
/// that are open rather than every tab that ever was.
fn sweep_idle_clients(inner: &Inner) {
    let idle = inner.config.client_idle;
    let mut clients = inner.clients.lock().expect("clients lock");
    clients.retain(|_, c| Arc::strong_count(&c.log) > 1 || c.last_used.elapsed() < idle);
    // A map keeps its capacity when emptied: give it back after a wave of tabs has gone (at
    // half empty, not a quarter: 9,000 tabs left of 18,000 kept 0.7 MB more than they need).
    if clients.capacity() > 64 && clients.len() * 2 < clients.capacity() {
        clients.shrink_to_fit();
    }
}

fn rand_epoch() -> u64 {
    let (hi, lo) = Uuid::new_v4().as_u64_pair();
    (hi ^ lo) & 0xffff_ffff_ffff
}

/// A hub with short histories and no heartbeat to speak of, for tests outside the hub that
/// need one.
#[cfg(test)]
pub(crate) fn test_hub() -> Hub {
    let limits = Limits {
        messages: 8,
        bytes: 1 << 16,
    };
    let config = HubConfig {
        history: limits,
        client_history: limits,
        heartbeat: Duration::from_secs(3600),
        retry: Duration::from_secs(1),
        client_idle: Duration::from_secs(3600),
    };
    Hub::new(config, String::new)
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
