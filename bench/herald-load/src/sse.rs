//! SSE on the wire: splitting a decoded body into lines, and the marker each published message
//! carries (its sequence number and send time).

use serde::{Deserialize, Serialize};

/// Splits bytes into lines however they arrive; keeps an incomplete line for the next call.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Calls `line` for every complete line (without its `\n` or `\r`).
    pub fn feed(&mut self, mut input: &[u8], line: &mut impl FnMut(&[u8])) {
        while let Some(end) = input.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                line(trim_cr(&input[..end]));
            } else {
                self.partial.extend_from_slice(&input[..end]);
                line(trim_cr(&self.partial));
                self.partial.clear();
            }
            input = &input[end + 1..];
        }
        self.partial.extend_from_slice(input);
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Finds the published messages in an SSE stream: the first marker in each message's data,
/// handed on when the message is dispatched (its blank line), as a browser dispatches it: a
/// message cut short by a dying connection was never received. It also measures the messages:
/// how many bytes each marked one took on the wire (its `id:`, `data:` and other lines with
/// their newlines, and the blank line that ends it), and keeps the last event ID a browser
/// would send on reconnecting.
#[derive(Debug, Default)]
pub struct Messages {
    lines: Lines,
    /// The marker of the current message, if one was seen (Herald's notification list repeats
    /// older ones after the new toast).
    marker: Option<Marker>,
    /// Bytes of the current message so far.
    bytes: u64,
    /// Marked messages completed, and their bytes.
    pub sizes: Sizes,
    /// The last marked message completed, and its size.
    pub last: Option<(Marker, u64)>,
    /// The `id:` field last read; it becomes [`Messages::last_id`] at the next blank line.
    id_buffer: Option<String>,
    /// What a browser sends as `Last-Event-ID` when it reconnects now.
    pub last_id: Option<String>,
    /// Whether to tell Herald's resyncs apart (see [`Messages::watching_resyncs`]).
    resyncs_watched: bool,
    /// The current message's partials so far, and whether one of them is the board's region.
    partials: u32,
    board: bool,
    /// Resyncs seen (only counted when watched).
    pub resyncs: u64,
}

/// A Herald resync sends the board's region whole along with every other region; a live board
/// message is that one region alone.
const PARTIAL: &[u8] = b"<hx-partial ";
const BOARD_REGION: &[u8] = b"hx-target=\"#board-message\"";

/// Marked messages seen whole, and their bytes on the wire in all.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    pub messages: u64,
    pub bytes: u64,
}

impl Messages {
    /// A parser that counts Herald's resyncs (a message with the board region among other
    /// regions) and does not take the board's current message in one for a delivery: a resync
    /// is the page's state, not the messages it replaces. Off by default, since it scans every
    /// data line a second time.
    pub fn watching_resyncs() -> Messages {
        Messages {
            resyncs_watched: true,
            ..Messages::default()
        }
    }

    /// A new connection of the same stream: what was left of a message cut short is dropped,
    /// with its `id:`; the last event ID stays.
    pub fn reconnected(&mut self) {
        *self = Messages {
            sizes: self.sizes,
            last: self.last,
            id_buffer: self.last_id.clone(),
            last_id: self.last_id.take(),
            resyncs_watched: self.resyncs_watched,
            resyncs: self.resyncs,
            ..Messages::default()
        };
    }

    /// Feeds stream bytes; `on_message` gets each marked message's marker as it is dispatched.
    pub fn feed(&mut self, input: &[u8], on_message: &mut impl FnMut(Marker)) {
        let Messages {
            lines,
            marker,
            bytes,
            sizes,
            last,
            id_buffer,
            last_id,
            resyncs_watched,
            partials,
            board,
            resyncs,
        } = self;
        lines.feed(input, &mut |line| {
            *bytes += line.len() as u64 + 1;
            if line.is_empty() {
                last_id.clone_from(id_buffer);
                let resync = *board && *partials > 1;
                (*partials, *board) = (0, false);
                if resync {
                    *resyncs += 1;
                    *marker = None;
                } else if let Some(m) = marker.take() {
                    sizes.messages += 1;
                    sizes.bytes += *bytes;
                    *last = Some((m, *bytes));
                    on_message(m);
                }
                *bytes = 0;
            } else if let Some(id) = line.strip_prefix(b"id:") {
                let id = id.strip_prefix(b" ").unwrap_or(id);
                // Into the same buffer every time: a String per message was ~0.35 µs of this
                // tool's CPU per delivery (a cross-thread free), on every stream with ids.
                let buffer = id_buffer.get_or_insert_with(String::new);
                buffer.clear();
                buffer.push_str(&String::from_utf8_lossy(id));
            } else if line.starts_with(b"data:") {
                if *resyncs_watched {
                    *partials += count(line, PARTIAL);
                    *board = *board || crate::http::find(line, BOARD_REGION).is_some();
                }
                if marker.is_none() {
                    *marker = Marker::find(line);
                }
            }
        });
    }
}

