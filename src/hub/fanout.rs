//! Writes broadcast messages and heartbeats straight to the sockets of streams that are caught up.
//!
//! A stream served by its own task costs, per message, a task wake-up, a poll through the
//! response body and a `write`: with 10,000 tabs, 10,000 wake-ups for one message, and the
//! wake-ups cost more CPU than the writes (BENCHMARKS.md). But almost every stream is caught up
//! and waiting. Such a stream *parks*: its cursor and its socket go into a shard here and its
//! task sleeps. On each broadcast, one pass per shard writes the new message to every parked
//! socket with a non-blocking write, waking nobody; one fan-out thread per CPU shares the shards.
//!
//! The passes run on threads of their own, not as tokio tasks: tokio has no priorities, so a
//! task that yields during a long pass waits behind every ready connection task each time, and
//! under a storm of page loads and reconnects a broadcast reached the last of 18,000 streams
//! after 3.1 s (BENCHMARKS.md, the soak). As a thread, a pass gets its share of the CPU from
//! the OS scheduler whatever the runtime's queue holds, and never holds up a request for longer
//! than the scheduler's slice.
//!
//! A parked stream is handed back to its task for anything more than one write that succeeds
//! at once: a socket that does not take the whole message (with the bytes it did not take), a
//! backlog longer than [`MAX_BATCH`] or a gap (which need replay or resync), a private message,
//! or the hub closing. The entry is owned by the shard while parked and by the task otherwise,
//! so a message is written by exactly one of them, in order.
//!
//! A socket is written through its descriptor, kept in the shard's entry (see [`Sink::fd`]).
//!
//! No lock is held across a system call: a pass marks its shard's parked entries as being
//! written and copies out their sockets and cursors under the shard's lock, writes with the
//! lock released, and records the results under the lock again. While an entry is being
//! written only the pass may touch its socket; a task that wants its stream back meanwhile
//! ([`Fanout::reclaim`]) is handed it when that write is done. Entries live in a slab, so
//! parking and leaving are O(1). A panic in one socket's write is caught and treated as a
//! failed write, and the shard locks shrug off poisoning, so one broken stream never stops the
//! broadcasts to the others.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use slab::Slab;
use socket2::SockRef;
use tokio::sync::{Notify, watch};

use super::log::After;
use super::stats::{STATS, Writer};
use super::stream::put_message;
use super::{Cursor, Inner};

