//! JSON events beside the page's HTML: page streams skip what shows on no page, and JSON
//! streams replay, filter and resync over the same sequence.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use super::*;

/// A socket that takes everything.
#[derive(Default)]
struct Wire(Mutex<Vec<u8>>);

impl Sink for Wire {
    fn fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }

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
    let mut live = hub.stream(me, None, Arc::new(NoRegions));
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
    let Park::Parked(parked) = Box::new(live).park(wire.clone()) else {
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

/// State that says which topics it was asked for and how often it was rendered.
#[derive(Default)]
struct Counted {
    renders: AtomicUsize,
    broken: bool,
}

impl JsonState for Counted {
    fn render(&self, topics: &[String]) -> BoxFuture<'static, Option<String>> {
        let n = self.renders.fetch_add(1, Ordering::SeqCst) + 1;
        let state = serde_json::json!({ "topics": topics, "render": n }).to_string();
        let broken = self.broken;
        Box::pin(async move { (!broken).then_some(state) })
    }
}

fn topics(names: &[&str]) -> Vec<String> {
    names.iter().map(|t| t.to_string()).collect()
}

/// `(id, event, data)` of each message in a chunk; comments are left out.
fn events(chunk: &str) -> Vec<(String, String, String)> {
    chunk
        .split("\n\n")
        .filter(|m| m.lines().any(|l| l.starts_with("data: ")))
        .map(|m| {
            let field = |name: &str| {
                m.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or("")
                    .to_string()
            };
            (field("id: "), field("event: "), field("data: "))
        })
        .collect()
}

async fn next(stream: &mut JsonStream) -> String {
    let chunk = tokio::time::timeout(Duration::from_secs(5), stream.next_chunk())
        .await
        .expect("a chunk in time")
        .expect("stream open");
    text(chunk)
}

