//! Holding streams: each one a task that opens, reads, and counts what it receives, until told
//! which messages the server accepted; then it works out what it lost.

use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::resume::{self, Timeline};
use crate::sse::{Messages, Seen, Sizes};
use crate::target::Endpoint;

/// A stream that has not started by then counts as failed (a server out of file descriptors
/// leaves connections unaccepted in its backlog).
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// What one process's share of the streams should do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub endpoint: Endpoint,
    pub streams: usize,
    /// Index of this share's first stream, so shares spread over the source addresses evenly.
    pub first: usize,
    pub open_rate: f64,
    pub messages: u64,
    pub sources: u8,
    pub reader: Reader,
}

/// How a stream reads what it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reader {
    /// Everything, at once, as a browser does.
    Healthy,
    /// Nothing after the response head, until the run ends (a frozen tab, a dead network).
    Stalled,
    /// [`SLOW_BYTES`] a second (a phone on a poor network).
    Slow,
    /// Everything, reconnecting with `Last-Event-ID` whenever the connection ends, as a
    /// browser tab does (`resume.rs`).
    Resuming,
}

/// What a slow reader takes a second.
const SLOW_BYTES: usize = 512;
/// The socket receive buffer of stalled and slow readers, so that the server's writes to them
/// block after kilobytes rather than megabytes.
const SMALL_RECEIVE_BUFFER: u32 = 4096;
/// At the end, a stalled or slow reader reads what is left; this long without a byte means the
/// server still holds the stream open.
const QUIET: Duration = Duration::from_secs(2);

/// Everything a share of streams observed; shares add up.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Observed {
    pub opened: u64,
    pub failed: u64,
    /// Streams that ended before the run did.
    pub dropped: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub lost: u64,
    /// When the last message arrived (µs since the epoch).
    pub last_us: u64,
    /// Latency histogram in µs as (value, count) pairs.
    pub latency: Vec<(u64, u64)>,
    /// Reads of stream bodies, and the body bytes they brought.
    pub reads: u64,
    pub body_bytes: u64,
    /// Published messages seen whole, and their bytes on the wire.
    pub sizes: Sizes,
    pub first_error: Option<String>,
    /// Resuming streams: each one's [`Timeline`], and how many of them received each message
    /// number (to tell a message that may or may not have been published, stored, from one
    /// some streams missed).
    #[serde(default)]
    pub timelines: Vec<Timeline>,
    #[serde(default)]
    pub arrivals: Vec<u64>,
    /// Resuming streams: messages received after one with a higher number, and Herald resyncs.
    #[serde(default)]
    pub out_of_order: u64,
    #[serde(default)]
    pub resyncs: u64,
    /// Why the first failed reconnect attempt failed.
    #[serde(default)]
    pub retry_error: Option<String>,
}

impl Observed {
    pub fn merge(&mut self, other: Observed) {
        self.opened += other.opened;
        self.failed += other.failed;
        self.dropped += other.dropped;
        self.unique += other.unique;
        self.duplicates += other.duplicates;
        self.lost += other.lost;
        self.last_us = self.last_us.max(other.last_us);
        self.latency.extend(other.latency);
        self.reads += other.reads;
        self.body_bytes += other.body_bytes;
        self.sizes.messages += other.sizes.messages;
        self.sizes.bytes += other.sizes.bytes;
        self.first_error = self.first_error.take().or(other.first_error);
        self.timelines.extend(other.timelines);
        add_arrivals(&mut self.arrivals, &other.arrivals);
        self.out_of_order += other.out_of_order;
        self.resyncs += other.resyncs;
        self.retry_error = self.retry_error.take().or(other.retry_error);
    }

    pub fn histogram(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for &(value, count) in &self.latency {
            h.saturating_record_n(value, count);
        }
        h
    }
}

