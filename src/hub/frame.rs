//! SSE framing. A message is framed once into shared bytes; the only per-subscriber bytes are the
//! `id:` line written in front of it (see `stream.rs`).

use bytes::{BufMut, Bytes, BytesMut};

/// Frames `data` as the `data:` lines of one SSE message, ending with the blank line.
///
/// `\r` is dropped rather than escaped: SSE has no escaping, a lone `\r` would split a line in the
/// browser's parser, and rendered HTML never needs one.
pub fn data_lines(data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 16);
    put_data(&mut out, data);
    out.put_u8(b'\n');
    out.freeze()
}

/// A complete message with an optional event name, for streams that keep no history.
pub fn message(event: Option<&str>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 32);
    if let Some(event) = event {
        out.put_slice(b"event: ");
        out.put_slice(strip_line_breaks(event).as_bytes());
        out.put_u8(b'\n');
    }
    put_data(&mut out, data);
    out.put_u8(b'\n');
    out.freeze()
}

fn put_data(out: &mut BytesMut, data: &str) {
    let data = data.replace('\r', "");
    for line in data.split('\n') {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
}

fn strip_line_breaks(s: &str) -> String {
    s.replace(['\r', '\n'], "")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::Cursor;
    use super::super::stream::put_message;
    use super::*;

    fn text(b: Bytes) -> String {
        String::from_utf8(b.to_vec()).unwrap()
    }

    #[test]
    fn one_line_becomes_one_data_line() {
        assert_eq!(text(data_lines("<p>hi</p>")), "data: <p>hi</p>\n\n");
    }

    #[test]
    fn every_line_gets_its_own_data_field() {
        assert_eq!(
            text(data_lines("a\nb\n\nc")),
            "data: a\ndata: b\ndata: \ndata: c\n\n"
        );
    }

    #[test]
    fn carriage_returns_are_removed() {
        assert_eq!(text(data_lines("a\r\nb\rc")), "data: a\ndata: bc\n\n");
    }

    #[test]
    fn named_message_has_event_line_first() {
        assert_eq!(
            text(message(Some("message"), "{}")),
            "event: message\ndata: {}\n\n"
        );
        assert_eq!(text(message(Some("x\ny"), "1")), "event: xy\ndata: 1\n\n");
        assert_eq!(text(message(None, "pong")), "data: pong\n\n");
    }

    /// One event as a browser's `EventSource` dispatches it.
    #[derive(Debug, PartialEq)]
    struct Event {
        kind: String,
        data: String,
        id: Option<String>,
    }

    /// The event stream interpretation of the WHATWG HTML standard (§9.2.6): lines end with
    /// CRLF, LF or CR; a blank line dispatches; `:` starts a comment; one space after the colon
    /// is dropped; an unfinished last line or event is discarded.
    fn whatwg(bytes: &[u8]) -> Vec<Event> {
        let text = String::from_utf8_lossy(bytes);
        let mut rest = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let (mut events, mut data, mut kind, mut last_id) =
            (Vec::new(), String::new(), String::new(), None);
        while let Some(end) = rest.find(['\r', '\n']) {
            let line = &rest[..end];
            let skip = if rest[end..].starts_with("\r\n") {
                2
            } else {
                1
            };
            rest = &rest[end + skip..];
            if line.is_empty() {
                if !data.is_empty() {
                    data.pop();
                    events.push(Event {
                        kind: if kind.is_empty() {
                            "message".to_string()
                        } else {
                            kind.clone()
                        },
                        data: std::mem::take(&mut data),
                        id: last_id.clone(),
                    });
                }
                kind.clear();
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line, ""),
            };
            match field {
                "event" => kind = value.to_string(),
                "data" => {
                    data.push_str(value);
                    data.push('\n');
                }
                "id" if !value.contains('\0') => last_id = Some(value.to_string()),
                _ => {}
            }
        }
        events
    }

    fn event(kind: &str, data: &str, id: Option<String>) -> Event {
        Event {
            kind: kind.to_string(),
            data: data.replace('\r', ""),
            id,
        }
    }

    /// Any text, with the characters that matter to SSE framing often among the others.
    fn any_text() -> impl Strategy<Value = String> {
        let special = prop::sample::select(vec!['\n', '\r', ':', ' ', '\0', '\u{feff}']);
        prop::collection::vec(prop_oneof![special, any::<char>()], 0..40)
            .prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn any_text_is_one_message_with_every_line_and_nothing_else(text in any_text()) {
            prop_assert_eq!(whatwg(&data_lines(&text)), vec![event("message", &text, None)]);
        }

        #[test]
        fn a_named_message_keeps_its_name_and_data(name in any_text(), text in any_text()) {
            let name_sent = name.replace(['\r', '\n'], "");
            let kind = if name_sent.is_empty() { "message" } else { &name_sent };
            prop_assert_eq!(
                whatwg(&message(Some(&name), &text)),
                vec![event(kind, &text, None)]
            );
        }

        #[test]
        fn messages_as_a_stream_writes_them_arrive_one_by_one_with_their_ids(
            texts in prop::collection::vec(any_text(), 1..5),
            epoch in any::<u64>(),
            private in any::<u64>(),
        ) {
            let mut wire = Vec::new();
            let mut expected = Vec::new();
            for (n, text) in texts.iter().enumerate() {
                let cursor = Cursor { epoch, broadcast: n as u64, private };
                put_message(&mut wire, cursor, &data_lines(text));
                expected.push(event("message", text, Some(cursor.to_string())));
            }
            prop_assert_eq!(whatwg(&wire), expected);
        }
    }
}
