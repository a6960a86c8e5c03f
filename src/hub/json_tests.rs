//! JSON events beside the page's HTML: page streams skip what shows on no page, and JSON
//! streams replay, filter and resync over the same sequence.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use super::*;

struct Nothing;

impl Regions for Nothing {
    fn broadcast(&self) -> BoxFuture<'static, Vec<Region>> {
        Box::pin(async { Vec::new() })
    }
    fn private(&self, _: ClientId) -> BoxFuture<'static, Vec<Region>> {
        Box::pin(async { Vec::new() })
    }
}

/// A socket that takes everything.
#[derive(Default)]
struct Wire(Mutex<Vec<u8>>);

impl Sink for Wire {
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
}

impl Wire {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

fn hub(history: usize) -> Hub {
    let limits = Limits {
        messages: history,
        bytes: 1 << 20,
    };
    let config = HubConfig {
        history: limits,
        client_history: limits,
        heartbeat: Duration::from_secs(3600),
        retry: Duration::from_millis(700),
        client_idle: Duration::from_secs(3600),
    };
    Hub::new(config, || "beat".to_string())
}

fn event(topic: &str, n: u32) -> JsonEvent {
    JsonEvent::new(
        topic,
        &format!("{topic}.changed"),
        &serde_json::json!({ "n": n }),
    )
}

async fn publish(hub: &Hub, html: &str, json: Option<JsonEvent>) -> u64 {
    hub.change().await.append(Outgoing {
        audience: Audience::Everyone,
        html: html.to_string(),
        json,
    })
}

fn text(chunk: Bytes) -> String {
    String::from_utf8(chunk.to_vec()).unwrap()
}

#[tokio::test]
async fn a_page_stream_skips_what_shows_on_no_page_and_keeps_its_place() {
    let hub = hub(16);
    let me = ClientId(Uuid::new_v4());
    let mut live = hub.stream(me, None, Arc::new(Nothing));
    assert!(matches!(live.due().await, Due::Chunk(_)), "first message");
    publish(&hub, "", Some(event("t", 1))).await;
    publish(&hub, "<p>shown</p>", Some(event("t", 2))).await;
    let Due::Chunk(chunk) = live.due().await else {
        panic!("the shown message is due");
    };
    let chunk = text(chunk);
    assert!(chunk.starts_with("id: "), "{chunk}");
    assert_eq!(chunk.lines().filter(|l| l.starts_with("id: ")).count(), 1);
    let id: Cursor = chunk.lines().next().unwrap()[4..].parse().unwrap();
    assert_eq!(id.broadcast, 2);
    assert!(chunk.ends_with("data: <p>shown</p>\n\n"), "{chunk}");
    assert!(!chunk.contains("event:"), "{chunk}");

    // Parked, the fan-out writes nothing for a JSON event alone but moves the cursor past it.
    assert!(matches!(live.due().await, Due::CaughtUp));
    let wire = Arc::new(Wire::default());
    let Park::Parked(parked) = live.park(wire.clone()) else {
        panic!("a caught-up stream parks");
    };
    publish(&hub, "", Some(event("t", 3))).await;
    publish(&hub, "<p>next</p>", None).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !wire.text().contains("next") {
        assert!(tokio::time::Instant::now() < deadline, "never written");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let written = wire.text();
    assert_eq!(written.matches("id: ").count(), 1, "{written}");
    let id: Cursor = written.lines().next().unwrap()[4..].parse().unwrap();
    assert_eq!(id.broadcast, 4);
    publish(&hub, "", Some(event("t", 5))).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (mut live, unwritten) = parked.resume();
    assert!(unwritten.is_empty());
    assert_eq!(wire.text(), written, "nothing written for the JSON event");
    assert!(matches!(live.due().await, Due::CaughtUp), "past it already");
}
