//! What an operator relies on, over real HTTP: the probes and draining, `/metrics`, request ids,
//! compression and every route's `Cache-Control`.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{Client, TestApp, WAIT, replayed_then_live, sample, spawn_app, spawn_app_with};
use hyper::{Method, StatusCode};
use serde_json::json;

type Headers<'a> = &'a [(&'a str, &'a str)];

async fn scrape(client: &Client) -> String {
    let resp = client.get("/metrics").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(
        resp.header("content-type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    resp.body
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// Polls `/metrics` until `series` has `wanted`.
async fn until_sample(client: &Client, series: &str, wanted: f64) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape(client).await;
        if sample(&text, series) == Some(wanted) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} never became {wanted}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn readiness_turns_503_while_draining_and_streams_close_only_after() {
    let mut app = spawn_app_with(|c| c.ops.drain = Duration::from_millis(1500)).await;
    let client = app.client();
    let health = client.get("/healthz").await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok\n")
    );
    let ready = client.get("/readyz").await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (StatusCode::OK, "ready\n")
    );
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;
    stream.next_data().await;

    app.signal_stop();
    let deadline = tokio::time::Instant::now() + WAIT;
    let unready = loop {
        let resp = client.get("/readyz").await;
        if resp.status == StatusCode::SERVICE_UNAVAILABLE {
            break resp;
        }
        assert!(tokio::time::Instant::now() < deadline, "never unready");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(unready.body.contains("draining"), "{}", unready.body);
    // Draining: the stream is still open and the app still answers everything else.
    assert_eq!(client.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(client.get("/").await.status, StatusCode::OK);
    stream.expect_quiet(Duration::from_millis(500)).await;
    assert!(!stream.ended, "streams stay open while draining");
    // Then the streams end cleanly, and the server stops.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !stream.ended {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream never ended"
        );
        let _ = stream.next_within(WAIT).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_streams_messages_requests_and_jobs() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    let mut stream = client.stream(&tab.stream_url).await;
    stream.next_data().await;
    let text = scrape(&client).await;
    assert_eq!(value(&text, "herald_streams_open"), 1.0);
    assert_eq!(value(&text, "herald_messages_published_total"), 0.0);

    let sent = client.post_json("/send", r#"{"message":"hello"}"#).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    stream.until("hello").await;
    let job = client
        .post_json("/jobs", r#"{"total":2,"interval_ms":1}"#)
        .await;
    assert_eq!(job.status, StatusCode::ACCEPTED, "{}", job.body);
    let missing = client.request(Method::DELETE, "/offers/9", &[], "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    client.get("/no/such/page").await;

    let text = until_sample(&client, "herald_jobs{state=\"done\"}", 1.0).await;
    for state in ["queued", "running", "failed", "cancelled"] {
        assert_eq!(
            value(&text, &format!("herald_jobs{{state=\"{state}\"}}")),
            0.0
        );
    }
    assert!(value(&text, "herald_messages_published_total") >= 2.0);
    assert!(value(&text, "herald_delivered_bytes_total") > 100.0);
    let requests = [
        ("GET", "/", "200", 1.0),
        ("GET", "/sse/{client}", "200", 1.0),
        ("POST", "/send", "200", 1.0),
        ("POST", "/jobs", "202", 1.0),
        ("DELETE", "/offers/{id}", "404", 1.0),
        ("GET", "(no route)", "404", 1.0),
    ];
    for (method, route, status, count) in requests {
        let series = format!(
            "herald_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}}"
        );
        assert_eq!(value(&text, &series), count, "{series}");
    }
    let latency = "herald_http_request_duration_seconds_count{method=\"POST\",route=\"/send\"}";
    assert_eq!(value(&text, latency), 1.0);
    assert!(value(&text, "herald_store_call_duration_seconds_count") >= 3.0);

    drop(stream);
    until_sample(&client, "herald_streams_open", 0.0).await;
}

/// Messages published and applied, and bytes delivered, exactly: the stream's task writes a
/// replay, the fan-out the live messages, and the server closes the stream so its client reads
/// every byte written (on PostgreSQL the messages come back through the follower).
#[tokio::test]
async fn messages_published_and_bytes_delivered_are_exact() {
    let mut app = spawn_app().await;
    let mut stream = replayed_then_live(&app.client()).await;
    app.stop().await;
    while stream.next().await.is_some() {}

    let text = app.metrics().await;
    assert_eq!(value(&text, "herald_messages_published_total"), 3.0);
    assert_eq!(value(&text, "herald_messages_applied_total"), 3.0);
    assert_eq!(
        value(&text, "herald_delivered_bytes_total"),
        stream.raw.len() as f64,
        "{}",
        stream.raw
    );
    assert_eq!(value(&text, "herald_streams_open"), 0.0);
}

#[tokio::test]
async fn replays_and_resyncs_are_counted() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    client.post_json("/send", r#"{"message":"missed"}"#).await;
    // The page's cursor is behind by one message: the stream replays it.
    let mut replay = client.stream(&tab.stream_url).await;
    replay.until("missed").await;
    // A cursor from another run: a resync.
    let stale = format!("/sse/{}", tab.client);
    let mut resync = client
        .stream_with(&stale, &[("last-event-id", "1-0-0")])
        .await;
    resync.until("missed").await;
    let text = scrape(&client).await;
    assert_eq!(value(&text, "herald_stream_replays_total"), 1.0);
    assert_eq!(value(&text, "herald_stream_resyncs_total"), 1.0);
}

#[tokio::test]
async fn metrics_and_probes_can_have_an_address_of_their_own() {
    let app: TestApp =
        spawn_app_with(|c| c.ops.metrics_addr = Some("127.0.0.1:0".parse().unwrap())).await;
    let public = app.client();
    assert_eq!(public.get("/metrics").await.status, StatusCode::NOT_FOUND);
    assert_eq!(public.get("/readyz").await.status, StatusCode::OK);
    let admin = Client::new(app.metrics_addr.expect("a metrics address"));
    let text = scrape(&admin).await;
    assert_eq!(value(&text, "herald_streams_open"), 0.0);
    assert_eq!(admin.get("/readyz").await.status, StatusCode::OK);
    assert_eq!(admin.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(admin.get("/").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn request_ids_are_echoed_when_sane_and_made_otherwise() {
    let app = spawn_app().await;
    let client = app.client();
    let given = client
        .request(
            Method::GET,
            "/healthz",
            &[("x-request-id", "edge-42.a:b")],
            "",
        )
        .await;
    assert_eq!(given.header("x-request-id"), "edge-42.a:b");
    let made = client.get("/healthz").await;
    let id = made.header("x-request-id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id:?}");
    for insane in ["a b", "<script>", &"x".repeat(129)] {
        let resp = client
            .request(Method::GET, "/healthz", &[("x-request-id", insane)], "")
            .await;
        let id = resp.header("x-request-id");
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "{insane:?} replaced: {id:?}"
        );
    }
    // Answers from the hyper path (a body) get one too.
    let post = client.post_json("/send", r#"{"message":"x"}"#).await;
    assert!(uuid::Uuid::parse_str(post.header("x-request-id")).is_ok());
}

fn decode(encoding: &str, body: &[u8]) -> String {
    let mut text = String::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(body)
            .read_to_string(&mut text)
            .expect("gzip"),
        "br" => brotli_decompressor::Decompressor::new(body, 4096)
            .read_to_string(&mut text)
            .expect("brotli"),
        other => panic!("unexpected encoding {other}"),
    };
    text
}

/// The head and raw bytes of an answer.
async fn raw(
    client: &Client,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (hyper::HeaderMap, Vec<u8>) {
    let (head, bytes) = client
        .request_bytes(method, path, headers, body.to_string())
        .await;
    (head.headers, bytes.to_vec())
}

#[tokio::test]
async fn pages_fragments_json_css_and_js_are_compressed_and_streams_never() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    let page = &tab.page;
    let css = format!("{}/app.css", attribute(page, "rel=\"stylesheet\" href=\""));
    let js = attribute(page, "<script src=\"");
    for n in 0..30 {
        let offer = json!({"description": format!("offer {n}"), "value": n});
        client.post_json("/offers", &offer.to_string()).await;
    }
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("hx-request", "true"),
        ("sec-fetch-site", "same-origin"),
    ];
    let cases: [(&str, Method, &str, Headers, &str, &str, &str); 5] = [
        (
            "page",
            Method::GET,
            "/",
            &[],
            "",
            "text/html",
            "hx-sse:connect",
        ),
        (
            "fragment",
            Method::POST,
            "/send",
            &form,
            "message=compressed",
            "text/html",
            "Posted to every open page",
        ),
        (
            "json",
            Method::GET,
            "/offers",
            &[],
            "",
            "application/json",
            "\"offer 29\"",
        ),
        (
            "css",
            Method::GET,
            &css,
            &[],
            "",
            "text/css",
            ".status .dot",
        ),
        ("js", Method::GET, &js, &[], "", "text/javascript", "htmx"),
    ];
    for (kind, method, path, headers, body, content_type, needle) in cases {
        for encoding in ["gzip", "br"] {
            let mut with = headers.to_vec();
            with.push(("accept-encoding", encoding));
            let (head, bytes) = raw(&client, method.clone(), path, &with, body).await;
            let shown = |name: &str| head.get(name).map(|v| v.to_str().unwrap().to_string());
            assert_eq!(
                shown("content-encoding").as_deref(),
                Some(encoding),
                "{kind}"
            );
            assert!(
                shown("content-type").unwrap().starts_with(content_type),
                "{kind}"
            );
            let vary: Vec<&str> = head
                .get_all("vary")
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert!(vary.contains(&"accept-encoding"), "{kind}: vary {vary:?}");
            let text = decode(encoding, &bytes);
            assert!(text.contains(needle), "{kind} {encoding}: {text:.200}");
        }
        let (head, bytes) = raw(&client, method.clone(), path, headers, body).await;
        assert!(head.get("content-encoding").is_none(), "{kind} unasked");
        assert!(String::from_utf8(bytes).unwrap().contains(needle), "{kind}");
    }
    // Streams, every kind, are never compressed, even when asked.
    let asked = [("accept-encoding", "gzip, br")];
    for path in [tab.stream_url.as_str(), "/ping", "/event", "/events"] {
        let mut stream = client.stream_with(path, &asked).await;
        assert!(stream.headers.get("content-encoding").is_none(), "{path}");
        let first = stream.next().await.expect("a first message");
        assert!(!first.data.is_empty() || first.comment, "{path}");
    }
}

fn attribute(html: &str, prefix: &str) -> String {
    let start = html.find(prefix).unwrap_or_else(|| panic!("no {prefix}")) + prefix.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].trim_end_matches("/app.css").to_string()
}

#[tokio::test]
async fn every_route_says_how_it_may_be_cached() {
    let app = spawn_app().await;
    let client = app.client();
    let tab = client.open_tab().await;
    let prefix = attribute(&tab.page, "rel=\"stylesheet\" href=\"");
    client
        .post_json("/offers", r#"{"id":1,"description":"d","value":1}"#)
        .await;
    client
        .post_json("/jobs", r#"{"total":1,"interval_ms":1}"#)
        .await;
    let form = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("hx-request", "true"),
        ("sec-fetch-site", "same-origin"),
    ];
    let immutable = "public, max-age=31536000, immutable";
    let htmx = [("hx-request", "true"), ("accept", "text/html")];
    let cases: Vec<(Method, String, Headers, &str, &str)> = vec![
        (Method::GET, "/".into(), &[], "", "no-store"),
        (
            Method::GET,
            "/send-notification".into(),
            &[],
            "",
            "no-store",
        ),
        (Method::GET, "/send?message=hi".into(), &[], "", "no-store"),
        (Method::POST, "/send".into(), &form, "message=x", "no-store"),
        (Method::POST, "/send".into(), &form, "message=", "no-store"),
        (Method::GET, "/offers".into(), &[], "", "no-store"),
        (Method::GET, "/offers".into(), &htmx, "", "no-store"),
        (Method::GET, "/jobs/1".into(), &[], "", "no-store"),
        (Method::GET, "/nowhere".into(), &[], "", "no-store"),
        (
            Method::GET,
            format!("/import/{}/rows?page=1", tab.client),
            &htmx,
            "",
            "no-store",
        ),
        (Method::GET, "/csv?rows=3".into(), &[], "", "no-store"),
        (Method::GET, "/data.csv".into(), &[], "", "no-cache"),
        (Method::GET, "/healthz".into(), &[], "", "no-store"),
        (Method::GET, "/readyz".into(), &[], "", "no-store"),
        (Method::GET, "/metrics".into(), &[], "", "no-store"),
        (Method::GET, format!("{prefix}/app.css"), &[], "", immutable),
        (
            Method::GET,
            format!("{prefix}/htmx.min.js"),
            &[],
            "",
            immutable,
        ),
        (
            Method::GET,
            format!("{prefix}/favicon.svg"),
            &[],
            "",
            immutable,
        ),
        (Method::GET, "/static/0/app.css".into(), &[], "", "no-cache"),
        (
            Method::GET,
            "/favicon.ico".into(),
            &[],
            "",
            "public, max-age=86400",
        ),
    ];
    for (method, path, headers, body, expected) in cases {
        let resp = client
            .request(method.clone(), &path, headers, body.to_string())
            .await;
        assert_eq!(resp.header("cache-control"), expected, "{method} {path}");
    }
    let icon = client.get("/favicon.ico").await;
    assert_eq!(icon.header("content-type"), "image/svg+xml");
    assert!(icon.body.starts_with("<svg"), "{}", icon.body);
    assert!(
        tab.page.contains("/favicon.svg\""),
        "the page names its icon"
    );
    for path in [
        tab.stream_url.as_str(),
        "/ping",
        "/event",
        "/events",
        "/jobs/1/events",
    ] {
        let stream = client.stream(path).await;
        assert_eq!(
            stream.headers.get("cache-control").unwrap(),
            "no-cache",
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_session_cookie_is_secure_when_a_trusted_proxy_says_https() {
    let proxied = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "203.0.113.7"),
    ];
    let trusting = spawn_app_with(|c| {
        c.ops.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let page = trusting
        .client()
        .request(Method::GET, "/", &proxied, "")
        .await;
    assert!(
        page.header("set-cookie").ends_with("; Secure"),
        "{}",
        page.header("set-cookie")
    );
    // Over plain HTTP, through the same proxy: no Secure, or the browser would drop it.
    let plain = [("x-forwarded-proto", "http")];
    let page = trusting
        .client()
        .request(Method::GET, "/", &plain, "")
        .await;
    assert!(!page.header("set-cookie").contains("Secure"));
    // The stream's answer to a new session carries the cookie too.
    let tab = uuid::Uuid::new_v4();
    let stream = trusting
        .client()
        .stream_with(&format!("/sse/{tab}"), &proxied)
        .await;
    let cookie = stream.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");

    // Nobody is trusted by default: the same headers from anyone change nothing.
    let app = spawn_app().await;
    let page = app.client().request(Method::GET, "/", &proxied, "").await;
    let cookie = page.header("set-cookie");
    assert!(
        cookie.starts_with("herald_session=") && !cookie.contains("Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn connections_open_and_refused_at_the_cap_are_counted() {
    let app = spawn_app_with(|c| {
        c.connections.max_connections = Some(1);
        c.ops.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let browser = app.client();
    let tab = browser.open_tab().await;
    // The page's connection stays in the client's pool; the stream reuses it.
    let mut stream = browser.stream(&tab.stream_url).await;
    stream.next_data().await;
    // The answer comes before the request is read: a raw connection reads it as it is.
    let mut raw = common::raw::Conn::open(&app).await;
    raw.send(common::raw::get("/healthz").as_bytes()).await;
    assert_eq!(raw.response().await.status, 503);
    let admin = Client::new(app.metrics_addr.unwrap());
    let text = scrape(&admin).await;
    assert_eq!(value(&text, "herald_connections_open"), 1.0);
    assert_eq!(value(&text, "herald_connections_refused_total"), 1.0);
}
