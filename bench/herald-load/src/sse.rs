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

/// Finds the published messages in an SSE stream: the first marker in each message's data.
/// It also measures the messages: how many bytes each marked one took on the wire (its `id:`,
/// `data:` and other lines with their newlines, and the blank line that ends it).
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
}

/// Marked messages seen whole, and their bytes on the wire in all.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sizes {
    pub messages: u64,
    pub bytes: u64,
}

impl Messages {
    pub fn feed(&mut self, input: &[u8], on_message: &mut impl FnMut(Marker)) {
        let Messages {
            lines,
            marker,
            bytes,
            sizes,
            last,
        } = self;
        lines.feed(input, &mut |line| {
            *bytes += line.len() as u64 + 1;
            if line.is_empty() {
                if let Some(m) = marker.take() {
                    sizes.messages += 1;
                    sizes.bytes += *bytes;
                    *last = Some((m, *bytes));
                }
                *bytes = 0;
            } else if marker.is_none()
                && line.starts_with(b"data:")
                && let Some(m) = Marker::find(line)
            {
                *marker = Some(m);
                on_message(m);
            }
        });
    }
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
}

impl Seen {
    pub fn new(messages: u64) -> Seen {
        Seen {
            bits: vec![0; messages.div_ceil(64) as usize],
            unique: 0,
            duplicates: 0,
        }
    }

    /// Records `seq`; `true` the first time. Numbers beyond the run's count are ignored.
    pub fn record(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        let Some(w) = self.bits.get_mut(word) else {
            return false;
        };
        if *w & (1 << bit) != 0 {
            self.duplicates += 1;
            false
        } else {
            *w |= 1 << bit;
            self.unique += 1;
            true
        }
    }

    /// How many of the messages the server accepted (`published[seq]`) this stream never got.
    pub fn missing(&self, published: &[bool]) -> u64 {
        published
            .iter()
            .enumerate()
            .filter(|&(seq, &ok)| ok && self.bits[seq / 64] & (1 << (seq % 64)) == 0)
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
    }
}
