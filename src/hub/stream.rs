//! One tab's SSE stream: greet, resync or replay from the cursor, then follow both logs live.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{Notify, watch};

use super::fanout::{Sink, Ticket};
use super::log::{After, Log};
use super::{Audience, ClientId, Cursor, Hub, Regions, Scope, Snapshot, Swap, frame, push_partial};

/// Messages written per wake-up at most, so one lagging stream never builds a huge chunk.
const MAX_BATCH: usize = 256;

pub struct LiveStream {
    hub: Hub,
    client: ClientId,
    private: Arc<Log>,
    regions: Arc<dyn Regions>,
    cursor: Cursor,
    /// Set until the first message is sent; `true` when that message must resync everything.
    opening: Option<bool>,
    /// Set until the first catch-up: the stream resumed from a cursor behind the logs' heads.
    replaying: bool,
    /// Messages sent so far (heartbeats aside), by its task or by the fan-out.
    messages: u64,
    /// Body bytes that reached its socket so far, by its task or by the fan-out.
    bytes: u64,
    broadcast_rx: watch::Receiver<u64>,
    private_rx: watch::Receiver<u64>,
    heartbeat_rx: watch::Receiver<Bytes>,
    closing_rx: watch::Receiver<bool>,
    /// How the fan-out hands a parked stream back; made on first park.
    wake: Option<Arc<Notify>>,
}

/// What a stream has to write now.
pub enum Due {
    Chunk(Bytes),
    /// Nothing until a log or the heartbeat moves: time to wait, or to park.
    CaughtUp,
    Closed,
}

impl Hub {
    /// Opens `client`'s stream from `requested` (a `Last-Event-ID` or the page's cursor).
    ///
    /// No cursor means "from now on". A cursor that does not parse, or comes from another run of
    /// the hub, cannot be trusted to replay anything, so the stream starts with a full resync.
    pub fn stream(
        &self,
        client: ClientId,
        requested: Option<&str>,
        regions: Arc<dyn Regions>,
    ) -> LiveStream {
        self.inner.streams.fetch_add(1, Ordering::Relaxed);
        let private = self.client_log(client);
        let now = Cursor {
            epoch: self.inner.epoch,
            broadcast: self.inner.broadcast.head(),
            private: private.head(),
        };
        let (cursor, resync_all) = match requested.map(str::parse::<Cursor>) {
            None => (now, false),
            Some(Ok(c)) if c.epoch == self.inner.epoch => (c, false),
            Some(_) => (now, true),
        };
        let replaying = cursor.broadcast < now.broadcast || cursor.private < now.private;
        let mut heartbeat_rx = self.inner.heartbeat.subscribe();
        heartbeat_rx.mark_unchanged();
        LiveStream {
            broadcast_rx: self.inner.broadcast.watch(),
            private_rx: private.watch(),
            heartbeat_rx,
            closing_rx: self.inner.closing.subscribe(),
            hub: self.clone(),
            client,
            private,
            regions,
            cursor,
            opening: Some(resync_all),
            replaying,
            messages: 0,
            bytes: 0,
            wake: None,
        }
    }
}

