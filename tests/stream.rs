//! The tab stream over real HTTP: cursors, replay, resync, restarts, ownership, shutdown.

mod common;

use std::time::Duration;

use common::{board_messages, spawn_app, spawn_app_with};
use hyper::{Method, StatusCode};

#[tokio::test]
async fn stream_has_sse_headers_and_starts_with_retry_and_status() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    let resp = client.request(Method::HEAD, &tab.stream_url, &[], "").await;
    assert_eq!(resp.header("cache-control"), "no-cache");
    assert_eq!(resp.header("x-accel-buffering"), "no");
    let mut stream = client.stream(&tab.stream_url).await;
    let first = stream.next().await.unwrap();
    assert_eq!(first.retry, Some(500));
    assert!(first.id.is_some());
    assert!(
        first.data.contains("connected · last heartbeat"),
        "{}",
        first.data
    );
}

#[tokio::test]
async fn reconnect_with_last_event_id_replays_exactly_the_missed_messages_once() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;
    client.get("/send?message=one").await;
    let seen = board_messages(&mut stream, 1).await;
    drop(stream);

    for m in ["two", "three", "four"] {
        client.get(&format!("/send?message={m}")).await;
    }
    // htmx reconnects to the same URL (the page's cursor stays in it); the header must win.
    let mut again = client
        .stream_with(&tab.stream_url, &[("last-event-id", &seen[0].0)])
        .await;
    let replayed = board_messages(&mut again, 3).await;
    let texts: Vec<&str> = replayed.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["two", "three", "four"]);
    again.expect_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_cursor_older_than_history_gets_a_resync() {
    // On PostgreSQL the event log replays what the hub forgot; keep it short as well.
    let app = spawn_app_with(|c| c.event_log.messages = 8).await;
    let client = app.client();
    let tab = client.open_tab().await;
    for i in 0..70 {
        client.get(&format!("/send?message=m{i}")).await;
    }
    let mut stream = client.stream(&tab.stream_url).await;
    let resync = stream.until("board-message").await;
    assert!(
        resync
            .data
            .contains(r##"hx-target="#board-message" hx-swap="innerHTML""##)
    );
    assert!(
        resync.data.contains("m69"),
        "the current state: {}",
        resync.data
    );
    assert!(
        resync.data.contains("#notifications-list"),
        "every broadcast region"
    );
    stream.expect_quiet(Duration::from_millis(300)).await;
}

/// Reads heartbeats until one says `tabs`.
async fn until_presence(stream: &mut common::Sse, tabs: &str) {
    stream
        .until(&format!(
            "hx-target=\"#presence\" hx-swap=\"innerHTML\">{tabs}<"
        ))
        .await;
}

#[tokio::test]
async fn the_page_shows_how_many_tabs_are_open_live() {
    let app = spawn_app().await;
    let browser = app.client();
    let first = browser.open_tab().await;
    let mut one = browser.stream(&first.stream_url).await;
    until_presence(&mut one, "1 tab open").await;
    let second = browser.open_tab().await;
    assert!(
        second.page.contains("1 tab open"),
        "the page shows the count"
    );
    let mut two = browser.stream(&second.stream_url).await;
    until_presence(&mut one, "2 tabs open").await;
    until_presence(&mut two, "2 tabs open").await;
    drop(two);
    until_presence(&mut one, "1 tab open").await;
}

#[tokio::test]
async fn a_message_published_between_page_and_stream_arrives() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    client.get("/send?message=in-between").await;
    let mut stream = client.stream(&tab.stream_url).await;
    let event = stream.until("board-message").await;
    assert!(event.data.contains("in-between"));
    assert!(!tab.page.contains("in-between"));
}

