//! The page and what surrounds the features: assets, 404s, origin and token checks.

mod common;

use common::{spawn_app, spawn_app_with};
use hyper::{Method, StatusCode};

#[tokio::test]
async fn the_page_has_one_stream_and_no_scripts_of_ours() {
    let app = spawn_app().await;
    let resp = app.client().get("/").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.header("cache-control"), "no-store");
    let cookie = resp.header("set-cookie");
    assert!(
        cookie.starts_with("herald_session=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    assert_eq!(resp.body.matches("hx-sse:connect=").count(), 1);
    let scripts: Vec<&str> = resp.body.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 2);
    assert!(scripts[0].contains("/htmx.min.js\"") && scripts[1].contains("/hx-sse.min.js\""));
    assert!(
        scripts.iter().all(|s| s.contains("></script>")),
        "no inline code"
    );
    for region in ["board-message", "notifications-list", "toasts", "status"] {
        assert!(resp.body.contains(&format!("id=\"{region}\"")), "{region}");
    }
}

#[tokio::test]
async fn assets_are_the_pinned_htmx_files_with_long_cache() {
    let app = spawn_app().await;
    let client = app.client();
    let page = client.get("/").await.body;
    let start = page.find("src=\"").unwrap() + 5;
    let url = &page[start..start + page[start..].find('"').unwrap()];
    let resp = client.get(url).await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(
        resp.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        resp.body.as_bytes(),
        include_bytes!("../static/htmx.min.js")
    );
    let stale = client.get("/static/000000000000/htmx.min.js").await;
    assert_eq!(stale.header("cache-control"), "no-cache");
    assert_eq!(
        client.get("/static/000000000000/nope.js").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unknown_routes_are_404_in_the_callers_language() {
    let app = spawn_app().await;
    let client = app.client();
    let browser = client
        .request(
            Method::GET,
            "/nowhere/%3Cb%3E",
            &[("accept", "text/html,*/*")],
            "",
        )
        .await;
    assert_eq!(browser.status, StatusCode::NOT_FOUND);
    assert!(browser.body.contains("<h2>Not found</h2>"));
    assert!(browser.body.contains("<code>/nowhere/%3Cb%3E</code>"));
    let api = client.get("/nowhere").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert_eq!(api.json()["error"], "no route for /nowhere");
}

#[tokio::test]
async fn cross_site_writes_are_refused() {
    let app = spawn_app().await;
    let client = app.client();
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("sec-fetch-site", "cross-site"),
    ];
    let resp = client
        .request(Method::POST, "/send", &headers, "message=pwned")
        .await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
    let origin = [("origin", "http://evil.example")];
    let resp = client
        .request(Method::GET, "/send?message=pwned", &origin, "")
        .await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
    assert!(!client.get("/").await.body.contains("pwned"));
}

#[tokio::test]
async fn with_a_token_api_writes_need_it_and_the_page_does_not() {
    let app = spawn_app_with(|c| c.api_token = Some("s3cret".into())).await;
    let client = app.client();
    let json = r#"{"type":"info","title":"t","body":"b"}"#;
    let resp = client.post_json("/send-notification", json).await;
    assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
    assert!(resp.json()["error"].as_str().unwrap().contains("Bearer"));
    let headers = [
        ("content-type", "application/json"),
        ("authorization", "Bearer s3cret"),
    ];
    let resp = client
        .request(Method::POST, "/send-notification", &headers, json)
        .await;
    assert_eq!(resp.status, StatusCode::CREATED);
    assert_eq!(
        client.get("/send?message=x").await.status,
        StatusCode::UNAUTHORIZED
    );
    let form = client
        .post_form("/send", &[("message", "from the page")])
        .await;
    assert_eq!(form.status, StatusCode::OK);
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = spawn_app().await;
    let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(70 * 1024));
    let resp = app.client().post_json("/send", &big).await;
    assert_eq!(resp.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(resp.json()["error"].is_string());
}
