//! One topic's bounded history and the signal that wakes its readers.
//!
//! Streams do not get messages pushed into per-stream queues: each stream keeps a cursor and
//! reads what follows it from this shared log when woken. The history *is* the bounded queue of
//! every stream, so a message costs one allocation however many streams read it, a publisher
//! never waits for a reader, and a reader that falls further behind than the history reaches
//! sees a gap (and is resynced) instead of making anyone else pay.
//!
//! An entry holds every rendering of one message, so that page streams and JSON streams read
//! one sequence and never disagree about order: page streams read its HTML ([`Log::after`]),
//! JSON streams its JSON event ([`Log::json_after`]), each skipping entries without theirs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::watch;

use super::frame;
use super::json::JsonEvent;
use super::pack::Packer;

/// Bounds of one log's history; whichever is reached first evicts the oldest message.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub messages: usize,
    pub bytes: usize,
}

/// Where a log's sequence numbers come from.
pub enum Sequence {
    /// 1, 2, 3… (the broadcast log).
    Own,
    /// A counter shared by every private log, so a log created anew for a client never reuses a
    /// number that client may already hold in a cursor.
    Shared(Arc<AtomicU64>),
    /// The shared event log's numbers (PostgreSQL), given with each message
    /// ([`Log::append_at`]); the counter is how far that log has been applied here, so a log
    /// made now holds everything after it.
    Global(Arc<AtomicU64>),
}

/// One message in a log: its renderings, each framed once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// `data:` lines of the page's partials; empty when the message shows on no page.
    pub html: Bytes,
    /// The message as JSON streams send it.
    pub json: Option<JsonEvent>,
}

impl Entry {
    /// Frames `html` (none when empty) beside `json`.
    pub fn new(html: &str, json: Option<JsonEvent>) -> Entry {
        let html = if html.is_empty() {
            Bytes::new()
        } else {
            frame::data_lines(html)
        };
        Entry { html, json }
    }

    fn len(&self) -> usize {
        self.html.len() + self.json.as_ref().map_or(0, |j| j.frame().len())
    }

    fn packed(&self, packer: &mut Packer) -> Entry {
        Entry {
            html: packer.pack(&self.html),
            json: self.json.as_ref().map(|j| j.packed(packer)),
        }
    }
}

/// Framed HTML alone is a message for pages only.
impl From<Bytes> for Entry {
    fn from(html: Bytes) -> Entry {
        Entry { html, json: None }
    }
}

pub struct Log {
    history: RwLock<History>,
    head: watch::Sender<u64>,
    sequence: Sequence,
    limits: Limits,
}

struct History {
    entries: VecDeque<(u64, Entry)>,
    /// Where a long-lived log keeps its entries' bytes.
    packer: Option<Packer>,
    bytes: usize,
    /// Every message numbered above `floor` is still in `entries`.
    floor: u64,
    head: u64,
}

/// The answer to "what follows this cursor?", in one rendering (framed HTML by default).
#[derive(Debug, PartialEq)]
pub enum After<T = Bytes> {
    Messages(Vec<(u64, T)>),
    /// Part of what follows was evicted, or the cursor never came from this log.
    Gap,
}

impl Log {
    pub fn new(sequence: Sequence, limits: Limits) -> Self {
        Log::build(sequence, limits, None)
    }

    /// A log whose entries are packed into shared chunks (`pack.rs`): for the broadcast log,
    /// which keeps its history while everything else comes and goes. A private log holds a
    /// few messages of one tab and would keep a whole chunk for them.
    pub fn packed(sequence: Sequence, limits: Limits) -> Self {
        Log::build(sequence, limits, Some(Packer::default()))
    }

    fn build(sequence: Sequence, limits: Limits, packer: Option<Packer>) -> Self {
        let start = match &sequence {
            Sequence::Own => 0,
            Sequence::Shared(counter) | Sequence::Global(counter) => {
                counter.load(Ordering::Relaxed)
            }
        };
        Log {
            history: RwLock::new(History {
                entries: VecDeque::new(),
                packer,
                bytes: 0,
                floor: start,
                head: start,
            }),
            head: watch::Sender::new(start),
            sequence,
            limits,
        }
    }

    /// Appends an already framed message and wakes the readers; returns its sequence number.
    pub fn append(&self, entry: impl Into<Entry>) -> u64 {
        self.insert(None, entry.into())
    }

    /// Appends a message the shared event log numbered `seq` (higher than any before).
    pub fn append_at(&self, seq: u64, entry: Entry) {
        self.insert(Some(seq), entry);
    }

