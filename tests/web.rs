//! The page and what surrounds the features: assets, 404s, origin and token checks, and the
//! rules every feature shares (strict JSON, ids in paths, paging, answers in the caller's
//! language).

mod common;

use common::regions::region_html;
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

#[tokio::test]
async fn json_bodies_are_strict_in_every_feature() {
    let app = spawn_app().await;
    let client = app.client();
    let cases = [
        ("/send", r#"{"message": "x", "colour": "red"}"#, "colour"),
        ("/send", r#"{"message": 5}"#, "message"),
        (
            "/send-notification",
            r#"{"type": "info", "title": "t", "body": "b", "ttl": 5}"#,
            "ttl",
        ),
        (
            "/send-notification",
            r#"{"type": "urgent", "title": "t", "body": "b"}"#,
            "type",
        ),
        ("/offers", r#"{"description": "x", "value": "5"}"#, "value"),
        (
            "/offers",
            r#"{"description": "x", "value": 5, "price": 5}"#,
            "price",
        ),
        ("/jobs", r#"{"total": "5"}"#, "total"),
        ("/jobs", r#"{"total": 5, "steps": 5}"#, "steps"),
    ];
    for (path, body, field) in cases {
        let resp = client.post_json(path, body).await;
        assert_eq!(
            resp.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}"
        );
        let json = resp.json();
        assert_eq!(json["field"], field, "{path} {body}: {json}");
        assert!(
            json["error"].as_str().unwrap().starts_with(field),
            "{path} {body}: {json}"
        );
    }
    let page = client.open_tab().await.page;
    for empty in ["No message yet", "Nothing yet", "No jobs yet"] {
        assert!(page.contains(empty), "nothing was stored: {empty}");
    }
    for list in ["notifications-list", "jobs-list"] {
        assert_eq!(region_html(&page, list), "", "nothing was stored: {list}");
    }
    assert_eq!(client.get("/offers").await.json()["total"], 0);
}

#[tokio::test]
async fn an_id_that_names_nothing_is_a_404_whatever_its_form() {
    let app = spawn_app().await;
    let client = app.client();
    let requests = [
        (Method::DELETE, "/offers/abc", "malformed offer id \"abc\""),
        (Method::DELETE, "/offers/0", "malformed offer id \"0\""),
        (Method::DELETE, "/offers/7", "no offer with id 7"),
        (Method::GET, "/jobs/-1", "malformed job id \"-1\""),
        (Method::GET, "/jobs/7", "no job with id 7"),
        (Method::POST, "/jobs/x/cancel", "malformed job id \"x\""),
        (
            Method::GET,
            "/sse/not-a-uuid",
            "malformed client id \"not-a-uuid\"",
        ),
    ];
    for (method, path, message) in requests {
        let resp = client.request(method, path, &[], "").await;
        assert_eq!(resp.status, StatusCode::NOT_FOUND, "{path}");
        let error = resp.json()["error"].as_str().unwrap().to_string();
        assert!(error.starts_with(message), "{path}: {error}");
    }
}

#[tokio::test]
async fn a_bad_page_is_refused_in_the_callers_language() {
    let app = spawn_app().await;
    let client = app.client();
    let api = client.get("/offers?per_page=0").await;
    assert_eq!(api.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(api.json()["field"], "per_page");

    let browser = client
        .request(
            Method::GET,
            "/offers?page=x",
            &[("accept", "text/html")],
            "",
        )
        .await;
    assert_eq!(browser.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(browser.header("content-type").starts_with("text/html"));
    assert!(
        browser
            .body
            .contains("<title>Unprocessable Entity · Herald</title>")
    );
    assert!(
        browser
            .body
            .contains("page must be a whole number from 1 to 1000000"),
        "{}",
        browser.body
    );

    // The import's pager is the page's htmx: it gets a line to show where the table was.
    let tab = client.open_tab().await;
    let htmx = [("accept", "text/html"), ("hx-request", "true")];
    let rows = format!("/import/{}/rows?page=0", tab.client);
    let fragment = client.request(Method::GET, &rows, &htmx, "").await;
    assert_eq!(fragment.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        fragment.body,
        r#"<p class="form-error" role="alert">page must be a whole number from 1 to 1000000</p>"#
    );
}