/// Something a stream's bytes can be written to without waiting: the stream's socket.
pub trait Sink: Send + Sync + 'static {
    /// The descriptor of the non-blocking socket this is, if it is one: a pass then sends on it
    /// directly and never touches the sink itself. The sink's cache line, cold by the time a
    /// pass reaches it, was read three times per delivery (the `Arc` cloned and dropped, the
    /// descriptor read): 4.7% of the fan-out thread's CPU at 10,000 streams (BENCHMARKS.md,
    /// "What bought which number").
    fn fd(&self) -> Option<RawFd>;

    /// For a sink that is no socket ([`Sink::fd`] is `None`): writes as much of `bytes` as
    /// fits now; `WouldBlock` when nothing does.
    fn try_write(&self, _bytes: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Parked streams are spread over this many shards, so a pass locks few of them at a time and
/// parking never waits for a long pass.
const SHARDS: usize = 64;
/// A parked stream further behind than this is handed back to its task to catch up.
const MAX_BATCH: usize = 64;
/// A pass's output buffer is kept between broadcasts up to this size, so the usual message
/// costs no allocation.
const KEEP_OUT: usize = 64 << 10;

pub(super) struct Fanout {
    shards: Box<[Mutex<Slab<Entry>>]>,
    next_shard: AtomicUsize,
}

struct Entry {
    sink: Arc<dyn Sink>,
    /// `sink`'s descriptor ([`Sink::fd`]), kept open by `sink` while the entry lives.
    fd: Option<RawFd>,
    cursor: Cursor,
    wake: Arc<Notify>,
    state: State,
    /// Messages written to it while parked (for its line on close).
    sent: u64,
    /// Bytes its socket took from the fan-out while parked (for the same line).
    bytes: u64,
}

/// Where a pass writes a parked stream.
enum To {
    /// The descriptor of the entry's sink, open for as long as the entry is (an entry being
    /// written is never removed: see [`Then::Remove`]).
    Fd(RawFd),
    Sink(Arc<dyn Sink>),
}

impl To {
    fn of(entry: &Entry) -> To {
        match entry.fd {
            Some(fd) => To::Fd(fd),
            None => To::Sink(entry.sink.clone()),
        }
    }

    /// One non-blocking write of `bytes`; `Err` if the sink panicked.
    fn try_write(&self, bytes: &[u8]) -> std::thread::Result<io::Result<usize>> {
        let written = match self {
            // A plain non-blocking `send`, not tokio's `try_write`: that one first reads the
            // socket's readiness from tokio's registration, a cache line of its own per socket
            // and cold by the time a pass reaches it (~6% of Herald's CPU at 10,000 streams,
            // BENCHMARKS.md). The registration only matters to the stream's task, whose writes
            // go through tokio and find any stale readiness out at their first `WouldBlock`.
            To::Fd(fd) => {
                // SAFETY: the descriptor is the entry's socket's, which stays open while the
                // entry lives, and the entry outlives this write (see `To::Fd`).
                let socket = unsafe { BorrowedFd::borrow_raw(*fd) };
                Ok(SockRef::from(&socket).send_with_flags(bytes, libc::MSG_NOSIGNAL))
            }
            To::Sink(sink) => catch_unwind(AssertUnwindSafe(|| sink.try_write(bytes))),
        };
        if let Ok(result) = &written {
            STATS.write(Writer::Fanout, bytes.len(), result);
        }
        written
    }
}

enum State {
    /// The fan-out writes to it.
    Parked,
    /// A pass is writing to its socket, outside the shard's lock; what happens after that write.
    Writing(Then),
    /// Its task's again: the bytes its socket did not take, to be written first.
    HandedBack(Vec<u8>),
}

#[derive(Clone, Copy, PartialEq)]
enum Then {
    Stay,
    /// Its task asked for it back.
    HandBack,
    /// Its task has gone.
    Remove,
}

/// A stream taken back from the fan-out (see [`Fanout::unpark`]).
pub(super) struct Unparked {
    pub cursor: Cursor,
    pub unwritten: Vec<u8>,
    pub sent: u64,
    pub bytes: u64,
}

/// Where a parked stream is, to take it back.
pub(super) struct Ticket {
    shard: usize,
    key: usize,
}

/// One parked stream as a pass writes it, outside the shard's lock.
struct Job {
    key: usize,
    to: To,
    cursor: Cursor,
    /// `Some` to hand the stream back, with the bytes its socket did not take.
    hand_back: Option<Vec<u8>>,
    /// Messages in this write (what the socket did not take, its task writes next).
    sent: u64,
    /// Bytes the socket took of this write.
    bytes: u64,
}

/// A fan-out thread's buffers, reused from pass to pass.
#[derive(Default)]
struct Scratch {
    jobs: Vec<Job>,
    out: Vec<u8>,
    gone: Vec<Entry>,
    wakes: Vec<Arc<Notify>>,
}

/// What a pass writes to the streams parked at one cursor.
struct Prepared {
    from: Cursor,
    /// Their cursor once `out` is written; `None` to hand them back (a gap, or a backlog
    /// longer than [`MAX_BATCH`]: their tasks replay or resync).
    to: Option<Cursor>,
    /// The messages in `out` (heartbeats aside).
    messages: u64,
    /// Handed back for a backlog longer than [`MAX_BATCH`] (they fell behind).
    behind: bool,
}

impl Prepared {
    /// Puts into `out` what follows `from` in the broadcast log (`read`), and `beat`.
    fn new(
        from: Cursor,
        read: Option<&After>,
        beat: Option<&Bytes>,
        out: &mut Vec<u8>,
    ) -> Prepared {
        out.clear();
        let mut prepared = Prepared {
            from,
            to: None,
            messages: 0,
            behind: false,
        };
        let messages = match read {
            Some(After::Messages(messages)) if messages.len() <= MAX_BATCH => messages,
            Some(After::Messages(_)) => {
                prepared.behind = true;
                return prepared;
            }
            _ => return prepared,
        };
        let mut to = from;
        for (seq, data) in messages {
            to.broadcast = *seq;
            prepared.messages += u64::from(put_message(out, to, data));
        }
        if let Some(beat) = beat {
            put_message(out, to, beat);
        }
        prepared.to = Some(to);
        prepared
    }
}

impl Fanout {
    pub(super) fn new() -> Fanout {
        Fanout {
            shards: (0..SHARDS).map(|_| Mutex::new(Slab::new())).collect(),
            next_shard: AtomicUsize::new(0),
        }
    }

    /// A shard's entries. A panic elsewhere while one was held leaves them consistent (every
    /// change under the lock is a single assignment or slab operation), so poisoning is ignored
    /// rather than allowed to stop every later broadcast.
    fn shard(&self, shard: usize) -> MutexGuard<'_, Slab<Entry>> {
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
        let shard = self.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS;
        let mut entries = self.shard(shard);
        // Past the head is no gap on a shared log (a position other logs' messages reached).
        if inner.broadcast.head() > cursor.broadcast {
            return None;
        }
        let key = entries.insert(Entry {
            fd: sink.fd(),
            sink,
            cursor,
            wake,
            state: State::Parked,
            sent: 0,
            bytes: 0,
        });
        Some(Ticket { shard, key })
    }

    /// Asks for a parked stream back: `true` when it is its task's now (the fan-out will not
    /// write to it again); `false` when a pass is writing to it, which hands it back and wakes
    /// the task once that write is done.
    pub(super) fn reclaim(&self, ticket: &Ticket) -> bool {
        let mut entries = self.shard(ticket.shard);
        let entry = &mut entries[ticket.key];
        match entry.state {
            State::Parked => {
                entry.state = State::HandedBack(Vec::new());
                true
            }
            State::HandedBack(_) => true,
            State::Writing(_) => {
                entry.state = State::Writing(Then::HandBack);
                false
            }
        }
    }

    /// Takes a parked stream back: its cursor now, what its socket has not yet taken, and how
    /// many messages and bytes were written to it while parked.
    /// `None` while a pass is writing to it (after [`Fanout::reclaim`] said `true`, never).
    pub(super) fn unpark(&self, ticket: &Ticket) -> Option<Unparked> {
        let mut entries = self.shard(ticket.shard);
        if let State::Writing(_) = entries[ticket.key].state {
            return None;
        }
        let entry = entries.remove(ticket.key);
        drop(entries);
        let unwritten = match entry.state {
            State::HandedBack(unwritten) => unwritten,
            _ => Vec::new(),
        };
        Some(Unparked {
            cursor: entry.cursor,
            unwritten,
            sent: entry.sent,
            bytes: entry.bytes,
        })
    }

    /// A parked stream's task has gone: its entry leaves now, or after the write in progress.
    pub(super) fn leave(&self, ticket: &Ticket) {
        let mut entries = self.shard(ticket.shard);
        let entry = &mut entries[ticket.key];
        if let State::Writing(_) = entry.state {
            entry.state = State::Writing(Then::Remove);
            return;
        }
        let entry = entries.remove(ticket.key);
        // The socket may close as this goes: not under the lock.
        drop(entries);
        drop(entry);
    }

    /// Gives back the room of streams that have gone: a slab keeps its capacity, and after a
    /// wave of tabs (the soak's 9,000 lagging readers) the shards held ~1.4 MB more than the
    /// streams still open needed. Only trailing vacant entries can go (keys stay valid).
    pub(super) fn shrink(&self) {
        for shard in 0..SHARDS {
            let mut entries = self.shard(shard);
            if entries.capacity() > 64 && entries.len() * 2 < entries.capacity() {
                entries.shrink_to_fit();
            }
        }
    }

    /// Every shard held: no pass runs until the guards go.
    #[cfg(test)]
    pub(super) fn hold(&self) -> impl Sized + '_ {
        (0..SHARDS)
            .map(|shard| self.shard(shard))
            .collect::<Vec<_>>()
    }

    /// Room for this many parked streams over all shards.
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        (0..SHARDS).map(|shard| self.shard(shard).capacity()).sum()
    }

    /// Writes what follows each parked cursor in shard `shard` (and `beat`, if a heartbeat is
    /// due) to its socket.
    fn pass(&self, inner: &Inner, shard: usize, beat: Option<&Bytes>, scratch: &mut Scratch) {
        let Scratch {
            jobs,
            out,
            gone,
            wakes,
        } = scratch;
        for (key, entry) in self.shard(shard).iter_mut() {
            if let State::Parked = entry.state {
                entry.state = State::Writing(Then::Stay);
                jobs.push(Job {
                    key,
                    to: To::of(entry),
                    cursor: entry.cursor,
                    hand_back: None,
                    sent: 0,
                    bytes: 0,
                });
            }
        }
        // Counted once per pass, not per stream.
        let (mut delivered, mut behind) = (0, 0);
        // Parked cursors are nearly always equal: the log is read, and what follows a cursor
        // (its `id:` lines and messages) put into `out`, once per distinct cursor, and the same
        // bytes are written to every socket parked there, as one shared buffer.
        let mut read: Option<(u64, After)> = None;
        let mut prepared: Option<Prepared> = None;
        for job in jobs.iter_mut() {
            let from = job.cursor;
            if prepared.as_ref().is_none_or(|p| p.from != from) {
                if read.as_ref().is_none_or(|(c, _)| *c != from.broadcast) {
                    read = Some((
                        from.broadcast,
                        inner.broadcast.after(from.broadcast, MAX_BATCH + 1),
                    ));
                }
                prepared = Some(Prepared::new(
                    from,
                    read.as_ref().map(|(_, a)| a),
                    beat,
                    out,
                ));
            }
            let Some(p) = &prepared else {
                unreachable!("prepared above");
            };
            let Some(to) = p.to else {
                job.hand_back = Some(Vec::new());
                behind += u64::from(p.behind);
                continue;
            };
            job.cursor = to;
            job.sent += p.messages;
            if out.is_empty() {
                // Nothing new, or only messages that show on no page (JSON events alone).
                continue;
            }
            let written = job.to.try_write(out);
            if let Ok(Ok(n)) = written {
                delivered += n;
                job.bytes = n as u64;
            }
            if matches!(&written, Ok(Ok(n)) if *n < out.len())
                || matches!(&written, Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock)
            {
                behind += 1;
            }
            job.hand_back = match written {
                Ok(Ok(n)) if n == out.len() => None,
                Ok(Ok(n)) => Some(out[n..].to_vec()),
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => Some(out.clone()),
                // The task finds the socket closed when it writes or reads next.
                Ok(Err(_)) => Some(Vec::new()),
                Err(_) => {
                    tracing::error!("a stream's socket panicked in a write; handed back");
                    Some(Vec::new())
                }
            };
        }
        let mut entries = self.shard(shard);
        for job in jobs.drain(..) {
            let entry = &mut entries[job.key];
            entry.cursor = job.cursor;
            entry.sent += job.sent;
            entry.bytes += job.bytes;
            let State::Writing(then) = entry.state else {
                unreachable!("only the pass ends a write");
            };
            match (then, job.hand_back) {
                (Then::Remove, _) => gone.push(entries.remove(job.key)),
                (Then::Stay, None) => entry.state = State::Parked,
                (_, unwritten) => {
                    entry.state = State::HandedBack(unwritten.unwrap_or_default());
                    wakes.push(entry.wake.clone());
                }
            }
        }
        drop(entries);
        // Tasks are woken, and sockets whose streams have gone are closed, not under the lock
        // (either may be a system call).
        for wake in wakes.drain(..) {
            wake.notify_one();
        }
        gone.clear();
        inner.counters.delivered(delivered);
        inner.counters.fell_behind(behind);
    }
}