impl LiveStream {
    /// The next bytes to write, or `None` when the hub closes.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            match self.due().await {
                Due::Chunk(chunk) => return Some(chunk),
                Due::Closed => return None,
                Due::CaughtUp => {}
            }
            tokio::select! {
                biased;
                _ = self.closing_rx.changed() => return None,
                r = self.broadcast_rx.changed() => r.ok()?,
                r = self.private_rx.changed() => r.ok()?,
                r = self.heartbeat_rx.changed() => {
                    r.ok()?;
                    return Some(self.beat());
                }
            }
        }
    }

    /// What is due now, without waiting for anything new.
    pub async fn due(&mut self) -> Due {
        if let Some(resync_all) = self.opening.take() {
            return Due::Chunk(self.open(resync_all).await);
        }
        if *self.closing_rx.borrow() {
            return Due::Closed;
        }
        let chunk = self.drain().await;
        if !chunk.is_empty() {
            return Due::Chunk(chunk);
        }
        if self.heartbeat_rx.has_changed().unwrap_or(false) {
            return Due::Chunk(self.beat());
        }
        Due::CaughtUp
    }

    fn beat(&mut self) -> Bytes {
        let beat = self.heartbeat_rx.borrow_and_update().clone();
        let mut out = BytesMut::with_capacity(beat.len() + 48);
        put_message(&mut out, self.cursor, &beat);
        out.freeze()
    }

    /// `bytes` of what this stream's task had due reached its socket (or the HTTP/2
    /// connection); what the fan-out writes it counts itself.
    pub fn delivered(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        self.hub.inner.counters.delivered(bytes);
    }

    /// The tab this stream is for.
    pub fn client(&self) -> ClientId {
        self.client
    }

    /// Messages sent so far (heartbeats aside): the first message, each message of either log
    /// and each resync, counted as it is handed to the socket's writer (by its task, or by the
    /// fan-out: [`Parked::resume`] adds what that wrote).
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Body bytes that reached the socket so far, counted as [`LiveStream::messages`] are.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Hands a caught-up stream to the fan-out, which writes broadcast messages and heartbeats
    /// to `sink` without waking the stream's task; gives it back if a message arrived since it
    /// caught up. Boxed: a parked tab's task holds the stream through every layer of its
    /// future, and by value each layer kept its own 160 bytes (BENCHMARKS.md, idle memory).
    pub fn park(mut self: Box<Self>, sink: Arc<dyn Sink>) -> Park {
        let wake = self.wake.get_or_insert_with(Default::default).clone();
        let hub = self.hub.clone();
        match hub.inner.fanout.park(&hub.inner, sink, self.cursor, wake) {
            Some(ticket) => Park::Parked(Parked {
                live: Some(self),
                ticket,
            }),
            None => Park::Behind(self),
        }
    }

    /// The first message: `retry:`, the connection status and, if needed, a full resync.
    async fn open(&mut self, resync_all: bool) -> Bytes {
        self.messages += 1;
        let furthest = self.cursor.broadcast.max(self.cursor.private);
        let resync_all = resync_all || !self.hub.resumes_at(furthest).await;
        let mut html = (self.hub.inner.beat)();
        if resync_all {
            self.hub.inner.counters.resynced();
            let snap = self
                .hub
                .snapshot(self.client, Scope::ALL, &*self.regions)
                .await;
            self.cursor = snap.cursor;
            push_regions(&mut html, &snap);
        }
        let mut out = BytesMut::with_capacity(html.len() + 64);
        let retry = self.hub.inner.config.retry.as_millis();
        out.put_slice(format!("retry: {retry}\n").as_bytes());
        put_id(&mut out, self.cursor);
        out.put_slice(&frame::data_lines(&html));
        out.freeze()
    }

    /// Everything both logs hold after the cursor; from the archive what they no longer hold;
    /// a resync for a log that nothing covers.
    async fn drain(&mut self) -> Bytes {
        self.broadcast_rx.borrow_and_update();
        self.private_rx.borrow_and_update();
        let mut out = BytesMut::new();
        let mut gap = Scope::default();
        match self
            .hub
            .inner
            .broadcast
            .after(self.cursor.broadcast, MAX_BATCH)
        {
            After::Messages(messages) => {
                for (seq, data) in messages {
                    self.cursor.broadcast = seq;
                    self.messages += u64::from(put_message(&mut out, self.cursor, &data));
                }
            }
            After::Gap => {
                let head = self.hub.inner.broadcast.head();
                gap.broadcast = !self.replay(Audience::Everyone, head, &mut out).await;
            }
        }
        match self.private.after(self.cursor.private, MAX_BATCH) {
            After::Messages(messages) => {
                for (seq, data) in messages {
                    self.cursor.private = seq;
                    self.messages += u64::from(put_message(&mut out, self.cursor, &data));
                }
            }
            After::Gap => {
                let head = self.private.head();
                let me = Audience::Client(self.client);
                gap.private = !self.replay(me, head, &mut out).await;
            }
        }
        if self.replaying && !out.is_empty() {
            self.hub.inner.counters.replayed();
        }
        self.replaying = false;
        if gap != Scope::default() {
            self.hub.inner.counters.resynced();
            let snap = self.hub.snapshot(self.client, gap, &*self.regions).await;
            if gap.broadcast {
                self.cursor.broadcast = snap.cursor.broadcast;
            }
            if gap.private {
                self.cursor.private = snap.cursor.private;
            }
            let mut html = String::new();
            push_regions(&mut html, &snap);
            put_message(&mut out, self.cursor, &frame::data_lines(&html));
            self.messages += 1;
        }
        out.freeze()
    }
}