    fn insert(&self, given: Option<u64>, entry: Entry) -> u64 {
        let seq = {
            let mut h = self.history.write().expect("log lock poisoned");
            // Numbered under the lock, so numbers and history order always agree.
            let seq = match (&self.sequence, given) {
                (_, Some(seq)) => seq,
                (Sequence::Own, None) => h.head + 1,
                (Sequence::Shared(counter) | Sequence::Global(counter), None) => {
                    counter.fetch_add(1, Ordering::Relaxed) + 1
                }
            };
            let entry = match &mut h.packer {
                Some(packer) => entry.packed(packer),
                None => entry,
            };
            h.bytes += entry.len();
            h.entries.push_back((seq, entry));
            h.head = seq;
            while h.entries.len() > self.limits.messages.max(1)
                || (h.bytes > self.limits.bytes && h.entries.len() > 1)
            {
                let (old, entry) = h.entries.pop_front().expect("non-empty");
                h.bytes -= entry.len();
                h.floor = old;
            }
            seq
        };
        self.head.send_replace(seq);
        seq
    }

    pub fn head(&self) -> u64 {
        self.history.read().expect("log lock poisoned").head
    }

    /// Whether nothing was ever appended (eviction always keeps the newest message).
    pub fn is_empty(&self) -> bool {
        self.history
            .read()
            .expect("log lock poisoned")
            .entries
            .is_empty()
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.head.subscribe()
    }

    /// The framed HTML of everything after `cursor`, at most `max` messages (empty for a
    /// message that shows on no page); call again for the rest.
    ///
    /// On the shared log a cursor past this log's newest message is no gap: it may be a
    /// position where other logs' messages were numbered, or one not applied here yet.
    pub fn after(&self, cursor: u64, max: usize) -> After {
        self.read(cursor, max, |entry| entry.html.clone())
    }

    /// The JSON events of everything after `cursor`, at most `max` messages (`None` for a
    /// message that has none); call again for the rest.
    pub fn json_after(&self, cursor: u64, max: usize) -> After<Option<JsonEvent>> {
        self.read(cursor, max, |entry| entry.json.clone())
    }

