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
}
