//! The JSON event stream (`GET /api/stream`) over real HTTP: each event type once with the
//! JSON the REST API answers, topics, replay after a disconnect, resync when history is
//! exceeded or the cursor is useless, and the same order as the page's stream.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Client, Event, Sse, spawn_app, spawn_app_with};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

const TOPICS: [&str; 4] = ["offers", "notifications", "board", "jobs"];

async fn api_stream(client: &Client, query: &str, headers: &[(&str, &str)]) -> Sse {
    client
        .stream_with(&format!("/api/stream{query}"), headers)
        .await
}

/// The next named event (comments and the opening `retry:` are skipped).
async fn next_event(stream: &mut Sse) -> Event {
    loop {
        let event = stream.next().await.expect("stream still open");
        if event.event.is_some() {
            return event;
        }
        assert!(
            event.data.is_empty(),
            "every message with data is named: {event:?}"
        );
    }
}

fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data)
        .unwrap_or_else(|e| panic!("data is not JSON ({e}): {}", event.data))
}

fn name(event: &Event) -> &str {
    event.event.as_deref().unwrap_or("")
}

/// The broadcast sequence number in a cursor (`epoch-broadcast-private`).
fn seq(event: &Event) -> u64 {
    let id = event.id.as_deref().expect("an id");
    id.split('-').nth(1).unwrap().parse().unwrap()
}

/// Times change from run to run: `*_at` fields become `"[ms]"`.
fn stable(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if k.ends_with("_at") && v.is_i64() {
                        json!("[ms]")
                    } else {
                        stable(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(stable).collect()),
        other => other,
    }
}

/// An event as a snapshot shows it: its name, then its data, pretty.
fn shown(event: &Event) -> String {
    let pretty = serde_json::to_string_pretty(&stable(data(event))).unwrap();
    format!("event: {}\n{pretty}", name(event))
}

async fn post(client: &Client, path: &str, json: Value) -> Value {
    let resp = client.post_json(path, &json.to_string()).await;
    assert!(
        resp.status.is_success(),
        "{path}: {} {}",
        resp.status,
        resp.body
    );
    resp.json()
}

async fn request(client: &Client, method: Method, path: &str, json: Option<Value>) -> Value {
    let headers = [("content-type", "application/json")];
    let body = json.map(|j| j.to_string()).unwrap_or_default();
    let resp = client.request(method, path, &headers, body).await;
    assert!(
        resp.status.is_success(),
        "{path}: {} {}",
        resp.status,
        resp.body
    );
    resp.json()
}