    fn read<T>(&self, cursor: u64, max: usize, rendering: impl Fn(&Entry) -> T) -> After<T> {
        let h = self.history.read().expect("log lock poisoned");
        let global = matches!(self.sequence, Sequence::Global(_));
        if cursor < h.floor || (cursor > h.head && !global) {
            return After::Gap;
        }
        let start = h.entries.partition_point(|(seq, _)| *seq <= cursor);
        After::Messages(
            h.entries
                .range(start..)
                .take(max)
                .map(|(seq, entry)| (*seq, rendering(entry)))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(messages: usize, bytes: usize) -> Log {
        Log::new(Sequence::Own, Limits { messages, bytes })
    }

    fn seqs(after: After) -> Vec<u64> {
        match after {
            After::Messages(m) => m.into_iter().map(|(s, _)| s).collect(),
            After::Gap => panic!("unexpected gap"),
        }
    }

    #[test]
    fn replays_exactly_what_follows_the_cursor() {
        let log = log(10, 1 << 20);
        for i in 0..5 {
            log.append(Bytes::from(format!("m{i}")));
        }
        assert_eq!(seqs(log.after(2, 100)), vec![3, 4, 5]);
        assert_eq!(seqs(log.after(5, 100)), Vec::<u64>::new());
        assert_eq!(seqs(log.after(0, 2)), vec![1, 2]);
    }

    #[test]
    fn evicted_history_is_a_gap() {
        let log = log(3, 1 << 20);
        for i in 0..5 {
            log.append(Bytes::from(format!("m{i}")));
        }
        assert_eq!(log.after(1, 100), After::Gap);
        assert_eq!(seqs(log.after(2, 100)), vec![3, 4, 5]);
    }

    #[test]
    fn byte_limit_evicts_but_keeps_the_newest() {
        let log = log(100, 10);
        log.append(Bytes::from_static(b"123456"));
        log.append(Bytes::from_static(b"abcdef"));
        assert_eq!(log.after(0, 100), After::Gap);
        assert_eq!(seqs(log.after(1, 100)), vec![2]);
        log.append(Bytes::from(vec![b'x'; 50]));
        assert_eq!(seqs(log.after(2, 100)), vec![3]);
    }

    #[test]
    fn cursor_from_the_future_is_a_gap() {
        let log = log(10, 1 << 20);
        log.append(Bytes::from_static(b"a"));
        assert_eq!(log.after(7, 100), After::Gap);
    }

    #[test]
    fn shared_sequence_never_reuses_numbers_across_logs() {
        let counter = Arc::new(AtomicU64::new(0));
        let limits = Limits {
            messages: 10,
            bytes: 1 << 20,
        };
        let first = Log::new(Sequence::Shared(counter.clone()), limits);
        first.append(Bytes::from_static(b"a"));
        first.append(Bytes::from_static(b"b"));
        let again = Log::new(Sequence::Shared(counter), limits);
        assert_eq!(again.after(2, 10), After::Messages(vec![]));
        assert_eq!(
            again.after(1, 10),
            After::Gap,
            "an older cursor must not replay"
        );
        assert_eq!(again.append(Bytes::from_static(b"c")), 3);
    }

    #[test]
    fn the_shared_log_numbers_sparsely_and_covers_everything_after_its_start() {
        let position = Arc::new(AtomicU64::new(10));
        let limits = Limits {
            messages: 2,
            bytes: 1 << 20,
        };
        let log = Log::new(Sequence::Global(position), limits);
        assert_eq!(log.after(9, 10), After::Gap, "from before it was made");
        assert_eq!(seqs(log.after(10, 10)), Vec::<u64>::new());
        log.append_at(12, Bytes::from_static(b"a").into());
        log.append_at(15, Bytes::from_static(b"b").into());
        assert_eq!(seqs(log.after(10, 10)), vec![12, 15]);
        assert_eq!(seqs(log.after(13, 10)), vec![15]);
        assert_eq!(
            seqs(log.after(40, 10)),
            Vec::<u64>::new(),
            "a position other logs reached is no gap"
        );
        log.append_at(16, Bytes::from_static(b"c").into());
        assert_eq!(log.after(11, 10), After::Gap, "12 was evicted");
        assert_eq!(seqs(log.after(12, 10)), vec![15, 16]);
    }

    #[test]
    fn each_rendering_is_read_in_the_one_sequence() {
        let log = log(10, 1 << 20);
        let json = JsonEvent::new("t", "t.changed", &1);
        log.append(Entry::new("<p>page only</p>", None));
        log.append(Entry::new("", Some(json.clone())));
        log.append(Entry::new("<p>both</p>", Some(json.clone())));
        assert_eq!(
            log.after(0, 10),
            After::Messages(vec![
                (1, frame::data_lines("<p>page only</p>")),
                (2, Bytes::new()),
                (3, frame::data_lines("<p>both</p>")),
            ])
        );
        assert_eq!(
            log.json_after(1, 10),
            After::Messages(vec![(2, Some(json.clone())), (3, Some(json))])
        );
    }

    #[test]
    fn both_renderings_count_against_the_byte_limit() {
        let log = log(100, 60);
        let json = JsonEvent::from_json("t", "e", "[1]");
        assert_eq!(json.frame().len(), 20);
        log.append(Entry::new("", Some(json.clone())));
        log.append(Entry::new("", Some(json.clone())));
        assert_eq!(seqs(log.after(0, 10)), vec![1, 2]);
        // 14 bytes of HTML and 20 of JSON: 74 bytes in all, so the first entry goes.
        log.append(Entry::new("123456", Some(json)));
        assert_eq!(log.after(0, 10), After::Gap);
        assert_eq!(seqs(log.after(1, 10)), vec![2, 3]);
    }

    #[test]
    fn a_packed_log_reads_as_a_plain_one() {
        let limits = Limits {
            messages: 3,
            bytes: 1 << 20,
        };
        let (plain, packed) = (
            Log::new(Sequence::Own, limits),
            Log::packed(Sequence::Own, limits),
        );
        let json = JsonEvent::new("board", "board.message", &"hi");
        for i in 0..5 {
            let entry = Entry::new(&format!("<p>{i}</p>"), Some(json.clone()));
            plain.append(entry.clone());
            packed.append(entry);
        }
        assert_eq!(packed.after(2, 10), plain.after(2, 10));
        assert_eq!(packed.json_after(2, 10), plain.json_after(2, 10));
        assert_eq!(packed.after(1, 10), After::Gap);
        let After::Messages(events) = packed.json_after(4, 10) else {
            panic!("a gap");
        };
        assert_eq!(events[0].1.as_ref().map(|e| e.topic()), Some("board"));
    }

    #[test]
    fn append_wakes_watchers() {
        let log = log(10, 1 << 20);
        let mut rx = log.watch();
        log.append(Bytes::from_static(b"a"));
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 1);
    }
}