#[tokio::test]
async fn state_and_tabs_survive_a_restart() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    client.get("/send?message=durable").await;
    let note = r#"{"type":"success","title":"Kept","body":"across restarts"}"#;
    assert_eq!(
        client.post_json("/send-notification", note).await.status,
        StatusCode::CREATED
    );
    let mut stream = client.stream(&tab.stream_url).await;
    let last_id = stream.until("Kept").await.id.unwrap();

    let app = app.restart().await;
    assert!(
        stream
            .next_within(Duration::from_secs(5))
            .await
            .unwrap()
            .is_none(),
        "closed cleanly"
    );

    let page = client.open_tab().await.page;
    assert!(
        page.contains("durable") && page.contains("across restarts"),
        "{page}"
    );
    // The old tab reconnects with its old id: same owner, so not a 404. On SQLite its cursor
    // is from another run of the hub: a resync. On PostgreSQL the cursor is the shared log's,
    // which outlives any instance: it missed nothing, so nothing is resent, and it goes on live.
    let mut back = client
        .stream_with(&tab.stream_url, &[("last-event-id", &last_id)])
        .await;
    let first = back.next().await.unwrap();
    if common::pg::selected() {
        assert!(!first.data.contains("Kept"), "{}", first.data);
        client.get("/send?message=after-the-restart").await;
        back.until("after-the-restart").await;
    } else {
        assert!(
            first.data.contains("durable") && first.data.contains("Kept"),
            "{}",
            first.data
        );
    }
    drop(app);
}

#[tokio::test]
async fn client_ids_belong_to_their_session() {
    let app = spawn_app().await;
    let (alice, mallory) = (app.client(), app.client());
    let tab = alice.open_tab().await;
    mallory.get("/").await;
    let stolen = mallory.request(Method::GET, &tab.stream_url, &[], "").await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND);

    let malformed = alice.get("/sse/not-a-uuid").await;
    assert_eq!(malformed.status, StatusCode::NOT_FOUND);
    assert!(
        malformed.json()["error"]
            .as_str()
            .unwrap()
            .contains("malformed client id")
    );

    // A well-formed id nobody holds is claimed by the first session to use it, even one
    // without a cookie yet (the original API), which then gets one.
    let api = app.client();
    let id = "6f1c1d2e-8a43-4c55-9a0e-2b8f0b7f1a11";
    let mut claimed = api.stream(&format!("/sse/{id}")).await;
    assert!(claimed.next().await.is_some());
    let other = alice
        .request(Method::GET, &format!("/sse/{id}"), &[], "")
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn shutdown_ends_streams_with_a_complete_body() {
    let mut app = spawn_app_with(|c| c.hub.heartbeat = Duration::from_secs(1)).await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;
    let mut events = client.stream("/event").await;
    let mut ping = client.stream("/ping").await;
    stream.next().await.unwrap();
    app.stop().await;
    for s in [&mut stream, &mut events, &mut ping] {
        while s.next().await.is_some() {}
        assert!(s.ended);
    }
}

/// The stream write path's counters in `GET /metrics`, which herald-load reads to report the
/// writes a message costs. They are process-wide and other tests run beside this one, so only
/// lower bounds hold.
#[tokio::test]
async fn metrics_count_the_bytes_written_to_streams_and_their_hand_backs() {
    let mut app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;
    stream.next().await.unwrap();
    let counter = |text: &str, name: &str| {
        let series = format!("herald_{name}_total");
        common::sample(text, &series).unwrap_or_else(|| panic!("no {series} in {text}"))
    };
    let before = app.metrics().await;
    let mut framed = 0;
    for i in 0..3 {
        client.get(&format!("/send?message=m{i}")).await;
        stream.until(&format!(">m{i}<")).await;
        framed += stream.last_frame.len() as u64;
    }
    let after = app.metrics().await;
    let grew = |name| counter(&after, name) - counter(&before, name);
    assert!(
        grew("stream_write_bytes") >= framed as f64,
        "{before} -> {after}"
    );
    assert!(grew("stream_fanout_writes") + grew("stream_task_writes") >= 1.0);
    for name in [
        "stream_partial_writes",
        "stream_blocked_writes",
        "response_writes",
    ] {
        counter(&after, name);
    }

    let hand_backs = herald::hub::stats::STATS.counts().hand_backs;
    app.stop().await;
    while stream.next().await.is_some() {}
    assert!(
        herald::hub::stats::STATS.counts().hand_backs > hand_backs,
        "closing hands every parked stream back to its task"
    );
}
