//! A stream of JSON events on chosen topics, with the page stream's guarantees: each event's
//! `id:` is a cursor; a client that comes back with it gets exactly what it missed, once and in
//! order, or, when history no longer covers it, `event: resync` with the current state of its
//! topics (the JSON twin of a page's re-render); then it follows live.
//!
//! It reads the JSON events of the broadcast log, the same entries page streams read the HTML
//! of, so both agree on order; on a shared log, a cursor older than that log reaches is
//! replayed from the archive, as a page's is. JSON clients are few next to tabs: each stream
//! is served by its own task, woken by the log, and the fan-out of page streams is not involved.

use std::io::Write as _;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::watch;

use super::json::{JsonEvent, JsonState};
use super::log::After;
use super::{Audience, Cursor, Hub, frame};

/// Log entries read per wake-up at most, so one lagging stream never builds a huge chunk.
const MAX_BATCH: usize = 256;

pub struct JsonStream {
    hub: Hub,
    topics: Vec<String>,
    state: Arc<dyn JsonState>,
    /// The broadcast sequence number of the last entry read.
    cursor: u64,
    /// Set until the first message is sent; `true` when that message must resync.
    opening: Option<bool>,
    broadcast_rx: watch::Receiver<u64>,
    heartbeat_rx: watch::Receiver<Bytes>,
    closing_rx: watch::Receiver<bool>,
}

impl Hub {
    /// Opens a JSON stream on `topics` from `requested` (a `Last-Event-ID` or a `?cursor=`).
    ///
    /// Without a cursor the stream starts with the current state, as a page starts with its
    /// render: a resync. So does a cursor that does not parse or comes from another run of the
    /// hub; one that history no longer covers is resynced when it is read.
    pub fn json_stream(
        &self,
        topics: Vec<String>,
        requested: Option<&str>,
        state: Arc<dyn JsonState>,
    ) -> JsonStream {
        let resume = requested
            .and_then(|c| c.parse::<Cursor>().ok())
            .filter(|c| c.epoch == self.inner.epoch);
        let (cursor, resync) = match resume {
            Some(c) => (c.broadcast, false),
            None => (self.inner.broadcast.head(), true),
        };
        let mut heartbeat_rx = self.inner.heartbeat.subscribe();
        heartbeat_rx.mark_unchanged();
        JsonStream {
            broadcast_rx: self.inner.broadcast.watch(),
            heartbeat_rx,
            closing_rx: self.inner.closing.subscribe(),
            hub: self.clone(),
            topics,
            state,
            cursor,
            opening: Some(resync),
        }
    }

    /// The JSON state of `topics` and the broadcast head it reflects, read under the change
    /// lock as [`Hub::snapshot`] reads regions: replay after that head repeats and misses
    /// nothing.
    async fn json_snapshot(
        &self,
        topics: &[String],
        state: &dyn JsonState,
    ) -> (u64, Option<String>) {
        if self.inner.archive.is_some() {
            // On a shared log the database reads state and position together.
            return match state.positioned(topics).await {
                Some((state, at)) => (at, Some(state)),
                None => (self.position(), None),
            };
        }
        let _exclusive = self.inner.gate.lock().await;
        let head = self.inner.broadcast.head();
        (head, state.render(topics).await)
    }
}

impl JsonStream {
    /// The next bytes to write, or `None` when the stream ends: the hub closes, or a resync
    /// could not read the state (the client reconnects with its cursor and tries again).
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(resync) = self.opening.take() {
            return self.open(resync).await;
        }
        loop {
            if *self.closing_rx.borrow() {
                return None;
            }
            let chunk = self.drain().await?;
            if !chunk.is_empty() {
                return Some(chunk);
            }
            tokio::select! {
                biased;
                _ = self.closing_rx.changed() => return None,
                r = self.broadcast_rx.changed() => r.ok()?,
                r = self.heartbeat_rx.changed() => {
                    r.ok()?;
                    self.heartbeat_rx.borrow_and_update();
                    return Some(self.beat());
                }
            }
        }
    }

    /// The first message: `retry:` and, if needed, the resync.
    async fn open(&mut self, resync: bool) -> Option<Bytes> {
        let resync = resync || !self.hub.resumes_at(self.cursor).await;
        let mut out = BytesMut::new();
        let retry = self.hub.inner.config.retry.as_millis();
        let _ = writeln!((&mut out).writer(), "retry: {retry}");
        if resync {
            self.put_resync(&mut out).await?;
        } else {
            out.put_slice(b": connected\n\n");
        }
        Some(out.freeze())
    }

    /// A comment, with the cursor so far: a client that wants few topics keeps a recent
    /// `Last-Event-ID` even while nothing it wants is published.
    fn beat(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(64);
        out.put_slice(b": heartbeat\n");
        self.put_id(&mut out);
        out.put_u8(b'\n');
        out.freeze()
    }

    /// The wanted events after the cursor; from the archive what the log here no longer holds;
    /// a resync when nothing covers the cursor.
    async fn drain(&mut self) -> Option<Bytes> {
        self.broadcast_rx.borrow_and_update();
        let mut out = BytesMut::new();
        loop {
            let (events, end) = match self.hub.inner.broadcast.json_after(self.cursor, MAX_BATCH) {
                After::Messages(events) => (events, None),
                After::Gap => match self.replay().await {
                    Some(read) => read,
                    None => {
                        self.put_resync(&mut out).await?;
                        break;
                    }
                },
            };
            let full = events.len() == MAX_BATCH;
            for (seq, event) in events {
                self.cursor = seq;
                if let Some(event) = event.filter(|e| self.wants(e)) {
                    self.put_id(&mut out);
                    out.put_slice(event.frame());
                }
            }
            if let Some(end) = end {
                self.cursor = self.cursor.max(end);
            }
            // A full batch of events nobody here wants: read on rather than wait for a wake-up
            // that already came.
            if !full || !out.is_empty() {
                break;
            }
        }
        Some(out.freeze())
    }

    /// The JSON events the archive holds after the cursor, up to where the log in memory takes
    /// over, and that position when they reach it; `None` when there is no archive or it does
    /// not reach back.
    async fn replay(&self) -> Option<(Vec<(u64, Option<JsonEvent>)>, Option<u64>)> {
        let archive = self.hub.inner.archive.as_ref()?;
        let upto = self.hub.inner.broadcast.head();
        let entries = archive
            .replay(Audience::Everyone, self.cursor, upto, MAX_BATCH)
            .await?;
        // Read to the end: the position is `upto` even where private messages were numbered.
        let end = (entries.len() < MAX_BATCH).then_some(upto);
        let events = entries
            .into_iter()
            .map(|(seq, entry)| (seq, entry.json))
            .collect();
        Some((events, end))
    }

    fn wants(&self, event: &JsonEvent) -> bool {
        self.topics.iter().any(|t| t == event.topic())
    }

    async fn put_resync(&mut self, out: &mut BytesMut) -> Option<()> {
        let (head, state) = self.hub.json_snapshot(&self.topics, &*self.state).await;
        let state = state?;
        self.cursor = head;
        self.put_id(out);
        out.put_slice(&frame::message(Some("resync"), &state));
        Some(())
    }

    fn put_id(&self, out: &mut BytesMut) {
        let cursor = Cursor {
            epoch: self.hub.inner.epoch,
            broadcast: self.cursor,
            private: 0,
        };
        let _ = writeln!(out.writer(), "id: {cursor}");
    }
}
