//! What the hub has done since it started, for an operator's metrics (`crate::metrics` reads
//! them when scraped). Relaxed atomics: a few nanoseconds where they are counted, and the fan-out
//! adds its bytes once per pass, not once per stream.
//!
//! With a shared log (PostgreSQL) a message is *published* by the instance whose change stored
//! it, so the sum over instances counts each message once; every instance *applies* it (its
//! follower reads it from the log), and the bytes it writes to its own tabs are *delivered*
//! there, wherever the message was published. On SQLite the one instance does all three.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub(super) struct Counters {
    published: AtomicU64,
    applied: AtomicU64,
    delivered_bytes: AtomicU64,
    replays: AtomicU64,
    resyncs: AtomicU64,
    behind: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Messages this instance's changes published, to everyone or to one tab.
    pub published: u64,
    /// Messages taken into this instance's logs for its tabs: its own on SQLite, every
    /// instance's (read from the shared log) on PostgreSQL.
    pub applied: u64,
    /// Bytes of tab streams written to their sockets (or handed to the HTTP/2 connection):
    /// messages, heartbeats, replays and resyncs; not the response head.
    pub delivered_bytes: u64,
    /// Streams that resumed from a cursor by replaying what they missed.
    pub replays: u64,
    /// Resyncs sent, at connect or when a stream fell out of history.
    pub resyncs: u64,
    /// Times a parked stream fell behind the fan-out and went back to its own task.
    pub behind: u64,
}

impl Counters {
    pub(super) fn published(&self, messages: usize) {
        self.published.fetch_add(messages as u64, Relaxed);
    }

    pub(super) fn applied(&self, messages: usize) {
        self.applied.fetch_add(messages as u64, Relaxed);
    }

    pub(super) fn delivered(&self, bytes: usize) {
        self.delivered_bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(super) fn replayed(&self) {
        self.replays.fetch_add(1, Relaxed);
    }

    pub(super) fn resynced(&self) {
        self.resyncs.fetch_add(1, Relaxed);
    }

    pub(super) fn fell_behind(&self, streams: u64) {
        self.behind.fetch_add(streams, Relaxed);
    }

    pub(super) fn counts(&self) -> Counts {
        Counts {
            published: self.published.load(Relaxed),
            applied: self.applied.load(Relaxed),
            delivered_bytes: self.delivered_bytes.load(Relaxed),
            replays: self.replays.load(Relaxed),
            resyncs: self.resyncs.load(Relaxed),
            behind: self.behind.load(Relaxed),
        }
    }
}
