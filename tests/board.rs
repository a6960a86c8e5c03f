//! Message board over real HTTP: the page's form, the original `GET /send` API, and `/event`.

mod common;

use std::time::Duration;

use common::{WAIT, spawn_app};
use hyper::StatusCode;

#[tokio::test]
async fn a_message_reaches_every_open_tab() {
    let app = spawn_app().await;
    let (alice, bob) = (app.client(), app.client());
    let (a, b) = (alice.open_tab().await, bob.open_tab().await);
    let mut a_stream = alice.stream(&a.stream_url).await;
    let mut b_stream = bob.stream(&b.stream_url).await;

    let resp = alice
        .post_form("/send", &[("message", "Lunch is <b>served</b>")])
        .await;
    assert_eq!(resp.status, StatusCode::OK);
    assert!(
        resp.body.contains("Posted to every open page"),
        "{}",
        resp.body
    );

    for stream in [&mut a_stream, &mut b_stream] {
        let event = stream.until("board-message").await;
        assert!(
            event
                .data
                .contains("Lunch is &#60;b&#62;served&#60;/b&#62;"),
            "{}",
            event.data
        );
        assert!(
            !event.data.contains("<b>"),
            "user HTML must be escaped: {}",
            event.data
        );
        assert!(event.id.is_some());
    }
}

#[tokio::test]
async fn the_original_get_api_answers_with_its_json_echo() {
    let app = spawn_app().await;
    let client = app.client();
    let resp = client.get("/send?message=hello%20there&x=1").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(
        resp.json(),
        serde_json::json!({"query": {"message": "hello there", "x": "1"}, "body": {}, "pathname": "/send"})
    );
    let page = client.open_tab().await.page;
    assert!(
        page.contains("hello there"),
        "the page renders the current message"
    );
}

#[tokio::test]
async fn bad_messages_are_refused_and_keep_the_old_one() {
    let app = spawn_app().await;
    let client = app.client();
    assert_eq!(
        client.get("/send?message=first").await.status,
        StatusCode::OK
    );

    let empty = client.get("/send?message=%20%20").await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.json()["field"], "message");

    let long = "x".repeat(101);
    let resp = client.get(&format!("/send?message={long}")).await;
    assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        resp.json()["error"]
            .as_str()
            .unwrap()
            .contains("limit is 100")
    );

    let form = client.post_form("/send", &[("message", "")]).await;
    assert_eq!(form.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        form.body.contains("message must not be empty"),
        "inline error: {}",
        form.body
    );
    assert!(
        form.body.contains("<form"),
        "the form comes back to be swapped in"
    );

    let broken = client.post_json("/send", "{\"message\": ").await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert!(broken.json()["error"].is_string());

    let page = client.open_tab().await.page;
    assert!(page.contains("first"), "nothing half-written");
}

#[tokio::test]
async fn event_streams_the_current_message_every_second() {
    let app = spawn_app().await;
    let client = app.client();
    client.get("/send?message=tick").await;
    let mut events = client.stream("/event").await;
    let start = tokio::time::Instant::now();
    let mut stamps = Vec::new();
    for _ in 0..3 {
        let e = events.next().await.unwrap();
        assert_eq!(e.event.as_deref(), Some("message"));
        let json: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(json["message"], "tick");
        assert!(json["timestamp"].as_str().unwrap().ends_with('Z'));
        stamps.push(start.elapsed());
    }
    // Three messages: at once, after ~1 s and after ~2 s.
    assert!(stamps[2] >= Duration::from_millis(1900), "{stamps:?}");
    assert!(stamps[2] < WAIT, "{stamps:?}");
}
