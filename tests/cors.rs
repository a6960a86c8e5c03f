//! CORS over real HTTP, as a browser on another origin meets it: preflights and simple requests
//! from a listed origin and from an unlisted one, with and without credentials; writes from a
//! listed origin need the token when one is set; Herald's own forms and tab routes unchanged.

mod common;

use common::{Client, Response, TestApp, spawn_app, spawn_app_with};
use hyper::{Method, StatusCode};

const FRONT: &str = "http://front.example:5173";
const OTHER: &str = "http://evil.example";

async fn app_for(origins: &[&str], token: Option<&str>) -> TestApp {
    let origins: Vec<String> = origins.iter().map(|o| o.to_string()).collect();
    let token = token.map(Into::into);
    spawn_app_with(move |c| {
        c.cors_origins = origins;
        c.api_token = token;
    })
    .await
}

fn cors_headers(resp: &Response) -> Vec<(String, String)> {
    resp.headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("access-control-"))
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect()
}

/// Every `Vary` value, in lower case.
fn vary(resp: &Response) -> String {
    let values: Vec<&str> = resp
        .headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    values.join(", ").to_ascii_lowercase()
}

fn varies_on_origin(resp: &Response) -> bool {
    vary(resp).split(", ").any(|v| v == "origin")
}

/// A preflight as a browser sends it before a JSON write.
async fn preflight(client: &Client, origin: &str, path: &str, method: &str) -> Response {
    let headers = [
        ("origin", origin),
        ("access-control-request-method", method),
        (
            "access-control-request-headers",
            "content-type,authorization",
        ),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-mode", "cors"),
    ];
    client.request(Method::OPTIONS, path, &headers, "").await
}

/// A cross-origin request; `credentials` adds the cookie a `withCredentials` request carries.
async fn from(
    client: &Client,
    origin: &str,
    method: Method,
    path: &str,
    credentials: bool,
    extra: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut headers = vec![
        ("origin", origin),
        ("sec-fetch-site", "cross-site"),
        ("content-type", "application/json"),
    ];
    if credentials {
        headers.push((
            "cookie",
            "herald_session=6f1c0f3e-3a53-4bfb-9b1f-0d1c6a1a6b01",
        ));
    }
    headers.extend_from_slice(extra);
    client
        .request(method, path, &headers, body.to_string())
        .await
}

#[tokio::test]
async fn a_listed_origin_gets_a_preflight_answer_for_each_json_write() {
    let app = app_for(&[FRONT], None).await;
    let client = app.client();
    for (path, method) in [
        ("/offers", "POST"),
        ("/offers/1", "PUT"),
        ("/offers/1", "DELETE"),
        ("/send-notification", "POST"),
        ("/send", "POST"),
        ("/jobs", "POST"),
        ("/jobs/1/cancel", "POST"),
        ("/api/stream", "GET"),
    ] {
        let resp = preflight(&client, FRONT, path, method).await;
        assert!(resp.status.is_success(), "{method} {path}: {}", resp.status);
        assert_eq!(resp.header("access-control-allow-origin"), FRONT);
        assert_eq!(resp.header("access-control-allow-credentials"), "true");
        let methods = resp.header("access-control-allow-methods");
        assert!(methods.contains(method), "{method} {path}: {methods}");
        let allowed = resp.header("access-control-allow-headers").to_lowercase();
        for name in ["content-type", "authorization", "last-event-id"] {
            assert!(allowed.contains(name), "{path}: {allowed}");
        }
        assert_eq!(resp.header("access-control-max-age"), "600");
        assert!(varies_on_origin(&resp), "{path}");
    }
}

#[tokio::test]
async fn an_unlisted_origin_gets_no_cors_headers_at_all() {
    let app = app_for(&[FRONT], None).await;
    let client = app.client();
    let resp = preflight(&client, OTHER, "/offers", "POST").await;
    assert_eq!(cors_headers(&resp), [], "preflight");
    assert!(!resp.status.is_success(), "{}", resp.status);
    for credentials in [false, true] {
        let resp = from(&client, OTHER, Method::GET, "/offers", credentials, &[], "").await;
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(cors_headers(&resp), [], "credentials: {credentials}");
        assert!(varies_on_origin(&resp), "a cache keeps the answers apart");
        assert!(vary(&resp).contains("accept"), "{:?}", resp.headers);

        // A write from it is refused as it always was, and says nothing to its page.
        let body = r#"{"description":"x","value":1}"#;
        let resp = from(
            &client,
            OTHER,
            Method::POST,
            "/offers",
            credentials,
            &[],
            body,
        )
        .await;
        assert_eq!(resp.status, StatusCode::FORBIDDEN, "{}", resp.body);
        assert_eq!(cors_headers(&resp), []);
    }
    assert_eq!(client.get("/offers").await.json()["total"], 0);
}