/// How many times `needle` occurs in `line`.
fn count(mut line: &[u8], needle: &[u8]) -> u32 {
    let mut n = 0;
    while let Some(at) = crate::http::find(line, needle) {
        n += 1;
        line = &line[at + needle.len()..];
    }
    n
}

/// What every published message carries: `HLM<seq>.<send time in µs since the epoch>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    pub seq: u64,
    pub sent_us: u64,
}

const TAG: &[u8] = b"HLM";

impl Marker {
    pub fn text(self) -> String {
        format!("HLM{}.{}", self.seq, self.sent_us)
    }

    pub fn find(line: &[u8]) -> Option<Marker> {
        let at = crate::http::find(line, TAG)?;
        let rest = &line[at + TAG.len()..];
        let (seq, rest) = digits(rest)?;
        let rest = rest.strip_prefix(b".")?;
        let (sent_us, _) = digits(rest)?;
        Some(Marker { seq, sent_us })
    }
}

fn digits(s: &[u8]) -> Option<(u64, &[u8])> {
    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let value = std::str::from_utf8(&s[..n]).ok()?.parse().ok()?;
    Some((value, &s[n..]))
}

/// Which sequence numbers one stream has seen: loss and duplicates without storing messages.
#[derive(Debug)]
pub struct Seen {
    bits: Vec<u64>,
    pub unique: u64,
    pub duplicates: u64,
    /// Messages that arrived after one with a higher number (first arrivals only).
    pub out_of_order: u64,
    highest: Option<u64>,
    numbers: u64,
}

impl Seen {
    pub fn new(messages: u64) -> Seen {
        Seen {
            bits: vec![0; messages.div_ceil(64) as usize],
            unique: 0,
            duplicates: 0,
            out_of_order: 0,
            highest: None,
            numbers: messages,
        }
    }

    /// Records `seq`; `true` the first time. Numbers beyond the run's count are ignored.
    pub fn record(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        let Some(w) = self.bits.get_mut(word).filter(|_| seq < self.numbers) else {
            return false;
        };
        if *w & (1 << bit) != 0 {
            self.duplicates += 1;
            false
        } else {
            *w |= 1 << bit;
            self.unique += 1;
            if self.highest.is_some_and(|h| seq < h) {
                self.out_of_order += 1;
            }
            self.highest = self.highest.max(Some(seq));
            true
        }
    }

    /// How many message numbers it keeps track of (from 0).
    pub fn numbers(&self) -> u64 {
        self.numbers
    }

