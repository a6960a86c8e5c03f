//! What streams cost in system calls: counters of the stream write path, kept in relaxed atomics
//! (a few nanoseconds per write, against a microsecond or more for the write itself).
//!
//! Per message, the ideal is one write per stream, by the fan-out, of the whole message. The
//! counters say how far a run is from that: writes by the fan-out and by streams' own tasks,
//! the bytes they carried, writes a socket took only in part or not at all, and parked streams
//! handed back to their tasks. `GET /metrics` serves them (`crate::metrics`; herald-load
//! reports them per message); they are process-wide, since the socket writes know no app.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;

/// The stream write path's counters since the process started.
pub static STATS: Stats = Stats::new();

/// Who wrote to a stream's socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// The fan-out, to a parked stream.
    Fanout,
    /// The stream's own task: its first message, a catch-up, a private message, or what a
    /// socket did not take from the fan-out.
    Task,
    /// Herald's HTTP/1.1 loop answering a request (a page, a publish): counted apart, and
    /// only counted, since it is not the stream path.
    Response,
}

#[derive(Debug)]
pub struct Stats {
    fanout_writes: AtomicU64,
    task_writes: AtomicU64,
    response_writes: AtomicU64,
    bytes_written: AtomicU64,
    partial_writes: AtomicU64,
    would_block: AtomicU64,
    hand_backs: AtomicU64,
}

/// The counters at one moment; subtract two to see what happened in between.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Write system calls on parked streams' sockets, from the fan-out.
    pub fanout_writes: u64,
    /// Write system calls from streams' tasks.
    pub task_writes: u64,
    /// Write system calls answering requests on Herald's HTTP/1.1 loop (not in the figures
    /// below).
    pub response_writes: u64,
    /// Bytes the stream writes put on the wire.
    pub bytes_written: u64,
    /// Writes the socket took only part of.
    pub partial_writes: u64,
    /// Writes the socket took nothing of (its send buffer was full).
    pub would_block: u64,
    /// Parked streams woken to be served by their own task again.
    pub hand_backs: u64,
}

impl Stats {
    const fn new() -> Stats {
        Stats {
            fanout_writes: AtomicU64::new(0),
            task_writes: AtomicU64::new(0),
            response_writes: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            partial_writes: AtomicU64::new(0),
            would_block: AtomicU64::new(0),
            hand_backs: AtomicU64::new(0),
        }
    }

    /// Counts one write of `asked` bytes by `by`, and what the socket took.
    pub fn write(&self, by: Writer, asked: usize, result: &io::Result<usize>) {
        let writes = match by {
            Writer::Fanout => &self.fanout_writes,
            Writer::Task => &self.task_writes,
            Writer::Response => {
                self.response_writes.fetch_add(1, Relaxed);
                return;
            }
        };
        writes.fetch_add(1, Relaxed);
        match result {
            Ok(n) => {
                self.bytes_written.fetch_add(*n as u64, Relaxed);
                if *n < asked {
                    self.partial_writes.fetch_add(1, Relaxed);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.would_block.fetch_add(1, Relaxed);
            }
            Err(_) => {}
        }
    }

    /// Counts a parked stream taken back by its task.
    pub fn hand_back(&self) {
        self.hand_backs.fetch_add(1, Relaxed);
    }

    pub fn counts(&self) -> Counts {
        Counts {
            fanout_writes: self.fanout_writes.load(Relaxed),
            task_writes: self.task_writes.load(Relaxed),
            response_writes: self.response_writes.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            partial_writes: self.partial_writes.load(Relaxed),
            would_block: self.would_block.load(Relaxed),
            hand_backs: self.hand_backs.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_kind_of_write() {
        let stats = Stats::new();
        stats.write(Writer::Fanout, 100, &Ok(100));
        stats.write(Writer::Fanout, 100, &Ok(40));
        stats.write(Writer::Task, 60, &Err(io::ErrorKind::WouldBlock.into()));
        stats.write(Writer::Task, 60, &Err(io::ErrorKind::BrokenPipe.into()));
        stats.write(Writer::Response, 500, &Ok(500));
        stats.hand_back();
        assert_eq!(
            stats.counts(),
            Counts {
                fanout_writes: 2,
                task_writes: 2,
                response_writes: 1,
                bytes_written: 140,
                partial_writes: 1,
                would_block: 1,
                hand_backs: 1,
            }
        );
    }
}
