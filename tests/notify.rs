//! Notifications over real HTTP: broadcast toasts, the durable recent list, `/ping`, bad input.

mod common;

use std::time::Duration;

use common::regions::region_html;
use common::spawn_app;
use hyper::{Method, StatusCode};

#[tokio::test]
async fn a_notification_reaches_every_tab_as_an_escaped_toast() {
    let app = spawn_app().await;
    let (alice, bob) = (app.client(), app.client());
    let mut a = alice.stream(&alice.open_tab().await.stream_url).await;
    let mut b = bob.stream(&bob.open_tab().await.stream_url).await;

    let form = alice
        .post_form(
            "/send-notification",
            &[
                ("type", "error"),
                ("title", "<script>alert(1)</script>"),
                ("body", "Disk & \"full\""),
            ],
        )
        .await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.body.contains("Sent to every open page"),
        "{}",
        form.body
    );

    for stream in [&mut a, &mut b] {
        let e = stream.until("toast").await;
        assert!(
            e.data
                .contains(r##"hx-target="#toasts" hx-swap="beforeend""##)
        );
        assert!(e.data.contains("toast toast-error"));
        assert!(
            e.data.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
            "{}",
            e.data
        );
        assert!(!e.data.contains("<script>"));
        assert!(e.data.contains("Disk &#38; &#34;full&#34;"), "{}", e.data);
        assert!(e.data.contains(concat!(
            r##"<hx-partial hx-target="#notifications-list" hx-swap="afterbegin">"##,
            r##"<li id="note-1" class="note note-error">"##
        )));
        assert_eq!(e.data.matches("<li ").count(), 1, "one entry, not the list");
    }
}

#[tokio::test]
async fn json_api_creates_and_answers_with_the_stored_notification() {
    let app = spawn_app().await;
    let client = app.client();
    let resp = client
        .post_json(
            "/send-notification",
            r#"{"type":"info","title":"Deploy","body":"v2 is out"}"#,
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED);
    let json = resp.json();
    assert_eq!(json["type"], "info");
    assert_eq!(json["title"], "Deploy");
    assert!(json["id"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn the_recent_list_keeps_the_newest_twenty() {
    let app = spawn_app().await;
    let client = app.client();
    for i in 0..22 {
        let body = format!(r#"{{"type":"info","title":"n{i:02}","body":"b"}}"#);
        assert_eq!(
            client.post_json("/send-notification", &body).await.status,
            StatusCode::CREATED
        );
    }
    let page = client.open_tab().await.page;
    let shown = page.matches("class=\"note note-info\"").count();
    assert_eq!(shown, 20);
    assert!(page.contains("n21") && page.contains("n02") && !page.contains("n01"));
    assert!(
        page.find("n21").unwrap() < page.find("n20").unwrap(),
        "newest first"
    );
}

#[tokio::test]
async fn bad_notifications_are_refused_with_a_reason() {
    let app = spawn_app().await;
    let client = app.client();
    let cases = [
        (
            r#"{"type":"fatal","title":"t","body":"b"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("type"),
        ),
        (
            r#"{"type":"info","title":"  ","body":"b"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("title"),
        ),
        (
            r#"{"type":"info","title":"t"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("body"),
        ),
        (
            r#"{"type":"info","title":5,"body":"b"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            r#"{"type":"info","title":"t","body":"#,
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (body, status, field) in cases {
        let resp = client.post_json("/send-notification", body).await;
        assert_eq!(resp.status, status, "{body}: {}", resp.body);
        assert!(resp.json()["error"].as_str().is_some_and(|e| !e.is_empty()));
        if let Some(field) = field {
            assert_eq!(resp.json()["field"], field, "{body}");
        }
    }
    let long = format!(
        r#"{{"type":"info","title":"t","body":"{}"}}"#,
        "x".repeat(201)
    );
    let resp = client.post_json("/send-notification", &long).await;
    assert!(
        resp.json()["error"]
            .as_str()
            .unwrap()
            .contains("limit is 200")
    );

    let text = client
        .request(
            Method::POST,
            "/send-notification",
            &[("content-type", "text/plain")],
            "hi",
        )
        .await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let form = client
        .post_form(
            "/send-notification",
            &[("type", "warning"), ("title", "kept"), ("body", "")],
        )
        .await;
    assert_eq!(form.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(form.body.contains("body must not be empty"));
    assert!(
        form.body.contains("value=\"kept\""),
        "input is kept: {}",
        form.body
    );
    assert!(
        form.body.contains("value=\"warning\" checked"),
        "{}",
        form.body
    );

    let page = client.open_tab().await.page;
    assert!(page.contains("Nothing yet."), "nothing was stored");
    assert_eq!(
        region_html(&page, "notifications-list"),
        "",
        "nothing was stored"
    );
}

#[tokio::test]
async fn the_form_has_a_page_of_its_own() {
    let app = spawn_app().await;
    let page = app.client().get("/send-notification").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("hx-post=\"/send-notification\""));
    for kind in ["info", "success", "warning", "error"] {
        assert!(page.body.contains(&format!("value=\"{kind}\"")), "{kind}");
    }
}

#[tokio::test]
async fn ping_sends_pong_every_two_seconds() {
    let app = spawn_app().await;
    let mut ping = app.client().stream("/ping").await;
    let start = tokio::time::Instant::now();
    let mut at = Vec::new();
    for _ in 0..2 {
        let e = ping.next().await.unwrap();
        assert_eq!(e.data, "pong");
        assert_eq!(e.event, None);
        at.push(start.elapsed());
    }
    assert!(
        at[0] < Duration::from_millis(500),
        "the first at once: {at:?}"
    );
    assert!(
        at[1] >= Duration::from_millis(1900),
        "then after two seconds: {at:?}"
    );
}
