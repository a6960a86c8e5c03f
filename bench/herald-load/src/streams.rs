//! Holding streams: each one a task that opens, reads, and counts what it receives, until told
//! which messages the server accepted; then it works out what it lost.

use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::sse::{Messages, Seen, Sizes};
use crate::target::Endpoint;

/// A stream that has not started by then counts as failed (a server out of file descriptors
/// leaves connections unaccepted in its backlog).
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

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
}

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
    }

    pub fn histogram(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for &(value, count) in &self.latency {
            h.saturating_record_n(value, count);
        }
        h
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
    latency: Mutex<Option<Histogram<u64>>>,
    first_error: Mutex<Option<String>>,
}

impl Tally {
    fn error(&self, e: impl ToString) {
        let mut first = self.first_error.lock().expect("tally lock");
        first.get_or_insert_with(|| e.to_string());
    }

    fn record_latency(&self, us: u64) {
        let mut h = self.latency.lock().expect("tally lock");
        h.get_or_insert_with(new_histogram)
            .saturating_record(us.max(1));
    }

    pub fn observed(&self) -> Observed {
        let latency = self.latency.lock().expect("tally lock");
        Observed {
            opened: self.opened.load(Relaxed),
            failed: self.failed.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            unique: self.unique.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            lost: self.lost.load(Relaxed),
            last_us: self.last_us.load(Relaxed),
            latency: latency.as_ref().map_or_else(Vec::new, |h| {
                h.iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value()))
                    .collect()
            }),
            first_error: self.first_error.lock().expect("tally lock").clone(),
            reads: self.reads.load(Relaxed),
            body_bytes: self.body_bytes.load(Relaxed),
            sizes: Sizes {
                messages: self.sized_messages.load(Relaxed),
                bytes: self.sized_bytes.load(Relaxed),
            },
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
        tokio::spawn(hold(
            endpoint.clone(),
            source,
            plan.messages,
            tally.clone(),
            stop.clone(),
        ));
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
        s = tokio::time::timeout(OPEN_TIMEOUT, endpoint.subscribe(Some(source))) => {
            s.unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no stream within 15 s")))
        }
        _ = stop.wait_for(Option::is_some) => return,
    };
    let (mut conn, head) = match subscribed {
        Ok(s) => s,
        Err(e) => {
            tally.error(format!("open from {source}: {e}"));
            tally.failed.fetch_add(1, Relaxed);
            return;
        }
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
                    let now = now_us();
                    tally.record_latency(now.saturating_sub(m.sent_us));
                    tally.unique.fetch_add(1, Relaxed);
                    tally.last_us.fetch_max(now, Relaxed);
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
    let published = stop
        .wait_for(Option::is_some)
        .await
        .map(|p| (*p).clone())
        .ok()
        .flatten()
        .unwrap_or_default();
    tally.lost.fetch_add(seen.missing(&published), Relaxed);
    tally.duplicates.fetch_add(seen.duplicates, Relaxed);
    tally.finished.fetch_add(1, Relaxed);
}