/// Starts the fan-out threads, one per CPU, each serving its share of the shards until the
/// hub is dropped. Called within the runtime: the threads wait on its channels.
pub(super) fn start(inner: &Arc<Inner>) {
    let parts = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Handle::current();
    for part in 0..parts {
        let hub = Arc::downgrade(inner);
        let broadcast_rx = inner.broadcast.watch();
        let heartbeat_rx = inner.heartbeat.subscribe();
        let runtime = runtime.clone();
        std::thread::Builder::new()
            .name(format!("herald-fanout-{part}"))
            .spawn(move || runtime.block_on(run(hub, broadcast_rx, heartbeat_rx, part, parts)))
            .expect("a fan-out thread");
    }
}

/// How long a due heartbeat waits for a broadcast to ride on: a quarter of the period, at most
/// a second (the page marks the connection stale after two and a half periods).
///
/// A heartbeat of its own is one more write to every parked socket, and a message published
/// meanwhile waits for that pass to end. While messages flow, riding on one costs a few hundred
/// bytes in a write that happens anyway; during a storm of connects, when the presence count
/// sends a heartbeat every two seconds, that is a third of the soak's passes.
fn ride_window(heartbeat: Duration) -> Duration {
    (heartbeat / 4).min(Duration::from_secs(1))
}

