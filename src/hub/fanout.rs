//! Writes broadcast messages and heartbeats straight to the sockets of streams that are caught up.
//!
//! A stream served by its own task costs, per message, a task wake-up, a poll through the
//! response body and a `write`: with 10,000 tabs, 10,000 wake-ups for one message, and the
//! wake-ups cost more CPU than the writes (BENCHMARKS.md). But almost every stream is caught up
//! and waiting. Such a stream *parks*: its cursor and its socket go into a shard here and its
//! task sleeps. On each broadcast, one pass per shard writes the new message to every parked
//! socket with a non-blocking write, waking nobody; one fan-out task per CPU shares the shards.
//!
//! A parked stream is handed back to its task for anything more than one write that succeeds
//! at once: a socket that does not take the whole message (with the bytes it did not take), a
//! backlog longer than [`MAX_BATCH`] or a gap (which need replay or resync), a private message,
//! or the hub closing. The entry is owned by the shard while parked and by the task otherwise,
//! so a message is written by exactly one of them, in order.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::{Notify, watch};

use super::log::After;
use super::stream::put_message;
use super::{Cursor, Inner};

/// Something a stream's bytes can be written to without waiting: the stream's socket.
pub trait Sink: Send + Sync + 'static {
    /// Writes as much of `bytes` as fits now; `WouldBlock` when nothing does.
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize>;
}

/// Parked streams are spread over this many shards, so a pass locks few of them at a time and
/// parking never waits for a long pass.
const SHARDS: usize = 64;
/// A parked stream further behind than this is handed back to its task to catch up.
const MAX_BATCH: usize = 64;

pub(super) struct Fanout {
    shards: Box<[Mutex<Vec<Entry>>]>,
    next_id: AtomicU64,
}

struct Entry {
    id: u64,
    sink: Arc<dyn Sink>,
    cursor: Cursor,
    wake: Arc<Notify>,
    /// Set when handed back: the bytes the socket did not take, to be written first.
    unwritten: Option<Vec<u8>>,
}

/// Where a parked stream is, to take it back.
pub(super) struct Ticket {
    shard: usize,
    id: u64,
}

impl Fanout {
    pub(super) fn new() -> Fanout {
        Fanout {
            shards: (0..SHARDS).map(|_| Mutex::new(Vec::new())).collect(),
            next_id: AtomicU64::new(0),
        }
    }

    /// Parks a stream at `cursor` unless the broadcast log moved past it (the caller then
    /// catches up first). Checked under the shard's lock, so a message appended after the check
    /// is written by the pass its append triggers.
    pub(super) fn park(
        &self,
        inner: &Inner,
        sink: Arc<dyn Sink>,
        cursor: Cursor,
        wake: Arc<Notify>,
    ) -> Option<Ticket> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let shard = id as usize % SHARDS;
        let mut entries = self.shards[shard].lock().expect("fan-out lock");
        if inner.broadcast.head() != cursor.broadcast {
            return None;
        }
        entries.push(Entry {
            id,
            sink,
            cursor,
            wake,
            unwritten: None,
        });
        Some(Ticket { shard, id })
    }

    /// Takes a parked stream back: its cursor now, and what its socket has not yet taken.
    pub(super) fn unpark(&self, ticket: &Ticket) -> Option<(Cursor, Vec<u8>)> {
        let mut entries = self.shards[ticket.shard].lock().expect("fan-out lock");
        let at = entries.iter().position(|e| e.id == ticket.id)?;
        let entry = entries.swap_remove(at);
        Some((entry.cursor, entry.unwritten.unwrap_or_default()))
    }

    /// Writes what follows each parked cursor in shard `shard` (and `beat`, if a heartbeat is
    /// due) to its socket.
    fn pass(&self, inner: &Inner, shard: usize, beat: Option<&Bytes>, out: &mut Vec<u8>) {
        let mut entries = self.shards[shard].lock().expect("fan-out lock");
        // Counted once per pass, not per stream.
        let (mut delivered, mut behind) = (0, 0);
        // Parked cursors are nearly always equal: read the log once per distinct cursor.
        let mut read: Option<(u64, After)> = None;
        for entry in entries.iter_mut().filter(|e| e.unwritten.is_none()) {
            let at = entry.cursor.broadcast;
            if read.as_ref().is_none_or(|(c, _)| *c != at) {
                read = Some((at, inner.broadcast.after(at, MAX_BATCH + 1)));
            }
            let Some((_, After::Messages(messages))) = &read else {
                entry.hand_back(Vec::new());
                continue;
            };
            if messages.len() > MAX_BATCH {
                entry.hand_back(Vec::new());
                behind += 1;
                continue;
            }
            if messages.is_empty() && beat.is_none() {
                continue;
            }
            out.clear();
            let mut cursor = entry.cursor;
            for (seq, data) in messages {
                cursor.broadcast = *seq;
                put_message(out, cursor, data);
            }
            if let Some(beat) = beat {
                put_message(out, cursor, beat);
            }
            entry.cursor = cursor;
            let written = entry.sink.try_write(out);
            if let Ok(n) = written {
                delivered += n;
            }
            match written {
                Ok(n) if n == out.len() => {}
                Ok(n) => {
                    entry.hand_back(out[n..].to_vec());
                    behind += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    entry.hand_back(out.clone());
                    behind += 1;
                }
                // The task finds the socket closed when it writes or reads next.
                Err(_) => entry.hand_back(Vec::new()),
            }
        }
        drop(entries);
        inner.counters.delivered(delivered);
        inner.counters.fell_behind(behind);
    }
}

impl Entry {
    fn hand_back(&mut self, unwritten: Vec<u8>) {
        self.unwritten = Some(unwritten);
        self.wake.notify_one();
    }
}

/// One of the fan-out tasks: on each broadcast or heartbeat, a pass over its share of the
/// shards, yielding between shards so that requests are served during a long fan-out.
///
/// The receivers are subscribed by the caller, before anything can be published.
pub(super) async fn run(
    hub: Weak<Inner>,
    mut broadcast_rx: watch::Receiver<u64>,
    mut heartbeat_rx: watch::Receiver<Bytes>,
    part: usize,
    parts: usize,
) {
    let mut out = Vec::new();
    loop {
        let beat = tokio::select! {
            r = broadcast_rx.changed() => match r {
                Ok(()) => None,
                Err(_) => return,
            },
            r = heartbeat_rx.changed() => match r {
                Ok(()) => Some(heartbeat_rx.borrow_and_update().clone()),
                Err(_) => return,
            },
        };
        for shard in (part..SHARDS).step_by(parts) {
            let Some(inner) = hub.upgrade() else { return };
            inner.fanout.pass(&inner, shard, beat.as_ref(), &mut out);
            drop(inner);
            tokio::task::yield_now().await;
        }
        // A burst of large messages must not leave a large buffer behind.
        out = Vec::new();
    }
}