#[tokio::test]
async fn a_listed_origin_reads_and_writes_with_or_without_credentials() {
    let app = app_for(&[FRONT, "https://second.example"], None).await;
    let client = app.client();
    for (n, credentials) in [false, true].into_iter().enumerate() {
        let resp = from(&client, FRONT, Method::GET, "/offers", credentials, &[], "").await;
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.header("access-control-allow-origin"), FRONT);
        assert_eq!(resp.header("access-control-allow-credentials"), "true");
        assert_eq!(
            resp.header("access-control-expose-headers").to_lowercase(),
            "last-event-id"
        );
        assert!(varies_on_origin(&resp));
        assert!(
            vary(&resp).contains("accept"),
            "Accept still varies too: {:?}",
            resp.headers
        );

        let body = format!(r#"{{"description":"from the front end {n}","value":1}}"#);
        let resp = from(
            &client,
            FRONT,
            Method::POST,
            "/offers",
            credentials,
            &[],
            &body,
        )
        .await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
        assert_eq!(resp.header("access-control-allow-origin"), FRONT);
    }
    let other_listed = from(
        &client,
        "https://second.example",
        Method::GET,
        "/jobs/1",
        false,
        &[],
        "",
    )
    .await;
    assert_eq!(other_listed.status, StatusCode::NOT_FOUND);
    assert_eq!(
        other_listed.header("access-control-allow-origin"),
        "https://second.example",
        "each listed origin gets its own, and errors are readable too"
    );
    assert_eq!(client.get("/offers").await.json()["total"], 2);
}

#[tokio::test]
async fn stream_responses_carry_cors_headers_for_listed_origins_only() {
    let app = app_for(&[FRONT], None).await;
    let client = app.client();
    // HEAD answers with the GET's headers and no body, so the stream's headers can be read.
    for path in ["/api/stream", "/event", "/ping", "/events"] {
        let listed = [("origin", FRONT)];
        let resp = client.request(Method::HEAD, path, &listed, "").await;
        assert_eq!(resp.header("access-control-allow-origin"), FRONT, "{path}");
        assert_eq!(resp.header("access-control-allow-credentials"), "true");
        let resp = client
            .request(Method::HEAD, path, &[("origin", OTHER)], "")
            .await;
        assert_eq!(cors_headers(&resp), [], "{path}");
    }
    let resp = from(
        &client,
        FRONT,
        Method::GET,
        "/api/stream?topics=nope",
        true,
        &[],
        "",
    )
    .await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.header("access-control-allow-origin"),
        FRONT,
        "the 400 is readable"
    );
}

#[tokio::test]
async fn a_listed_origin_needs_the_token_when_one_is_set() {
    let app = app_for(&[FRONT], Some("t0k-cors")).await;
    let client = app.client();
    let body = r#"{"message":"from the front end"}"#;
    let refused = from(&client, FRONT, Method::POST, "/send", true, &[], body).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert_eq!(
        refused.header("access-control-allow-origin"),
        FRONT,
        "the front end can read why"
    );
    assert!(refused.json()["error"].as_str().unwrap().contains("Bearer"));
    let auth = [("authorization", "Bearer t0k-cors")];
    let resp = from(&client, FRONT, Method::POST, "/send", true, &auth, body).await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.json()["message"], "from the front end");

    // Herald's own form needs no token, as before.
    let own = client
        .post_form("/send", &[("message", "from the page")])
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    // An unlisted origin with the right token is still a browser from elsewhere.
    let other = from(&client, OTHER, Method::POST, "/send", true, &auth, body).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_page_and_a_tab_s_own_routes_stay_same_origin() {
    let app = app_for(&[FRONT], None).await;
    let client = app.client();
    let tab = client.open_tab().await;
    for path in ["/", &tab.stream_url, "/static/x/htmx.min.js", "/csv?rows=1"] {
        let resp = client
            .request(Method::HEAD, path, &[("origin", FRONT)], "")
            .await;
        assert_eq!(cors_headers(&resp), [], "{path}");
    }
    let upload = format!("/upload/{}", tab.client);
    let resp = preflight(&client, FRONT, &upload, "POST").await;
    assert_eq!(cors_headers(&resp), []);
    let resp = from(&client, FRONT, Method::POST, &upload, true, &[], "").await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN, "{}", resp.body);
}

#[tokio::test]
async fn without_listed_origins_nothing_changes() {
    let app = spawn_app().await;
    let client = app.client();
    let resp = preflight(&client, FRONT, "/offers", "POST").await;
    assert_eq!(cors_headers(&resp), []);
    let resp = from(&client, FRONT, Method::GET, "/offers", true, &[], "").await;
    assert_eq!(cors_headers(&resp), []);
    assert!(!varies_on_origin(&resp), "{:?}", resp.headers);
    let body = r#"{"description":"x","value":1}"#;
    let resp = from(&client, FRONT, Method::POST, "/offers", true, &[], body).await;
    assert_eq!(resp.status, StatusCode::FORBIDDEN);
}
