//! A change's second rendering: a typed JSON event for streams that are not a page
//! (`GET /api/stream`), published in the same log entry as the change's HTML.
//!
//! An event has a topic (what a stream subscribes to), a name (`offer.created`) and JSON data,
//! serialized once when the change is made and framed once as `event:` and `data:` lines; every
//! stream that wants it writes the same bytes behind its own `id:` line.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use serde::Serialize;

use super::pack::Packer;

const EVENT: &[u8] = b"event: ";
const DATA: &[u8] = b"\ndata: ";

/// One change as a JSON stream sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonEvent {
    /// The topic, then the frame `event: <name>\ndata: <json>\n\n` (the JSON is always one
    /// line): one buffer, so that the history packs an event whole (`pack.rs`).
    bytes: Bytes,
    topic_len: usize,
}

impl JsonEvent {
    /// Serializes `data` (once: every stream shares the result).
    pub fn new(topic: &str, name: &str, data: &impl Serialize) -> JsonEvent {
        let json = serde_json::to_string(data).expect("event data serializes to JSON");
        JsonEvent::from_json(topic, name, &json)
    }

    /// An event whose data is serialized already (a stored one). Line breaks, which JSON only
    /// has as whitespace, become spaces so that the data is one `data:` line; a name cannot
    /// hold one.
    pub fn from_json(topic: &str, name: &str, json: &str) -> JsonEvent {
        let name = name.replace(['\r', '\n'], "");
        let mut frame = BytesMut::with_capacity(
            topic.len() + EVENT.len() + name.len() + DATA.len() + json.len() + 2,
        );
        frame.put_slice(topic.as_bytes());
        frame.put_slice(EVENT);
        frame.put_slice(name.as_bytes());
        frame.put_slice(DATA);
        for b in json.bytes() {
            frame.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        frame.put_slice(b"\n\n");
        JsonEvent {
            bytes: frame.freeze(),
            topic_len: topic.len(),
        }
    }

    /// The same event, its bytes copied into the packer's chunk.
    pub(super) fn packed(&self, packer: &mut Packer) -> JsonEvent {
        JsonEvent {
            bytes: packer.pack(&self.bytes),
            topic_len: self.topic_len,
        }
    }

    pub fn topic(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.topic_len]).expect("built from a string")
    }

    /// `offer.created`, as in the frame's `event:` line.
    pub fn name(&self) -> &str {
        let (name, _) = self.parts();
        name
    }

    /// The JSON, as in the frame's `data:` line.
    pub fn data(&self) -> &str {
        let (_, data) = self.parts();
        data
    }

    /// The event as a stream writes it, after its `id:` line.
    pub fn frame(&self) -> &[u8] {
        &self.bytes[self.topic_len..]
    }

    fn parts(&self) -> (&str, &str) {
        // Built by `from_json` from two strings around ASCII separators.
        let text = std::str::from_utf8(self.frame()).expect("built from strings");
        let body = &text[EVENT.len()..text.len() - 2];
        let split = body.find('\n').expect("a data line follows the name");
        (&body[..split], &body[split + DATA.len()..])
    }
}

impl fmt::Debug for JsonEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonEvent")
            .field("topic", &self.topic())
            .field("name", &self.name())
            .field("data", &self.data())
            .finish()
    }
}

/// The application's current state as JSON, for a stream that must resync.
pub trait JsonState: Send + Sync + 'static {
    /// One JSON object with the current state of each of `topics`, keyed by topic; `None` when
    /// it cannot be read now (the stream ends, and its client reconnects and tries again).
    fn render(&self, topics: &[String]) -> BoxFuture<'static, Option<String>>;
    /// On a shared log: the state and the log position it is at, read together. Only a hub
    /// made with `Hub::shared` asks.
    fn positioned(&self, topics: &[String]) -> BoxFuture<'static, Option<(String, u64)>> {
        let _ = topics;
        Box::pin(async { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_once_and_framed_as_one_named_message() {
        let event = JsonEvent::new("offers", "offer.created", &serde_json::json!({"id": 7}));
        assert_eq!(event.frame(), b"event: offer.created\ndata: {\"id\":7}\n\n");
        assert_eq!(
            (event.topic(), event.name(), event.data()),
            ("offers", "offer.created", "{\"id\":7}")
        );
    }

    #[test]
    fn stored_json_stays_one_data_line() {
        let event = JsonEvent::from_json("board", "board\n.message", "{\r\n \"a\": \"x\\ny\"\n}");
        assert_eq!(
            event.frame(),
            b"event: board.message\ndata: {   \"a\": \"x\\ny\" }\n\n"
        );
        assert_eq!(event.name(), "board.message");
        let back: serde_json::Value = serde_json::from_str(event.data()).unwrap();
        assert_eq!(back["a"], "x\ny");
    }
}