#[tokio::test]
async fn a_new_json_stream_starts_with_the_state_of_its_topics_then_follows_live() {
    let hub = hub(16);
    publish(&hub, "<p>before</p>", Some(event("a", 0))).await;
    let state = Arc::new(Counted::default());
    let mut stream = hub.json_stream(topics(&["a", "b"]), None, state.clone());
    let first = next(&mut stream).await;
    assert!(first.starts_with("retry: 700\nid: "), "{first}");
    let opened = events(&first);
    assert_eq!(opened.len(), 1, "{first}");
    let (id, name, data) = &opened[0];
    assert_eq!(name, "resync");
    assert_eq!(data, r#"{"render":1,"topics":["a","b"]}"#);
    let id: Cursor = id.parse().unwrap();
    assert_eq!(
        (id.broadcast, id.private),
        (1, 0),
        "the state after entry 1"
    );

    publish(&hub, "<p>x</p>", Some(event("a", 1))).await;
    publish(&hub, "<p>y</p>", Some(event("c", 2))).await;
    publish(&hub, "<p>z</p>", None).await;
    publish(&hub, "", Some(event("b", 3))).await;
    let mut live = Vec::new();
    while live.len() < 2 {
        live.extend(events(&next(&mut stream).await));
    }
    let shown: Vec<(u64, &str, &str)> = live
        .iter()
        .map(|(id, name, data)| (id.parse::<Cursor>().unwrap().broadcast, &**name, &**data))
        .collect();
    assert_eq!(
        shown,
        [
            (2, "a.changed", r#"{"n":1}"#),
            (5, "b.changed", r#"{"n":3}"#)
        ],
        "only its topics, each once, with the cursor of its entry"
    );
    assert_eq!(state.renders.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_json_stream_replays_exactly_what_followed_its_cursor() {
    let hub = hub(16);
    let state = Arc::new(Counted::default());
    let mut first = hub.json_stream(topics(&["a"]), None, state.clone());
    next(&mut first).await;
    publish(&hub, "", Some(event("a", 1))).await;
    let seen = events(&next(&mut first).await);
    drop(first);
    for n in 2..=4 {
        publish(&hub, "<p>page</p>", Some(event("a", n))).await;
        publish(&hub, "<p>page</p>", Some(event("b", n))).await;
    }
    let mut again = hub.json_stream(topics(&["a"]), Some(&seen[0].0), state.clone());
    assert_eq!(next(&mut again).await, "retry: 700\n: connected\n\n");
    let replayed: Vec<String> = events(&next(&mut again).await)
        .into_iter()
        .map(|(_, _, data)| data)
        .collect();
    assert_eq!(replayed, [r#"{"n":2}"#, r#"{"n":3}"#, r#"{"n":4}"#]);
    assert_eq!(state.renders.load(Ordering::SeqCst), 1, "no resync");
    let quiet = tokio::time::timeout(Duration::from_millis(100), again.next_chunk()).await;
    assert!(quiet.is_err(), "nothing more: {quiet:?}");
}

#[tokio::test]
async fn a_cursor_history_no_longer_covers_or_cannot_use_gets_a_resync() {
    let hub = hub(4);
    let state = Arc::new(Counted::default());
    let mut stream = hub.json_stream(topics(&["a"]), None, state.clone());
    let cursor = events(&next(&mut stream).await)[0].0.clone();
    drop(stream);
    for n in 1..=6 {
        publish(&hub, "", Some(event("a", n))).await;
    }
    let foreign = Cursor {
        epoch: hub.inner.epoch ^ 1,
        broadcast: 6,
        private: 0,
    }
    .to_string();
    let ahead = Cursor {
        epoch: hub.inner.epoch,
        broadcast: 99,
        private: 0,
    }
    .to_string();
    for requested in [cursor.as_str(), "garbage", "", &foreign, &ahead] {
        let mut stream = hub.json_stream(topics(&["a"]), Some(requested), state.clone());
        let mut got = events(&next(&mut stream).await);
        if got.is_empty() {
            got = events(&next(&mut stream).await);
        }
        assert_eq!(got.len(), 1, "{requested:?}: {got:?}");
        assert_eq!(got[0].1, "resync", "{requested:?}");
        let id: Cursor = got[0].0.parse().unwrap();
        assert_eq!(id.broadcast, 6, "{requested:?}: the state now");
    }
    assert_eq!(state.renders.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn many_events_nobody_wants_do_not_stall_the_one_wanted() {
    let hub = hub(1024);
    let state = Arc::new(Counted::default());
    let mut stream = hub.json_stream(topics(&["a"]), None, state);
    next(&mut stream).await;
    for n in 0..600 {
        publish(&hub, "", Some(event("b", n))).await;
    }
    publish(&hub, "", Some(event("a", 1))).await;
    let got = events(&next(&mut stream).await);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "a.changed");
    assert_eq!(got[0].0.parse::<Cursor>().unwrap().broadcast, 601);
}

#[tokio::test]
async fn heartbeats_are_comments_with_the_cursor_and_close_ends_the_stream() {
    let limits = Limits {
        messages: 16,
        bytes: 1 << 20,
    };
    let hub = Hub::new(
        HubConfig {
            history: limits,
            client_history: limits,
            heartbeat: Duration::from_millis(50),
            retry: Duration::from_millis(700),
            client_idle: Duration::from_secs(3600),
        },
        || "page status".to_string(),
    );
    let mut stream = hub.json_stream(topics(&["a"]), None, Arc::new(Counted::default()));
    next(&mut stream).await;
    publish(&hub, "", Some(event("b", 1))).await;
    let beat = next(&mut stream).await;
    let id = Cursor {
        epoch: hub.inner.epoch,
        broadcast: 1,
        private: 0,
    };
    assert_eq!(beat, format!(": heartbeat\nid: {id}\n\n"));
    hub.close();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next_chunk()).await;
    assert_eq!(end.expect("ends in time"), None);
}

#[tokio::test]
async fn a_resync_that_cannot_read_the_state_ends_the_stream() {
    let hub = hub(16);
    let broken = Arc::new(Counted {
        broken: true,
        ..Counted::default()
    });
    let mut stream = hub.json_stream(topics(&["a"]), None, broken);
    let end = tokio::time::timeout(Duration::from_secs(5), stream.next_chunk()).await;
    assert_eq!(end.expect("ends in time"), None);
}