/// Adds `more`'s per-message counts to `into`'s.
fn add_arrivals(into: &mut Vec<u64>, more: &[u64]) {
    if into.len() < more.len() {
        into.resize(more.len(), 0);
    }
    for (total, n) in into.iter_mut().zip(more) {
        *total += n;
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds")
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Counters every stream task of a process updates.
#[derive(Default)]
pub struct Tally {
    pub opened: AtomicU64,
    pub failed: AtomicU64,
    pub finished: AtomicU64,
    pub dropped: AtomicU64,
    pub unique: AtomicU64,
    pub duplicates: AtomicU64,
    pub lost: AtomicU64,
    pub last_us: AtomicU64,
    reads: AtomicU64,
    body_bytes: AtomicU64,
    sized_messages: AtomicU64,
    sized_bytes: AtomicU64,
    latency: Mutex<Phases>,
    first_error: Mutex<Option<String>>,
    /// What resuming streams leave behind (see [`Observed`]).
    resumed: Mutex<Resumed>,
}

#[derive(Default)]
struct Resumed {
    timelines: Vec<Timeline>,
    arrivals: Vec<u64>,
    out_of_order: u64,
    resyncs: u64,
    retry_error: Option<String>,
}

/// Latency histograms by phase of a run: phase `i` holds the messages numbered from `starts[i]`
/// up to the next phase's first (a plain run is one phase from 0).
#[derive(Default)]
struct Phases {
    starts: Vec<u64>,
    histograms: Vec<Histogram<u64>>,
}

impl Phases {
    fn record(&mut self, seq: u64, us: u64) {
        if self.histograms.is_empty() {
            self.starts.push(0);
            self.histograms.push(new_histogram());
        }
        let phase = self.starts.partition_point(|&first| first <= seq).max(1) - 1;
        self.histograms[phase].saturating_record(us.max(1));
    }
}

impl Tally {
    /// A resuming stream's account at the end of the run.
    pub fn resumed(&self, seen: &Seen, resyncs: u64, timeline: Timeline) {
        let mut r = self.resumed.lock().expect("tally lock");
        let messages = seen.numbers();
        let mine: Vec<u64> = (0..messages).map(|seq| u64::from(seen.has(seq))).collect();
        add_arrivals(&mut r.arrivals, &mine);
        r.timelines.push(timeline);
        r.out_of_order += seen.out_of_order;
        r.resyncs += resyncs;
    }

    /// A resuming stream's reconnect attempt failed (it tries again).
    pub fn retry_failed(&self, e: impl ToString) {
        let mut r = self.resumed.lock().expect("tally lock");
        r.retry_error.get_or_insert_with(|| e.to_string());
    }

    fn error(&self, e: impl ToString) {
        let mut first = self.first_error.lock().expect("tally lock");
        first.get_or_insert_with(|| e.to_string());
    }

    pub fn open_failed(&self, e: impl ToString) {
        self.error(e);
        self.failed.fetch_add(1, Relaxed);
    }

    /// A stream's first copy of message `seq`, sent at `sent_us`, arrived at `now`.
    pub fn arrived(&self, seq: u64, sent_us: u64, now: u64) {
        self.record_latency(seq, now.saturating_sub(sent_us));
        self.unique.fetch_add(1, Relaxed);
        self.last_us.fetch_max(now, Relaxed);
    }

    pub fn record_latency(&self, seq: u64, us: u64) {
        self.latency.lock().expect("tally lock").record(seq, us);
    }

    /// Starts a new latency phase with message `first` (numbers only grow).
    pub fn begin_phase(&self, first: u64) {
        let mut phases = self.latency.lock().expect("tally lock");
        phases.starts.push(first);
        phases.histograms.push(new_histogram());
    }

    /// Each phase's latency histogram, in order.
    pub fn phase_histograms(&self) -> Vec<Histogram<u64>> {
        self.latency.lock().expect("tally lock").histograms.clone()
    }

    pub fn observed(&self) -> Observed {
        let resumed = self.resumed.lock().expect("tally lock");
        let mut all = new_histogram();
        for h in &self.latency.lock().expect("tally lock").histograms {
            all.add(h).expect("histograms share their bounds");
        }
        Observed {
            opened: self.opened.load(Relaxed),
            failed: self.failed.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            unique: self.unique.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            lost: self.lost.load(Relaxed),
            last_us: self.last_us.load(Relaxed),
            latency: all
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
            first_error: self.first_error.lock().expect("tally lock").clone(),
            reads: self.reads.load(Relaxed),
            body_bytes: self.body_bytes.load(Relaxed),
            sizes: Sizes {
                messages: self.sized_messages.load(Relaxed),
                bytes: self.sized_bytes.load(Relaxed),
            },
            timelines: resumed.timelines.clone(),
            arrivals: resumed.arrivals.clone(),
            out_of_order: resumed.out_of_order,
            resyncs: resumed.resyncs,
            retry_error: resumed.retry_error.clone(),
        }
    }
}

/// Which messages the server accepted, sent to every stream when publishing is over.
pub type Stop = watch::Receiver<Option<Arc<Vec<bool>>>>;

/// Opens the plan's streams at its rate; they report into `tally` until `stop` says what was
/// published. Returns when every stream has opened or failed.
pub async fn open(plan: &Plan, tally: &Arc<Tally>, stop: &Stop) {
    let endpoint = Arc::new(plan.endpoint.clone());
    let start = tokio::time::Instant::now();
    for i in 0..plan.streams {
        let due = start + Duration::from_secs_f64(i as f64 / plan.open_rate);
        tokio::time::sleep_until(due).await;
        let source = Ipv4Addr::new(
            127,
            0,
            0,
            1 + ((plan.first + i) % plan.sources as usize) as u8,
        );
        let (endpoint, tally, stop) = (endpoint.clone(), tally.clone(), stop.clone());
        match plan.reader {
            Reader::Healthy => tokio::spawn(hold(endpoint, source, plan.messages, tally, stop)),
            Reader::Resuming => {
                tokio::spawn(resume::hold(endpoint, source, plan.messages, tally, stop))
            }
            lagging => tokio::spawn(lag(endpoint, source, lagging, tally, stop)),
        };
    }
    while tally.opened.load(Relaxed) + tally.failed.load(Relaxed) < plan.streams as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every opened stream has counted its losses.
pub async fn finished(tally: &Tally) {
    while tally.finished.load(Relaxed) < tally.opened.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn hold(
    endpoint: Arc<Endpoint>,
    source: Ipv4Addr,
    messages: u64,
    tally: Arc<Tally>,
    mut stop: Stop,
) {
    let subscribed = tokio::select! {
        s = tokio::time::timeout(OPEN_TIMEOUT, endpoint.subscribe(Some(source), None)) => {
            s.unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no stream within 15 s")))
        }
        _ = stop.wait_for(Option::is_some) => return,
    };
    let (mut conn, head) = match subscribed {
        Ok(s) => s,
        Err(e) => return tally.open_failed(format!("open from {source}: {e}")),
    };
    tally.opened.fetch_add(1, Relaxed);
    let mut seen = Seen::new(messages);
    let mut parser = Messages::default();
    let reads_before = conn.reads;
    let mut body_bytes = 0;
    let ended_early = {
        let read = conn.read_body(&head, |piece| {
            body_bytes += piece.len() as u64;
            parser.feed(piece, &mut |m| {
                if seen.record(m.seq) {
                    tally.arrived(m.seq, m.sent_us, now_us());
                }
            });
            true
        });
        tokio::select! {
            r = read => Some(r),
            _ = stop.wait_for(Option::is_some) => None,
        }
    };
    tally.reads.fetch_add(conn.reads - reads_before, Relaxed);
    tally.body_bytes.fetch_add(body_bytes, Relaxed);
    tally
        .sized_messages
        .fetch_add(parser.sizes.messages, Relaxed);
    tally.sized_bytes.fetch_add(parser.sizes.bytes, Relaxed);
    if let Some(ended) = ended_early {
        tally.dropped.fetch_add(1, Relaxed);
        tally.error(match ended {
            Ok(()) => "a stream ended early".to_string(),
            Err(e) => format!("a stream failed: {e}"),
        });
    }
    count_losses(&mut stop, &seen, &tally).await;
    tally.finished.fetch_add(1, Relaxed);
}

/// Waits for the run's end, then counts what `seen` lost of the messages accepted, and its
/// duplicates.
pub async fn count_losses(stop: &mut Stop, seen: &Seen, tally: &Tally) {
    let published = stop
        .wait_for(Option::is_some)
        .await
        .map(|p| (*p).clone())
        .ok()
        .flatten()
        .unwrap_or_default();
    tally.lost.fetch_add(seen.missing(&published), Relaxed);
    tally.duplicates.fetch_add(seen.duplicates, Relaxed);
}

/// A stalled or slow reader: opens its stream with a small receive buffer, then reads nothing
/// (or [`SLOW_BYTES`] a second) until the run ends. Then it reads what is left: a stream the
/// server ended meanwhile (a send timeout) counts as dropped, i.e. cut loose by the server.
async fn lag(
    endpoint: Arc<Endpoint>,
    source: Ipv4Addr,
    reader: Reader,
    tally: Arc<Tally>,
    mut stop: Stop,
) {
    let opened = tokio::time::timeout(
        OPEN_TIMEOUT,
        endpoint.subscribe(Some(source), Some(SMALL_RECEIVE_BUFFER)),
    );
    let mut conn = match opened.await {
        Ok(Ok((conn, _))) => conn,
        Ok(Err(e)) => return tally.open_failed(format!("open from {source}: {e}")),
        Err(_) => return tally.open_failed("no stream within 15 s"),
    };
    tally.opened.fetch_add(1, Relaxed);
    let mut scrap = vec![0; SLOW_BYTES];
    let mut ended = false;
    if reader == Reader::Slow {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        while !ended {
            tokio::select! {
                _ = every.tick() => ended = matches!(conn.stream.read(&mut scrap).await, Ok(0) | Err(_)),
                () = stopped(&mut stop) => break,
            }
        }
    } else {
        stopped(&mut stop).await;
    }
    scrap.resize(64 * 1024, 0);
    while !ended {
        match tokio::time::timeout(QUIET, conn.stream.read(&mut scrap)).await {
            Ok(Ok(0) | Err(_)) => ended = true,
            Ok(Ok(_)) => {}
            Err(_) => break,
        }
    }
    if ended {
        tally.dropped.fetch_add(1, Relaxed);
    }
    tally.finished.fetch_add(1, Relaxed);
}

/// Resolves when the run ends.
async fn stopped(stop: &mut Stop) {
    let _ = stop.wait_for(Option::is_some).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_goes_to_the_phase_of_the_messages_number() {
        let tally = Tally::default();
        tally.record_latency(3, 1_000);
        assert_eq!(
            tally.phase_histograms().len(),
            1,
            "a plain run is one phase"
        );
        tally.begin_phase(10);
        tally.begin_phase(20);
        tally.record_latency(9, 2_000);
        tally.record_latency(10, 3_000);
        tally.record_latency(25, 4_000);
        tally.record_latency(26, 5_000);
        let counts: Vec<u64> = tally.phase_histograms().iter().map(|h| h.len()).collect();
        assert_eq!(counts, [2, 1, 2]);
        let all = tally.observed().histogram();
        assert_eq!((all.len(), all.max() / 1000), (5, 5));
    }
}
