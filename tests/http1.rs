//! HTTP/1.1 on the wire, over raw TCP: the connection loop answers bodiless GETs itself and hands
//! everything else to hyper (src/web/connection.rs). These tests write request bytes by hand and
//! parse the responses by hand, so framing mistakes (lengths, chunks, `connection: close`,
//! bytes left over between requests) show up as failures rather than being smoothed over by a
//! client library.

mod common;

use std::time::Duration;

use common::raw::{Conn, Resp, find, flood_board, get, notify};
use common::{WAIT, spawn_app, spawn_app_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn css_path() -> String {
    format!("{}/app.css", herald::web::assets::prefix())
}

/// Every response carries a `date` header in the IMF-fixdate form.
fn assert_dated(resp: &Resp) {
    let date = resp.header("date");
    assert!(
        date.ends_with(" GMT") && date.len() == "Sun, 06 Nov 1994 08:49:37 GMT".len(),
        "date {date:?}"
    );
}

/// Lines of a `/csv` body (header line included).
fn csv_lines(resp: &Resp) -> usize {
    resp.text().lines().filter(|l| !l.is_empty()).count()
}

#[tokio::test]
async fn keep_alive_serves_gets_one_after_another_with_exact_framing() {
    let app = spawn_app().await;
    let mut conn = Conn::open(&app).await;

    conn.send(get("/").as_bytes()).await;
    let page = conn.response().await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.version, "HTTP/1.1");
    assert_dated(&page);
    assert!(page.get("connection").is_none(), "{page:?}");
    let page_text = page.text();
    assert!(page_text.contains("hx-sse:connect="), "{page_text}");
    assert!(page_text.trim_end().ends_with("</html>"), "whole page");

    // A streamed body (no size known): chunked, and decoding it gives exactly the rows.
    conn.send(get("/csv?rows=3").as_bytes()).await;
    let csv = conn.response().await;
    assert_eq!(csv.status, 200, "{csv:?}");
    assert_eq!(csv.header("transfer-encoding"), "chunked");
    assert_dated(&csv);
    assert_eq!(csv_lines(&csv), 4, "header + 3 rows: {}", csv.text());

    // A static body: content-length is exactly the file.
    conn.send(get(&css_path()).as_bytes()).await;
    let css = conn.response().await;
    assert_eq!(css.status, 200, "{css:?}");
    assert_eq!(css.header("content-type"), "text/css; charset=utf-8");
    assert_eq!(css.body, include_bytes!("../static/app.css"));
    assert_dated(&css);
    assert!(conn.buf.is_empty(), "nothing after the last response");
}

#[tokio::test]
async fn pipelined_gets_are_answered_in_order() {
    let app = spawn_app().await;
    let mut conn = Conn::open(&app).await;
    let both = format!("{}{}{}", get("/csv?rows=2"), get(&css_path()), get("/nope"));
    conn.send(both.as_bytes()).await;

    let csv = conn.response().await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.header("content-type").starts_with("text/csv"),
        "{csv:?}"
    );
    assert_eq!(csv_lines(&csv), 3, "{}", csv.text());
    let css = conn.response().await;
    assert_eq!(css.status, 200);
    assert_eq!(css.body, include_bytes!("../static/app.css"));
    let missing = conn.response().await;
    assert_eq!(missing.status, 404, "{missing:?}");
}

