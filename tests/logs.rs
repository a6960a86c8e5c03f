//! What the real `herald` binary logs, as a log pipeline reads it: JSON lines on stderr, an
//! access line per request and a line per stream, the client behind a trusted proxy, and never
//! the API token, not even at debug level.

mod common;

use std::time::Duration;

use common::process::serve;
use common::{Client, WAIT, replayed_then_live, sample};
use hyper::{Method, StatusCode};
use serde_json::Value;

const TOKEN: &str = "tok-never-logged-4f1c9e";

/// The log lines `target` wrote, as JSON.
fn lines<'a>(logs: &'a [Value], target: &str) -> Vec<&'a Value> {
    logs.iter().filter(|l| l["target"] == target).collect()
}

#[tokio::test]
async fn json_logs_on_stderr_have_access_and_stream_lines_and_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HERALD_API_TOKEN", TOKEN),
        ("HERALD_LOG_FORMAT", "json"),
        ("HERALD_TRUSTED_PROXIES", "127.0.0.1"),
        ("RUST_LOG", "debug"),
    ];
    let (server, addr) = serve(dir.path(), &["--drain-secs", "0"], &env);
    let client = Client::new(addr);

    let page = client
        .request(
            Method::GET,
            "/",
            &[
                ("x-request-id", "log-check-1"),
                ("x-forwarded-for", "203.0.113.9"),
            ],
            "",
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let bearer = format!("Bearer {TOKEN}");
    let json = r#"{"type":"info","title":"logged","body":"not the token"}"#;
    let headers = [
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
    ];
    let sent = client
        .request(Method::POST, "/send-notification", &headers, json)
        .await;
    assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.body);
    let wrong = [
        ("content-type", "application/json"),
        ("authorization", "Bearer nope"),
    ];
    let refused = client
        .request(Method::POST, "/send-notification", &wrong, json)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    // A tab's stream, closed by its client: its own line says so. (A browser of its own: the
    // API client's connection went to hyper with its first body, and a stream there ends as a
    // dropped response.)
    let browser = Client::new(addr);
    let tab = browser.open_tab().await;
    let mut stream = browser.stream(&tab.stream_url).await;
    stream.next_data().await;
    drop(stream);
    let deadline = tokio::time::Instant::now() + WAIT;
    while sample(&client.get("/metrics").await.body, "herald_streams_open") != Some(0.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.terminate();
    let out = server.exited();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty(), "logs go to stderr, not stdout");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !stderr.contains(TOKEN),
        "the token reached the log:\n{stderr}"
    );
    assert!(!stderr.to_lowercase().contains("authorization"), "{stderr}");
    let logs: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        logs.iter().any(|l| l["level"] == "DEBUG"),
        "debug lines were written"
    );

    let access = lines(&logs, "herald::access");
    let page_line = access
        .iter()
        .find(|l| l["fields"]["id"] == "log-check-1")
        .unwrap_or_else(|| panic!("no access line for the page: {access:#?}"));
    let fields = &page_line["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["route"], "/");
    assert_eq!(fields["status"], 200);
    assert_eq!(
        fields["client"], "203.0.113.9",
        "the client behind the proxy"
    );
    assert_eq!(fields["ending"], "Complete");
    assert_eq!(fields["bytes"].as_u64(), Some(page.body.len() as u64));
    assert!(fields["duration_ms"].as_f64().unwrap() > 0.0, "{fields}");
    let statuses: Vec<(&str, u64)> = access
        .iter()
        .map(|l| {
            let f = &l["fields"];
            (f["route"].as_str().unwrap(), f["status"].as_u64().unwrap())
        })
        .collect();
    for expected in [("/send-notification", 201), ("/send-notification", 401)] {
        assert!(statuses.contains(&expected), "{expected:?} in {statuses:?}");
    }
    // Every request's id was echoed and logged: a UUID when the client sent none.
    let made = sent.header("x-request-id");
    assert!(access.iter().any(|l| l["fields"]["id"] == made), "{made}");

    let streams = lines(&logs, "herald::stream");
    assert_eq!(streams.len(), 1, "{streams:#?}");
    let fields = &streams[0]["fields"];
    assert_eq!(fields["client"], tab.client.as_str());
    assert_eq!(fields["ended"], "client closed");
    assert!(fields["messages"].as_u64().unwrap() >= 1, "{fields}");
    assert!(fields["bytes"].as_u64().unwrap() > 100, "{fields}");
    assert!(fields["duration_ms"].as_f64().unwrap() > 0.0, "{fields}");
}

/// Text logs written to a pipe (journald, a file, a shipper) are plain lines: no colour codes.
#[tokio::test]
async fn text_logs_off_a_terminal_carry_no_escape_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = serve(dir.path(), &["--drain-secs", "0"], &[]);
    let page = Client::new(addr).get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    server.terminate();
    let out = server.exited();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("herald::access") && stderr.contains("route=/"),
        "an access line in text: {stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "escape codes in the log: {stderr:?}"
    );
}

/// SSE messages in everything a stream received, heartbeats aside (each is a comment first).
fn messages_in(raw: &str) -> u64 {
    raw.split_terminator("\n\n")
        .filter(|block| !block.starts_with(':'))
        .count() as u64
}

/// The line of a stream the server closes counts exactly what its client received: messages
/// its task wrote (the first, a replay) and the fan-out wrote (live ones), and body bytes.
#[tokio::test]
async fn a_stream_line_counts_exactly_what_its_client_received() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("HERALD_LOG_FORMAT", "json")];
    let (server, addr) = serve(dir.path(), &["--drain-secs", "0"], &env);
    let mut stream = replayed_then_live(&Client::new(addr)).await;

    server.terminate();
    while stream.next().await.is_some() {}
    let out = server.exited();
    assert!(out.status.success(), "{out:?}");
    let logs: Vec<Value> = String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let streams = lines(&logs, "herald::stream");
    assert_eq!(streams.len(), 1, "{streams:#?}");
    let fields = &streams[0]["fields"];
    assert_eq!(fields["ended"], "server closing");
    // The first message and three board messages, whatever heartbeats came between.
    assert_eq!(messages_in(&stream.raw), 4, "{}", stream.raw);
    assert_eq!(fields["messages"].as_u64(), Some(4), "{fields}");
    assert_eq!(
        fields["bytes"].as_u64(),
        Some(stream.raw.len() as u64),
        "{fields}"
    );
}