/// One fan-out thread's loop: on each broadcast or heartbeat, a pass over its share of the
/// shards. A heartbeat waits for the next broadcast, within [`ride_window`], to go out in the
/// same pass.
///
/// The receivers are subscribed by the caller, before anything can be published.
async fn run(
    hub: Weak<Inner>,
    mut broadcast_rx: watch::Receiver<u64>,
    mut heartbeat_rx: watch::Receiver<Bytes>,
    part: usize,
    parts: usize,
) {
    let mut scratch = Scratch::default();
    let ride = match hub.upgrade() {
        Some(inner) => ride_window(inner.config.heartbeat),
        None => return,
    };
    loop {
        // A heartbeat first when both are due: it then rides on that broadcast.
        let beat = tokio::select! {
            biased;
            r = heartbeat_rx.changed() => match r {
                Ok(()) => {
                    let beat = heartbeat_rx.borrow_and_update().clone();
                    if let Ok(Err(_)) = tokio::time::timeout(ride, broadcast_rx.changed()).await {
                        return;
                    }
                    Some(beat)
                }
                Err(_) => return,
            },
            r = broadcast_rx.changed() => match r {
                Ok(()) => None,
                Err(_) => return,
            },
        };
        for shard in (part..SHARDS).step_by(parts) {
            let Some(inner) = hub.upgrade() else { return };
            inner
                .fanout
                .pass(&inner, shard, beat.as_ref(), &mut scratch);
        }
        // A burst of large messages must not leave a large buffer behind.
        if scratch.out.capacity() > KEEP_OUT {
            scratch.out = Vec::new();
        }
    }
}