impl LiveStream {
    /// Writes what the archive holds for `audience` after the cursor, up to `upto` (where the
    /// log in memory takes over); `false` when there is no archive or it does not reach back.
    async fn replay(&mut self, audience: Audience, upto: u64, out: &mut BytesMut) -> bool {
        let Some(archive) = &self.hub.inner.archive else {
            return false;
        };
        let private = matches!(audience, Audience::Client(_));
        let after = if private {
            self.cursor.private
        } else {
            self.cursor.broadcast
        };
        let Some(messages) = archive.replay(audience, after, upto, MAX_BATCH).await else {
            return false;
        };
        // Read to the end: the position is `upto` even where other logs' messages were numbered.
        let end = (messages.len() < MAX_BATCH).then_some(upto);
        for (seq, entry) in messages {
            self.set(private, seq);
            let sent = put_message(out, self.cursor, &entry.html);
            self.messages += u64::from(sent);
        }
        if let Some(end) = end {
            self.set(private, end.max(after));
        }
        true
    }

    fn set(&mut self, private: bool, seq: u64) {
        if private {
            self.cursor.private = seq;
        } else {
            self.cursor.broadcast = seq;
        }
    }
}

/// The outcome of [`LiveStream::park`].
pub enum Park {
    Parked(Parked),
    /// A message arrived since the stream caught up: write it first.
    Behind(Box<LiveStream>),
}

/// A stream the fan-out writes to; its task waits in [`Parked::woken`].
pub struct Parked {
    live: Option<Box<LiveStream>>,
    ticket: Ticket,
}

impl Parked {
    /// Resolves when the stream needs its task again: the fan-out handed it back, a private
    /// message arrived, or the hub is closing. The fan-out no longer writes to it then, so
    /// [`Parked::resume`] takes it at once. Cancel-safe.
    pub async fn woken(&mut self) {
        let live = self.live.as_mut().expect("parked stream");
        let wake = live.wake.clone().expect("made when parked");
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = live.private_rx.changed() => {}
                _ = live.closing_rx.changed() => {}
            }
            // A pass writing to it now hands it back, and wakes us, when that write is done.
            if live.hub.inner.fanout.reclaim(&self.ticket) {
                return;
            }
        }
    }

    /// Takes the stream back from the fan-out, with what its socket has yet to take (write
    /// that first).
    pub fn resume(mut self) -> (Box<LiveStream>, Vec<u8>) {
        let mut live = self.live.take().expect("parked stream");
        let taken = loop {
            // Only without `woken` first can a pass be writing to it: that one non-blocking
            // write is all there is to wait for.
            match live.hub.inner.fanout.unpark(&self.ticket) {
                Some(taken) => break taken,
                None => std::thread::yield_now(),
            }
        };
        live.cursor = taken.cursor;
        live.messages += taken.sent;
        live.bytes += taken.bytes;
        // The fan-out wrote the heartbeats while it was parked.
        live.heartbeat_rx.mark_unchanged();
        (live, taken.unwritten)
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            live.hub.inner.fanout.leave(&self.ticket);
        }
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.hub.inner.streams.fetch_sub(1, Ordering::Relaxed);
        self.hub.release(self.client);
    }
}

fn push_regions(html: &mut String, snap: &Snapshot) {
    for region in snap.broadcast.iter().chain(&snap.private) {
        push_partial(html, region.id, Swap::InnerHtml, &region.html);
    }
}

fn put_id(out: &mut impl BufMut, cursor: Cursor) {
    // Writing into memory cannot fail.
    let _ = writeln!(out.writer(), "id: {cursor}");
}

/// One message as the stream writes it: its `id:` line, then its framed data; nothing for a
/// message that shows on no page (a JSON event alone). The fan-out writes parked streams'
/// messages with it too.
pub(super) fn put_message(out: &mut impl BufMut, cursor: Cursor, data: &[u8]) -> bool {
    if data.is_empty() {
        return false;
    }
    put_id(out, cursor);
    out.put_slice(data);
    true
}