#[tokio::test]
async fn each_event_type_arrives_once_with_the_json_the_rest_api_answers() {
    let app = spawn_app().await;
    let client = app.client();
    let mut stream = api_stream(&client, "", &[]).await;
    let resync = next_event(&mut stream).await;
    assert_eq!(name(&resync), "resync");
    insta::assert_snapshot!("resync_empty", shown(&resync));

    let seed = json!({"id": 1, "description": "Special <b>Offer</b>", "value": 1000000});
    let created = post(&client, "/offers", seed).await;
    let event = next_event(&mut stream).await;
    assert_eq!((name(&event), data(&event)), ("offer.created", created));
    insta::assert_snapshot!("offer_created", shown(&event));

    let change = json!({"description": "Special Offer, now cheaper", "value": 999.99});
    let updated = request(&client, Method::PUT, "/offers/1", Some(change)).await;
    let event = next_event(&mut stream).await;
    assert_eq!((name(&event), data(&event)), ("offer.updated", updated));
    insta::assert_snapshot!("offer_updated", shown(&event));

    let deleted = request(&client, Method::DELETE, "/offers/1", None).await;
    let event = next_event(&mut stream).await;
    assert_eq!((name(&event), data(&event)), ("offer.deleted", deleted));
    insta::assert_snapshot!("offer_deleted", shown(&event));

    // The page's forms publish the same events.
    let form = [("description", "From the form"), ("value", "2,500.75")];
    let resp = client.post_form("/offers", &form).await;
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    let event = next_event(&mut stream).await;
    assert_eq!(name(&event), "offer.created");
    let stored = client.get("/offers").await.json()["offers"][0].clone();
    assert_eq!(data(&event), stored);
    assert_eq!(stored["description"], "From the form");

    let note = json!({"type": "warning", "title": "Disk <i>full</i>", "body": "3% left"});
    let sent = post(&client, "/send-notification", note).await;
    let event = next_event(&mut stream).await;
    assert_eq!((name(&event), data(&event)), ("notification.created", sent));
    insta::assert_snapshot!("notification_created", shown(&event));

    let resp = client
        .post_form("/send", &[("message", "Lunch is <b>served</b>")])
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    let event = next_event(&mut stream).await;
    assert_eq!(name(&event), "board.message");
    let message = data(&event);
    assert_eq!(
        message["message"], "Lunch is <b>served</b>",
        "JSON, not HTML"
    );
    let echoed = post(&client, "/send", json!({"message": "again"})).await;
    let event = next_event(&mut stream).await;
    assert_eq!((name(&event), data(&event)), ("board.message", echoed));
    insta::assert_snapshot!("board_message", shown(&event));

    let job = post(&client, "/jobs", json!({"total": 3, "interval_ms": 20})).await;
    let event = next_event(&mut stream).await;
    assert_eq!((name(&event), data(&event)), ("job.created", job.clone()));
    insta::assert_snapshot!("job_created", shown(&event));
    let mut states = Vec::new();
    let last = loop {
        let event = next_event(&mut stream).await;
        assert_eq!(name(&event), "job.updated", "{event:?}");
        let job = data(&event);
        if states.is_empty() {
            insta::assert_snapshot!("job_updated", shown(&event));
        }
        states.push(job["state"].as_str().unwrap().to_string());
        if job["state"] == "done" {
            break job;
        }
    };
    assert_eq!(states.first().map(String::as_str), Some("running"));
    assert!(
        states[..states.len() - 1].iter().all(|s| s == "running"),
        "{states:?}"
    );
    let id = job["id"].as_i64().unwrap();
    assert_eq!(last, client.get(&format!("/jobs/{id}")).await.json());

    let long = post(
        &client,
        "/jobs",
        json!({"total": 1000, "interval_ms": 10000}),
    )
    .await;
    assert_eq!(name(&next_event(&mut stream).await), "job.created");
    let long_id = long["id"].as_i64().unwrap();
    let running = next_event(&mut stream).await;
    assert_eq!(data(&running)["state"], "running");
    let cancelled = post(&client, &format!("/jobs/{long_id}/cancel"), json!({})).await;
    let event = next_event(&mut stream).await;
    assert_eq!((name(&event), data(&event)), ("job.updated", cancelled));

    // Nothing twice, nothing more.
    stream.expect_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_stream_gets_only_the_topics_it_asked_for() {
    let app = spawn_app().await;
    let client = app.client();
    let mut board_and_jobs = api_stream(&client, "?topics=board,jobs", &[]).await;
    let mut offers = api_stream(&client, "?topics=offers", &[]).await;
    let resync = data(&next_event(&mut board_and_jobs).await);
    let keys: Vec<&String> = resync.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["board", "jobs"]);
    let resync = data(&next_event(&mut offers).await);
    assert_eq!(resync.as_object().unwrap().len(), 1);

    post(&client, "/offers", json!({"description": "A", "value": 1})).await;
    let note = json!({"type": "info", "title": "T", "body": "B"});
    post(&client, "/send-notification", note).await;
    post(&client, "/send", json!({"message": "for board"})).await;

    let event = next_event(&mut board_and_jobs).await;
    assert_eq!(name(&event), "board.message");
    assert_eq!(data(&event)["message"], "for board");
    board_and_jobs
        .expect_quiet(Duration::from_millis(200))
        .await;
    assert_eq!(name(&next_event(&mut offers).await), "offer.created");
    offers.expect_quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn an_unknown_topic_is_a_400_with_the_valid_ones() {
    let app = spawn_app().await;
    let client = app.client();
    for query in ["?topics=offers,prices", "?topics=", "?topics=OFFERS"] {
        let resp = client.get(&format!("/api/stream{query}")).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(resp.header("content-type"), "application/json");
        let body = resp.json();
        assert_eq!(body["field"], "topics");
        assert_eq!(body["topics"], json!(TOPICS));
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("offers, notifications, board, jobs"),
            "{error}"
        );
    }
    let resp = client.get("/api/stream?topics=offers,prices").await;
    assert!(
        resp.json()["error"]
            .as_str()
            .unwrap()
            .contains("\"prices\"")
    );
}

/// Six changes on three topics while the client is away; it asked for two of them.
async fn changes_while_away(client: &Client) -> Vec<(String, Value)> {
    let mut made = Vec::new();
    for n in 0..2 {
        let offer = post(
            client,
            "/offers",
            json!({"description": format!("o{n}"), "value": n}),
        )
        .await;
        made.push(("offer.created".to_string(), offer));
        let note = json!({"type": "info", "title": format!("t{n}"), "body": "b"});
        post(client, "/send-notification", note).await;
        let message = post(client, "/send", json!({"message": format!("m{n}")})).await;
        made.push(("board.message".to_string(), message));
    }
    made
}