    /// Whether `seq` arrived.
    pub fn has(&self, seq: u64) -> bool {
        self.bits
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// How many of the messages the server accepted (`published[seq]`) this stream never got.
    pub fn missing(&self, published: &[bool]) -> u64 {
        published
            .iter()
            .enumerate()
            .filter(|&(seq, &ok)| ok && !self.has(seq as u64))
            .count() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_survive_any_split() {
        let text = b"id: 1\r\ndata: a\n\ndata: b\n";
        for split in 0..text.len() {
            let mut lines = Lines::default();
            let mut got = Vec::new();
            let (a, b) = text.split_at(split);
            for part in [a, b] {
                lines.feed(part, &mut |l| {
                    got.push(String::from_utf8(l.to_vec()).unwrap())
                });
            }
            assert_eq!(got, ["id: 1", "data: a", "", "data: b"], "split {split}");
        }
    }

    #[test]
    fn marker_round_trips_inside_html() {
        let m = Marker {
            seq: 12,
            sent_us: 1_700_000_000_123_456,
        };
        let line = format!(
            "data: <blockquote class=\"board-text\">{}</blockquote>",
            m.text()
        );
        assert_eq!(Marker::find(line.as_bytes()), Some(m));
        assert_eq!(Marker::find(b"data: HLM12"), None);
        assert_eq!(Marker::find(b"data: <p>nothing</p>"), None);
    }

    #[test]
    fn only_the_first_marker_of_a_message_counts() {
        let mut messages = Messages::default();
        let mut got = Vec::new();
        let stream = b"id: x\ndata: HLM2.5\ndata: <li>HLM1.4</li>\n\n: heartbeat\ndata: HLM3.6\n\n";
        messages.feed(stream, &mut |m| got.push(m.seq));
        assert_eq!(got, [2, 3]);
    }

    #[test]
    fn measures_each_marked_message_on_the_wire() {
        let mut messages = Messages::default();
        let stream = b"id: 7\ndata: HLM1.2xxxx\n\n: beat\ndata: none\n\nid: 8\ndata: <p>HLM2.3</p>\ndata: more\n\n";
        for piece in stream.chunks(3) {
            messages.feed(piece, &mut |_| {});
        }
        let first = "id: 7\ndata: HLM1.2xxxx\n\n".len() as u64;
        let second = "id: 8\ndata: <p>HLM2.3</p>\ndata: more\n\n".len() as u64;
        assert_eq!(
            messages.sizes,
            Sizes {
                messages: 2,
                bytes: first + second
            }
        );
        assert_eq!(messages.last, Some((Marker { seq: 2, sent_us: 3 }, second)));
    }

    #[test]
    fn seen_counts_loss_and_duplicates() {
        let mut seen = Seen::new(130);
        assert!(seen.record(0));
        assert!(seen.record(129));
        assert!(!seen.record(129));
        assert!(!seen.record(500), "out of range is ignored");
        assert_eq!((seen.unique, seen.duplicates), (2, 1));
        let mut published = vec![true; 130];
        published[5] = false;
        assert_eq!(seen.missing(&published), 127);
        assert!(seen.has(129) && !seen.has(5) && !seen.has(500));
    }

    #[test]
    fn seen_counts_what_arrives_after_a_higher_number() {
        let mut seen = Seen::new(10);
        for seq in [0, 2, 1, 3, 3, 9, 4] {
            seen.record(seq);
        }
        assert_eq!(
            (seen.out_of_order, seen.duplicates),
            (2, 1),
            "1 after 2, 4 after 9"
        );
    }

    #[test]
    fn a_message_counts_when_dispatched_and_its_id_with_it() {
        let mut messages = Messages::default();
        let mut got = Vec::new();
        messages.feed(
            b"retry: 500\nid: a-1-0\ndata: <p>hi</p>\n\nid: a-2-0\ndata: HLM1.5",
            &mut |m| got.push(m.seq),
        );
        assert!(got.is_empty(), "the message is not whole yet");
        assert_eq!(
            messages.last_id.as_deref(),
            Some("a-1-0"),
            "the greeting's id, not the cut one's"
        );
        messages.feed(b"\n\n: beat\n\nid:a-3-0\n\n", &mut |m| got.push(m.seq));
        assert_eq!(got, [1]);
        assert_eq!(
            messages.last_id.as_deref(),
            Some("a-3-0"),
            "an id without data counts too"
        );
    }

    #[test]
    fn a_reconnect_drops_the_cut_message_and_keeps_the_last_id() {
        let mut messages = Messages::default();
        let mut got = Vec::new();
        messages.feed(
            b"id: a-1-0\ndata: HLM1.5\n\nid: a-2-0\ndata: HLM2.5\n",
            &mut |m| got.push(m.seq),
        );
        messages.reconnected();
        assert_eq!(messages.last_id.as_deref(), Some("a-1-0"));
        messages.feed(b"\nretry: 500\ndata: <p>hello</p>\n\n", &mut |m| {
            got.push(m.seq)
        });
        assert_eq!(got, [1], "the cut message's marker never dispatches");
        assert_eq!(
            messages.last_id.as_deref(),
            Some("a-1-0"),
            "nor does its id"
        );
    }

    #[test]
    fn a_herald_resync_is_counted_not_taken_for_its_boards_message() {
        let live = "id: a-4-0\ndata: <hx-partial hx-target=\"#board-message\" hx-swap=\"innerHTML\"><q>HLM4.1</q></hx-partial>\n\n";
        let beat = "id: a-4-0\ndata: <hx-partial hx-target=\"#status\" hx-swap=\"innerHTML\">ok</hx-partial><hx-partial hx-target=\"#presence\" hx-swap=\"innerHTML\">2</hx-partial>\n\n";
        let resync = "id: a-9-0\ndata: <hx-partial hx-target=\"#board-message\" hx-swap=\"innerHTML\">\ndata: <q>HLM8.1</q></hx-partial>\ndata: <hx-partial hx-target=\"#jobs-list\" hx-swap=\"innerHTML\"></hx-partial>\n\n";
        let stream = format!("{live}{beat}{resync}{live}");
        let mut watched = Messages::watching_resyncs();
        let mut got = Vec::new();
        watched.feed(stream.as_bytes(), &mut |m| got.push(m.seq));
        assert_eq!((got.as_slice(), watched.resyncs), ([4, 4].as_slice(), 1));
        let mut plain = Messages::default();
        got.clear();
        plain.feed(stream.as_bytes(), &mut |m| got.push(m.seq));
        assert_eq!(
            (got.as_slice(), plain.resyncs),
            ([4, 8, 4].as_slice(), 0),
            "not watched"
        );
    }
}