#[tokio::test]
async fn a_pipelined_post_between_gets_is_handed_to_hyper_with_the_bytes_already_read() {
    let app = spawn_app().await;
    let mut conn = Conn::open(&app).await;
    let json = r#"{"type":"success","title":"Piped","body":"in one write"}"#;
    let all = format!(
        "{}{}{}",
        get("/csv?rows=1"),
        notify(json),
        get("/csv?rows=2")
    );
    conn.send(all.as_bytes()).await;
    assert_eq!(csv_lines(&conn.response().await), 2);
    let created = conn.response().await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert!(created.text().contains(r#""title":"Piped""#));
    let last = conn.response().await;
    assert_eq!(last.status, 200, "{last:?}");
    assert_eq!(csv_lines(&last), 3);
}

#[tokio::test]
async fn a_post_after_a_native_get_is_answered_by_hyper_and_gets_still_work_after_it() {
    let app = spawn_app().await;
    let mut conn = Conn::open(&app).await;
    conn.send(get("/csv?rows=1").as_bytes()).await;
    assert_eq!(conn.response().await.status, 200);

    let json = r#"{"type":"info","title":"Raw","body":"over raw TCP"}"#;
    conn.send(notify(json).as_bytes()).await;
    let created = conn.response().await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_dated(&created);
    let body = created.text();
    assert!(
        body.contains(r#""title":"Raw""#) && body.contains(r#""type":"info""#),
        "{body}"
    );

    // Invalid input on the same connection: the readable error, nothing stored.
    let bad = r#"{"type":"loud","title":"x","body":"y"}"#;
    conn.send(notify(bad).as_bytes()).await;
    let refused = conn.response().await;
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert!(refused.text().contains(r#""field":"type""#), "{refused:?}");

    conn.send(get("/csv?rows=2").as_bytes()).await;
    let after = conn.response().await;
    assert_eq!(after.status, 200);
    assert_eq!(csv_lines(&after), 3, "{}", after.text());
    conn.send(get("/").as_bytes()).await;
    let page = conn.response().await;
    assert!(page.text().contains("over raw TCP"), "the page shows it");
}

#[tokio::test]
async fn connection_close_is_answered_with_connection_close_and_the_socket_closes() {
    let app = spawn_app().await;
    for value in ["close", "Keep-Alive, Close"] {
        let mut conn = Conn::open(&app).await;
        // A second request after it must not be answered.
        let requests = format!(
            "GET /csv?rows=2 HTTP/1.1\r\nHost: herald.test\r\nConnection: {value}\r\n\r\n{}",
            get("/")
        );
        conn.send(requests.as_bytes()).await;
        let resp = conn.response().await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("connection"), "close", "for {value:?}");
        assert_eq!(csv_lines(&resp), 3);
        conn.expect_eof().await;
    }
}

#[tokio::test]
async fn head_is_answered_without_a_body_and_the_connection_stays_usable() {
    let app = spawn_app().await;
    let mut conn = Conn::open(&app).await;
    let css = css_path();
    conn.send(format!("HEAD {css} HTTP/1.1\r\nHost: herald.test\r\n\r\n").as_bytes())
        .await;
    let head = conn.head_response().await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("content-type"), "text/css; charset=utf-8");
    assert_dated(&head);
    // Had any body bytes followed the head, this would not parse as the next status line.
    conn.send(get(&css).as_bytes()).await;
    let full = conn.response().await;
    assert_eq!(full.status, 200, "{full:?}");
    assert_eq!(full.body, include_bytes!("../static/app.css"));
}

#[tokio::test]
async fn http_1_0_is_answered_without_chunks_and_closed() {
    let app = spawn_app().await;
    for path in ["/csv?rows=3".to_string(), css_path()] {
        let mut conn = Conn::open(&app).await;
        conn.send(format!("GET {path} HTTP/1.0\r\nHost: herald.test\r\n\r\n").as_bytes())
            .await;
        let resp = conn.response().await;
        assert_eq!(resp.status, 200, "{path}: {resp:?}");
        assert!(
            resp.get("transfer-encoding").is_none(),
            "HTTP/1.0 has no chunked encoding: {resp:?}"
        );
        assert_dated(&resp);
        if path.starts_with("/csv") {
            assert_eq!(csv_lines(&resp), 4, "{}", resp.text());
        } else {
            assert_eq!(resp.body, include_bytes!("../static/app.css"));
        }
        conn.expect_eof().await;
    }
}

#[tokio::test]
async fn large_heads_go_to_hyper_which_serves_them_up_to_its_own_limit() {
    let app = spawn_app().await;

    // Over the 16 KB parsed here but well within hyper's limit: served.
    let mut conn = Conn::open(&app).await;
    let big = "a".repeat(20 * 1024);
    conn.send(
        format!("GET /csv?rows=1 HTTP/1.1\r\nHost: herald.test\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    let resp = conn.response().await;
    assert_eq!(resp.status, 200, "a 20 KB head is still served: {resp:?}");
    assert_eq!(csv_lines(&resp), 2);
    conn.send(get("/csv?rows=2").as_bytes()).await;
    assert_eq!(
        csv_lines(&conn.response().await),
        3,
        "and the connection goes on"
    );

    // More headers than parsed here (64): served by hyper too.
    let mut conn = Conn::open(&app).await;
    let many: String = (0..70).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    conn.send(format!("GET /csv?rows=1 HTTP/1.1\r\nHost: herald.test\r\n{many}\r\n").as_bytes())
        .await;
    let resp = conn.response().await;
    assert_eq!(resp.status, 200, "70 headers are still served: {resp:?}");

    // Past hyper's limit (about 400 KB): its 431, then it closes.
    let mut conn = Conn::open(&app).await;
    let huge = "a".repeat(512 * 1024);
    let request = format!("GET / HTTP/1.1\r\nHost: herald.test\r\nX-Huge: {huge}\r\n\r\n");
    // The server may stop reading part-way; the answer is what matters, not the write.
    let _ = conn.tcp.write_all(request.as_bytes()).await;
    let resp = conn.response().await;
    assert_eq!(
        resp.status, 431,
        "hyper answers an oversized head with 431 Request Header Fields Too Large: {resp:?}"
    );

    // The server is still up.
    let mut conn = Conn::open(&app).await;
    conn.send(get("/csv?rows=1").as_bytes()).await;
    assert_eq!(conn.response().await.status, 200);
}

#[tokio::test]
async fn a_malformed_request_line_gets_400_and_the_connection_closes() {
    let app = spawn_app().await;
    for garbage in [
        "GARBAGE\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    ] {
        let mut conn = Conn::open(&app).await;
        conn.send(garbage.as_bytes()).await;
        let resp = conn.response().await;
        assert_eq!(resp.status, 400, "{garbage:?}: {resp:?}");
        conn.expect_eof().await;
    }
    let mut conn = Conn::open(&app).await;
    conn.send(get("/csv?rows=1").as_bytes()).await;
    assert_eq!(conn.response().await.status, 200, "still serving");
}

#[tokio::test]
async fn a_head_split_across_writes_is_served() {
    let app = spawn_app().await;
    let mut conn = Conn::open(&app).await;
    let request = "GET /csv?rows=3 HTTP/1.1\r\nHost: herald.test\r\nAccept: */*\r\n\r\n";
    // Cut in the request line, between CR and LF, and just before the final CRLF.
    let cuts = [10, 46, request.len() - 2, request.len()];
    let mut from = 0;
    for to in cuts {
        conn.send(&request.as_bytes()[from..to]).await;
        conn.tcp.flush().await.unwrap();
        from = to;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = conn.response().await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(csv_lines(&resp), 4, "{}", resp.text());

    // The same, byte by byte for a second request on the connection.
    for byte in get("/csv?rows=1").bytes() {
        conn.send(&[byte]).await;
    }
    assert_eq!(csv_lines(&conn.response().await), 2);
}

#[tokio::test]
async fn closing_the_socket_during_a_tab_stream_releases_it() {
    let app = spawn_app().await;
    let mut conn = Conn::open(&app).await;
    let stream_request = conn.load_page().await;
    assert_eq!(
        app.state.hub.client_logs(),
        1,
        "the page made the tab's log"
    );

    // The stream on the same keep-alive connection.
    conn.send(stream_request.as_bytes()).await;
    conn.wait_for("\r\n\r\n").await;
    let head = String::from_utf8_lossy(&conn.buf).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    // A tab's stream owns its connection: its body ends when the connection does, so its
    // messages go out as plain SSE bytes.
    assert!(head.contains("connection: close"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    conn.wait_for("retry:").await;
    assert_eq!(app.state.hub.client_logs(), 1, "the open stream keeps it");

    drop(conn);
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.state.hub.client_logs() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream was not released after the client closed its socket"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut conn = Conn::open(&app).await;
    conn.send(get("/csv?rows=1").as_bytes()).await;
    assert_eq!(conn.response().await.status, 200, "still serving");
}

#[tokio::test]
async fn a_get_with_a_body_is_answered_by_hyper_and_the_connection_goes_on() {
    let app = spawn_app().await;
    let mut conn = Conn::open(&app).await;
    conn.send(b"GET /csv?rows=2 HTTP/1.1\r\nHost: herald.test\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    let resp = conn.response().await;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(csv_lines(&resp), 3, "{}", resp.text());
    // The body was consumed as a body, not read as the next request.
    conn.send(get("/csv?rows=1").as_bytes()).await;
    let next = conn.response().await;
    assert_eq!(next.status, 200, "{next:?}");
    assert_eq!(csv_lines(&next), 2);

    // `Content-Length: 0` is a GET without a body: served on the same footing.
    let mut conn = Conn::open(&app).await;
    conn.send(b"GET /csv?rows=1 HTTP/1.1\r\nHost: herald.test\r\nContent-Length: 0\r\n\r\n")
        .await;
    assert_eq!(csv_lines(&conn.response().await), 2);
    conn.send(get("/csv?rows=1").as_bytes()).await;
    assert_eq!(csv_lines(&conn.response().await), 2);
}

#[tokio::test]
async fn gets_with_transfer_encoding_expect_or_upgrade_are_handed_to_hyper() {
    let app = spawn_app().await;
    let mut conn = Conn::open(&app).await;
    for extra in [
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "Expect: 100-continue\r\n\r\n",
        "Upgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    ] {
        conn.send(format!("GET /csv?rows=1 HTTP/1.1\r\nHost: herald.test\r\n{extra}").as_bytes())
            .await;
        let resp = conn.response().await;
        assert_eq!(resp.status, 200, "{extra:?}: {resp:?}");
        assert_eq!(csv_lines(&resp), 2, "{extra:?}: {}", resp.text());
    }
    conn.send(get("/csv?rows=2").as_bytes()).await;
    assert_eq!(
        csv_lines(&conn.response().await),
        3,
        "the connection goes on"
    );
}

#[tokio::test]
async fn shutdown_closes_idle_connections_whoever_serves_them() {
    let mut app = spawn_app().await;
    let mut native = Conn::open(&app).await;
    native.send(get("/csv?rows=1").as_bytes()).await;
    assert_eq!(native.response().await.status, 200);
    let mut handed = Conn::open(&app).await;
    handed
        .send(b"HEAD / HTTP/1.1\r\nHost: herald.test\r\n\r\n")
        .await;
    assert_eq!(handed.head_response().await.status, 200);
    let mut half_sent = Conn::open(&app).await;
    // Read or not by the time the server stops, half a head does not hold up the shutdown.
    half_sent.send(b"GET / HT").await;
    app.stop().await;
    native.expect_eof().await;
    handed.expect_eof().await;
    // Unread bytes make the kernel answer the close with a reset, which is a close too.
    let mut rest = Vec::new();
    let end = tokio::time::timeout(WAIT, half_sent.tcp.read_to_end(&mut rest))
        .await
        .expect("the half-sent connection is closed in time");
    assert!(
        matches!(&end, Ok(0))
            || end
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{end:?} {rest:?}"
    );
}

#[tokio::test]
async fn a_tab_stream_on_a_connection_hyper_serves_is_a_chunked_body_that_stays_live() {
    let app = spawn_app().await;
    let mut conn = Conn::open(&app).await;
    let stream_request = conn.load_page().await;

    // A POST hands this connection to hyper for good.
    let json = r#"{"type":"info","title":"First","body":"before the stream"}"#;
    conn.send(notify(json).as_bytes()).await;
    assert_eq!(conn.response().await.status, 201);

    conn.send(stream_request.as_bytes()).await;
    conn.wait_for("\r\n\r\n").await;
    let head = String::from_utf8_lossy(&conn.buf).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    conn.wait_for("retry:").await;

    // The stream is not parked with the fan-out, but still live.
    let client = app.client();
    let sent = client.get("/send?message=through%20hyper").await;
    assert_eq!(sent.status, 200);
    conn.wait_for("through hyper").await;
}

#[tokio::test]
async fn a_tab_that_stops_reading_delays_nobody_and_is_resynced_when_it_reads_again() {
    let app = spawn_app_with(|config| {
        config.hub.history.messages = 8;
        config.limits.message_chars = 200_000;
        config.limits.request_bytes = 1 << 20;
    })
    .await;
    let (mut slow, _) = Conn::narrow_tab(&app).await;

    let client = app.client();
    let tab = client.open_tab().await;
    let mut fast = client.stream(&tab.stream_url).await;
    // 60 messages of 150 KB: far more than the slow tab's socket buffers take, and than history.
    flood_board(&client, &mut fast, 60).await;
    assert_eq!(client.get("/send?message=after").await.status, 200);

    // Reading again, the slow tab catches up through a resync (the board as it is now) rather
    // than every message it missed.
    let mut seen = std::collections::BTreeSet::new();
    let mut tail: Vec<u8> = std::mem::take(&mut slow.buf);
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + WAIT * 4;
    loop {
        // Board messages that arrived, one by one.
        let mut from = 0;
        while let Some(at) = find(&tail[from..], b"board-text\">m") {
            let rest = &tail[from + at + 13..];
            let Some(dash) = rest.iter().position(|&b| b == b'-') else {
                break;
            };
            seen.insert(String::from_utf8_lossy(&rest[..dash]).into_owned());
            from += at + 13;
        }
        assert!(
            find(&tail, b"xid: ").is_none(),
            "a message was cut short and the next written after it"
        );
        if find(&tail, b">after</blockquote>").is_some() {
            break;
        }
        // Scanned bytes go; the last 64 may hold the start of a marker or of "after".
        let cut = from.max(tail.len().saturating_sub(64));
        tail.drain(..cut);
        let n = tokio::time::timeout_at(deadline, slow.tcp.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("the slow tab did not catch up in time; saw {seen:?}"))
            .expect("read");
        assert!(n > 0, "the stream ended");
        tail.extend_from_slice(&chunk[..n]);
    }
    assert!(
        !seen.is_empty() && seen.len() < 60,
        "what its socket held, then one resync instead of the rest: {seen:?}"
    );
    assert!(!seen.contains("59"), "{seen:?}");
    // And it is live again.
    assert_eq!(client.get("/send?message=live").await.status, 200);
    slow.buf = tail;
    slow.wait_for(">live</blockquote>").await;
}