#[tokio::test]
async fn a_reconnect_replays_exactly_what_was_missed_once_and_in_order() {
    let app = spawn_app().await;
    let client = app.client();
    let query = "?topics=offers,board";
    let mut stream = api_stream(&client, query, &[]).await;
    next_event(&mut stream).await;
    post(&client, "/send", json!({"message": "seen"})).await;
    let seen = next_event(&mut stream).await;
    drop(stream);
    let missed = changes_while_away(&client).await;

    let last_id = seen.id.clone().unwrap();
    // `Last-Event-ID` (what EventSource sends) wins over a `?cursor=` left in the URL.
    let with_header = format!("{query}&cursor=garbage");
    let by_header = [("last-event-id", last_id.as_str())];
    let by_query = format!("{query}&cursor={last_id}");
    for (path, headers) in [(with_header.as_str(), &by_header[..]), (&by_query, &[])] {
        let mut again = api_stream(&client, path, headers).await;
        let first = again.next().await.unwrap();
        assert_eq!(first.retry, Some(500), "{first:?}");
        let mut replayed = Vec::new();
        for _ in 0..missed.len() {
            let event = next_event(&mut again).await;
            assert!(seq(&event) > seq(&seen), "{event:?}");
            replayed.push((name(&event).to_string(), data(&event)));
        }
        assert_eq!(replayed, missed, "{path}");
        again.expect_quiet(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_cursor_history_no_longer_covers_gets_the_current_state_then_live() {
    // On PostgreSQL the events table would replay it (tests/scale.rs): keep 8 events there.
    let app = spawn_app_with(|c| c.event_log.messages = 8).await;
    let client = app.client();
    let mut stream = api_stream(&client, "", &[]).await;
    let opened = next_event(&mut stream).await;
    drop(stream);
    post(
        &client,
        "/offers",
        json!({"description": "kept", "value": 5}),
    )
    .await;
    let note = json!({"type": "success", "title": "recent", "body": "b"});
    let sent = post(&client, "/send-notification", note).await;
    let job = post(
        &client,
        "/jobs",
        json!({"total": 1000, "interval_ms": 10000}),
    )
    .await;
    let done = post(&client, "/jobs", json!({"total": 1, "interval_ms": 1})).await;
    // The test configuration keeps 64 broadcast messages.
    for n in 0..70 {
        post(&client, "/send", json!({"message": format!("m{n}")})).await;
    }
    for (job, state) in [(&done, "done"), (&job, "running")] {
        let path = format!("/jobs/{}", job["id"]);
        while client.get(&path).await.json()["state"] != state {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let old = opened.id.unwrap();
    let mut again = api_stream(&client, "", &[("last-event-id", &old)]).await;
    let resync = next_event(&mut again).await;
    assert_eq!(name(&resync), "resync");
    let state = data(&resync);
    assert_eq!(state["offers"], client.get("/offers").await.json());
    assert_eq!(state["notifications"], json!([sent]));
    assert_eq!(state["board"]["message"], "m69");
    let active = &state["jobs"];
    assert_eq!(active.as_array().unwrap().len(), 1, "{active}");
    assert_eq!(active[0]["id"], job["id"]);
    assert_eq!(active[0]["state"], "running");
    insta::assert_snapshot!("resync", shown(&resync));

    post(&client, "/send", json!({"message": "live"})).await;
    let event = next_event(&mut again).await;
    assert_eq!(name(&event), "board.message");
    assert_eq!(data(&event)["message"], "live");
    assert_eq!(seq(&event), seq(&resync) + 1, "nothing between the two");
}

#[tokio::test]
async fn a_malformed_or_foreign_cursor_gets_a_resync_never_an_error() {
    let app = spawn_app().await;
    let client = app.client();
    post(&client, "/send", json!({"message": "now"})).await;
    for cursor in [
        "garbage",
        "ffff-1-0",
        "1-2-3-4",
        "%00",
        "-1--1",
        "99999999999999999999",
    ] {
        let mut stream = api_stream(&client, &format!("?cursor={cursor}"), &[]).await;
        let event = next_event(&mut stream).await;
        assert_eq!(name(&event), "resync", "{cursor}");
        assert_eq!(data(&event)["board"]["message"], "now", "{cursor}");
    }
    let header = [("last-event-id", "not a cursor")];
    let mut stream = api_stream(&client, "", &header).await;
    assert_eq!(name(&next_event(&mut stream).await), "resync");
}

#[tokio::test]
async fn heartbeats_are_comments_that_carry_the_cursor() {
    let app = spawn_app_with(|c| c.hub.heartbeat = Duration::from_millis(200)).await;
    let client = app.client();
    let mut stream = api_stream(&client, "?topics=jobs", &[]).await;
    let opened = next_event(&mut stream).await;
    post(&client, "/send", json!({"message": "not for jobs"})).await;
    let beat = loop {
        let event = stream.next().await.unwrap();
        if event.comment {
            break event;
        }
    };
    assert!(beat.data.is_empty() && beat.event.is_none(), "{beat:?}");
    assert!(
        stream.last_frame.starts_with(": heartbeat\n"),
        "{}",
        stream.last_frame
    );
    assert_eq!(
        seq(&beat),
        seq(&opened) + 1,
        "past the board message it skipped"
    );
}

/// Reads the tab stream's messages with data until one has broadcast sequence `last`:
/// `(seq, html)` of each.
async fn page_messages_until(stream: &mut Sse, last: u64) -> BTreeMap<u64, String> {
    let mut got = BTreeMap::new();
    loop {
        let event = stream.next_data().await;
        if event.id.is_none() || event.data.contains("connected · last heartbeat") {
            continue;
        }
        let s = seq(&event);
        got.insert(s, event.data);
        if s >= last {
            return got;
        }
    }
}

#[tokio::test]
async fn the_page_stream_and_the_api_stream_agree_on_the_order_of_100_mixed_changes() {
    let app = spawn_app_with(|c| c.hub.history.messages = 512).await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut page = client.stream(&tab.stream_url).await;
    page.next_data().await;
    let mut api = api_stream(&client, "?topics=offers,notifications,board", &[]).await;
    next_event(&mut api).await;
    // Offers 1-20 to delete, 21-40 to replace.
    for id in 1..=40 {
        let offer = json!({"id": id, "description": format!("[seed{id}]"), "value": id});
        post(&client, "/offers", offer).await;
    }

    // Four writers at once, so the order is the hub's to decide.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let client = app.client();
            tokio::spawn(async move {
                for i in 0..25 {
                    let n = w * 25 + i;
                    let key = format!("[k{n}]");
                    let (method, path, body) = match n % 5 {
                        0 => (Method::POST, "/send".to_string(), json!({"message": key})),
                        1 => (
                            Method::POST,
                            "/send-notification".to_string(),
                            json!({"type": "info", "title": key, "body": "b"}),
                        ),
                        2 => (
                            Method::POST,
                            "/offers".to_string(),
                            json!({"description": key, "value": n}),
                        ),
                        3 => (
                            Method::PUT,
                            format!("/offers/{}", 21 + n / 5),
                            json!({"description": key, "value": n}),
                        ),
                        _ => (
                            Method::DELETE,
                            format!("/offers/{}", 1 + n / 5),
                            json!(null),
                        ),
                    };
                    let body = (!body.is_null()).then_some(body);
                    request(&client, method, &path, body).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }

    let mut events = Vec::new();
    while events.len() < 140 {
        events.push(next_event(&mut api).await);
    }
    api.expect_quiet(Duration::from_millis(200)).await;
    let html = page_messages_until(&mut page, seq(events.last().unwrap())).await;
    let api_seqs: Vec<u64> = events.iter().map(seq).collect();
    let page_seqs: Vec<u64> = html.keys().copied().collect();
    assert_eq!(api_seqs, page_seqs, "one sequence for both renderings");
    for event in &events {
        let json = data(event);
        let key = match name(event) {
            "board.message" => json["message"].as_str().unwrap().to_string(),
            "notification.created" => json["title"].as_str().unwrap().to_string(),
            "offer.deleted" => format!("#offer-{}\"", json["id"]),
            _ => json["description"].as_str().unwrap().to_string(),
        };
        let page_html = &html[&seq(event)];
        assert!(
            page_html.contains(&key),
            "{} {key} at {} but the page has: {page_html}",
            name(event),
            seq(event)
        );
    }
    let count = |n: &str| events.iter().filter(|e| name(e) == n).count();
    assert_eq!(
        [
            count("offer.created"),
            count("offer.updated"),
            count("offer.deleted"),
            count("notification.created"),
            count("board.message")
        ],
        [60, 20, 20, 20, 20]
    );
}
